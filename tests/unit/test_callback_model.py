"""The inbound model, the request decoder and the item builder, without AWS."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from recording_archive.dal.events_table import serialize_item
from recording_archive.logic.callback_request import (
    CallbackRequest,
    decode_request,
    validate_callback,
    verify_request,
)
from recording_archive.logic.store_callback import build_item, payload_sha256, storable
from recording_archive.models.callback import RecordingCallback, parse_timestamp
from recording_archive.models.errors import (
    CallbackValidationError,
    MalformedBodyError,
    NoAuthTokenError,
    PayloadTooLargeError,
    SignatureInvalidError,
    SignatureMissingError,
    UnsupportedMediaTypeError,
)
from recording_archive.observability import mask_phone, masked_fields
from tests.support.plivo import recording_event

SIGNED = {"x-plivo-signature-v3": "c2ln", "x-plivo-signature-v3-nonce": "n"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2023-07-05 10:25:40 +0000 UTC", datetime(2023, 7, 5, 10, 25, 40, tzinfo=UTC)),
        (
            "2023-07-05 10:25:40.877364 +0000 UTC",
            datetime(2023, 7, 5, 10, 25, 40, 877364, tzinfo=UTC),
        ),
        ("2023-07-05 10:25:40+05:30", datetime(2023, 7, 5, 4, 55, 40, tzinfo=UTC)),
        ("2023-07-05T10:25:40Z", datetime(2023, 7, 5, 10, 25, 40, tzinfo=UTC)),
        ("2023-07-05 10:25:40", datetime(2023, 7, 5, 10, 25, 40, tzinfo=UTC)),
        ("1688552740", datetime(2023, 7, 5, 10, 25, 40, tzinfo=UTC)),
        ("2023-13-45 10:25:40", None),
        ("yesterday", None),
        ("", None),
    ],
)
def test_timestamps_parse_leniently(raw: str, expected: datetime | None) -> None:
    assert parse_timestamp(raw) == expected


def test_valid_completed_event() -> None:
    params = recording_event("SessionRecordingCompleted", sequence=10, fmt=".wav", duration="3.5")
    cb = RecordingCallback.model_validate(params)
    assert cb.SequenceNumber == 10
    assert cb.RecordingDuration == "3.5"  # as received
    assert cb.duration_seconds == Decimal("3.5")
    assert cb.recording_ext == "wav"
    assert set(cb.parsed_times()) == {"EventTime", "RecordingStartTime", "RecordingEndTime"}


def test_extension_from_url_and_default() -> None:
    params = recording_event(
        "SessionRecordingCompleted", recording_url="https://media.plivo.com/a.wav"
    )
    del params["RecordingFormat"]
    assert RecordingCallback.model_validate(params).recording_ext == "wav"
    params["RecordingURL"] = "https://media.plivo.com/a"
    assert RecordingCallback.model_validate(params).recording_ext == "mp3"
    assert (
        RecordingCallback.model_validate(recording_event("SessionRecordingFailed")).recording_ext
        is None
    )


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"SessionUUID": "nope"}, ["SessionUUID"]),
        ({"SessionUUID": " " + str(uuid.uuid4())}, ["SessionUUID"]),
        ({"SequenceNumber": "1.5"}, ["SequenceNumber"]),
        ({"SequenceNumber": "-1"}, ["SequenceNumber"]),
        ({"SequenceNumber": ""}, ["SequenceNumber"]),
        ({"EventName": ""}, ["EventName"]),
        ({"EventName": "x" * 129}, ["EventName"]),
        ({"SequenceNumber": 10**18}, ["SequenceNumber"]),
        ({"SequenceNumber": True}, ["SequenceNumber"]),
        ({"SequenceNumber": Decimal("5.0")}, ["SequenceNumber"]),
        ({"RecordingUUID": "../../etc"}, ["RecordingUUID"]),
        ({"RecordingURL": "https://[::1/x"}, ["RecordingURL"]),
        ({"RecordingURL": "ftp://media.plivo.com/x"}, ["RecordingURL"]),
        ({"RecordingURL": "http://127.0.0.1/x.mp3"}, ["RecordingURL"]),
        ({"RecordingURL": ""}, ["RecordingURL"]),
        ({"RecordingUUID": ""}, ["RecordingUUID"]),
    ],
)
def test_invalid_completed_events_name_their_fields(
    changes: dict[str, str], fields: list[str]
) -> None:
    params = recording_event("SessionRecordingCompleted") | changes
    req = CallbackRequest("POST", "application/x-www-form-urlencoded", params, "", ("s",), "n")
    with pytest.raises(CallbackValidationError) as err:
        validate_callback(req, allow_loopback_http=False)
    assert err.value.fields == fields


def test_missing_required_attributes() -> None:
    req = CallbackRequest("POST", "application/json", {"From": "+1"}, "", ("s",), "n")
    with pytest.raises(CallbackValidationError) as err:
        validate_callback(req, allow_loopback_http=False)
    assert err.value.fields == ["SessionUUID", "SequenceNumber", "EventName"]


def test_loopback_http_only_when_allowed() -> None:
    params = recording_event("SessionRecordingCompleted", recording_url="http://127.0.0.1:9/x.wav")
    req = CallbackRequest("POST", "application/json", params, "", ("s",), "n")
    assert validate_callback(req, allow_loopback_http=True).RecordingURL == params["RecordingURL"]
    with pytest.raises(CallbackValidationError):
        validate_callback(req, allow_loopback_http=False)


@pytest.mark.parametrize(
    "key", ["SessionUUID", "SequenceNumber", "EventName", "RecordingUUID", "RecordingURL"]
)
def test_a_key_attribute_given_twice_with_different_values_is_refused(key: str) -> None:
    params = {k: [v] for k, v in recording_event("SessionRecordingCompleted").items()}
    other = {"SequenceNumber": "2", "SessionUUID": str(uuid.uuid4())}.get(key, "x" + params[key][0])
    params[key] = [params[key][0], other]
    params["To"] = ["+1", "+1"]  # same value twice is harmless
    req = CallbackRequest("POST", "application/x-www-form-urlencoded", params, "", ("s",), "n")
    with pytest.raises(CallbackValidationError) as err:
        validate_callback(req, allow_loopback_http=False)
    assert (err.value.fields, err.value.reason) == ([key], "repeated_key_attribute")


def test_a_repeated_unknown_or_non_key_attribute_is_kept_as_the_list_received() -> None:
    """Regression (issue 13): a form with an unknown attribute given twice was a 422."""
    params = {k: [v] for k, v in recording_event("SessionRecordingCompleted").items()}
    params["NewAttribute"] = ["a", "b"]
    params["EventTimestamp"] = ["2026-11-20 10:25:40 +0000 UTC", "later"]
    req = CallbackRequest("POST", "application/x-www-form-urlencoded", params, "", ("s",), "n")
    cb = validate_callback(req, allow_loopback_http=False)
    assert cb.model_extra == {"NewAttribute": ["a", "b"]} | {
        k: params[k][0] for k in ("From", "To", "VirtualNumber")
    }
    assert cb.EventTimestamp == ["2026-11-20 10:25:40 +0000 UTC", "later"]
    assert "EventTime" not in cb.parsed_times()  # two values: no parsed time, both kept


@pytest.mark.parametrize(
    ("params", "reason", "fields"),
    [
        ({"From": "+1"}, "missing_key_attribute", ["SessionUUID", "SequenceNumber", "EventName"]),
        (
            {"SessionUUID": "nope", "EventName": "X"},
            "missing_key_attribute",
            ["SessionUUID", "SequenceNumber"],
        ),
        (
            {"SessionUUID": "nope", "EventName": "X", "SequenceNumber": "1"},
            "invalid_key_attribute",
            ["SessionUUID"],
        ),
        (
            {
                "SessionUUID": str(uuid.UUID(int=1)),
                "EventName": "SessionRecordingCompleted",
                "SequenceNumber": 1,
                "RecordingUUID": "r1",
            },
            "missing_key_attribute",
            ["RecordingURL"],
        ),
    ],
)
def test_refusal_reason_tells_missing_from_invalid(
    params: dict[str, object], reason: str, fields: list[str]
) -> None:
    req = CallbackRequest("POST", "application/json", params, "", ("s",), "n")
    with pytest.raises(CallbackValidationError) as err:
        validate_callback(req, allow_loopback_http=False)
    assert (err.value.reason, err.value.fields) == (reason, fields)


@pytest.mark.parametrize(
    "changes",
    [
        {"RecordingFormat": ".ogg"},
        {"RecordingFormat": 3},
        {"RecordingDuration": "-3"},
        {"RecordingDuration": "NaN"},
        {"RecordingDuration": "abc"},
        {"RecordingDuration": Decimal("1E+400")},
        {"RecordingDuration": True},
        {"RecordingDuration": ["1", "2"]},
        {"EventTimestamp": 1688552740},
        {"EventTimestamp": {"nested": [1, None]}},
        {"RecordingStartTime": None},
        {"RecordingEndTime": False},
        {"RecordingResourceURL": "ftp://x"},
    ],
)
def test_non_key_attributes_of_any_shape_are_kept_never_refused(
    changes: dict[str, object],
) -> None:
    params = recording_event("SessionRecordingCompleted", fmt=".wav") | changes
    req = CallbackRequest("POST", "application/json", params, "", ("s",), "n")
    cb = validate_callback(req, allow_loopback_http=False)
    for name, value in changes.items():
        assert getattr(cb, name) == value
    assert cb.recording_ext == "wav"  # from the URL when the format is not one we know


@pytest.mark.parametrize(
    "raw",
    [
        "2026-12-03 10:00:00 +2400",  # regressions (issue 13): each was a 500, nothing stored
        "0001-01-01 00:00:00 +0100",
        "9999-12-31 23:59:59 -0100",
        "2026-12-03 10:00:00 +0060",
        "2026-02-30 10:00:00",
        "2026-12-03 24:00:00",
        True,
        None,
        ["2026-12-03 10:00:00"],
        Decimal("1688552740.5e300"),
    ],
)
def test_timestamps_that_cannot_be_parsed_give_none(raw: object) -> None:
    assert parse_timestamp(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-12-03 10:00:00 +2359", datetime(2026, 12, 2, 10, 1, tzinfo=UTC)),
        ("0001-01-01 00:00:00 -0100", datetime(1, 1, 1, 1, 0, tzinfo=UTC)),
        ("9999-12-31 23:59:59 +0100", datetime(9999, 12, 31, 22, 59, 59, tzinfo=UTC)),
        (1688552740, datetime(2023, 7, 5, 10, 25, 40, tzinfo=UTC)),
        (Decimal("1688552740.5"), datetime(2023, 7, 5, 10, 25, 40, 500000, tzinfo=UTC)),
    ],
)
def test_timestamps_at_the_edges_parse(raw: object, expected: datetime) -> None:
    assert parse_timestamp(raw) == expected


@pytest.mark.parametrize(
    "ts", ["2026-12-03 10:00:00 +2400", "0001-01-01 00:00:00 +0100", "9999-12-31 23:59:59 -0100"]
)
def test_unparseable_timestamps_are_kept_raw_and_the_parsed_field_is_absent(ts: str) -> None:
    params = recording_event("SessionRecordingCompleted") | {
        "EventTimestamp": ts,
        "RecordingStartTime": ts,
    }
    req = CallbackRequest("POST", "application/x-www-form-urlencoded", params, "raw", ("s",), "n")
    cb = validate_callback(req, allow_loopback_http=False)
    item = build_item(cb, req, received_at=datetime(2026, 12, 3, tzinfo=UTC), retention_days=0)
    assert item["Payload"]["EventTimestamp"] == item["Payload"]["RecordingStartTime"] == ts
    assert "EventTime" not in item and "RecordingStartTime" not in item
    assert item["RecordingEndTime"] == "2026-11-20T10:25:40.000Z"


JSON_HEADERS = {"content-type": "application/json", **SIGNED}


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": NaN}',
        b'{"a": [Infinity]}',
        b'{"a": -Infinity}',
        b'{"a": "\\ud800"}',
        b'{"\\udfff": "x"}',
        b'{"": 1}',
        b'{"a": {"": 1}}',
        b'{"a": [{"": 1}]}',
        b'{"a": ' + b"1" * 4301 + b"}",
    ],
)
def test_json_that_cannot_be_signed_or_stored_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBodyError):
        decode_request("POST", JSON_HEADERS, body, "")


# Only a form name can reach 64 KiB within a 64 KiB body (a JSON name has its quotes and value).
@pytest.mark.parametrize("body", [b"=x", b"a=1&=", b"x" * 65536])
def test_form_names_dynamodb_refuses_are_malformed(body: bytes) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded", **SIGNED}
    with pytest.raises(MalformedBodyError):
        decode_request("POST", headers, body, "")
    with pytest.raises(MalformedBodyError):
        decode_request("GET", SIGNED, b"", body.decode())


def test_names_just_under_the_limit_and_deep_json_at_the_limit_decode() -> None:
    name = "é" * 32764  # 65,528 bytes
    req = decode_request(
        "POST", JSON_HEADERS, json.dumps({name: 1}, ensure_ascii=False).encode(), ""
    )
    assert req.params == {name: 1}
    form = {"content-type": "application/x-www-form-urlencoded", **SIGNED}
    assert decode_request("POST", form, b"x" * 65535, "").params == {"x" * 65535: [""]}
    nested = '{"a":' * 7 + "{}" + "}" * 7  # eight objects deep: the limit
    assert decode_request("POST", JSON_HEADERS, nested.encode(), "").params["a"]
    with pytest.raises(MalformedBodyError):
        decode_request("POST", JSON_HEADERS, ('{"a":' * 8 + "[]" + "}" * 8).encode(), "")


def test_query_size_is_counted_in_bytes() -> None:
    query = "a=" + "é" * 32768  # 32,770 characters, 65,538 bytes
    with pytest.raises(PayloadTooLargeError):
        decode_request("GET", SIGNED, b"", query)


def test_json_numbers_are_decimal_exact_as_written() -> None:
    body = b'{"a": 12.50, "b": 1e16, "c": 10, "d": -0.0, "e": true, "f": null}'
    req = decode_request("POST", JSON_HEADERS, body, "")
    assert req.params == {
        "a": Decimal("12.50"),
        "b": Decimal("1e16"),
        "c": 10,
        "d": Decimal("-0.0"),
        "e": True,
        "f": None,
    }
    assert str(req.params["a"]) == "12.50"


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (Decimal("12.50"), Decimal("12.50")),
        (10**37, 10**37),
        (10**38, "100000000000000000000000000000000000000"),
        (Decimal("1E+400"), "1E+400"),
        (Decimal("1E-131"), "1E-131"),
        (Decimal("9.9E+125"), Decimal("9.9E+125")),
        (Decimal("1E+126"), "1E+126"),
        (Decimal("0E-500"), "0E-500"),
        (
            Decimal("1.000000000000000000000000000000000000000"),
            "1.000000000000000000000000000000000000000",
        ),
        ({"x": [Decimal("1e400"), "s", None, True]}, {"x": ["1E+400", "s", None, True]}),
    ],
)
def test_numbers_dynamodb_cannot_hold_are_stored_as_their_exact_text(
    value: object, stored: object
) -> None:
    assert storable(value) == stored
    if isinstance(stored, str):
        assert Decimal(stored) == value  # the same number, exactly
    serialize_item({"v": storable(value)})  # and boto3 takes it


def test_duration_is_stored_only_when_dynamodb_holds_it() -> None:
    for raw, expected in [("12.5", Decimal("12.5")), ("1e200", None), ("-1", None), ("x", None)]:
        params = recording_event("SessionRecordingCompleted", duration=raw)
        req = CallbackRequest("POST", "application/x-www-form-urlencoded", params, "r", ("s",), "n")
        cb = validate_callback(req, allow_loopback_http=False)
        item = build_item(cb, req, received_at=datetime(2026, 12, 3, tzinfo=UTC), retention_days=0)
        assert item.get("RecordingDurationSeconds") == expected
        assert item["Payload"]["RecordingDuration"] == raw


def test_decode_order_and_errors() -> None:
    big = b"x" * (64 * 1024 + 1)
    with pytest.raises(PayloadTooLargeError):
        decode_request("POST", {}, big, "")
    with pytest.raises(PayloadTooLargeError):
        decode_request("GET", {}, b"", "a=" + "x" * 70000)
    with pytest.raises(UnsupportedMediaTypeError):
        decode_request("POST", SIGNED, b"a=b", "")
    with pytest.raises(SignatureMissingError):
        decode_request("POST", {"content-type": "application/json"}, b"{}", "")
    with pytest.raises(MalformedBodyError):
        decode_request("POST", {"content-type": "application/json", **SIGNED}, b"\xff", "")
    with pytest.raises(MalformedBodyError):
        decode_request("GET", SIGNED, b"", "a=%ff")
    req = decode_request("GET", SIGNED, b"ignored", "a=1&b=&a=2")
    assert req.params == {"a": ["1", "2"], "b": [""]}
    assert "c2ln" not in repr(req)


def test_verify_without_tokens_fails_closed() -> None:
    req = decode_request("GET", SIGNED, b"", "a=1")
    with pytest.raises(NoAuthTokenError):
        verify_request(req, "https://x.example/cb", ())
    with pytest.raises(SignatureInvalidError):
        verify_request(req, "https://x.example/cb", ("token",))


def test_item_has_parsed_fields_retention_and_pending_marker() -> None:
    params = recording_event("SessionRecordingCompleted", sequence=3)
    req = CallbackRequest("POST", "application/x-www-form-urlencoded", params, "raw", ("s",), "n")
    cb = RecordingCallback.model_validate(params)
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    item = build_item(cb, req, received_at=now, retention_days=30)
    assert item["ExpiresAt"] == int(now.timestamp()) + 30 * 86400
    assert item["ArchiveStatus"] == item["ArchiveQueue"] == "PENDING"
    assert item["ArchiveDueAt"] == int(now.timestamp())
    assert item["ReceivedAt"] == "2026-11-26T12:00:00.000Z"
    assert item["PayloadSha256"] == payload_sha256(dict(reversed(list(params.items()))))
    no_ttl = build_item(cb, req, received_at=now, retention_days=0)
    assert "ExpiresAt" not in no_ttl


def test_phone_masking() -> None:
    assert mask_phone("+14155550123") == "***0123"
    assert mask_phone("+1 (415) 555-0123") == "***0123"
    assert mask_phone("123") == "***"
    assert masked_fields({"From": "+14155550123", "X": "+14155550123"}) == {
        "From": "***0123",
        "X": "+14155550123",
    }


def test_a_json_list_is_a_value_not_a_repeated_attribute() -> None:
    """Found by the signed fuzzing: `"EventName": ["x"]` in JSON was read as EventName "x"."""
    params: dict[str, object] = dict(recording_event("SessionRecordingInitiated"))
    params["Tags"] = ["a", "b"]
    req = CallbackRequest("POST", "application/json", params, "", ("s",), "n")
    assert validate_callback(req, allow_loopback_http=False).model_extra["Tags"] == ["a", "b"]
    for key in ("EventName", "SequenceNumber", "RecordingUUID"):
        bad = CallbackRequest("POST", "application/json", params | {key: ["1"]}, "", ("s",), "n")
        with pytest.raises(CallbackValidationError) as err:
            validate_callback(bad, allow_loopback_http=False)
        assert (err.value.fields, err.value.reason) == ([key], "invalid_key_attribute")
