"""The session index without a network: number normalisation, which payload values are numbers,
the blinder's cache and errors (botocore's Stubber on a real KMS client), the batch writer's
retry of UnprocessedItems, and the cursor's validation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from recording_archive.dal import session_index as si
from recording_archive.dal.session_index import NumberBlinder, SessionIndex, event_numbers
from recording_archive.models.errors import (
    NumberKeyUnavailableError,
    SessionIndexUnavailableError,
)
from recording_archive.models.phone import MAX_DIGITS, normalise_number

KEY = "arn:aws:kms:us-east-1:123456789012:key/5678abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+1 415-555-0123", "14155550123"),
        ("14155550123", "14155550123"),
        ("+14155550123", "14155550123"),
        ("(415) 555 0123", "4155550123"),
        ("+91 98765 43210", "919876543210"),
        ("sip:alice@example.com", None),
        ("", None),
        ("+", None),
        ("٤١٥٥٥٥٠١٢٣", None),  # Arabic-Indic digits: not what Plivo sends
        ("1" * MAX_DIGITS, "1" * MAX_DIGITS),
        ("1" * (MAX_DIGITS + 1), None),
    ],
)
def test_normalise_number(value: str, expected: str | None) -> None:
    assert normalise_number(value) == expected


def test_event_numbers_of_every_stored_shape() -> None:
    item = {
        "Payload": {
            "From": ["+1 415 555 0101"],  # form bodies: lists of strings
            "To": "919876543210",  # JSON string
            "VirtualNumber": Decimal("14155550199"),  # JSON number
            "FirstParty": ["+14155550101", "14155550101"],  # repeated: the same number once
            "SecondParty": None,
            "Other": "+14155550000",  # not a phone field
        }
    }
    assert event_numbers(item) == {
        "14155550101": "FirstParty,From",
        "919876543210": "To",
        "14155550199": "VirtualNumber",
    }
    for payload in (None, "text", [], {"From": True}, {"From": {"nested": "1"}}, {"To": "x"}):
        assert event_numbers({"Payload": payload}) == {}


@pytest.fixture
def kms() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("kms", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _mac_call(stub: Stubber, message: str, mac: bytes) -> None:
    stub.add_response(
        "generate_mac",
        {"Mac": mac, "KeyId": KEY, "MacAlgorithm": "HMAC_SHA_256"},
        {"KeyId": KEY, "MacAlgorithm": "HMAC_SHA_256", "Message": message.encode()},
    )


def test_blinder_asks_kms_once_per_number_and_bounds_its_cache(
    kms: tuple[Any, Stubber],
) -> None:
    client, stub = kms
    _mac_call(stub, "111", b"\x01" * 32)
    _mac_call(stub, "222", b"\x02" * 32)
    _mac_call(stub, "333", b"\x03" * 32)
    _mac_call(stub, "111", b"\x01" * 32)  # evicted (cache of two), asked again
    blinder = NumberBlinder(client, KEY, cache_size=2)
    assert blinder.mac("111") == "01" * 32
    assert blinder.mac("111") == "01" * 32  # cached: no second call
    assert blinder.mac("222") == "02" * 32
    assert blinder.mac("333") == "03" * 32
    assert blinder.mac("111") == "01" * 32


def test_blinder_takes_a_client_factory_and_calls_it_only_when_needed(
    kms: tuple[Any, Stubber],
) -> None:
    client, stub = kms
    made: list[Any] = []

    def factory() -> Any:
        made.append(client)
        return client

    blinder = NumberBlinder(factory, KEY)
    assert made == []
    _mac_call(stub, "14155550101", b"\xab" * 32)
    assert blinder.mac("14155550101") == "ab" * 32
    assert made == [client]


def test_blinder_errors_are_one_domain_error_without_the_number(
    kms: tuple[Any, Stubber],
) -> None:
    client, stub = kms
    stub.add_client_error("generate_mac", "DisabledException", "key is disabled")
    blinder = NumberBlinder(client, KEY)
    with pytest.raises(NumberKeyUnavailableError) as info:
        blinder.mac("14155550101")
    assert "DisabledException" in str(info.value) and "4155550101" not in str(info.value)
    assert isinstance(info.value, SessionIndexUnavailableError)
    with pytest.raises(ValueError, match="normalised"):
        blinder.mac("+14155550101")
    with pytest.raises(ValueError, match="key"):
        NumberBlinder(client, "")


class ScriptedDynamo:
    """batch_write_item answers from a script: each entry is the UnprocessedItems count."""

    def __init__(self, unprocessed: list[int]) -> None:
        self.unprocessed = unprocessed
        self.calls: list[int] = []

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        [(table, requests)] = RequestItems.items()
        self.calls.append(len(requests))
        left = self.unprocessed.pop(0) if self.unprocessed else 0
        return {"UnprocessedItems": {table: requests[:left]} if left else {}}


def _keys(n: int) -> list[dict[str, str]]:
    return [{"pk": "DAY#2026-12-03", "sk": f"2026-12-03T00:00:00.000Z#s#{i}"} for i in range(n)]


def test_batch_writes_retry_unprocessed_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(si.time, "sleep", lambda _s: None)
    dynamo = ScriptedDynamo([3, 1])
    index = SessionIndex(dynamo, "t", None)  # type: ignore[arg-type]
    assert index.delete_entries(_keys(30) + _keys(30)) == 30  # each key once
    # 25, then its 3 unprocessed, then 1 of those, then the last 5.
    assert dynamo.calls == [25, 3, 1, 5]


def test_batch_writes_give_up_with_a_domain_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(si.time, "sleep", lambda _s: None)
    dynamo = ScriptedDynamo([2] * 20)
    index = SessionIndex(dynamo, "t", None)  # type: ignore[arg-type]
    with pytest.raises(SessionIndexUnavailableError, match="unprocessed"):
        index.delete_entries(_keys(2))
    assert len(dynamo.calls) == si._BATCH_ROUNDS


def test_number_entries_need_a_key_and_a_window_needs_order() -> None:
    index = SessionIndex(ScriptedDynamo([]), "t", None)  # type: ignore[arg-type]
    event = {
        "SessionUUID": "s",
        "SequenceNumber": 1,
        "ReceivedAt": "2026-12-03T10:00:00.000Z",
        "Payload": {"From": ["+14155550101"]},
    }
    with pytest.raises(NumberKeyUnavailableError):
        index.entry_keys([event])
    # Without a phone field no key is needed: the day entry only.
    assert index.entry_keys([{**event, "Payload": {}}]) == [
        {"pk": "DAY#2026-12-03", "sk": "2026-12-03T10:00:00.000Z#s#1"}
    ]
    with pytest.raises(ValueError, match="ReceivedAt"):
        index.entry_keys([{"SessionUUID": "s", "SequenceNumber": 1}])
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="after"):
        index.sessions(now, now - timedelta(hours=1))
    with pytest.raises(ValueError, match="limit"):
        index.sessions(now - timedelta(hours=1), now, limit=0)
    with pytest.raises(ValueError, match="timezone"):
        index.sessions(datetime(2026, 12, 3), now)
    for cursor in ("", "not base64!", "e30", "eyJkIjoxfQ"):  # "", junk, {}, {"d":1}
        with pytest.raises(ValueError, match="cursor"):
            index.sessions(now - timedelta(hours=1), now, cursor=cursor)
    with pytest.raises(ValueError, match="phone number"):
        index.sessions_for_number("no digits")


def test_a_number_key_without_an_index_table_is_refused_at_start() -> None:
    from pydantic import ValidationError

    from recording_archive.config import TableSettings

    base = {"events_table_name": "events"}
    with pytest.raises(ValidationError, match="NUMBER_INDEX_KEY_ID is set without"):
        TableSettings.model_validate({**base, "number_index_key_id": KEY})
    # Neither (a stack from before the index), or the table alone (reconcile), are valid.
    assert TableSettings.model_validate(base).index_table_name == ""
    assert (
        TableSettings.model_validate({**base, "index_table_name": "idx"}).number_index_key_id == ""
    )


def test_a_new_event_is_one_batch_write_and_gives_up_after_three(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(si.time, "sleep", sleeps.append)
    event = {"SessionUUID": "s", "SequenceNumber": 7, "ReceivedAt": "2026-12-03T10:00:00.000Z"}
    ok = ScriptedDynamo([])
    SessionIndex(ok, "t", None).add_event(event)  # type: ignore[arg-type]
    assert ok.calls == [1] and sleeps == []
    throttled = ScriptedDynamo([1] * 10)
    with pytest.raises(SessionIndexUnavailableError, match="after 3 batch writes"):
        SessionIndex(throttled, "t", None).add_event(event)  # type: ignore[arg-type]
    # Three tries on the callback's path, 0.15 s of backoff at most.
    assert throttled.calls == [1, 1, 1] and sum(sleeps) == pytest.approx(0.15)
