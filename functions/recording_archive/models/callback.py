"""The inbound model: a Plivo recording callback, validated at the edge.

What is validated: SessionUUID (a UUID), SequenceNumber (a non-negative integer), EventName
(required). The documented attributes are validated when present, and the Completed event must
carry what archiving needs (RecordingUUID, an https RecordingURL). Everything else (unknown
attributes, unknown event names) is accepted and kept as received: Plivo may add attributes or
events later, and a dropped attribute cannot be recovered.
Timestamps are parsed leniently (Plivo's format is not documented) and the raw string is kept.
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

# RecordingUUID becomes part of an S3 key: a strict character set keeps keys predictable.
_RECORDING_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_SEQUENCE = re.compile(r"^[0-9]{1,18}$")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# Formats seen in Plivo payloads: "2023-07-05 10:25:40 +0000 UTC",
# "2023-07-05 10:25:40.877364 +0000 UTC", "2023-07-05 10:25:40+05:30", ISO 8601.
_TS = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d{1,9})?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?(?:\s*(?:UTC|GMT))?$"
)


def parse_timestamp(raw: str) -> datetime | None:
    """A timezone-aware UTC datetime, or None when the text is not a timestamp we recognise."""
    text = raw.strip()
    if not text:
        return None
    if re.fullmatch(r"\d{9,10}(\.\d+)?", text):  # epoch seconds
        return datetime.fromtimestamp(float(text), tz=UTC)
    m = _TS.match(text)
    if not m:
        return None
    frac = (m["frac"] or ".0")[1:7].ljust(6, "0")
    try:
        naive = datetime.fromisoformat(f"{m['date']}T{m['time']}.{frac}")
    except ValueError:
        return None
    tz = m["tz"]
    if tz in (None, "Z"):
        offset = timedelta(0)
    else:
        digits = tz.replace(":", "")
        sign = -1 if digits[0] == "-" else 1
        offset = sign * timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5]))
    return naive.replace(tzinfo=timezone(offset)).astimezone(UTC)


def _is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK_HOSTS


class RecordingCallback(BaseModel):
    """One callback's attributes. Field names are Plivo's, as they arrive on the wire."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=False)

    SessionUUID: UUID
    SequenceNumber: Annotated[int, Field(ge=0)]
    EventName: Annotated[str, Field(min_length=1, max_length=128)]
    EventTimestamp: str | None = None
    RecordingUUID: str | None = None
    RecordingURL: str | None = None
    RecordingResourceURL: str | None = None
    RecordingFormat: str | None = None
    RecordingDuration: Decimal | None = None
    RecordingStartTime: str | None = None
    RecordingEndTime: str | None = None

    @field_validator("SessionUUID", mode="before")
    @classmethod
    def _uuid_text(cls, value: object) -> object:
        if isinstance(value, str) and value.strip() != value:
            raise ValueError("must not have surrounding white space")
        return value

    @field_validator("SequenceNumber", mode="before")
    @classmethod
    def _sequence(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError("must be a non-negative integer")
        if isinstance(value, str) and not _SEQUENCE.match(value):
            raise ValueError("must be a non-negative integer")
        return value

    @field_validator("RecordingUUID")
    @classmethod
    def _recording_id(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not _RECORDING_ID.match(value):
            raise ValueError("must be letters, digits, '-' or '_'")
        return value

    @field_validator("RecordingFormat")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if value.lower().lstrip(".") not in ("mp3", "wav"):
            raise ValueError("must be .mp3 or .wav")
        return value

    @field_validator("RecordingDuration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if value in (None, ""):
            return None
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError("must be a non-negative number of seconds") from exc
        if not number.is_finite() or number < 0:
            raise ValueError("must be a non-negative number of seconds")
        return number

    @field_validator("RecordingURL")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value in (None, ""):
            return None
        allow_loopback = bool((info.context or {}).get("allow_loopback_http"))
        parts = urlsplit(value)
        if not (parts.scheme == "https" and parts.hostname) and not (
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

    # --- derived, parsed fields -------------------------------------------------------------
    @property
    def recording_ext(self) -> str | None:
        """ "mp3" or "wav": from RecordingFormat, else the RecordingURL's suffix, else mp3."""
        if self.RecordingFormat:
            return self.RecordingFormat.lower().lstrip(".")
        if self.RecordingURL:
            path = urlsplit(self.RecordingURL).path.lower()
            for ext in ("mp3", "wav"):
                if path.endswith("." + ext):
                    return ext
            return "mp3"  # Plivo's default record_file_format
        return None

    def parsed_times(self) -> dict[str, datetime]:
        out: dict[str, datetime] = {}
        for name, raw in (
            ("EventTime", self.EventTimestamp),
            ("RecordingStartTime", self.RecordingStartTime),
            ("RecordingEndTime", self.RecordingEndTime),
        ):
            parsed = parse_timestamp(raw) if raw else None
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
