"""Use case: every recording Plivo holds is in the archive, even when its callback never came.

Plivo does not retry a callback answered 5xx, and an endpoint can be down: the REST APIs are the
source of truth. For each masking session created in the window (status `all`, 30-day windows,
pages of 20), each interaction with a `recording_resource_url`, and the Recording resource behind
it (media URL, format, duration, times):
- the session already has a SessionRecordingCompleted event for that RecordingUUID that is
  ARCHIVED: nothing to do;
- it has one that is not ARCHIVED yet (PENDING or FAILED): that event is archived now, no new
  event (its timeline already says where it came from);
- it has none: a *reconciled* event is stored first (EventName SessionRecordingCompleted, Source
  "reconcile", PENDING, the Recording resource as its Payload), then archived.

Key of a reconciled event: SessionUUID and a *negative* SequenceNumber derived from the recording
id, -(first 48 bits of SHA-256(recording id) + 1). Plivo's SequenceNumbers are non-negative, so a
reconciled event can never take the key of a callback that arrives late; the same recording always
gets the same key, so the conditional put makes a second run (or two concurrent ones) harmless.

Archiving goes through the one `Archiver` (create-only, SHA-256 verified, never overwrites), and
a recording already in the bucket under its key is verified, not copied again. `dry_run` reads
Plivo and the table and reports what would be done, writing nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from recording_archive.logic.archive_recording import (
    ArchiveJob,
    ArchiveOutcome,
    NotArchivableError,
)
from recording_archive.logic.ports import ArchiverPort, EventIndex, PlivoSource, SessionIndex
from recording_archive.logic.retention import expires_at
from recording_archive.logic.store_callback import index_new_event, iso, payload_sha256
from recording_archive.models import item as f
from recording_archive.models.errors import ArchiveError
from recording_archive.models.item import PutOutcome
from recording_archive.models.plivo import (
    Interaction,
    PlivoApiError,
    PlivoAuthError,
    PlivoNotFoundError,
    PlivoUnavailableError,
    RecordingResource,
)


def reconcile_sequence_number(recording_id: str) -> int:
    """The reconciled event's SequenceNumber: negative, deterministic, never one of Plivo's."""
    digest = hashlib.sha256(recording_id.encode("utf-8")).hexdigest()
    return -(int(digest[:12], 16) + 1)


class Action(StrEnum):
    ALREADY_ARCHIVED = "already_archived"
    ARCHIVED = "archived"
    WOULD_ARCHIVE = "would_archive"
    RETRY_LATER = "retry_later"  # a retryable failure: the item stays PENDING (sweeper)
    IN_PROGRESS = "in_progress"  # another archive attempt holds it: not archived yet
    FAILED = "failed"  # permanently (refused URL, conflict, not archivable)
    ERROR = "error"  # Plivo could not tell us about this session or recording


PROBLEMS = frozenset({Action.RETRY_LATER, Action.IN_PROGRESS, Action.FAILED, Action.ERROR})

# Archive outcomes of an attempt that did nothing (its claim was not granted).
_NOTHING_DONE: dict[ArchiveOutcome, tuple[Action, str]] = {
    ArchiveOutcome.ALREADY_ARCHIVED: (Action.ALREADY_ARCHIVED, ""),
    ArchiveOutcome.IN_PROGRESS: (Action.IN_PROGRESS, "another archive attempt holds it"),
    ArchiveOutcome.NOT_DUE: (Action.IN_PROGRESS, "another archive attempt holds it"),
    ArchiveOutcome.GONE: (Action.ERROR, "the event is no longer in the table"),
}


@dataclass(frozen=True)
class ReconcileEntry:
    session_uuid: str
    recording_uuid: str
    action: Action
    sequence_number: int | None = None
    reconciled_event: bool = False  # a new event was (or would be) written for it
    detail: str = ""


@dataclass
class ReconcileReport:
    since: datetime
    until: datetime
    dry_run: bool
    sessions: int = 0
    entries: list[ReconcileEntry] = field(default_factory=list)
    complete: bool = True  # False when stopped early (time budget)

    def counts(self) -> dict[str, int]:
        return dict(Counter(e.action.value for e in self.entries))

    @property
    def ok(self) -> bool:
        return self.complete and not any(e.action in PROBLEMS for e in self.entries)


def _json_safe_for_dynamodb(value: Any) -> Any:
    """JSON floats become Decimals (DynamoDB numbers reject float)."""
    return json.loads(json.dumps(value, default=str), parse_float=Decimal)


def _ms_to_iso(ms: Decimal | None) -> str | None:
    if ms is None:
        return None
    try:
        moment = datetime.fromtimestamp(float(ms) / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return iso(moment)


def _add_time_iso(text: str) -> str | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso(moment.astimezone(UTC))


def reconciled_item(
    session_uuid: str,
    interaction: Interaction,
    recording: RecordingResource,
    *,
    received_at: datetime,
    retention_days: int = 0,
    archive_retention_days: int = 0,
) -> dict[str, Any]:
    """The reconciled event for a recording Plivo holds and the table lacks."""
    resource = {k: v for k, v in recording.raw.items() if k != "api_id"}  # per-request id
    payload = _json_safe_for_dynamodb(
        {
            "SessionUUID": session_uuid,
            "RecordingUUID": recording.recording_id,
            "RecordingResourceURL": interaction.recording_resource_url,
            "Interaction": dict(interaction.raw),
            "Recording": resource,
        }
    )
    seq = reconcile_sequence_number(recording.recording_id)
    item: dict[str, Any] = {
        f.SESSION_UUID: session_uuid,
        f.SEQUENCE_NUMBER: seq,
        f.EVENT_NAME: f.EVENT_COMPLETED,
        f.RECORDING_UUID: recording.recording_id,
        f.RECORDING_URL: recording.recording_url,
        f.PAYLOAD: payload,
        f.RAW_BODY: json.dumps(recording.raw, sort_keys=True, default=str),
        f.PAYLOAD_SHA256: payload_sha256(payload),
        f.RECEIVED_AT: iso(received_at),
        f.SOURCE: f.Source.RECONCILE.value,
        f.RECORDING_EXT: recording.recording_format,
    }
    start = _ms_to_iso(recording.recording_start_ms)
    end = _ms_to_iso(recording.recording_end_ms)
    event_time = end or _add_time_iso(recording.add_time)
    for name, value in (
        (f.RECORDING_START_TIME, start),
        (f.RECORDING_END_TIME, end),
        (f.EVENT_TIME, event_time),
    ):
        if value:
            item[name] = value
    if recording.recording_duration_ms is not None:
        item[f.RECORDING_DURATION_SECONDS] = recording.recording_duration_ms / Decimal(1000)
    # Never before its recording's expiry (logic/retention.py).
    expiry = expires_at(received_at, event_days=retention_days, archive_days=archive_retention_days)
    if expiry is not None:
        item[f.EXPIRES_AT] = expiry
    item[f.ARCHIVE_STATUS] = f.ArchiveStatus.PENDING.value
    item[f.ARCHIVE_QUEUE] = f.ArchiveStatus.PENDING.value
    item[f.ARCHIVE_DUE_AT] = int(received_at.timestamp())
    item[f.ARCHIVE_ATTEMPTS] = 0
    return item


class Reconciler:
    def __init__(
        self,
        plivo: PlivoSource,
        index: SessionIndex,
        archiver: ArchiverPort,
        *,
        retention_days: int = 0,
        archive_retention_days: int = 0,
        now: Callable[[], datetime] | None = None,
        entries: EventIndex | None = None,
    ) -> None:
        self._plivo = plivo
        # The session index: a reconciled event, once stored, gets its entries like a callback's.
        self._entries = entries
        self._index = index
        self._archiver = archiver
        self._retention_days = retention_days
        self._archive_retention_days = archive_retention_days
        self._now = now or (lambda: datetime.now(UTC))
        self._time_left: Callable[[], float] | None = None

    def run(
        self,
        since: datetime,
        until: datetime,
        *,
        dry_run: bool = False,
        on_entry: Callable[[ReconcileEntry], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        time_left: Callable[[], float] | None = None,
    ) -> ReconcileReport:
        """Reconcile the sessions created in [since, until]. `time_left` (seconds left to the
        invocation) bounds each archive attempt (logic/archive_recording.py).

        Raises PlivoAuthError (bad credentials) and PlivoUnavailableError (Plivo down or rate
        limiting beyond the retries): nothing can be reconciled then. Everything else is an entry.
        """
        report = ReconcileReport(since=since, until=until, dry_run=dry_run)
        self._time_left = time_left
        for summary in self._plivo.list_sessions(since, until, status="all"):
            if should_stop is not None and should_stop():
                report.complete = False
                break
            report.sessions += 1
            for entry in self._session(str(summary.get("session_uuid") or ""), dry_run):
                report.entries.append(entry)
                if on_entry is not None:
                    on_entry(entry)
        return report

    def _session(self, session_uuid: str, dry_run: bool) -> Iterator[ReconcileEntry]:
        try:
            session = self._plivo.get_session(session_uuid)
        except (PlivoAuthError, PlivoUnavailableError):
            raise
        except PlivoApiError as exc:
            yield ReconcileEntry(session_uuid, "", Action.ERROR, detail=exc.message)
            return
        recorded: dict[str, Interaction] = {}
        for interaction in session.interactions:
            if interaction.recording_resource_url is None:
                continue
            rid = interaction.recording_id
            if rid is None:
                yield ReconcileEntry(
                    session_uuid, "", Action.ERROR, detail="unrecognised recording_resource_url"
                )
                continue
            recorded.setdefault(rid, interaction)
        if not recorded:
            return
        events = self._index.session_events(session_uuid)
        for rid, interaction in recorded.items():
            yield self._recording(session_uuid, rid, interaction, events, dry_run)

    def _recording(
        self,
        session_uuid: str,
        rid: str,
        interaction: Interaction,
        events: list[dict[str, Any]],
        dry_run: bool,
    ) -> ReconcileEntry:
        completed = [
            e
            for e in events
            if e.get(f.RECORDING_UUID) == rid and e.get(f.EVENT_NAME) == f.EVENT_COMPLETED
        ]
        archived = [e for e in completed if e.get(f.ARCHIVE_STATUS) == f.ArchiveStatus.ARCHIVED]
        if archived:
            return ReconcileEntry(
                session_uuid, rid, Action.ALREADY_ARCHIVED, int(archived[0][f.SEQUENCE_NUMBER])
            )
        if completed:
            existing = completed[0]
            seq = int(existing[f.SEQUENCE_NUMBER])
            status = existing.get(f.ARCHIVE_STATUS) or "no archive status"
            if dry_run:
                return ReconcileEntry(
                    session_uuid, rid, Action.WOULD_ARCHIVE, seq, detail=f"existing {status}"
                )
            return self._archive(existing, rid, reconciled=False)
        return self._reconcile_new(session_uuid, rid, interaction, dry_run)

    def _reconcile_new(
        self, session_uuid: str, rid: str, interaction: Interaction, dry_run: bool
    ) -> ReconcileEntry:
        seq = reconcile_sequence_number(rid)
        try:
            recording = self._plivo.get_recording(rid)
        except (PlivoAuthError, PlivoUnavailableError):
            raise
        except PlivoNotFoundError:
            return ReconcileEntry(
                session_uuid, rid, Action.ERROR, seq, detail="recording no longer on Plivo"
            )
        except PlivoApiError as exc:
            return ReconcileEntry(session_uuid, rid, Action.ERROR, seq, detail=exc.message)
        item = reconciled_item(
            session_uuid,
            interaction,
            recording,
            received_at=self._now(),
            retention_days=self._retention_days,
            archive_retention_days=self._archive_retention_days,
        )
        if dry_run:
            return ReconcileEntry(
                session_uuid, rid, Action.WOULD_ARCHIVE, seq, True, recording.recording_url
            )
        if self._index.put_new(item) is PutOutcome.STORED and self._entries is not None:
            index_new_event(item, self._entries)
        # A concurrent run may have stored it first: archive what the table holds.
        stored = self._index.get(session_uuid, seq) or item
        return self._archive(stored, rid, reconciled=True)

    def _archive(self, item: Mapping[str, Any], rid: str, *, reconciled: bool) -> ReconcileEntry:
        session_uuid = str(item[f.SESSION_UUID])
        seq = int(item[f.SEQUENCE_NUMBER])
        try:
            job = ArchiveJob.from_item(item)
        except NotArchivableError as exc:
            self._index.record_failure(
                session_uuid,
                seq,
                error=f"NotArchivable: {exc}",
                next_due_at=int(self._now().timestamp()),
                failed=True,
            )
            return ReconcileEntry(session_uuid, rid, Action.FAILED, seq, reconciled, str(exc))
        try:
            outcome = self._archiver.archive(job, time_left=self._time_left)
        except ArchiveError as exc:
            return ReconcileEntry(
                session_uuid,
                rid,
                Action.RETRY_LATER,
                seq,
                reconciled,
                f"{type(exc).__name__}: {exc}",
            )
        if outcome == ArchiveOutcome.FAILED:
            current = self._index.get(session_uuid, seq) or {}
            detail = str(current.get(f.ARCHIVE_LAST_ERROR) or "archive failed")
            return ReconcileEntry(session_uuid, rid, Action.FAILED, seq, reconciled, detail)
        if outcome in _NOTHING_DONE:
            action, detail = _NOTHING_DONE[outcome]
            return ReconcileEntry(session_uuid, rid, action, seq, reconciled, detail)
        return ReconcileEntry(session_uuid, rid, Action.ARCHIVED, seq, reconciled, job.key)
