"""The committed bench figures agree with each other (one `make bench` run writes both files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
ARCHIVE_KEYS = (
    "archive_peak_rss_mib_100mib",
    "archive_peak_rss_mib_1gib",
    "archive_time_ratio_1gib",
)


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BENCH / name).read_text(encoding="utf-8"))
    return data


def test_archive_figures_are_the_same_run() -> None:
    results, upload = _load("results.json"), _load("archive_upload.json")
    shared = [key for key in ARCHIVE_KEYS if key in results]
    assert shared, "results.json holds no archive figure"
    for key in shared:
        assert results[key] == upload[key], key
    # Medians of interleaved runs, each with its range.
    assert upload["interleaved"] is True and upload["runs"] >= 3
    for key in shared:
        low, high = upload[f"{key}_range"]
        assert low <= upload[key] <= high, key


def test_cost_is_the_sum_of_its_parts() -> None:
    results = _load("results.json")
    parts = results["cost_usd_per_10k_sessions_parts"]
    assert {"api_gateway_requests", "lambda_gb_seconds", "dynamodb_write_units"} <= parts.keys()
    # Each part is rounded to 1/10,000 of a dollar on its own.
    assert results["cost_usd_per_10k_sessions"] == pytest.approx(
        sum(parts.values()), abs=0.0001 * len(parts)
    )


def test_throughput_figures_are_those_of_the_last_throughput_run() -> None:
    """bench/throughput.json holds the last full throughput run (bench/throughput.py);
    results.json's copy of its figures (make bench, or `bench/run.py --only throughput`) agrees."""
    results, throughput = _load("results.json"), _load("throughput.json")
    keys = (
        "archive_recordings_per_second",
        "archive_recordings_per_second_pf1",
        "archive_parallelization_factor",
        "sweeper_drain_seconds_10k",
        "archive_recordings_per_second_slow_media",
        "archive_recordings_per_second_slow_media_pf1",
    )
    assert "archive_recordings_per_second" in results
    for key in keys:
        if key in results:
            assert results[key] == throughput[key], key
