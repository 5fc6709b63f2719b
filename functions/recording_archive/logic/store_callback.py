"""Use case: make a verified callback durable before it is answered.

Plivo does not retry a 5xx answer by default, so an answer of 5xx can lose the event for good.
Hence: table first; if the table fails after the SDK's retries, the fallback queue (drained into
the table later by FallbackDrainFunction with the same idempotent write); only if both fail does
the caller answer 503.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from decimal import Decimal, DecimalException
from enum import StrEnum
from typing import Any

# The number rules of the serializer that writes the item (boto3's, in dal/): one definition.
from boto3.dynamodb.types import DYNAMODB_CONTEXT

from recording_archive.logic.callback_request import CallbackRequest
from recording_archive.logic.ports import EventStore, Fallback
from recording_archive.models import item as f
from recording_archive.models.callback import RecordingCallback
from recording_archive.models.errors import EventStoreUnavailableError


class StoreResult(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    QUEUED = "queued"


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload_sha256(params: dict[str, Any]) -> str:
    """Hash of the payload independent of key order: a repeat of the same callback matches."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _dynamodb_number(value: int | Decimal) -> bool:
    """Whether DynamoDB holds the number exactly: finite, at most 38 significant digits,
    magnitude 1E-130 to 9.99...E+125
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html#HowItWorks.DataTypes.Number).
    boto3's own context decides, as its serializer will when the item is written."""
    try:
        number = DYNAMODB_CONTEXT.create_decimal(value)
    except DecimalException:  # Inexact, Rounded, Overflow, Underflow, Clamped: all trapped
        return False
    # boto3 lets a subnormal such as 1E-131 through (Subnormal is not trapped); DynamoDB not.
    return number.is_finite() and (number.is_zero() or -130 <= number.adjusted() <= 125)


def storable(value: Any) -> Any:
    """A received value as DynamoDB can hold it: a number it cannot hold exactly (a JSON
    ``1e400``, or more than 38 significant digits) becomes its exact decimal text; everything
    else is unchanged. The raw body is stored beside it, byte for byte."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        return value if _dynamodb_number(value) else str(value)
    if isinstance(value, dict):
        return {k: storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def build_item(
    callback: RecordingCallback,
    request: CallbackRequest,
    *,
    received_at: datetime,
    retention_days: int,
    source: f.Source = f.Source.CALLBACK,
) -> dict[str, Any]:
    """The persistence item: every attribute as received, the parsed fields, the raw payload."""
    item: dict[str, Any] = {
        f.SESSION_UUID: str(callback.SessionUUID),
        f.SEQUENCE_NUMBER: callback.SequenceNumber,
        f.EVENT_NAME: callback.EventName,
        f.PAYLOAD: storable(request.params),
        f.RAW_BODY: request.raw,
        f.PAYLOAD_SHA256: payload_sha256(request.params),
        f.RECEIVED_AT: iso(received_at),
        f.SOURCE: source.value,
        f.METHOD: request.method,
        f.CONTENT_TYPE: request.content_type,
    }
    if callback.RecordingUUID:
        item[f.RECORDING_UUID] = callback.RecordingUUID
    if callback.RecordingURL:
        item[f.RECORDING_URL] = callback.RecordingURL
    duration = callback.duration_seconds
    if duration is not None and _dynamodb_number(duration):
        item[f.RECORDING_DURATION_SECONDS] = duration
    ext = callback.recording_ext
    if ext:
        item[f.RECORDING_EXT] = ext
    for name, ts in callback.parsed_times().items():
        item[name] = iso(ts)
    if retention_days > 0:
        item[f.EXPIRES_AT] = int((received_at + timedelta(days=retention_days)).timestamp())
    if callback.EventName == f.EVENT_COMPLETED:
        # Pending from the moment it is stored until archived: the sparse ArchiveQueueIndex.
        item[f.ARCHIVE_STATUS] = f.ArchiveStatus.PENDING.value
        item[f.ARCHIVE_QUEUE] = f.ArchiveStatus.PENDING.value
        item[f.ARCHIVE_DUE_AT] = int(received_at.timestamp())
        item[f.ARCHIVE_ATTEMPTS] = 0
    return item


def store_event(item: dict[str, Any], store: EventStore, fallback: Fallback) -> StoreResult:
    """Durable before it returns; raises FallbackUnavailableError if neither place took it."""
    try:
        outcome = store.put_new(item)
    except EventStoreUnavailableError:
        fallback.send(item)
        return StoreResult.QUEUED
    return StoreResult(outcome.value)
