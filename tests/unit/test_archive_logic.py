"""The archive use case with in-memory collaborators: keys, metadata, outcomes, failures,
claims (counted attempts, leases, exhaustion) and the transfer deadline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from recording_archive.dal.events_table import (
    ARCHIVE_CLAIM_TOKEN,
    ARCHIVE_LEASE_UNTIL,
)
from recording_archive.logic.archive_recording import (
    ABANDONED_ERROR,
    LAMBDA_MAX_TIMEOUT_SECONDS,
    ArchiveJob,
    ArchiveOutcome,
    Archiver,
    NotArchivableError,
    TransferDeadlineError,
    backoff_seconds,
    deadline_read,
    seconds_left,
)
from recording_archive.models.archive import (
    ArchiveTarget,
    Claim,
    ClaimRefusal,
    ClaimRefused,
    ObjectSpec,
    StoredObject,
)
from recording_archive.models.errors import (
    ArchiveConflictError,
    MediaRefusedError,
    MediaUnavailableError,
)
from recording_archive.observability import metrics

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


def test_key_year_has_four_digits() -> None:
    # Plivo may sign any timestamp; strftime's %Y writes year 1 as "1" on glibc.
    early = {**ITEM, "RecordingStartTime": "0001-01-01T00:00:00.000Z"}
    assert ArchiveJob.from_item(early).key.startswith("recordings/0001/01/01/")


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


KEY = (str(ITEM["SessionUUID"]), 4)
NOW = datetime(2026, 2, 1, tzinfo=UTC)
NOW_S = int(NOW.timestamp())


@dataclass
class MemoryIndex:
    """The index port with the claim's conditions of RecordingEventStore.claim (the real one is
    tested against moto in tests/integration/test_archive_claims.py)."""

    items: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    mark_result: bool | None = None  # force mark_archived's answer (a lost race)
    claim_lost: bool = False  # record_failure finds the claim gone (condition not met)

    def get(self, session_uuid: str, sequence_number: int) -> dict[str, Any] | None:
        return self.items.get((session_uuid, sequence_number))

    def claim(
        self,
        session_uuid: str,
        sequence_number: int,
        *,
        token: str,
        now: int,
        lease_until: int,
        max_attempts: int | None = None,
        due_by: int | None = None,
    ) -> Claim | ClaimRefused:
        self.claims.append({"now": now, "lease_until": lease_until, "due_by": due_by})
        item = self.items.get((session_uuid, sequence_number))
        if item is None:
            return ClaimRefused(ClaimRefusal.GONE)
        attempts = int(item.get("ArchiveAttempts", 0))
        lease = item.get(ARCHIVE_LEASE_UNTIL)
        error = str(item.get("ArchiveLastError", ""))

        def refused(reason: ClaimRefusal) -> ClaimRefused:
            return ClaimRefused(reason, attempts, error, lease is not None)

        if item.get("ArchiveStatus") == "ARCHIVED":
            return refused(ClaimRefusal.ARCHIVED)
        if lease is not None and lease > now:
            return refused(ClaimRefusal.HELD)
        if max_attempts is not None and attempts >= max_attempts:
            return refused(ClaimRefusal.EXHAUSTED)
        if due_by is not None and item.get("ArchiveDueAt", 0) > due_by:
            return refused(ClaimRefusal.NOT_DUE)
        item |= {
            "ArchiveAttempts": attempts + 1,
            ARCHIVE_LEASE_UNTIL: lease_until,
            ARCHIVE_CLAIM_TOKEN: token,
            "ArchiveDueAt": lease_until,
        }
        return Claim(token, attempts + 1, lease_until, lease is not None)

    def mark_archived(self, session_uuid: str, sequence_number: int, **kw: Any) -> bool:
        if self.mark_result is not None:
            return self.mark_result
        item = self.items[(session_uuid, sequence_number)]
        item |= {"ArchiveStatus": "ARCHIVED", **kw}
        item.pop(ARCHIVE_LEASE_UNTIL, None)
        return True

    def record_failure(self, session_uuid: str, sequence_number: int, **kw: Any) -> int | None:
        self.failures.append(kw)
        if self.claim_lost:
            return None
        item = self.items[(session_uuid, sequence_number)]
        if kw.get("claim_token") is None and kw.get("lease_free_at") is None:
            item["ArchiveAttempts"] = item.get("ArchiveAttempts", 0) + 1
        item.pop(ARCHIVE_LEASE_UNTIL, None)
        item["ArchiveLastError"] = kw["error"]
        return int(item.get("ArchiveAttempts", 0))


class Stream:
    content_length = 3

    def read(self, n: int) -> bytes:
        return b""


@dataclass
class FakeMedia:
    error: Exception | None = None
    opened: int = 0

    @contextmanager
    def open(self, url: str) -> Any:
        self.opened += 1
        if self.error:
            raise self.error
        yield Stream()


@dataclass
class FakeRecordings:
    """put_stream reads the stream to its end, `reads` times at most, like RecordingStore."""

    error: Exception | None = None
    specs: list[ObjectSpec] = field(default_factory=list)
    reads: int = 1
    raised_from_read: list[BaseException] = field(default_factory=list)

    def put_stream(self, spec: ObjectSpec, read: Any, expected_size: int | None) -> StoredObject:
        self.specs.append(spec)
        try:
            for _ in range(self.reads):
                read(1024)
        except Exception as exc:
            self.raised_from_read.append(exc)  # RecordingStore aborts its upload here
            raise
        if self.error:
            raise self.error
        return StoredObject(spec.bucket, spec.key, "v1", 3, "ab" * 32, already_existed=False)


@pytest.fixture(autouse=True)
def _no_metrics_left() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def _metric(name: str) -> list[float]:
    entry = metrics.metric_set.get(name)
    return list(entry["Value"]) if entry else []


def _archiver(
    media: FakeMedia,
    recordings: FakeRecordings,
    max_attempts: int | None = None,
    **options: Any,
) -> tuple[Archiver, MemoryIndex]:
    index = MemoryIndex({KEY: dict(ITEM)})
    target = ArchiveTarget("bucket", "arn:kms", "123456789012")
    archiver = Archiver(
        index,
        media,
        recordings,
        target,
        max_attempts=max_attempts,
        now=lambda: NOW,
        new_token=lambda: "token-1",
        **options,
    )
    return archiver, index


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
    assert index.items[KEY]["archived_at"] == "2026-02-01T00:00:00.000Z"
    assert index.items[KEY]["ArchiveAttempts"] == 1  # counted when claimed
    assert _metric("RecordingsArchived") == [1.0]
    # Already archived: the claim is refused, nothing fetched again, nothing counted.
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.ALREADY_ARCHIVED
    assert len(recordings.specs) == 1
    assert _metric("RecordingsArchived") == [1.0]


def test_a_lost_index_race_is_not_counted_as_archived_again() -> None:
    """13.5: mark_archived answered False (another attempt indexed it first): the recording is
    counted once, by that attempt, never by this one."""
    archiver, index = _archiver(FakeMedia(), FakeRecordings())
    index.mark_result = False
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.ALREADY_ARCHIVED
    assert _metric("RecordingsArchived") == []
    assert _metric("ArchivedBytes") == []


def test_the_claim_comes_before_any_download_and_its_lease_outlasts_the_invocation() -> None:
    media = FakeMedia()
    archiver, index = _archiver(media, FakeRecordings(), lease_slack_seconds=30)
    archiver.archive(ArchiveJob.from_item(ITEM), time_left=lambda: 899.2)
    [claim] = index.claims
    assert claim["now"] == NOW_S
    assert claim["lease_until"] == NOW_S + 930  # ceil(899.2 + 30)


def test_without_an_invocation_an_attempt_gets_lambdas_longest_timeout() -> None:
    ticks = iter([100.0, 100.0, 130.0, 130.0])
    archiver, index = _archiver(
        FakeMedia(), FakeRecordings(), lease_slack_seconds=60, monotonic=lambda: next(ticks)
    )
    archiver.archive(ArchiveJob.from_item(ITEM))
    assert index.claims[0]["lease_until"] == NOW_S + LAMBDA_MAX_TIMEOUT_SECONDS + 60


def test_a_held_recording_is_left_alone() -> None:
    media = FakeMedia()
    archiver, index = _archiver(media, FakeRecordings())
    index.items[KEY] |= {ARCHIVE_LEASE_UNTIL: NOW_S + 1, "ArchiveAttempts": 1}
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.IN_PROGRESS
    assert media.opened == 0
    assert index.failures == []
    assert index.items[KEY]["ArchiveAttempts"] == 1


def test_claims_refused_for_a_gone_or_not_due_item_do_nothing() -> None:
    media = FakeMedia()
    archiver, index = _archiver(media, FakeRecordings())
    index.items[KEY]["ArchiveDueAt"] = NOW_S + 60
    job = ArchiveJob.from_item(ITEM)
    assert archiver.archive(job, due_by=NOW_S) is ArchiveOutcome.NOT_DUE
    del index.items[KEY]
    assert archiver.archive(job) is ArchiveOutcome.GONE
    assert media.opened == 0 and index.failures == []


def test_an_expired_lease_is_an_abandoned_attempt_and_the_next_claim_counts_on() -> None:
    archiver, index = _archiver(FakeMedia(), FakeRecordings())
    index.items[KEY] |= {ARCHIVE_LEASE_UNTIL: NOW_S, "ArchiveAttempts": 1}
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.ARCHIVED
    assert index.items[KEY]["ArchiveAttempts"] == 2
    assert _metric("ArchiveAttemptsAbandoned") == [1.0]


def test_attempts_exhausted_by_abandoned_attempts_fail_without_a_download() -> None:
    media = FakeMedia()
    archiver, index = _archiver(media, FakeRecordings(), max_attempts=2)
    index.items[KEY] |= {ARCHIVE_LEASE_UNTIL: NOW_S - 5, "ArchiveAttempts": 2}
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.FAILED
    assert media.opened == 0
    [failure] = index.failures
    assert failure == {
        "error": ABANDONED_ERROR,
        "next_due_at": NOW_S,
        "failed": True,
        "lease_free_at": NOW_S,
    }
    assert index.items[KEY]["ArchiveAttempts"] == 2  # not counted again
    assert _metric("RecordingsFailed") == [1.0]


def test_attempts_exhausted_by_reported_failures_keep_the_last_error() -> None:
    archiver, index = _archiver(FakeMedia(), FakeRecordings(), max_attempts=3)
    index.items[KEY] |= {"ArchiveAttempts": 3, "ArchiveLastError": "MediaUnavailableError: 404"}
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.FAILED
    assert index.failures[0]["error"] == "MediaUnavailableError: 404"


def test_exhausted_but_claimed_meanwhile_is_not_failed_by_this_run() -> None:
    archiver, index = _archiver(FakeMedia(), FakeRecordings(), max_attempts=1)
    index.items[KEY]["ArchiveAttempts"] = 1
    index.claim_lost = True
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.IN_PROGRESS
    assert _metric("RecordingsFailed") == []


def test_retryable_failure_is_counted_and_raised() -> None:
    archiver, index = _archiver(FakeMedia(MediaUnavailableError("404")), FakeRecordings())
    with pytest.raises(MediaUnavailableError):
        archiver.archive(ArchiveJob.from_item(ITEM))
    [failure] = index.failures
    assert failure["failed"] is False and failure["error"] == "MediaUnavailableError: 404"
    assert failure["claim_token"] == "token-1"  # released only by the claim's holder
    assert NOW_S + 30 <= failure["next_due_at"] <= NOW_S + 60
    assert index.items[KEY]["ArchiveAttempts"] == 1  # the claim's count, not counted twice
    assert ARCHIVE_LEASE_UNTIL not in index.items[KEY]


@pytest.mark.parametrize(
    ("media_error", "store_error"),
    [(MediaRefusedError("host"), None), (None, ArchiveConflictError("sha"))],
)
def test_permanent_failures_fail_at_once(media_error: Any, store_error: Any) -> None:
    archiver, index = _archiver(FakeMedia(media_error), FakeRecordings(store_error))
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.FAILED
    assert index.failures[0]["failed"] is True
    assert _metric("RecordingsFailed") == [1.0]


def test_attempts_exhausted_fail() -> None:
    archiver, index = _archiver(
        FakeMedia(MediaUnavailableError("500")), FakeRecordings(), max_attempts=2
    )
    index.items[KEY]["ArchiveAttempts"] = 1
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.FAILED
    assert index.items[KEY]["ArchiveAttempts"] == 2


def test_a_failure_after_the_claim_was_lost_leaves_the_item_to_its_new_holder() -> None:
    archiver, index = _archiver(FakeMedia(MediaUnavailableError("500")), FakeRecordings())
    index.claim_lost = True
    with pytest.raises(MediaUnavailableError):
        archiver.archive(ArchiveJob.from_item(ITEM))
    assert _metric("ArchiveAttemptsFailed") == []
    archiver, index = _archiver(FakeMedia(MediaRefusedError("host")), FakeRecordings())
    index.claim_lost = True
    assert archiver.archive(ArchiveJob.from_item(ITEM)) is ArchiveOutcome.IN_PROGRESS
    assert _metric("RecordingsFailed") == []


def test_the_transfer_stops_when_the_invocation_is_nearly_over() -> None:
    left = iter([100.0, 100.0, 30.0, 9.9])  # start, read 1, read 2, read 3
    recordings = FakeRecordings(reads=5)
    archiver, index = _archiver(FakeMedia(), recordings, stop_margin_seconds=10)
    with pytest.raises(TransferDeadlineError):
        archiver.archive(ArchiveJob.from_item(ITEM), time_left=lambda: next(left))
    # Raised from `read`, inside put_stream: RecordingStore aborts the upload on it.
    assert [type(e) for e in recordings.raised_from_read] == [TransferDeadlineError]
    [failure] = index.failures
    assert failure["failed"] is False and failure["claim_token"] == "token-1"
    assert failure["error"].startswith("TransferDeadlineError: ")
    assert index.items[KEY]["ArchiveAttempts"] == 1
    assert _metric("ArchiveAttemptsFailed") == [1.0]


def test_too_little_time_to_start_claims_nothing() -> None:
    media = FakeMedia()
    archiver, index = _archiver(media, FakeRecordings(), stop_margin_seconds=10)
    with pytest.raises(TransferDeadlineError):
        archiver.archive(ArchiveJob.from_item(ITEM), time_left=lambda: 9.0)
    assert index.claims == [] and media.opened == 0 and index.failures == []


def test_deadline_read_passes_reads_through_until_the_margin() -> None:
    left = iter([11.0, 10.0, 9.99])
    read = deadline_read(lambda n: b"x" * n, lambda: next(left), 10)
    assert read(2) == b"xx"
    assert read(1) == b"x"
    with pytest.raises(TransferDeadlineError, match="nearly up"):
        read(1)
    assert seconds_left(lambda: 1500)() == 1.5
