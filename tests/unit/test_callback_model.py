"""The inbound model, the request decoder and the item builder, without AWS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from recording_archive.logic.callback_request import (
    CallbackRequest,
    decode_request,
    validate_callback,
    verify_request,
)
from recording_archive.logic.store_callback import build_item, payload_sha256
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
    assert cb.RecordingDuration == Decimal("3.5")
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
        ({"RecordingFormat": ".ogg"}, ["RecordingFormat"]),
        ({"RecordingDuration": "-3"}, ["RecordingDuration"]),
        ({"RecordingDuration": "NaN"}, ["RecordingDuration"]),
        ({"RecordingDuration": "abc"}, ["RecordingDuration"]),
        ({"RecordingUUID": "../../etc"}, ["RecordingUUID"]),
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


def test_repeated_attribute_with_different_values_is_refused() -> None:
    params = {k: [v] for k, v in recording_event("SessionRecordingInitiated").items()}
    params["SequenceNumber"] = ["1", "2"]
    params["To"] = ["+1", "+1"]  # same value twice is harmless
    req = CallbackRequest("POST", "application/x-www-form-urlencoded", params, "", ("s",), "n")
    with pytest.raises(CallbackValidationError) as err:
        validate_callback(req, allow_loopback_http=False)
    assert err.value.fields == ["SequenceNumber"]


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
