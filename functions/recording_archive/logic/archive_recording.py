"""Use case: one completed recording, copied from Plivo into the archive exactly once.

Steps: claim the item (below); stream the media (SSRF-checked, retried within a budget) into a
create-only S3 write (SHA-256 computed while streaming, checksum on every part); index the object
on the event's item under a condition that never regresses it. A 412 from S3 (the object exists)
is verified by size and SHA-256: a match counts as archived, a mismatch is a conflict (metric and
alarm), never an overwrite. Every path that archives (the stream, the sweeper, reconcile, an
operator's retry) goes through `Archiver.archive`, so through the same claim.

Bounded, counted attempts. Before any download the attempt *claims* the item: one conditional
update counts the attempt and holds the item until the attempt's time is up plus a slack
(`lease_slack_seconds`), so no other worker archives it meanwhile. The attempt's time is what is
left of the Lambda invocation (`time_left`, from the context), or Lambda's maximum timeout for a
run without one (the CLI). The transfer stops when less than `stop_margin_seconds` are left
(TransferDeadlineError from the stream's `read`: RecordingStore aborts the multipart upload, the
attempt is recorded as failed and backed off). A Lambda invocation cannot outlive its lease,
which outlasts its Timeout; a late report of an attempt that did (the CLI's, after a long
blocking read) is not written over its successor's claim. An attempt that cannot report (its
worker killed, or timed out in a blocking read) leaves its lease behind: it was counted when it
claimed, the item becomes claimable when the lease runs out, and the next claim logs it as
abandoned (metric ArchiveAttemptsAbandoned). With `max_attempts` (SWEEP_MAX_ATTEMPTS, of the
stream's and the work queue's archivers) a claim is refused once that many attempts were made,
and the item becomes FAILED there and then (RecordingsFailed, as any other FAILED recording).
Failures are counted on the item (attempts, last error, next due time); a refused URL or a
conflict cannot succeed later and moves the item to FAILED at once.

Lifecycle events, at least once. The attempt that makes a recording ARCHIVED publishes
RecordingArchived (UUIDs, bucket, key, version, size, SHA-256, duration: models/archive.py)
*before* its index update, and the one that makes it FAILED publishes RecordingFailed before
writing FAILED. A publish that fails (LifecycleEventsUnavailableError, metric
LifecycleEventsFailed) fails the attempt like any retryable error: the item stays PENDING, backed
off, and the next attempt publishes again. For RecordingArchived that next attempt's create-only
put meets the object already stored (412), verifies its size and SHA-256 and counts it archived
(RecordingStore.put_stream, `already_existed`), so it publishes the same object's facts; its
cost is one more download of the media. Publishing after the update instead would lose the event
whenever the publish fails (nothing retries an ARCHIVED item). The price is duplicates: an
attempt whose publish succeeded and whose index update did not (table down, or another attempt
indexed first) is followed by another RecordingArchived, so subscribers deduplicate on
RecordingUUID. A failed publish never makes a recording FAILED by itself; only the last allowed
attempt's does, as any other failure of it (the object is then in the bucket, and `recordings
retry` completes it without copying it again). Rare by construction: an attempt that published
RecordingFailed and then lost its claim (it outlived its lease) leaves the item to its successor,
which may still archive it, as an operator's retry of a FAILED recording does: RecordingArchived
after RecordingFailed is the final word.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from recording_archive.logic.ports import (
    ClaimIndex,
    FailureRecorder,
    LifecyclePublisher,
    Media,
    Recordings,
)
from recording_archive.models import item as f
from recording_archive.models.archive import (
    ArchiveTarget,
    Claim,
    ClaimRefusal,
    ClaimRefused,
    DetailType,
    ObjectSpec,
    StoredObject,
)
from recording_archive.models.errors import (
    ArchiveConflictError,
    ArchiveError,
    LifecycleEventsUnavailableError,
)
from recording_archive.observability import logger, metrics

CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}
_jitter = random.SystemRandom()

# Lambda's largest function timeout: no invocation runs longer, so an attempt made outside
# Lambda (an operator's retry or reconcile from the CLI) is given this much time too.
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html
LAMBDA_MAX_TIMEOUT_SECONDS = 900
# What must still fit once the transfer stops: the media read in progress (up to the media read
# timeout, 20 s by default), the parts already in flight, the abort and the index update.
DEFAULT_STOP_MARGIN_SECONDS = 60.0
# Added to the attempt's time in its lease: each claim compares the claimer's clock with the
# lease another worker wrote by its own. Lambda's execution environment keeps its clock with NTP
# (TZ, https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html), so a minute is
# ample; the CLI's machine is the operator's to keep on time.
DEFAULT_LEASE_SLACK_SECONDS = 60.0
ABANDONED_ERROR = (
    "AttemptAbandoned: the last attempt did not finish before its lease ran out "
    "(worker killed or timed out)"
)

TimeLeft = Callable[[], float]  # seconds left to the attempt (the invocation's remaining time)
Clock = Callable[[], float]  # epoch seconds


def seconds_left(remaining_ms: Callable[[], int]) -> TimeLeft:
    """A TimeLeft from Lambda's `context.get_remaining_time_in_millis`."""
    return lambda: remaining_ms() / 1000


