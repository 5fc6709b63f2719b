"""Use case: one completed recording, copied from Plivo into the archive exactly once.

Steps: skip if the index already says ARCHIVED; stream the media (SSRF-checked, retried within a
budget) into a create-only S3 write (SHA-256 computed while streaming, checksum on every part);
index the object on the event's item under a condition that never regresses it. A 412 from S3
(the object exists) is verified by size and SHA-256: a match counts as archived, a mismatch is a
conflict (metric and alarm), never an overwrite.
Failures are counted on the item (attempts, last error, next due time); a refused URL or a
conflict cannot succeed later and moves the item to FAILED at once.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from recording_archive.dal.recording_store import ObjectSpec, StoredObject
from recording_archive.models import item as f
from recording_archive.models.errors import ArchiveConflictError, ArchiveError
from recording_archive.observability import logger, metrics

CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}
_jitter = random.SystemRandom()


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
        )

    @property
    def key(self) -> str:
        """recordings/{YYYY}/{MM}/{DD}/{SessionUUID}/{RecordingUUID}.{ext}"""
        day = datetime.fromisoformat(self.date_source.replace("Z", "+00:00")).astimezone(UTC)
        return (
            f"recordings/{day:%Y}/{day:%m}/{day:%d}/"
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


class Index(Protocol):
    def get(self, session_uuid: str, sequence_number: int) -> dict[str, Any] | None: ...
    def mark_archived(
        self,
        session_uuid: str,
        sequence_number: int,
        *,
        bucket: str,
        key: str,
        version_id: str | None,
        size: int,
        sha256_hex: str,
        archived_at: str,
    ) -> bool: ...
    def record_failure(
        self, session_uuid: str, sequence_number: int, *, error: str, next_due_at: int, failed: bool
    ) -> int | None: ...


class Media(Protocol):
    def open(self, url: str) -> Any: ...


class Recordings(Protocol):
    def put_stream(
        self, spec: ObjectSpec, read: Any, expected_size: int | None
    ) -> StoredObject: ...


@dataclass(frozen=True)
class ArchiveTarget:
    bucket: str
    kms_key_id: str
    bucket_owner: str


class ArchiveOutcome(StrEnum):
    ARCHIVED = "archived"
    ALREADY_ARCHIVED = "already_archived"
    FAILED = "failed"  # permanently: refused URL, conflict, or attempts exhausted


def backoff_seconds(attempts: int, *, base: int = 60, cap: int = 6 * 3600) -> int:
    """Exponential backoff with jitter between sweeps: about 1, 2, 4 ... minutes, at most 6 h."""
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    return int(ceiling / 2 + _jitter.uniform(0, ceiling / 2))


class Archiver:
    def __init__(
        self,
        index: Index,
        media: Media,
        recordings: Recordings,
        target: ArchiveTarget,
        *,
        max_attempts: int | None = None,
        now: Any = None,
    ) -> None:
        self._index = index
        self._media = media
        self._recordings = recordings
        self._target = target
        self._max_attempts = max_attempts
        self._now = now or (lambda: datetime.now(UTC))

    def spec(self, job: ArchiveJob) -> ObjectSpec:
        return ObjectSpec(
            bucket=self._target.bucket,
            key=job.key,
            content_type=CONTENT_TYPES[job.ext],
            metadata=job.metadata(),
            kms_key_id=self._target.kms_key_id,
            expected_bucket_owner=self._target.bucket_owner,
        )

    def archive(self, job: ArchiveJob) -> ArchiveOutcome:
        """Archive one recording. Raises ArchiveError for a failure worth retrying later."""
        log = {
            "session_uuid": job.session_uuid,
            "sequence_number": job.sequence_number,
            "recording_uuid": job.recording_uuid,
        }
        current = self._index.get(job.session_uuid, job.sequence_number)
        if current is not None and current.get(f.ARCHIVE_STATUS) == f.ArchiveStatus.ARCHIVED:
            logger.info("recording already archived", extra=log)
            return ArchiveOutcome.ALREADY_ARCHIVED
        spec = self.spec(job)
        try:
            with self._media.open(job.recording_url) as stream:
                stored = self._recordings.put_stream(spec, stream.read, stream.content_length)
        except ArchiveError as exc:
            return self._failed(job, exc, current or {}, log)
        self._index.mark_archived(
            job.session_uuid,
            job.sequence_number,
            bucket=stored.bucket,
            key=stored.key,
            version_id=stored.version_id,
            size=stored.size,
            sha256_hex=stored.sha256_hex,
            archived_at=self._now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
        metrics.add_metric(name="RecordingsArchived", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ArchivedBytes", unit=MetricUnit.Bytes, value=stored.size)
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
            },
        )
        return ArchiveOutcome.ARCHIVED

    def _failed(
        self, job: ArchiveJob, exc: ArchiveError, current: Mapping[str, Any], log: dict[str, Any]
    ) -> ArchiveOutcome:
        error = f"{type(exc).__name__}: {exc}"
        now = int(self._now().timestamp())
        attempts = int(current.get(f.ARCHIVE_ATTEMPTS) or 0) + 1
        exhausted = self._max_attempts is not None and attempts >= self._max_attempts
        permanent = not exc.retryable or exhausted
        self._index.record_failure(
            job.session_uuid,
            job.sequence_number,
            error=error,
            next_due_at=now + backoff_seconds(attempts),
            failed=permanent,
        )
        if isinstance(exc, ArchiveConflictError):
            metrics.add_metric(name="ArchiveConflicts", unit=MetricUnit.Count, value=1)
        if permanent:
            metrics.add_metric(name="RecordingsFailed", unit=MetricUnit.Count, value=1)
            logger.error("recording FAILED", extra={**log, "error": error, "attempts": attempts})
            return ArchiveOutcome.FAILED
        metrics.add_metric(name="ArchiveAttemptsFailed", unit=MetricUnit.Count, value=1)
        logger.warning(
            "archive attempt failed", extra={**log, "error": error, "attempts": attempts}
        )
        raise exc
