"""What a recorded session costs to receive and archive: the cost model of `make bench`.

A session is two callbacks (SessionRecordingInitiated, SessionRecordingCompleted) and the
archiving of one recording (prices.json "assumptions": a 5-minute mp3). Every count comes
from a measured run (bench/run.py, `lambda_child.py --count-calls`): the AWS API calls each
function made, the items it wrote, its duration and log output; every price from bench/prices.json
(list prices with their date, in one place). Per-session parts, then x 10,000:

- API Gateway HTTP API: one request per callback (each under 512 KB: one billed request).
- Lambda: one request per callback and per archive invocation (one record a batch, the worst
  case); GB-seconds = measured duration (ms, rounded up, as Lambda bills) x the function's
  configured MemorySize; plus, for `cold_start_fraction` of the invocations, the measured init
  (import) time, which Lambda bills since 2025-08.
- DynamoDB on demand: a write of an item of size s costs ceil(s / 1 KB) write units (each item
  of a BatchWriteItem too: the session index); an update costs by the larger of the item before
  and after (the archived item, measured). Global
  secondary indexes: ArchiveQueueIndex projects ALL attributes, so every write to an item in it
  (the Completed event while pending) writes the index too (same units); RecordingIndex (KEYS_ONLY)
  takes 1 unit per event with a RecordingUUID. A strongly consistent read costs ceil(s / 4 KB).
  Item sizes follow DynamoDB's rules (`item_size`). Stream reads by Lambda are free.
- S3: PUT-class and GET-class requests as counted (notes in prices.json).
- KMS: GenerateMac (number index) and any other client-side KMS call as counted; Secrets Manager
  GetSecretValue (and the KMS Decrypt it makes with the stack's key) once per cold start.
- EventBridge: one custom event per PutEvents entry (under 64 KB each).
- CloudWatch Logs: measured log bytes per invocation plus Lambda's START/END/REPORT lines.

    from bench.cost import load_prices, session_cost
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices.json")
SESSIONS = 10_000
KB = 1024
GB = 1024**3

# S3 request classes (https://aws.amazon.com/s3/pricing/, "Requests & data retrievals").
S3_PUT_CLASS = frozenset(
    {
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "PutObjectTagging",
        "CopyObject",
        "UploadPartCopy",
        "ListObjectsV2",
        "ListParts",
    }
)
S3_FREE = frozenset({"AbortMultipartUpload", "DeleteObject", "DeleteObjects"})
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
DYNAMODB_READS = frozenset({"GetItem"})
# Calls a function makes once per execution environment (cold start), not per invocation.
ONCE_PER_ENVIRONMENT = frozenset({("secrets-manager", "GetSecretValue")})


def load_prices(path: Path = PRICES_FILE) -> dict[str, Any]:
    prices: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return prices


# --- DynamoDB item size ----------------------------------------------------------------------
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
def _number_size(text: str) -> int:
    """About 1 byte per two significant digits, plus 1 (plus 1 for a negative number)."""
    value = Decimal(text)
    digits = value.as_tuple().digits
    significant = "".join(str(d) for d in digits).strip("0") or "0"
    return math.ceil(len(significant) / 2) + 1 + (1 if value < 0 else 0)


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one typed attribute value ({"S": ...}, {"N": ...}, {"M": {...}}, ...)."""
    [(kind, inner)] = value.items()
    scalar = {
        "S": lambda v: len(v.encode("utf-8")),
        "N": _number_size,
        "B": len,
        "BOOL": lambda _v: 1,
        "NULL": lambda _v: 1,
    }
    sets = {"SS": scalar["S"], "NS": _number_size, "BS": len}
    if kind in scalar:
        return int(scalar[kind](inner))
    if kind in sets:
        return sum(int(sets[kind](v)) for v in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes of a typed item as DynamoDB sizes it: attribute names plus values."""
    return sum(len(name.encode("utf-8")) + value_size(v) for name, v in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_units(size: int) -> int:
    """Strongly consistent read (the archiver's reads are)."""
    return max(1, math.ceil(size / (4 * KB)))


def billed_gb_seconds(duration_ms: float, memory_mb: int) -> float:
    """Lambda rounds each duration up to the millisecond."""
    return math.ceil(duration_ms) / 1000 * memory_mb / 1024


# --- one session -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FunctionRun:
    """One measured invocation of a function: its calls, duration, init and log output."""

    calls: list[dict[str, Any]]
    duration_ms: float
    init_ms: float
    memory_mb: int
    log_bytes: int


@dataclass(frozen=True)
class SessionMeasurements:
    callbacks: list[FunctionRun]  # one per callback of the session
    archive: FunctionRun  # one recording archived
    archived_item: Mapping[str, Mapping[str, Any]]  # the Completed event's item once ARCHIVED
    gsi_all_attribute: str = "ArchiveQueue"  # the ALL-projected index's key (pending items)
    keys_only_attribute: str = "RecordingUUID"


def _per_call_counts(run: FunctionRun) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """(per invocation, per environment) counts of (service, operation)."""
    every: Counter[tuple[str, str]] = Counter()
    once: Counter[tuple[str, str]] = Counter()
    for call in run.calls:
        key = (call["service"], call["operation"])
        (once if key in ONCE_PER_ENVIRONMENT else every)[key] += 1
    return every, once


def _dynamodb_units(
    run: FunctionRun, m: SessionMeasurements, *, update_size: int
) -> tuple[float, float]:
    """(write units, read units) of one invocation's DynamoDB calls."""
    writes = 0.0
    reads = 0.0
    for call in run.calls:
        if call["service"] != "dynamodb":
            continue
        op = call["operation"]
        if op == "PutItem":
            item = call.get("item") or {}
            units = write_units(item_size(item))
            writes += units
            if m.gsi_all_attribute in item:
                writes += units  # the ALL-projected index gets the same item
            if m.keys_only_attribute in item:
                writes += 1
        elif op == "BatchWriteItem":
            # The session index's entries (IndexTable: no secondary index); each item is billed
            # as a PutItem of its size, each delete as 1 unit (entries are under 1 KB).
            writes += sum(write_units(item_size(i)) for i in call.get("items") or [])
            writes += int(call.get("deletes") or 0)
        elif op in DYNAMODB_WRITES:
            # Updates of the archived item; each also rewrites (or, the last, deletes) its entry
            # in the ALL-projected index while it is pending.
            writes += 2 * write_units(update_size)
        elif op in DYNAMODB_READS:
            reads += read_units(update_size)
    return writes, reads


def session_cost(m: SessionMeasurements, prices: Mapping[str, Any]) -> dict[str, float]:
    """USD of one session, by part (keys: the parts, and "total")."""
    a = prices["assumptions"]
    cold = float(a["cold_start_fraction"])
    platform_log = int(a["lambda_log_platform_bytes"])
    per_batch = int(a["records_per_archive_invocation"])
    update_size = item_size(m.archived_item)
    runs = [*m.callbacks, m.archive]
    invocations = [1.0] * len(m.callbacks) + [1.0 / per_batch]

    parts: Counter[str] = Counter()
    parts["api_gateway_requests"] = (
        len(m.callbacks) * prices["apigateway_http_request_per_million"] / 1e6
    )
    for run, times in zip(runs, invocations, strict=True):
        parts["lambda_requests"] += times * prices["lambda_request_per_million"] / 1e6
        gb_s = billed_gb_seconds(run.duration_ms, run.memory_mb)
        gb_s += cold * billed_gb_seconds(run.init_ms, run.memory_mb)
        parts["lambda_gb_seconds"] += times * gb_s * prices["lambda_gb_second_arm64"]
        every, once = _per_call_counts(run)
        writes, reads = _dynamodb_units(run, m, update_size=update_size)
        parts["dynamodb_write_units"] += (
            writes * prices["dynamodb_on_demand_write_unit_per_million"] / 1e6
        )
        parts["dynamodb_read_units"] += (
            reads * prices["dynamodb_on_demand_read_unit_per_million"] / 1e6
        )
        for (service, op), n in every.items():
            if service == "s3" and op not in S3_FREE:
                per_k = prices[
                    "s3_put_class_per_thousand"
                    if op in S3_PUT_CLASS
                    else "s3_get_class_per_thousand"
                ]
                parts["s3_requests"] += n * per_k / 1000
            elif service == "kms":
                parts["kms_requests"] += n * prices["kms_request_per_10k"] / 10_000
            elif service == "eventbridge" and op == "PutEvents":
                parts["eventbridge_events"] += (
                    n * prices["eventbridge_custom_event_per_million"] / 1e6
                )
            elif service == "secrets-manager":
                parts["secrets_manager_calls"] += (
                    n * prices["secretsmanager_api_call_per_10k"] / 10_000
                )
        for (service, _op), n in once.items():
            if service == "secrets-manager":
                parts["secrets_manager_calls"] += (
                    cold * n * prices["secretsmanager_api_call_per_10k"] / 10_000
                )
                # Secrets Manager decrypts the secret with the stack's key: one KMS Decrypt.
                parts["kms_requests"] += cold * n * prices["kms_request_per_10k"] / 10_000
        parts["cloudwatch_logs"] += (
            times * (run.log_bytes + platform_log) / GB * prices["cloudwatch_logs_ingest_gb"]
        )
    result = {k: float(v) for k, v in parts.items()}
    result["total"] = sum(result.values())
    return result


def per_sessions(cost: Mapping[str, float], sessions: int = SESSIONS) -> dict[str, float]:
    """The per-session parts for `sessions` sessions, rounded to 1/10,000 of a dollar."""
    return {k: round(v * sessions, 4) for k, v in cost.items()}


def storage_per_month(
    prices: Mapping[str, Any], *, recording_bytes: int, item_bytes: Iterable[int]
) -> dict[str, float]:
    """USD per month of what one session leaves stored (the recording and its event items), in
    each S3 class it passes through, beside Plivo's own recording storage price (prices.json)."""
    gb = recording_bytes / GB
    items_gb = sum(item_bytes) / GB
    minutes = float(prices["assumptions"]["recording_minutes"])
    return {
        "s3_standard": gb * prices["s3_standard_gb_month"],
        "s3_standard_ia": gb * prices["s3_standard_ia_gb_month"],
        "s3_glacier_ir": gb * prices["s3_glacier_ir_gb_month"],
        "dynamodb_items_with_pitr": items_gb
        * (prices["dynamodb_storage_gb_month"] + prices["dynamodb_pitr_gb_month"]),
        "plivo_recording_storage": minutes * prices["plivo"]["recording_storage_per_minute_month"],
    }


def snapstart_per_month(
    prices: Mapping[str, Any], *, memory_mb: int, restores: int, seconds: float = 30 * 86_400
) -> dict[str, float]:
    """USD a month of SnapStart on one function version: its snapshot cache for `seconds`, and
    `restores` restores (one per new execution environment), each of `memory_mb`."""
    gb = memory_mb / 1024
    return {
        "cache": gb * seconds * prices["snapstart_cache_gb_second"],
        "restores": restores * gb * prices["snapstart_restore_gb"],
    }
