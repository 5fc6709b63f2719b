"""The archive's domain types, shared by logic (which decides) and dal (which stores).

Claims on an item (dal/events_table.py `claim` returns them), the object written to S3 and where
it goes. Plain data: no I/O, no AWS types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, order=True)
class WorkKey:
    """An item the sweeper hands to ArchiveWorkFunction: its key and nothing else (the consumer
    reads the item itself, so a message never carries stale state, a URL or a number)."""

    session_uuid: str
    sequence_number: int


class ClaimRefusal(StrEnum):
    GONE = "gone"  # no such item (expired by TTL, erased)
    ARCHIVED = "archived"
    HELD = "held"  # another attempt holds an unexpired lease
    EXHAUSTED = "exhausted"  # max_attempts attempts were made already
    NOT_DUE = "not_due"  # backing off: due after `due_by`


@dataclass(frozen=True)
class Claim:
    """This attempt holds the item until `lease_until`; it is attempt number `attempts`."""

    token: str
    attempts: int
    lease_until: int
    abandoned_lease: bool  # the previous attempt's lease ran out without a report
    # The item carries a legal hold (`recording-archive hold set` before it was archived): the
    # object is written with Object Lock's legal hold ON, so it is protected from its first byte.
    legal_hold: bool = False


@dataclass(frozen=True)
class ClaimRefused:
    reason: ClaimRefusal
    attempts: int = 0
    last_error: str = ""
    abandoned_lease: bool = False  # an expired lease is still on the item


@dataclass(frozen=True)
class ObjectSpec:
    bucket: str
    key: str
    content_type: str
    metadata: dict[str, str]
    kms_key_id: str
    expected_bucket_owner: str
    legal_hold: bool = False  # written with Object Lock's legal hold ON (Claim.legal_hold)


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    version_id: str | None
    size: int
    sha256_hex: str
    already_existed: bool


@dataclass(frozen=True)
class ArchiveTarget:
    bucket: str
    kms_key_id: str
    bucket_owner: str


# --- lifecycle events (published by dal/lifecycle_events.py; built by logic/archive_recording.py
# and the operator's erase): the vocabulary other systems subscribe to. Here rather than in a
# module of their own: the archive handler imports this module anyway (cold start).
LIFECYCLE_SOURCE = "plivo-recording-archive"


class DetailType(StrEnum):
    RECORDING_ARCHIVED = "RecordingArchived"
    RECORDING_FAILED = "RecordingFailed"
    RECORDING_ERASED = "RecordingErased"


# Every field a detail may carry (publish refuses any other, so nothing else, such as a payload
# attribute or a phone number, reaches other systems through a caller's mistake).
LIFECYCLE_DETAIL_FIELDS = frozenset(
    {
        "SessionUUID",
        "RecordingUUID",
        "SequenceNumber",
        "Bucket",
        "Key",
        "VersionId",
        "Size",
        "Sha256",
        "DurationSeconds",
        "Attempts",
        "Reason",  # RecordingFailed: the last error's class name, never its message
        "Versions",  # RecordingErased: how many object versions were deleted
    }
)
