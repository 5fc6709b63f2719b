"""expires_at: the one computation of an event's ExpiresAt, and the details of lifecycle events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from recording_archive.dal.lifecycle_events import LifecycleEvents, detail_json
from recording_archive.logic.retention import S3_EXPIRY_ROUNDING_DAYS, expires_at

RECEIVED = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
DAY = 86400


def _at(days: int) -> int:
    return int((RECEIVED + timedelta(days=days)).timestamp())


@pytest.mark.parametrize(
    ("event_days", "archive_days", "expected"),
    [
        (0, 0, None),  # both kept for ever
        (0, 30, None),  # events kept for ever outlive any recording
        (30, 0, _at(30)),  # recordings for ever: EventRetentionDays applies as set
        (90, 30, _at(90)),  # events longer than recordings: as set
        (30, 90, _at(90 + S3_EXPIRY_ROUNDING_DAYS)),  # never before the recording
        (91, 90, _at(91)),
        (90, 90, _at(91)),  # equal: the day of S3's rounding to midnight UTC
        (1, 1, _at(2)),
    ],
)
def test_an_event_never_expires_before_its_recording(
    event_days: int, archive_days: int, expected: int | None
) -> None:
    assert expires_at(RECEIVED, event_days=event_days, archive_days=archive_days) == expected


def test_the_recording_expires_at_midnight_after_its_days_and_the_event_later() -> None:
    """S3 expires an object at the first midnight UTC after creation + N days; the event of a
    recording archived at receipt outlives that for every receive time of the day."""
    for hour in range(24):
        received = datetime(2026, 12, 3, hour, 59, 59, tzinfo=UTC)
        object_expiry = datetime(2026, 12, 3, tzinfo=UTC) + timedelta(days=30 + 1)
        event = expires_at(received, event_days=7, archive_days=30)
        assert event is not None and event >= int(object_expiry.timestamp())


def test_other_time_zones_are_the_same_instant() -> None:
    plus_two = RECEIVED.astimezone(timezone(timedelta(hours=2)))
    assert expires_at(plus_two, event_days=3, archive_days=0) == _at(3)


@pytest.mark.parametrize(
    ("received", "event_days", "archive_days", "message"),
    [
        (RECEIVED, -1, 0, "negative"),
        (RECEIVED, 0, -1, "negative"),
        (datetime(2026, 12, 3), 1, 0, "timezone-aware"),
    ],
)
def test_bad_input_is_refused(
    received: datetime, event_days: int, archive_days: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        expires_at(received, event_days=event_days, archive_days=archive_days)


# --- the detail of a lifecycle event -------------------------------------------------------------
def test_detail_keeps_known_fields_drops_unknown_values_and_renders_numbers() -> None:
    detail = {
        "SessionUUID": "s",
        "RecordingUUID": "r",
        "VersionId": None,
        "Size": 10,
        "DurationSeconds": Decimal("12"),
        "Sha256": "",
    }
    assert (
        detail_json(detail)
        == '{"DurationSeconds":12,"RecordingUUID":"r","SessionUUID":"s","Size":10}'
    )
    assert detail_json({"DurationSeconds": Decimal("12.5")}) == '{"DurationSeconds":12.5}'


@pytest.mark.parametrize("field", ["From", "To", "VirtualNumber", "Payload", "RecordingURL"])
def test_detail_refuses_any_field_outside_the_allow_list(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        detail_json({"SessionUUID": "s", field: "+14155550101"})


def test_publish_refuses_unknown_detail_types_and_a_missing_bus() -> None:
    class NoCalls:
        def put_events(self, **kwargs: object) -> None:
            raise AssertionError("nothing may be sent")

    with pytest.raises(ValueError, match="bus"):
        LifecycleEvents(NoCalls(), "")  # type: ignore[arg-type]
    events = LifecycleEvents(NoCalls(), "default")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="detail type"):
        events.publish("RecordingDeleted", {"SessionUUID": "s"})
    with pytest.raises(ValueError, match="size limit"):
        events.publish("RecordingArchived", {"Key": "k" * (256 * 1024)})
