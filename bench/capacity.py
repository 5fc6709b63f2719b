"""The README's capacity table (section "Capacity"), computed from the measured figures.

Inputs: bench/throughput.json (the local archive time per recording, from
`archive_recordings_per_second_pf1`: one recording at a time), bench/results.json (the cost
model's USD per 10,000 sessions and its parts, bench/cost.py), bench/prices.json (through
bench/cost.py's `load_prices`). Assumptions are the constants below, each stated in the README.

    .venv/bin/python bench/capacity.py [THROUGHPUT_JSON]    # prints the Markdown table
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from bench.cost import load_prices  # noqa: E402 - after the path set-up

SESSIONS_A_DAY = (10_000, 100_000, 1_000_000, 10_000_000)
PEAK_TO_AVERAGE = 3.0  # busy hours: a day's traffic is not flat (an assumption)
NEW_TABLE_SHARDS = 4  # a new on-demand table: ~4 partitions (4,000 WRU at once), one shard each
PLANNING_ARCHIVE_SECONDS = 2.0  # a 5 MiB recording fetched from Plivo over the internet (issue 18)
STREAM_RECORDS_PER_SESSION = 4  # 2 callback INSERTs + the archive's claim and ARCHIVED MODIFYs
S3_PUTS_PER_SESSION = 1  # a 5 MiB recording is one PutObject (PART_SIZE_MIB 10)
MAX_PARALLELIZATION_FACTOR = 10
LAMBDA_CONCURRENCY_QUOTA = 1_000
WORK_QUEUE_CONCURRENCY = 10  # template default ArchiveWorkConcurrency
NEW_TABLE_WRU = 4_000
TABLE_WRU_QUOTA = 40_000
S3_PUT_PER_PREFIX = 3_500
MONTH_DAYS = 30
# S3 lifecycle (template defaults): Standard 30 days, Standard-IA until 180, then Glacier IR.
MONTHS_STANDARD, MONTHS_IA = 1, 5


def inputs(throughput_file: Path = ROOT / "bench" / "throughput.json") -> dict[str, Any]:
    prices = load_prices()
    results = json.loads((ROOT / "bench" / "results.json").read_text(encoding="utf-8"))
    throughput = json.loads(throughput_file.read_text(encoding="utf-8"))
    per_session = results["cost_usd_per_10k_sessions"] / 10_000
    wru = (
        results["cost_usd_per_10k_sessions_parts"]["dynamodb_write_units"]
        / 10_000
        / (prices["dynamodb_on_demand_write_unit_per_million"] / 1e6)
    )
    storage = results["storage_usd_per_month_per_10k_sessions"]
    return {
        "measured_seconds": 1 / throughput["archive_recordings_per_second_pf1"],
        "default_pf": throughput["archive_parallelization_factor"],
        "per_session_usd": per_session,
        "wru_per_session": wru,
        # USD a month of one day's sessions, in each storage class.
        "standard_day": storage["s3_standard"] / 10_000,
        "ia_day": storage["s3_standard_ia"] / 10_000,
        "glacier_day": storage["s3_glacier_ir"] / 10_000,
        "items_day": storage["dynamodb_items_with_pitr"] / 10_000,
    }


def row(sessions: int, i: dict[str, Any]) -> dict[str, Any]:
    average = sessions / 86_400
    peak = average * PEAK_TO_AVERAGE
    busy_planned = peak * PLANNING_ARCHIVE_SECONDS
    busy_measured = peak * i["measured_seconds"]
    pf_needed = max(1, math.ceil(busy_planned / NEW_TABLE_SHARDS))
    shards_at_max_pf = math.ceil(busy_planned / MAX_PARALLELIZATION_FACTOR)
    month = sessions * MONTH_DAYS
    # After 12 months of archiving: 1 month in Standard, 5 in IA, 6 in Glacier IR, 12 of items.
    days = MONTH_DAYS
    storage_12 = (
        sessions
        * days
        * (
            MONTHS_STANDARD * i["standard_day"]
            + MONTHS_IA * i["ia_day"]
            + (12 - MONTHS_STANDARD - MONTHS_IA) * i["glacier_day"]
            + 12 * i["items_day"]
        )
    )
    return {
        "sessions": sessions,
        "average_per_s": average,
        "peak_per_s": peak,
        "concurrency_measured": busy_measured,
        "concurrency_planned": busy_planned,
        "pf_needed_4_shards": pf_needed,
        "shards_at_pf10": shards_at_max_pf,
        "stream_records_per_s": peak * STREAM_RECORDS_PER_SESSION,
        "wru_per_s": peak * i["wru_per_session"],
        "s3_put_per_s": peak * S3_PUTS_PER_SESSION,
        "usd_month_flow": month * i["per_session_usd"],
        "usd_month_storage_12": storage_12,
    }


def limit(r: dict[str, Any]) -> str:
    """What bounds the row, and where it stops working."""
    notes = []
    if r["pf_needed_4_shards"] > MAX_PARALLELIZATION_FACTOR:
        notes.append(
            f"stream: past PF 10 on 4 shards (needs {r['shards_at_pf10']} shards at PF 10): "
            "it lags at peak, and what is PENDING past SweepGraceSeconds goes through the "
            "sweeper's work queue"
        )
    total = r["concurrency_planned"] + WORK_QUEUE_CONCURRENCY
    if total > LAMBDA_CONCURRENCY_QUOTA:
        notes.append(f"Lambda: {total:.0f} > 1,000 concurrency quota: raise it")
    if r["wru_per_s"] > NEW_TABLE_WRU:
        notes.append(
            f"DynamoDB: {r['wru_per_s']:,.0f} WRU/s > 4,000 a new on-demand table takes at "
            "once: warm throughput first"
        )
    if r["s3_put_per_s"] > S3_PUT_PER_PREFIX:
        notes.append("S3: over 3,500 PUT/s per prefix")
    return "; ".join(notes) or "nothing near a limit"


def table(throughput_file: Path = ROOT / "bench" / "throughput.json") -> str:
    i = inputs(throughput_file)
    lines = [
        "| sessions a day | recordings/s (avg / peak) | Lambda concurrency at peak "
        f"(measured {i['measured_seconds']:.2f} s / planned {PLANNING_ARCHIVE_SECONDS:.0f} s "
        "per recording) | ParallelizationFactor needed on 4 shards (planned) | stream "
        "records/s | table WRU/s | S3 PUT/s | USD a month (requests + 12th month's storage) "
        "| where it stops |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for sessions in SESSIONS_A_DAY:
        r = row(sessions, i)
        lines.append(
            f"| {sessions:,} | {r['average_per_s']:.2f} / {r['peak_per_s']:.2f} | "
            f"{r['concurrency_measured']:.2f} / {r['concurrency_planned']:.0f} | "
            f"{r['pf_needed_4_shards']} | {r['stream_records_per_s']:.0f} | "
            f"{r['wru_per_s']:,.0f} | "
            f"{r['s3_put_per_s']:.1f} | {r['usd_month_flow']:,.0f} + "
            f"{r['usd_month_storage_12']:,.0f} | {limit(r)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(*(Path(a) for a in sys.argv[1:2])))
