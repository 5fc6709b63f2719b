"""LifecycleEvents: the archive's lifecycle events, published to an EventBridge bus.

Other systems (transcription, analytics, a data-subject request tracker) subscribe with a rule on
the bus (EventBusName, the account's default bus by default) matching `source`
"plivo-recording-archive". Detail types: RecordingArchived, RecordingFailed (the archiver and
the sweeper), RecordingErased (the operator's `erase`). The detail carries identifiers and object
facts (UUIDs, bucket, key, version, size, SHA-256, duration), never a phone number: callers pass
only those (logic/archive_recording.py builds them), and `publish` refuses any other field.

One PutEvents call per event. PutEvents can answer 200 and still reject an entry: the answer's
FailedEntryCount, and per entry an ErrorCode instead of an EventId
(https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html, "Response
Elements"; botocore does not retry such entries). A partial failure is a failure here:
LifecycleEventsUnavailableError, as for an error of the call itself after the client's retries
(dal/aws.py EVENTS budget). Publishing is at-least-once by the callers' design (the archive
attempt fails and is retried): a subscriber may see an event twice and deduplicates on
RecordingUUID (and VersionId).

Permissions: events:PutEvents on the bus's ARN.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from recording_archive.models.archive import LIFECYCLE_DETAIL_FIELDS as DETAIL_FIELDS
from recording_archive.models.archive import LIFECYCLE_SOURCE as SOURCE
from recording_archive.models.archive import DetailType
from recording_archive.models.errors import LifecycleEventsUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

__all__ = ["SOURCE", "DetailType", "LifecycleEvents", "LifecycleEventsUnavailableError"]

# PutEvents' limit on an entry:
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html
MAX_ENTRY_BYTES = 256 * 1024


def _json_default(value: Any) -> Any:
    # DynamoDB numbers arrive as Decimal: a whole number stays an integer in the JSON.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def detail_json(detail: Mapping[str, Any]) -> str:
    """The Detail string: the allowed fields that are known (None dropped), keys sorted."""
    unknown = sorted(set(detail) - DETAIL_FIELDS)
    if unknown:
        raise ValueError(f"lifecycle event detail fields not allowed: {', '.join(unknown)}")
    known = {k: v for k, v in detail.items() if v is not None and v != ""}
    return json.dumps(known, sort_keys=True, separators=(",", ":"), default=_json_default)


class LifecycleEvents:
    """Publishes one lifecycle event per call to `bus_name` (a name or an ARN)."""

    def __init__(self, events_client: EventBridgeClient, bus_name: str) -> None:
        if not bus_name:
            raise ValueError("an event bus name is required")
        self._client = events_client
        self._bus = bus_name

    @property
    def bus_name(self) -> str:
        return self._bus

    def publish(
        self, detail_type: str, detail: Mapping[str, Any], *, time: datetime | None = None
    ) -> None:
        """Publish one event; `time` sets the event's time (default: when EventBridge takes it).
        Raises LifecycleEventsUnavailableError when the event was not accepted, ValueError for
        an unknown detail type or field."""
        if detail_type not in set(DetailType):
            raise ValueError(f"unknown lifecycle event detail type {detail_type!r}")
        body = detail_json(detail)
        if len(body.encode("utf-8")) > MAX_ENTRY_BYTES:
            raise ValueError("lifecycle event detail over PutEvents' entry size limit")
        entry: PutEventsRequestEntryTypeDef = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": body,
            "EventBusName": self._bus,
        }
        if time is not None:
            entry["Time"] = time
        try:
            answer = self._client.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            raise LifecycleEventsUnavailableError(
                f"EventBridge PutEvents failed ({type(exc).__name__})"
            ) from exc
        entries = answer.get("Entries") or []
        failed = [e for e in entries if e.get("ErrorCode")]
        if answer.get("FailedEntryCount", 0) or failed or len(entries) != 1:
            code = failed[0].get("ErrorCode", "unknown") if failed else "no entry result"
            raise LifecycleEventsUnavailableError(f"EventBridge rejected the event ({code})")
