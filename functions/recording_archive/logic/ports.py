"""Every port of the use cases, declared once: what logic/ needs from storage, media and Plivo.

dal/ implements them structurally (RecordingEventStore, ArchiveIndex, FallbackQueue, MediaSource,
RecordingStore, PlivoApi); tests pass in-memory fakes. Only models/ types cross a port: logic/
imports nothing from dal/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from recording_archive.models.archive import (
    Claim,
    ClaimRefused,
    ObjectSpec,
    StoredObject,
    WorkKey,
)
from recording_archive.models.item import ArchiveStatus, PutOutcome
from recording_archive.models.plivo import MaskingSession, RecordingResource

if TYPE_CHECKING:
    from recording_archive.logic.archive_recording import ArchiveJob, ArchiveOutcome


# --- the events table ----------------------------------------------------------------------------
class EventStore(Protocol):
    """Stores an event once (idempotent conditional put)."""

    def put_new(self, item: Mapping[str, Any]) -> PutOutcome: ...


class Fallback(Protocol):
    """Takes an event the table could not (returns the message id)."""

    def send(self, item: Mapping[str, Any]) -> str: ...


class EventIndex(Protocol):
    """Writes a stored event's session index entries (dal/session_index.py); raises
    SessionIndexUnavailableError when it cannot."""

    def add_event(self, item: Mapping[str, Any]) -> None: ...


class FailureRecorder(Protocol):
    def record_failure(
        self,
        session_uuid: str,
        sequence_number: int,
        *,
        error: str,
        next_due_at: int,
        failed: bool,
        claim_token: str | None = None,
        lease_free_at: int | None = None,
    ) -> int | None: ...


class ClaimIndex(FailureRecorder, Protocol):
    """The archive state of completed events: claims, outcomes."""

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
    ) -> Claim | ClaimRefused: ...
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


class SessionIndex(EventStore, FailureRecorder, Protocol):
    """A session's events, read and written by reconcile."""

    def session_events(self, session_uuid: str) -> list[dict[str, Any]]: ...
    def get(self, session_uuid: str, sequence_number: int) -> dict[str, Any] | None: ...


# --- media and objects ---------------------------------------------------------------------------
class Media(Protocol):
    def open(self, url: str) -> Any: ...


class Recordings(Protocol):
    def put_stream(
        self, spec: ObjectSpec, read: Any, expected_size: int | None
    ) -> StoredObject: ...


# --- the archive work queue (sweeper -> ArchiveWorkFunction) --------------------------------------
class DueItems(FailureRecorder, Protocol):
    """What the sweeper reads and marks (dal/events_table.py)."""

    def archive_queue(
        self,
        state: ArchiveStatus,
        *,
        due_before: int | None = None,
        limit: int | None = 100,
        not_enqueued_at: int | None = None,
    ) -> Iterator[dict[str, Any]]: ...
    def mark_enqueued(
        self, session_uuid: str, sequence_number: int, *, now: int, until: int, due_before: int
    ) -> bool: ...
    def release_enqueued(self, session_uuid: str, sequence_number: int, *, until: int) -> bool: ...


class WorkQueue(Protocol):
    """Sends keys; returns those never sent (dal/work_queue.py)."""

    def send(self, keys: Sequence[WorkKey]) -> list[WorkKey]: ...


# --- lifecycle events (EventBridge) ---------------------------------------------------------------
class LifecyclePublisher(Protocol):
    """Publishes one lifecycle event (models/archive.py DetailType); raises
    LifecycleEventsUnavailableError when it was not accepted."""

    def publish(
        self, detail_type: str, detail: Mapping[str, Any], *, time: datetime | None = None
    ) -> None: ...


# --- Plivo and the archiver (reconcile) ----------------------------------------------------------
class PlivoSource(Protocol):
    def list_sessions(
        self, created_from: datetime, created_to: datetime, *, status: str = "all"
    ) -> Iterator[dict[str, Any]]: ...
    def get_session(self, session_uuid: str) -> MaskingSession: ...
    def get_recording(self, recording_id: str) -> RecordingResource: ...


class ArchiverPort(Protocol):
    def archive(
        self, job: ArchiveJob, *, time_left: Callable[[], float] | None = None
    ) -> ArchiveOutcome: ...
