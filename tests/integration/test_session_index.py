"""The session index against the template's IndexTable and HMAC key in moto: written by the real
CallbackFunction and FallbackDrainFunction handlers, listed, searched by number, rebuilt and
deleted; and what the table never holds (a number, its digits, an unkeyed hash of it)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from recording_archive.dal import aws
from recording_archive.dal.session_index import NumberBlinder, SessionIndex
from recording_archive.handlers import fallback_drain
from recording_archive.models.errors import SessionIndexUnavailableError
from recording_archive_cli.local.resources import LocalResources
from recording_archive_cli.main import main
from tests.support.callback_flow import post_signed_callback
from tests.support.logs import captured_log_lines
from tests.support.moto_resources import TOKEN, scan_items
from tests.support.plivo import recording_event

FROM = "+14155550101"
TO = "+919876543210"
VIRTUAL = "+14155550199"
NUMBERS = (FROM, TO, VIRTUAL)


def index_items(resources: LocalResources) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
    pages = ddb.get_paginator("scan").paginate(
        TableName=resources.index_table_name, ConsistentRead=True
    )
    return [item for page in pages for item in page["Items"]]


def index(resources: LocalResources) -> SessionIndex:
    return SessionIndex(
        boto3.client("dynamodb", endpoint_url=resources.endpoint_url),
        resources.index_table_name,
        NumberBlinder(
            boto3.client("kms", endpoint_url=resources.endpoint_url),
            resources.number_index_key_arn,
        ),
    )


def assert_no_number_in(items: list[dict[str, Any]]) -> None:
    """Not a number in any form, nor its digits, nor a plain SHA-256 (hex or base64) of them."""
    text = json.dumps(items)
    for number in NUMBERS:
        digits = number.lstrip("+")
        forbidden = {number, digits, digits[-10:]}
        for form in (number, digits):
            digest = hashlib.sha256(form.encode()).digest()
            forbidden |= {digest.hex(), base64.b64encode(digest).decode()}
        for value in forbidden:
            assert value not in text, f"the index holds {value!r} (a form of {number})"


@pytest.fixture
def callback(function_env: Any) -> dict[str, str]:
    return function_env("CallbackFunction")


def test_a_stored_callback_writes_day_and_blinded_number_entries(
    callback: dict[str, str], resources: LocalResources
) -> None:
    params = recording_event("SessionRecordingInitiated", sequence=3)
    assert post_signed_callback(params, TOKEN) == 200
    [event] = scan_items(resources)
    received = event["ReceivedAt"]["S"]
    items = index_items(resources)
    sort_key = f"{received}#{params['SessionUUID']}#3"
    assert {i["sk"]["S"] for i in items} == {sort_key}
    by_pk = {i["pk"]["S"]: i for i in items}
    day = by_pk.pop(f"DAY#{received[:10]}")
    assert day["EventName"] == {"S": "SessionRecordingInitiated"}
    assert day["SessionUUID"] == {"S": params["SessionUUID"]}
    assert day["SequenceNumber"] == {"N": "3"}
    # One number entry per phone field, keyed by the KMS HMAC (64 hex digits).
    assert len(by_pk) == 3 and all(len(pk) == 4 + 64 and pk[:4] == "NUM#" for pk in by_pk)
    assert sorted(i["Field"]["S"] for i in by_pk.values()) == ["From", "To", "VirtualNumber"]
    assert_no_number_in(items)
    # The same key as an operator's blinder computes (with or without +).
    assert f"NUM#{index(resources)._blinder.mac('14155550101')}" in by_pk  # type: ignore[union-attr]

    # A repeat is a duplicate: nothing new in the index either.
    assert post_signed_callback(params, TOKEN) == 200
    assert index_items(resources) == items


def test_a_callback_without_phone_fields_creates_no_kms_client(
    callback: dict[str, str], resources: LocalResources
) -> None:
    params = recording_event("SessionRecordingInitiated")
    for name in ("From", "To", "VirtualNumber"):
        del params[name]
    assert post_signed_callback(params, TOKEN) == 200
    assert aws.kms_client.cache_info().currsize == 0
    [entry] = index_items(resources)
    assert entry["pk"]["S"].startswith("DAY#")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INDEX_TABLE_NAME", "local-NoSuchIndexTable"),
        ("NUMBER_INDEX_KEY_ID", "arn:aws:kms:us-east-1:123456789012:key/no-such-key"),
    ],
)
def test_an_index_failure_neither_loses_nor_fails_the_event(
    function_env: Any,
    resources: LocalResources,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    function_env("CallbackFunction", **{variable: value})
    params = recording_event("SessionRecordingCompleted")
    capsys.readouterr()
    with captured_log_lines() as logs:
        assert post_signed_callback(params, TOKEN) == 200
    [event] = scan_items(resources)
    assert event["SessionUUID"] == {"S": params["SessionUUID"]}
    lines = logs.getvalue().splitlines()
    warning = [line for line in lines if "session index entries not written" in line]
    assert len(warning) == 1
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert [m["IndexWriteFailed"] for m in emitted if "IndexWriteFailed" in m] == [[1.0]]
    joined = logs.getvalue()
    for number in NUMBERS:
        assert number not in joined and number.lstrip("+") not in joined
    if variable == "NUMBER_INDEX_KEY_ID":
        assert "NotFoundException" in warning[0]
    else:
        assert "ResourceNotFoundException" in warning[0]

    # `index rebuild` repairs.
    assert main(["index", "rebuild", "--endpoint-url", resources.endpoint_url, "--json"]) == 0
    assert index(resources).sessions_for_number(FROM)[0].session_uuid == params["SessionUUID"]


def test_the_fallback_drain_indexes_the_events_it_stores(
    function_env: Any, resources: LocalResources
) -> None:
    function_env("FallbackDrainFunction")
    session = str(uuid.uuid4())
    item = {
        "SessionUUID": session,
        "SequenceNumber": 1,
        "EventName": "SessionRecordingInitiated",
        "Payload": {"From": [FROM], "To": [TO]},
        "RawBody": "x",
        "PayloadSha256": "0" * 64,
        "ReceivedAt": "2026-12-03T10:00:00.000Z",
        "Source": "callback",
        "Method": "POST",
        "ContentType": "application/x-www-form-urlencoded",
    }
    from recording_archive.dal.fallback_queue import encode_message

    record = fallback_drain.SQSRecord({"body": encode_message(item), "messageId": "m1"})
    assert fallback_drain.drain_record(record).value == "stored"
    found = index(resources).sessions_for_number("14155550101")
    assert [s.session_uuid for s in found] == [session]
    assert len(index_items(resources)) == 3  # day, From, To


# --- listing and searching ---------------------------------------------------------------------
BASE = datetime(2026, 12, 3, 23, 50, tzinfo=UTC)


def _event(session: str, seq: int, at: datetime, **payload: str) -> dict[str, Any]:
    return {
        "SessionUUID": session,
        "SequenceNumber": seq,
        "EventName": "SessionRecordingInitiated",
        "ReceivedAt": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "Payload": {k: [v] for k, v in payload.items()},
    }


@pytest.fixture
def populated(resources: LocalResources) -> tuple[SessionIndex, list[str]]:
    """Seven sessions, one every 5 minutes across midnight, two events each (a minute apart)."""
    idx = index(resources)
    sessions = [f"s{i}-{uuid.uuid4().hex[:8]}" for i in range(7)]
    for i, session in enumerate(sessions):
        start = BASE + timedelta(minutes=5 * i)
        number = FROM if i % 2 == 0 else TO
        idx.add_event(_event(session, 1, start, From=number))
        idx.add_event(_event(session, 2, start + timedelta(minutes=1), From=number))
    return idx, sessions


def test_sessions_are_listed_newest_first_page_by_page_across_days(
    populated: tuple[SessionIndex, list[str]],
) -> None:
    idx, sessions = populated
    since, until = BASE - timedelta(hours=1), BASE + timedelta(hours=1)
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page, cursor = idx.sessions(since, until, limit=3, cursor=cursor)
        pages.append([s.session_uuid for s in page])
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [s for p in pages for s in p] == list(reversed(sessions))
    # Each summary: both events, first and last times.
    [full], _ = idx.sessions(since, until, limit=1)
    assert full.events == 2
    assert full.first_received_at < full.last_received_at
    assert full.last_received_at.startswith("2026-12-04T00:21")  # session 6, after midnight


def test_since_and_until_bound_the_listing(populated: tuple[SessionIndex, list[str]]) -> None:
    idx, sessions = populated
    # 23:55 .. 00:05: sessions 1 (23:55, 23:56) and 2 (00:00, 00:01); 3 starts at 00:05:00.
    page, cursor = idx.sessions(BASE + timedelta(minutes=5), BASE + timedelta(minutes=14))
    assert [s.session_uuid for s in page] == [sessions[2], sessions[1]]
    assert cursor is None
    page, _ = idx.sessions(BASE + timedelta(minutes=6), BASE + timedelta(minutes=11))
    # Session 1's second event (23:56) is inside; session 2 both; session 1's first is not.
    assert [(s.session_uuid, s.events) for s in page] == [(sessions[2], 2), (sessions[1], 1)]
    assert idx.sessions(BASE + timedelta(days=1), BASE + timedelta(days=2)) == ([], None)


def test_a_number_is_found_with_or_without_plus_and_since(
    populated: tuple[SessionIndex, list[str]],
) -> None:
    idx, sessions = populated
    with_plus = [s.session_uuid for s in idx.sessions_for_number(FROM)]
    assert with_plus == [sessions[6], sessions[4], sessions[2], sessions[0]]
    assert [s.session_uuid for s in idx.sessions_for_number("1 (415) 555-0101")] == with_plus
    recent = idx.sessions_for_number("14155550101", since=BASE + timedelta(minutes=15))
    assert [s.session_uuid for s in recent] == [sessions[6], sessions[4]]
    assert idx.sessions_for_number("+15005550000") == []


def test_entries_are_deleted_by_their_computed_keys_idempotently(
    populated: tuple[SessionIndex, list[str]], resources: LocalResources
) -> None:
    idx, sessions = populated
    events = [
        _event(sessions[0], seq, BASE + timedelta(minutes=seq - 1), From=FROM) for seq in (1, 2)
    ]
    keys = idx.entry_keys(events)
    assert len(keys) == 4  # a day and a number entry per event
    before = len(index_items(resources))
    assert idx.delete_entries(keys) == 4
    assert len(index_items(resources)) == before - 4
    assert idx.delete_entries(keys) == 4  # missing is fine
    assert sessions[0] not in [s.session_uuid for s in idx.sessions_for_number(FROM)]


def test_a_missing_table_is_a_domain_error(resources: LocalResources) -> None:
    idx = SessionIndex(
        boto3.client("dynamodb", endpoint_url=resources.endpoint_url), "local-Nothing", None
    )
    now = datetime.now(UTC)
    with pytest.raises(SessionIndexUnavailableError, match="ResourceNotFoundException"):
        idx.sessions(now - timedelta(hours=1), now)


# --- the operator commands ---------------------------------------------------------------------
def test_rebuild_indexes_events_stored_before_the_index(
    function_env: Any, resources: LocalResources, capsys: pytest.CaptureFixture[str]
) -> None:
    # Stored by a callback without the index (a stack deployed before it).
    function_env("CallbackFunction", INDEX_TABLE_NAME="", NUMBER_INDEX_KEY_ID="")
    first = recording_event("SessionRecordingInitiated")
    second = recording_event("SessionRecordingCompleted", sequence=2)
    assert post_signed_callback(first, TOKEN) == 200
    assert post_signed_callback(second, TOKEN) == 200
    assert index_items(resources) == []
    # An item that is no event of ours (no ReceivedAt) is counted and skipped, not fatal.
    boto3.client("dynamodb", endpoint_url=resources.endpoint_url).put_item(
        TableName=resources.table_name,
        Item={"SessionUUID": {"S": "manual"}, "SequenceNumber": {"N": "1"}},
    )
    endpoint = ["--endpoint-url", resources.endpoint_url]
    capsys.readouterr()

    assert main(["index", "rebuild", *endpoint, "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["events"], counts["entries_written"], counts["skipped"]) == (3, 8, 1)
    written = index_items(resources)
    assert len(written) == 8
    assert_no_number_in(written)
    # Idempotent: the same entries again.
    assert main(["index", "rebuild", *endpoint]) == 0
    assert "3 events read" in capsys.readouterr().out
    assert sorted(map(json.dumps, index_items(resources))) == sorted(map(json.dumps, written))

    assert main(["sessions", "find", "--number", "14155550101", *endpoint, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["number"] == "***0101"
    assert {s["session_uuid"] for s in found["sessions"]} == {
        first["SessionUUID"],
        second["SessionUUID"],
    }
    assert (
        main(["sessions", "list", "--since", "1h", *endpoint, "--status", "PENDING", "--json"]) == 0
    )
    listed = json.loads(capsys.readouterr().out)
    assert [s["session_uuid"] for s in listed["sessions"]] == [second["SessionUUID"]]
    assert listed["sessions"][0]["archive_status"] == ["PENDING"]
    assert main(["sessions", "list", "--since", "1h", *endpoint, "--status", "none"]) == 0
    text = capsys.readouterr().out
    assert first["SessionUUID"] in text and second["SessionUUID"] not in text


def test_list_pages_through_the_cursor_and_find_masks_the_number(
    populated: tuple[SessionIndex, list[str]],
    resources: LocalResources,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _idx, sessions = populated
    endpoint = ["--endpoint-url", resources.endpoint_url]
    until = (BASE + timedelta(hours=1)).isoformat()
    capsys.readouterr()
    window = ["--since", "2h", "--until", until, *endpoint, "--json"]
    assert main(["sessions", "list", *window, "--limit", "4"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert [s["session_uuid"] for s in first["sessions"]] == list(reversed(sessions))[:4]
    assert main(["sessions", "list", *window, "--cursor", first["next_cursor"]]) == 0
    rest = json.loads(capsys.readouterr().out)
    assert [s["session_uuid"] for s in rest["sessions"]] == list(reversed(sessions))[4:]
    assert rest["next_cursor"] is None

    assert main(["sessions", "find", "--number", FROM, *endpoint]) == 0
    out = capsys.readouterr().out
    assert "***0101" in out and "4155550101" not in out
    assert all(s in out for s in sessions[::2])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sessions", "find", "--number", "no-digits"], "not a phone number"),
        (["sessions", "list", "--cursor", "junk"], "cursor"),
        (["sessions", "list", "--since", "1h", "--until", "2026-13-01"], None),
        (["sessions", "list", "--status", "DONE"], None),
        (["sessions", "list", "--since", "soon"], None),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    resources: LocalResources,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str | None,
) -> None:
    endpoint = ["--endpoint-url", resources.endpoint_url]
    try:
        status = main([*argv, *endpoint])
    except SystemExit as exc:  # argparse's own refusal of an option's value
        status = int(exc.code or 0)
    assert status != 0
    err = capsys.readouterr().err
    # One line for our errors; argparse's refusals add their usage before it.
    last = err.strip().splitlines()[-1]
    assert last.startswith("recording-archive") and "error:" in last
    if message:
        assert message in last and "Traceback" not in err


def test_the_local_stack_creates_the_index_table_and_hmac_key_from_the_template(
    resources: LocalResources,
) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
    table = ddb.describe_table(TableName=resources.index_table_name)["Table"]
    assert resources.index_table_name == "local-IndexTable"
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    ttl = ddb.describe_time_to_live(TableName=resources.index_table_name)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ExpiresAt"
    kms = boto3.client("kms", endpoint_url=resources.endpoint_url)
    key = kms.describe_key(KeyId="alias/local-number-index")["KeyMetadata"]
    assert key["Arn"] == resources.number_index_key_arn
    assert (key["KeySpec"], key["KeyUsage"]) == ("HMAC_256", "GENERATE_VERIFY_MAC")
