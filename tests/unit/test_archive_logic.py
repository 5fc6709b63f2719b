"""The archive use case with in-memory collaborators: keys, metadata, outcomes, failures."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from recording_archive.dal.recording_store import ObjectSpec, StoredObject
from recording_archive.logic.archive_recording import (
    ArchiveJob,
    ArchiveOutcome,
    Archiver,
    ArchiveTarget,
    NotArchivableError,
    backoff_seconds,
)
from recording_archive.models.errors import (
    ArchiveConflictError,
    MediaRefusedError,
    MediaUnavailableError,
)

ITEM = {
    "SessionUUID": "0b7c6a4e-2f59-4f3e-8f4e-5a1f3c2d1e0f",
    "SequenceNumber": Decimal(4),
    "EventName": "SessionRecordingCompleted",
    "RecordingUUID": "rec-1",
    "RecordingURL": "https://media.plivo.com/rec-1.mp3",
    "RecordingExt": "mp3",
    "RecordingStartTime": "2026-01-31T23:59:59.000Z",
    "EventTime": "2026-02-01T00:00:05.000Z",
    "ReceivedAt": "2026-02-01T00:00:06.000Z",
    "RecordingDurationSeconds": Decimal("61.5"),
}


def test_key_date_from_start_time_then_event_time_then_receive_time() -> None:
    assert ArchiveJob.from_item(ITEM).key == (
        "recordings/2026/01/31/0b7c6a4e-2f59-4f3e-8f4e-5a1f3c2d1e0f/rec-1.mp3"
    )
    no_start = {k: v for k, v in ITEM.items() if k != "RecordingStartTime"}
    assert ArchiveJob.from_item(no_start).key.startswith("recordings/2026/02/01/")
    only_received = {k: v for k, v in no_start.items() if k != "EventTime"}
    only_received["ReceivedAt"] = "2027-03-04T00:00:00.000Z"
    assert ArchiveJob.from_item(only_received).key.startswith("recordings/2027/03/04/")


def test_metadata() -> None:
    assert ArchiveJob.from_item(ITEM).metadata() == {
        "session-uuid": ITEM["SessionUUID"],
        "recording-uuid": "rec-1",
        "sequence-number": "4",
        "duration": "61.5",
        "start-time": "2026-01-31T23:59:59.000Z",
        "format": "mp3",
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"EventName": "SessionRecordingInitiated"},
        {"RecordingURL": None},
        {"RecordingExt": "ogg"},
    ],
)
def test_not_archivable(changes: dict[str, Any]) -> None:
    item = {k: v for k, v in (ITEM | changes).items() if v is not None}
    with pytest.raises(NotArchivableError):
        ArchiveJob.from_item(item)


def test_backoff_grows_and_is_capped() -> None:
    for attempts in range(1, 20):
        ceiling = min(6 * 3600, 60 * 2 ** (attempts - 1))
        assert ceiling / 2 <= backoff_seconds(attempts) <= ceiling


@dataclass
class MemoryIndex:
    items: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def get(self, session_uuid: str, sequence_number: int) -> dict[str, Any] | None:
        return self.items.get((session_uuid, sequence_number))

    def mark_archived(self, session_uuid: str, sequence_number: int, **kw: Any) -> bool:
        self.items[(session_uuid, sequence_number)] |= {"ArchiveStatus": "ARCHIVED", **kw}
        return True

    def record_failure(self, session_uuid: str, sequence_number: int, **kw: Any) -> int:
        self.failures.append(kw)
        item = self.items[(session_uuid, sequence_number)]
        item["ArchiveAttempts"] = item.get("ArchiveAttempts", 0) + 1
        return int(item["ArchiveAttempts"])


class Stream:
    content_length = 3

    def read(self, n: int) -> bytes:
        return b""


@dataclass
class FakeMedia:
    error: Exception | None = None

    @contextmanager
    def open(self, url: str) -> Any:
        if self.error:
            raise self.error
        yield Stream()


@dataclass
class FakeRecordings:
    error: Exception | None = None
    specs: list[ObjectSpec] = field(default_factory=list)

    def put_stream(self, spec: ObjectSpec, read: Any, expected_size: int | None) -> StoredObject:
        self.specs.append(spec)
        if self.error:
            raise self.error
        return StoredObject(spec.bucket, spec.key, "v1", 3, "ab" * 32, already_existed=False)


def _archiver(
    media: FakeMedia, recordings: FakeRecordings, max_attempts: int | None = None
) -> tuple[Archiver, MemoryIndex]:
    index = MemoryIndex({(ITEM["SessionUUID"], 4): dict(ITEM)})
    target = ArchiveTarget("bucket", "arn:kms", "123456789012")
    now = lambda: datetime(2026, 2, 1, tzinfo=UTC)  # noqa: E731
    return Archiver(index, media, recordings, target, max_attempts=max_attempts, now=now), index


def test_archives_and_indexes() -> None:
    recordings = FakeRecordings()
    archiver, index = _archiver(FakeMedia(), recordings)
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.ARCHIVED
    [spec] = recordings.specs
    assert (spec.content_type, spec.kms_key_id, spec.expected_bucket_owner) == (
        "audio/mpeg",
        "arn:kms",
        "123456789012",
    )
    assert index.items[(ITEM["SessionUUID"], 4)]["archived_at"] == "2026-02-01T00:00:00.000Z"
    # Already archived: nothing fetched again.
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.ALREADY_ARCHIVED
    assert len(recordings.specs) == 1


def test_retryable_failure_is_counted_and_raised() -> None:
    archiver, index = _archiver(FakeMedia(MediaUnavailableError("404")), FakeRecordings())
    with pytest.raises(MediaUnavailableError):
        archiver.archive(ArchiveJob.from_item(ITEM))
    [failure] = index.failures
    assert failure["failed"] is False and failure["error"] == "MediaUnavailableError: 404"


@pytest.mark.parametrize(
    ("media_error", "store_error"),
    [(MediaRefusedError("host"), None), (None, ArchiveConflictError("sha"))],
)
def test_permanent_failures_fail_at_once(media_error: Any, store_error: Any) -> None:
    archiver, index = _archiver(FakeMedia(media_error), FakeRecordings(store_error))
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.FAILED
    assert index.failures[0]["failed"] is True


def test_attempts_exhausted_fail() -> None:
    archiver, index = _archiver(
        FakeMedia(MediaUnavailableError("500")), FakeRecordings(), max_attempts=2
    )
    index.items[(ITEM["SessionUUID"], 4)]["ArchiveAttempts"] = 1
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.FAILED
