"""Use case: make a verified callback durable before it is answered.

Plivo does not retry a 5xx answer by default, so an answer of 5xx can lose the event for good.
Hence: table first; if the table fails after the SDK's retries, the fallback queue (drained into
the table later by FallbackDrainFunction with the same idempotent write); only if both fail does
the caller answer 503.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, DecimalException
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

# The number rules of the serializer that writes the item (boto3's, in dal/): one definition.
from boto3.dynamodb.types import DYNAMODB_CONTEXT

from recording_archive.logic.callback_request import CallbackRequest
from recording_archive.logic.ports import EventIndex, EventStore, Fallback
from recording_archive.logic.retention import expires_at
from recording_archive.models import item as f
from recording_archive.models.callback import RecordingCallback
from recording_archive.models.errors import (
    EventStoreUnavailableError,
    SessionIndexUnavailableError,
)
from recording_archive.models.item import PutOutcome
from recording_archive.observability import logger, metrics


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
    archive_retention_days: int = 0,
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
    # Never before its recording's expiry (logic/retention.py).
    expiry = expires_at(received_at, event_days=retention_days, archive_days=archive_retention_days)
    if expiry is not None:
        item[f.EXPIRES_AT] = expiry
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


def index_new_event(item: Mapping[str, Any], index: EventIndex) -> bool:
    """Write a newly stored event's session index entries; False when the index failed.

    The event is durable by then, and the events table is the record: a failure neither loses
    nor fails it. It is logged (keys only: never a number) and counted in `IndexWriteFailed`;
    `recording-archive index rebuild` writes the missing entries.
    """
    try:
        index.add_event(item)
    except SessionIndexUnavailableError as exc:
        logger.warning(
            "session index entries not written (index rebuild repairs)",
            extra={
                "session_uuid": str(item.get(f.SESSION_UUID)),
                "sequence_number": str(item.get(f.SEQUENCE_NUMBER)),
                "error": f"{type(exc).__name__}: {exc}",
            },
        )
        metrics.add_metric(name="IndexWriteFailed", unit=MetricUnit.Count, value=1)
        return False
    return True


class IndexedEventStore:
    """An EventStore that writes the session index entries of every event it newly stores
    (outcome STORED), before it returns: the callback's and the fallback drain's store. A
    duplicate or a conflict was indexed when it was first stored."""

    def __init__(self, store: EventStore, index: EventIndex) -> None:
        self._store = store
        self._index = index

    def put_new(self, item: Mapping[str, Any]) -> PutOutcome:
        outcome = self._store.put_new(item)
        if outcome is PutOutcome.STORED:
            index_new_event(item, self._index)
        return outcome
