"""Names of the events table's attributes: the persistence model shared by every function.

Key: SessionUUID (S) / SequenceNumber (N). Completed events carry the archive state; the pair
ArchiveQueue / ArchiveDueAt is the sparse GSI `ArchiveQueueIndex` that the sweeper and the CLI read:
an item is in it while it is PENDING or FAILED and leaves it once ARCHIVED.
"""

from __future__ import annotations

from enum import StrEnum

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

ARCHIVE_QUEUE_INDEX = "ArchiveQueueIndex"


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