class TransferDeadlineError(ArchiveError):
    """Too little of the attempt's time was left to go on: stopped cleanly, retried later."""


def deadline_read(
    read: Callable[[int], bytes], time_left: TimeLeft, margin: float
) -> Callable[[int], bytes]:
    """`read`, refusing to go on once less than `margin` seconds are left. RecordingStore
    aborts its multipart upload on any exception from `read`, so the stop leaves nothing."""

    def bounded(n: int) -> bytes:
        if time_left() < margin:
            raise TransferDeadlineError("transfer stopped: the attempt's time is nearly up")
        return read(n)

    return bounded


class NotArchivableError(ValueError):
    """The item is not a completed recording with what archiving needs."""


@dataclass(frozen=True)
class ArchiveJob:
    session_uuid: str
    sequence_number: int
    recording_uuid: str
    recording_url: str
    ext: str
    date_source: str  # ISO time the key's date comes from
    duration: str
    start_time: str
    end_time: str
    received_at: str = ""  # when the Completed event was received (ISO): ArchiveLagSeconds

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ArchiveJob:
        if item.get(f.EVENT_NAME) != f.EVENT_COMPLETED:
            raise NotArchivableError("not a SessionRecordingCompleted event")
        try:
            session, seq = str(item[f.SESSION_UUID]), int(item[f.SEQUENCE_NUMBER])
            recording, url = str(item[f.RECORDING_UUID]), str(item[f.RECORDING_URL])
        except (KeyError, TypeError, ValueError) as exc:
            raise NotArchivableError("item lacks a recording id or URL") from exc
        ext = str(item.get(f.RECORDING_EXT) or "mp3")
        if ext not in CONTENT_TYPES:
            raise NotArchivableError("unknown recording format")
        date_source = str(
            item.get(f.RECORDING_START_TIME) or item.get(f.EVENT_TIME) or item[f.RECEIVED_AT]
        )
        duration = item.get(f.RECORDING_DURATION_SECONDS)
        return cls(
            session_uuid=session,
            sequence_number=seq,
            recording_uuid=recording,
            recording_url=url,
            ext=ext,
            date_source=date_source,
            duration="" if duration is None else format(Decimal(duration), "f"),
            start_time=str(item.get(f.RECORDING_START_TIME) or ""),
            end_time=str(item.get(f.RECORDING_END_TIME) or ""),
            received_at=str(item.get(f.RECEIVED_AT) or ""),
        )

    @property
    def key(self) -> str:
        """recordings/{YYYY}/{MM}/{DD}/{SessionUUID}/{RecordingUUID}.{ext}"""
        day = datetime.fromisoformat(self.date_source.replace("Z", "+00:00")).astimezone(UTC)
        return (
            # day.year, not %Y: strftime writes year 1 as "1" (glibc), not "0001".
            f"recordings/{day.year:04d}/{day:%m}/{day:%d}/"
            f"{self.session_uuid}/{self.recording_uuid}.{self.ext}"
        )

    def metadata(self) -> dict[str, str]:
        meta = {
            "session-uuid": self.session_uuid,
            "recording-uuid": self.recording_uuid,
            "sequence-number": str(self.sequence_number),
            "duration": self.duration,
            "start-time": self.start_time,
            "end-time": self.end_time,
            "format": self.ext,
        }
        return {k: v for k, v in meta.items() if v}


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def failure_reason(error: str) -> str:
    """The class name that starts an attempt's error ("MediaUnavailableError: HTTP 503"): what a
    RecordingFailed event says, never the message (it may quote a URL)."""
    head = error.split(":", 1)[0].strip()
    return head if head.isidentifier() else "AttemptsExhausted"


