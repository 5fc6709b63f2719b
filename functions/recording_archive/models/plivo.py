"""Plivo's REST records (masking sessions, interactions, recordings) and the errors of its API.

Shared by logic/reconcile.py (which reads them) and dal/plivo_api.py (which builds them from
Plivo's JSON). Plain data and pure helpers: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from recording_archive.models.errors import RecordingArchiveError

# A Plivo id (recording, call, session) as this package accepts it: it goes into URL paths and
# S3 keys. The one definition (callbacks, the REST client and the operator CLI use it).
ID_CHARS = r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"
PLIVO_ID = re.compile(rf"^{ID_CHARS}$")
_RECORDING_PATH = re.compile(rf"/Recording/({ID_CHARS})/?$")


class PlivoApiError(RecordingArchiveError):
    """Plivo answered something this client cannot use (a 4xx, a malformed body)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class PlivoAuthError(PlivoApiError):
    """401/403: wrong auth id or token, or a (sub)account without access."""


class PlivoNotFoundError(PlivoApiError):
    """404: no such session or recording."""


class PlivoUnavailableError(PlivoApiError):
    """429, 5xx or connection failures that outlasted the retries."""


@dataclass(frozen=True)
class Interaction:
    type: str
    start_time: str
    end_time: str
    recording_resource_url: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def recording_id(self) -> str | None:
        """The recording id at the end of recording_resource_url (None when not recorded)."""
        return recording_id_from_url(self.recording_resource_url)


@dataclass(frozen=True)
class MaskingSession:
    session_uuid: str
    status: str
    created_time: str
    record: bool
    record_file_format: str
    interactions: tuple[Interaction, ...]
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class RecordingResource:
    recording_id: str
    recording_url: str
    recording_format: str  # "mp3" or "wav", without a dot
    call_uuid: str
    add_time: str
    recording_duration_ms: Decimal | None
    recording_start_ms: Decimal | None
    recording_end_ms: Decimal | None
    raw: Mapping[str, Any] = field(repr=False)


def recording_id_from_url(url: str | None) -> str | None:
    """`https://api.plivo.com/v1/Account/MA.../Recording/{id}/` -> `{id}`; None if not that."""
    if not url:
        return None
    match = _RECORDING_PATH.search(urlsplit(url).path)
    return match.group(1) if match else None


def check_id(value: str, what: str) -> str:
    """Ids go into URL paths: letters, digits, '-' and '_' only."""
    if not isinstance(value, str) or not PLIVO_ID.match(value):
        raise PlivoApiError(f"invalid {what}: letters, digits, '-' and '_' only")
    return value
