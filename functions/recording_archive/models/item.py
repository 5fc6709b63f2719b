"""The events table's item: attribute names, a typed read-only view (`EventItem`) and the
outcome of a conditional put. The persistence model shared by every function and the CLI.

Key: SessionUUID (S) / SequenceNumber (N). Completed events carry the archive state; the pair
ArchiveQueue / ArchiveDueAt is the sparse GSI `ArchiveQueueIndex` that the sweeper and the CLI read:
an item is in it while it is PENDING or FAILED and leaves it once ARCHIVED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SESSION_UUID = "SessionUUID"
SEQUENCE_NUMBER = "SequenceNumber"
EVENT_NAME = "EventName"
RECORDING_UUID = "RecordingUUID"
RECORDING_URL = "RecordingURL"
PAYLOAD = "Payload"
RAW_BODY = "RawBody"
PAYLOAD_SHA256 = "PayloadSha256"
RECEIVED_AT = "ReceivedAt"
SOURCE = "Source"
CONTENT_TYPE = "ContentType"
METHOD = "Method"
EXPIRES_AT = "ExpiresAt"

EVENT_TIME = "EventTime"
RECORDING_START_TIME = "RecordingStartTime"
RECORDING_END_TIME = "RecordingEndTime"
RECORDING_DURATION_SECONDS = "RecordingDurationSeconds"
RECORDING_EXT = "RecordingExt"

ARCHIVE_STATUS = "ArchiveStatus"
ARCHIVE_QUEUE = "ArchiveQueue"
ARCHIVE_DUE_AT = "ArchiveDueAt"
ARCHIVE_ATTEMPTS = "ArchiveAttempts"
ARCHIVE_LAST_ERROR = "ArchiveLastError"
ARCHIVE_BUCKET = "ArchiveBucket"
ARCHIVE_KEY = "ArchiveKey"
ARCHIVE_VERSION_ID = "ArchiveVersionId"
ARCHIVE_SIZE = "ArchiveSize"
ARCHIVE_SHA256 = "ArchiveSha256"
ARCHIVED_AT = "ArchivedAt"

CONFLICTING_PAYLOADS = "ConflictingPayloads"
CONFLICT_HASHES = "ConflictHashes"

# Attributes of a claimed item (written by the events table's `claim`, removed when the attempt
# reports its outcome). Epoch seconds until which the attempt holds the item; still present once
# past means the attempt never reported (its worker was killed or timed out).
ARCHIVE_LEASE_UNTIL = "ArchiveLeaseUntil"
ARCHIVE_CLAIM_TOKEN = "ArchiveClaimToken"  # noqa: S105 - an attribute name: the holder's token
# Epoch seconds until which a sweep's message on the archive work queue stands for the item: no
# other sweep enqueues it again before then (dal/events_table.py `mark_enqueued`). Removed when an
# attempt reports its outcome, so a retry follows the item's own backoff.
ARCHIVE_ENQUEUED_UNTIL = "ArchiveEnqueuedUntil"
# Set once the operator deleted the recording at Plivo (`recording-archive reconcile --purge`).
SOURCE_DELETED_AT = "SourceDeletedAt"
# A legal hold (`recording-archive hold set`): a map {"Reason", "SetAt", "SetBy"}; while it is
# present the item carries no ExpiresAt (TTL never deletes a held event).
LEGAL_HOLD = "LegalHold"

ARCHIVE_QUEUE_INDEX = "ArchiveQueueIndex"
RECORDING_INDEX = "RecordingIndex"


class ArchiveStatus(StrEnum):
    PENDING = "PENDING"
    ARCHIVED = "ARCHIVED"
    FAILED = "FAILED"


class Source(StrEnum):
    CALLBACK = "callback"
    FALLBACK = "fallback"
    RECONCILE = "reconcile"


EVENT_COMPLETED = "SessionRecordingCompleted"
EVENT_INITIATED = "SessionRecordingInitiated"
EVENT_FAILED = "SessionRecordingFailed"
KNOWN_EVENTS = frozenset({EVENT_COMPLETED, EVENT_INITIATED, EVENT_FAILED})


class PutOutcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    return "" if value is None else str(value)


def _number(item: Mapping[str, Any], name: str) -> int:
    value = item.get(name)
    return 0 if value is None or value == "" else int(value)


@dataclass(frozen=True)
class EventItem:
    """A typed, read-only view of one stored event (a deserialized item): what the functions and
    the operator CLI read, under the attribute names above. `raw` keeps the whole item."""

    session_uuid: str
    sequence_number: int
    event_name: str
    recording_uuid: str
    recording_url: str
    source: str
    received_at: str
    archive_status: str
    archive_attempts: int
    archive_last_error: str
    archive_bucket: str
    archive_key: str
    archive_version_id: str
    archive_size: int
    archive_sha256: str
    archived_at: str
    source_deleted_at: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> EventItem:
        return cls(
            session_uuid=_text(item, SESSION_UUID),
            sequence_number=_number(item, SEQUENCE_NUMBER),
            event_name=_text(item, EVENT_NAME),
            recording_uuid=_text(item, RECORDING_UUID),
            recording_url=_text(item, RECORDING_URL),
            source=_text(item, SOURCE),
            received_at=_text(item, RECEIVED_AT),
            archive_status=_text(item, ARCHIVE_STATUS),
            archive_attempts=_number(item, ARCHIVE_ATTEMPTS),
            archive_last_error=_text(item, ARCHIVE_LAST_ERROR),
            archive_bucket=_text(item, ARCHIVE_BUCKET),
            archive_key=_text(item, ARCHIVE_KEY),
            archive_version_id=_text(item, ARCHIVE_VERSION_ID),
            archive_size=_number(item, ARCHIVE_SIZE),
            archive_sha256=_text(item, ARCHIVE_SHA256),
            archived_at=_text(item, ARCHIVED_AT),
            source_deleted_at=_text(item, SOURCE_DELETED_AT),
            raw=item,
        )