def archived_detail(job: ArchiveJob, stored: StoredObject) -> dict[str, Any]:
    """RecordingArchived's detail: identifiers and the object's facts, no phone number."""
    return {
        "SessionUUID": job.session_uuid,
        "SequenceNumber": job.sequence_number,
        "RecordingUUID": job.recording_uuid,
        "Bucket": stored.bucket,
        "Key": stored.key,
        "VersionId": stored.version_id,
        "Size": stored.size,
        "Sha256": stored.sha256_hex,
        "DurationSeconds": Decimal(job.duration) if job.duration else None,
    }


def archive_lag_seconds(received_at: str, archived_at: datetime) -> float | None:
    """Seconds from the Completed event's receipt to its recording's ARCHIVED; None when the
    receive time is missing or unreadable (not expected: every stored event has ReceivedAt)."""
    try:
        received = datetime.fromisoformat(received_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    return max(0.0, (archived_at - received).total_seconds())


class ArchiveOutcome(StrEnum):
    ARCHIVED = "archived"
    ALREADY_ARCHIVED = "already_archived"
    FAILED = "failed"  # permanently: refused URL, conflict, or attempts exhausted
    IN_PROGRESS = "in_progress"  # another attempt holds the claim: nothing done
    NOT_DUE = "not_due"  # backing off since the item was queued for this attempt: nothing done
    GONE = "gone"  # the event is no longer in the table: nothing archived


def backoff_seconds(attempts: int, *, base: int = 60, cap: int = 6 * 3600) -> int:
    """Exponential backoff with jitter between sweeps: about 1, 2, 4 ... minutes, at most 6 h."""
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    return int(ceiling / 2 + _jitter.uniform(0, ceiling / 2))


class LifecycleNotices:
    """RecordingFailed / RecordingArchived publishing (failures counted in LifecycleEventsFailed),
    and FAILED for a completed event that can never be archived: what the Archiver and the
    sweeper (which archives nothing itself) share."""

    def __init__(
        self,
        index: FailureRecorder,
        events: LifecyclePublisher | None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._index = index
        self._events = events
        self._now = now or (lambda: datetime.now(UTC))

    def fail_not_archivable(self, item: Mapping[str, Any], reason: str, *, now: int) -> None:
        """A completed event that can never be archived (NotArchivableError: no recording id or
        URL, an unknown format): FAILED, RecordingFailed published first. Raises
        LifecycleEventsUnavailableError with nothing recorded (the next sweep tries again)."""
        event = f.EventItem.from_item(item)
        log = {"session_uuid": event.session_uuid, "sequence_number": event.sequence_number}
        self.announce_failed(
            event.session_uuid,
            event.sequence_number,
            event.recording_uuid,
            reason="NotArchivable",
            attempts=event.archive_attempts,
            log=log,
        )
        self._index.record_failure(
            event.session_uuid,
            event.sequence_number,
            error=f"NotArchivable: {reason}",
            next_due_at=now,
            failed=True,
        )
        # FAILED for good: the same alarmed metric as every other FAILED recording.
        metrics.add_metric(name="RecordingsFailed", unit=MetricUnit.Count, value=1)
        logger.error("completed event cannot be archived: FAILED", extra={**log, "reason": reason})

    def announce_failed(
        self,
        session_uuid: str,
        sequence_number: int,
        recording_uuid: str,
        *,
        reason: str,
        attempts: int,
        log: Mapping[str, Any],
    ) -> None:
        """RecordingFailed, published before the item is marked FAILED (raises as `_publish`)."""
        detail = {
            "SessionUUID": session_uuid,
            "SequenceNumber": sequence_number,
            "RecordingUUID": recording_uuid or None,
            "Reason": reason,
            "Attempts": attempts,
        }
        self.publish(DetailType.RECORDING_FAILED, detail, log)

    def publish(
        self, detail_type: DetailType, detail: Mapping[str, Any], log: Mapping[str, Any]
    ) -> None:
        """Publish one lifecycle event (nothing without a publisher); a failure is counted in
        LifecycleEventsFailed and raised (LifecycleEventsUnavailableError)."""
        if self._events is None:
            return
        try:
            self._events.publish(detail_type.value, detail, time=self._now())
        except LifecycleEventsUnavailableError as exc:
            metrics.add_metric(name="LifecycleEventsFailed", unit=MetricUnit.Count, value=1)
            logger.warning(
                "lifecycle event not published",
                extra={**log, "detail_type": detail_type.value, "error": str(exc)},
            )
            raise


class Archiver:
    def __init__(
        self,
        index: ClaimIndex,
        media: Media,
        recordings: Recordings,
        target: ArchiveTarget,
        *,
        max_attempts: int | None = None,
        now: Callable[[], datetime] | None = None,
        stop_margin_seconds: float = DEFAULT_STOP_MARGIN_SECONDS,
        lease_slack_seconds: float = DEFAULT_LEASE_SLACK_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
        events: LifecyclePublisher | None = None,
    ) -> None:
        """`events`: where RecordingArchived / RecordingFailed go (the functions always pass
        one, wiring.lifecycle_events(EVENT_BUS_NAME); None publishes nothing: unit tests,
        callers without a bus)."""
        self._index = index
        self._media = media
        self._recordings = recordings
        self._target = target
        self._max_attempts = max_attempts
        self._now = now or (lambda: datetime.now(UTC))
        self._stop_margin = stop_margin_seconds
        self._lease_slack = lease_slack_seconds
        self._monotonic = monotonic
        self._new_token = new_token
        self._events = events
        self._notices = LifecycleNotices(index, events, self._now)

    def spec(self, job: ArchiveJob, *, legal_hold: bool = False) -> ObjectSpec:
        return ObjectSpec(
            bucket=self._target.bucket,
            key=job.key,
            content_type=CONTENT_TYPES[job.ext],
            metadata=job.metadata(),
            kms_key_id=self._target.kms_key_id,
            expected_bucket_owner=self._target.bucket_owner,
            legal_hold=legal_hold,
        )

    def _attempt_time(self) -> TimeLeft:
        """The time of an attempt made outside Lambda: as long as Lambda's longest."""
        started = self._monotonic()
        return lambda: LAMBDA_MAX_TIMEOUT_SECONDS - (self._monotonic() - started)

    def archive(
        self,
        job: ArchiveJob,
        *,
        time_left: TimeLeft | None = None,
        clock: Clock | None = None,
        due_by: int | None = None,
    ) -> ArchiveOutcome:
        """Archive one recording. Raises ArchiveError for a failure worth retrying later
        (TransferDeadlineError when the attempt's time ran short, counted unless it was too short
        to claim at all).

        `time_left`: seconds left to this invocation (Lambda's context); `clock`: epoch seconds
        for the claim and the backoff (the table's times); `due_by`: claim only an item due by
        then (the sweeper, whose index read may be stale).
        """
        log = {
            "session_uuid": job.session_uuid,
            "sequence_number": job.sequence_number,
            "recording_uuid": job.recording_uuid,
        }
        remaining = time_left or self._attempt_time()
        epoch = clock or (lambda: self._now().timestamp())
        left = remaining()
        if left < self._stop_margin:
            raise TransferDeadlineError("too little time left to start an archive attempt")
        now = int(epoch())
        claim = self._index.claim(
            job.session_uuid,
            job.sequence_number,
            token=self._new_token(),
            now=now,
            lease_until=now + math.ceil(left + self._lease_slack),
            max_attempts=self._max_attempts,
            due_by=due_by,
        )
        if isinstance(claim, ClaimRefused):
            return self._refused(job, claim, now, log)
        if claim.abandoned_lease:
            metrics.add_metric(name="ArchiveAttemptsAbandoned", unit=MetricUnit.Count, value=1)
            logger.warning(
                "previous archive attempt never finished (worker killed or timed out)",
                extra={**log, "attempts": claim.attempts - 1},
            )
        spec = self.spec(job, legal_hold=claim.legal_hold)
        try:
            with self._media.open(job.recording_url) as stream:
                read = deadline_read(stream.read, remaining, self._stop_margin)
                stored = self._recordings.put_stream(spec, read, stream.content_length)
        except ArchiveError as exc:
            return self._failed(job, exc, claim, int(epoch()), log)
        archived_at = self._now()
        try:
            # Before the index update: at least once (module docstring).
            self._notices.publish(DetailType.RECORDING_ARCHIVED, archived_detail(job, stored), log)
        except LifecycleEventsUnavailableError as exc:
            return self._failed(job, exc, claim, int(epoch()), log)
        indexed = self._index.mark_archived(
            job.session_uuid,
            job.sequence_number,
            bucket=stored.bucket,
            key=stored.key,
            version_id=stored.version_id,
            size=stored.size,
            sha256_hex=stored.sha256_hex,
            archived_at=_iso(archived_at),
        )
        if not indexed:
            # Another attempt indexed it first (or the event is gone): the recording counts
            # once, for the attempt whose index update succeeded.
            logger.info("recording already indexed by another attempt", extra=log)
            return ArchiveOutcome.ALREADY_ARCHIVED
        metrics.add_metric(name="RecordingsArchived", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ArchivedBytes", unit=MetricUnit.Bytes, value=stored.size)
        # Every path that makes a recording ARCHIVED (stream, work queue, reconcile, an
        # operator's retry) passes here, once per recording: the lag from receipt to archive.
        lag = archive_lag_seconds(job.received_at, archived_at)
        if lag is not None:
            metrics.add_metric(name="ArchiveLagSeconds", unit=MetricUnit.Seconds, value=lag)
        if stored.already_existed:
            metrics.add_metric(name="RecordingAlreadyInBucket", unit=MetricUnit.Count, value=1)
        logger.info(
            "recording archived",
            extra={
                **log,
                "s3_uri": f"s3://{stored.bucket}/{stored.key}",
                "size": stored.size,
                "sha256": stored.sha256_hex,
                "already_existed": stored.already_existed,
                "attempts": claim.attempts,
            },
        )
        return ArchiveOutcome.ARCHIVED

    def _refused(
        self, job: ArchiveJob, refused: ClaimRefused, now: int, log: dict[str, Any]
    ) -> ArchiveOutcome:
        """A claim not granted: nothing was downloaded."""
        match refused.reason:
            case ClaimRefusal.ARCHIVED:
                logger.info("recording already archived", extra=log)
                return ArchiveOutcome.ALREADY_ARCHIVED
            case ClaimRefusal.GONE:
                logger.warning("event no longer in the table: not archived", extra=log)
                return ArchiveOutcome.GONE
            case ClaimRefusal.NOT_DUE:
                logger.info("recording not due yet", extra=log)
                return ArchiveOutcome.NOT_DUE
            case ClaimRefusal.HELD:
                logger.info("another archive attempt holds the recording", extra=log)
                return ArchiveOutcome.IN_PROGRESS
        # EXHAUSTED: every allowed attempt was made, the last one without a report if its
        # lease is still there; FAILED now, exactly as a failing last attempt would make it.
        error = ABANDONED_ERROR if refused.abandoned_lease else refused.last_error
        # Announced first; a failed publish raises (an ArchiveError: the next sweep decides
        # again, the item untouched).
        self._notices.announce_failed(
            job.session_uuid,
            job.sequence_number,
            job.recording_uuid,
            reason=failure_reason(error or ""),
            attempts=refused.attempts,
            log=log,
        )
        attempts = self._index.record_failure(
            job.session_uuid,
            job.sequence_number,
            error=error or "attempts exhausted",
            next_due_at=now,
            failed=True,
            lease_free_at=now,
        )
        if attempts is None:  # claimed, archived or gone meanwhile: not this run's to decide
            return ArchiveOutcome.IN_PROGRESS
        return self._permanently_failed(error, attempts, log)

    def fail_not_archivable(self, item: Mapping[str, Any], reason: str, *, now: int) -> None:
        """LifecycleNotices.fail_not_archivable with this archiver's table and publisher."""
        self._notices.fail_not_archivable(item, reason, now=now)

    def _permanently_failed(self, error: str, attempts: int, log: dict[str, Any]) -> ArchiveOutcome:
        metrics.add_metric(name="RecordingsFailed", unit=MetricUnit.Count, value=1)
        logger.error("recording FAILED", extra={**log, "error": error, "attempts": attempts})
        return ArchiveOutcome.FAILED

    def _failed(
        self, job: ArchiveJob, exc: ArchiveError, claim: Claim, now: int, log: dict[str, Any]
    ) -> ArchiveOutcome:
        error = f"{type(exc).__name__}: {exc}"
        attempts = claim.attempts  # counted when claimed
        exhausted = self._max_attempts is not None and attempts >= self._max_attempts
        permanent = not exc.retryable or exhausted
        if permanent:
            try:
                self._notices.announce_failed(
                    job.session_uuid,
                    job.sequence_number,
                    job.recording_uuid,
                    reason=type(exc).__name__,
                    attempts=attempts,
                    log=log,
                )
            except LifecycleEventsUnavailableError:
                # Not FAILED before its RecordingFailed is out: recorded as a retryable failure,
                # the next attempt (or, attempts exhausted, the next sweep's claim) decides again.
                permanent = False
        recorded = self._index.record_failure(
            job.session_uuid,
            job.sequence_number,
            error=error,
            next_due_at=now + backoff_seconds(attempts),
            failed=permanent,
            claim_token=claim.token,
        )
        if isinstance(exc, ArchiveConflictError):
            metrics.add_metric(name="ArchiveConflicts", unit=MetricUnit.Count, value=1)
        if recorded is None:
            # The claim was lost (this attempt outlived its lease and another took over) or the
            # item was archived meanwhile: the item's state is the other attempt's to write.
            logger.warning(
                "archive attempt failed after losing its claim", extra={**log, "error": error}
            )
            if permanent:
                return ArchiveOutcome.IN_PROGRESS
            raise exc
        if permanent:
            return self._permanently_failed(error, attempts, log)
        metrics.add_metric(name="ArchiveAttemptsFailed", unit=MetricUnit.Count, value=1)
        logger.warning(
            "archive attempt failed", extra={**log, "error": error, "attempts": attempts}
        )
        raise exc
