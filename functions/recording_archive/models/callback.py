"""The inbound model: a Plivo recording callback, validated at the edge.

Only the key attributes can refuse a callback (422): SessionUUID (a UUID), SequenceNumber (a
non-negative integer), EventName (1 to 128 characters), and RecordingUUID / RecordingURL (what
archiving needs: required on the Completed event; a safe S3 key part and an https URL whenever
given). Everything else (the other documented attributes, unknown attributes, unknown event
names) is accepted and kept exactly as received, whatever its shape: Plivo may add attributes
or events later, its formats are not documented (/work/shared/plivo/FACTS.md), and a callback
refused is a callback lost, since Plivo does not retry a 4xx.
The parsed forms of the other attributes (timestamps, duration, format) are derived leniently:
absent when the raw value cannot be parsed, never a refusal.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from recording_archive.models.item import EVENT_COMPLETED
from recording_archive.models.plivo import PLIVO_ID

# The attributes that identify an event or the recording to archive: only these can make a
# callback invalid, and only these may not be given twice with different values.
KEY_ATTRIBUTES = ("SessionUUID", "SequenceNumber", "EventName", "RecordingUUID", "RecordingURL")

_SEQUENCE = re.compile(r"^[0-9]{1,18}$")
_SEQUENCE_LIMIT = 10**18  # the same bound as 18 digits, for a JSON integer
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# Formats seen in Plivo payloads: "2023-07-05 10:25:40 +0000 UTC",
# "2023-07-05 10:25:40.877364 +0000 UTC", "2023-07-05 10:25:40+05:30", ISO 8601.
_TS = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d{1,9})?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?(?:\s*(?:UTC|GMT))?$"
)
_EPOCH = re.compile(r"^\d{9,10}(\.\d+)?$")


def parse_timestamp(raw: object) -> datetime | None:
    """A timezone-aware UTC datetime, or None when the value is not a timestamp we recognise.

    Never raises: an offset of 24 hours or more, minutes over 59, or an instant outside the
    years 1 to 9999 once in UTC (``0001-01-01 00:00:00 +0100``) give None, and the raw value
    is kept by the caller either way. A JSON number is read as epoch seconds.
    """
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        return None
    text = str(raw).strip()
    try:
        if _EPOCH.match(text):
            return datetime.fromtimestamp(float(text), tz=UTC)
        m = _TS.match(text)
        if not m:
            return None
        frac = (m["frac"] or ".0")[1:7].ljust(6, "0")
        naive = datetime.fromisoformat(f"{m['date']}T{m['time']}.{frac}")
        tz = m["tz"]
        offset = timedelta(0)
        if tz not in (None, "Z"):
            digits = tz.replace(":", "")
            hours, minutes = int(digits[1:3]), int(digits[3:5])
            if minutes > 59:
                return None
            offset = (-1 if digits[0] == "-" else 1) * timedelta(hours=hours, minutes=minutes)
        # timezone() refuses an offset of 24 h or more (ValueError); astimezone() overflows
        # outside datetime's years 1..9999 (OverflowError).
        return naive.replace(tzinfo=timezone(offset)).astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None


def parse_duration(raw: object) -> Decimal | None:
    """A non-negative, finite number of seconds, or None (a string or a JSON number)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        return None
    try:
        number = Decimal(raw.strip()) if isinstance(raw, str) else Decimal(raw)
    except InvalidOperation:
        return None
    if not number.is_finite() or number < 0:
        return None
    return number


def _is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK_HOSTS


