"""The archive's domain types, shared by logic (which decides) and dal (which stores).

Claims on an item (dal/events_table.py `claim` returns them), the object written to S3 and where
it goes. Plain data: no I/O, no AWS types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