class RecordingCallback(BaseModel):
    """One callback's attributes. Field names are Plivo's, as they arrive on the wire."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=False)

    SessionUUID: UUID
    SequenceNumber: Annotated[int, Field(ge=0, lt=_SEQUENCE_LIMIT)]
    EventName: Annotated[str, Field(min_length=1, max_length=128)]
    RecordingUUID: str | None = None
    RecordingURL: str | None = None
    # Not keys: any value, as received (a string; a JSON value; the list a repeated form
    # attribute gives). Their parsed forms are the derived properties below.
    EventTimestamp: Any = None
    RecordingResourceURL: Any = None
    RecordingFormat: Any = None
    RecordingDuration: Any = None
    RecordingStartTime: Any = None
    RecordingEndTime: Any = None

    @field_validator("SessionUUID", mode="before")
    @classmethod
    def _uuid_text(cls, value: object) -> object:
        if isinstance(value, str) and value.strip() != value:
            raise ValueError("must not have surrounding white space")
        return value

    @field_validator("SequenceNumber", mode="before")
    @classmethod
    def _sequence(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError("must be a non-negative integer")
        if isinstance(value, str) and not _SEQUENCE.match(value):
            raise ValueError("must be a non-negative integer")
        return value

    @field_validator("RecordingUUID")
    @classmethod
    def _recording_id(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        # It becomes part of an S3 key: a strict character set keeps keys predictable.
        if not PLIVO_ID.match(value):
            raise ValueError("must be letters, digits, '-' or '_'")
        return value

    @field_validator("RecordingURL")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value in (None, ""):
            return None
        allow_loopback = bool((info.context or {}).get("allow_loopback_http"))
        try:
            parts = urlsplit(value)
            hostname = parts.hostname
        except ValueError as exc:  # e.g. an unbalanced '[' in the host
            raise ValueError("must be an https URL") from exc
        if not (parts.scheme == "https" and hostname) and not (
            allow_loopback and _is_loopback_http(value)
        ):
            raise ValueError("must be an https URL")
        return value

    @model_validator(mode="after")
    def _completed_needs_recording(self) -> RecordingCallback:
        if self.EventName == EVENT_COMPLETED:
            missing = [n for n in ("RecordingUUID", "RecordingURL") if not getattr(self, n)]
            if missing:
                raise ValueError(f"{', '.join(missing)} required on {EVENT_COMPLETED}")
        return self

    # --- derived, parsed fields (absent when the raw value cannot be parsed) ----------------
    @property
    def recording_ext(self) -> str | None:
        """ "mp3" or "wav": from RecordingFormat, else the RecordingURL's suffix, else mp3."""
        fmt = self.RecordingFormat
        if isinstance(fmt, str) and fmt.lower().lstrip(".") in ("mp3", "wav"):
            return fmt.lower().lstrip(".")
        if self.RecordingURL:
            path = urlsplit(self.RecordingURL).path.lower()
            for ext in ("mp3", "wav"):
                if path.endswith("." + ext):
                    return ext
            return "mp3"  # Plivo's default record_file_format
        return None

    @property
    def duration_seconds(self) -> Decimal | None:
        return parse_duration(self.RecordingDuration)

    def parsed_times(self) -> dict[str, datetime]:
        out: dict[str, datetime] = {}
        for name, raw in (
            ("EventTime", self.EventTimestamp),
            ("RecordingStartTime", self.RecordingStartTime),
            ("RecordingEndTime", self.RecordingEndTime),
        ):
            parsed = parse_timestamp(raw)
            if parsed is not None:
                out[name] = parsed
        return out


def field_names(errors: list[dict[str, Any]]) -> list[str]:
    """The attribute names a pydantic ValidationError is about (never the values)."""
    names: list[str] = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "__root__"]
        if loc:
            name = loc[0]
        else:  # a model-level error names its fields in the message we wrote
            msg = str(err.get("msg", ""))
            name = ",".join(re.findall(r"\bRecording(?:UUID|URL)\b", msg)) or "callback"
        for n in name.split(","):
            if n not in names:
                names.append(n)
    return names


def missing_fields(errors: list[dict[str, Any]]) -> bool:
    """Whether the errors are about an absent key attribute (rather than an invalid one)."""
    return any(err.get("type") == "missing" or not err.get("loc") for err in errors)
