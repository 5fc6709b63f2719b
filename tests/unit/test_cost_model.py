"""bench/cost.py: DynamoDB item sizes and the price of a session, against hand arithmetic."""

from __future__ import annotations

from typing import Any

import pytest

from bench.cost import (
    FunctionRun,
    SessionMeasurements,
    billed_gb_seconds,
    item_size,
    load_prices,
    per_sessions,
    read_units,
    session_cost,
    snapstart_per_month,
    storage_per_month,
    value_size,
    write_units,
)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({"S": "abc"}, 3),
        ({"S": "ü"}, 2),  # UTF-8 bytes
        ({"N": "123"}, 3),  # ceil(3 / 2) + 1
        ({"N": "1000"}, 2),  # trailing zeros are not significant
        ({"N": "-12.50"}, 4),  # 125: 2 + 1, negative + 1
        ({"B": b"\x00\x01"}, 2),
        ({"BOOL": True}, 1),
        ({"NULL": True}, 1),
        ({"SS": ["a", "bc"]}, 3),
        ({"L": [{"S": "a"}, {"N": "1"}]}, 8),  # 3 + (1 + 1) + (1 + 2)
        ({"M": {"a": {"S": "xy"}}}, 7),  # 3 + (1 + len("a") + 2)
    ],
)
def test_value_sizes_follow_dynamodb_rules(value: dict[str, Any], size: int) -> None:
    assert value_size(value) == size


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown DynamoDB type 'X'"):
        value_size({"X": "1"})


def test_item_size_counts_attribute_names() -> None:
    assert item_size({"SessionUUID": {"S": "abc"}, "N": {"N": "7"}}) == 11 + 3 + 1 + 2


@pytest.mark.parametrize(("size", "units"), [(0, 1), (1024, 1), (1025, 2), (4096, 4)])
def test_write_units(size: int, units: int) -> None:
    assert write_units(size) == units


@pytest.mark.parametrize(("size", "units"), [(1, 1), (4096, 1), (4097, 2)])
def test_read_units(size: int, units: int) -> None:
    assert read_units(size) == units


def test_gb_seconds_round_the_duration_up_to_the_millisecond() -> None:
    assert billed_gb_seconds(10.2, 512) == pytest.approx(0.011 * 0.5)


PRICES: dict[str, Any] = {
    "apigateway_http_request_per_million": 1.0,
    "lambda_request_per_million": 0.2,
    "lambda_gb_second_arm64": 0.00001,
    "dynamodb_on_demand_write_unit_per_million": 1.0,
    "dynamodb_on_demand_read_unit_per_million": 0.5,
    "s3_put_class_per_thousand": 0.005,
    "s3_get_class_per_thousand": 0.0004,
    "kms_request_per_10k": 0.03,
    "secretsmanager_api_call_per_10k": 0.05,
    "eventbridge_custom_event_per_million": 1.0,
    "cloudwatch_logs_ingest_gb": 0.5,
    "s3_standard_gb_month": 0.023,
    "s3_standard_ia_gb_month": 0.0125,
    "s3_glacier_ir_gb_month": 0.004,
    "dynamodb_storage_gb_month": 0.25,
    "dynamodb_pitr_gb_month": 0.2,
    "assumptions": {
        "cold_start_fraction": 0.1,
        "lambda_log_platform_bytes": 350,
        "records_per_archive_invocation": 1,
        "recording_minutes": 5,
    },
    "plivo": {"recording_storage_per_minute_month": 0.0004},
}
# 1,500 bytes: ArchiveQueue (12 + 7) + RecordingUUID (13 + 1) + x (1 + 1,466).
COMPLETED_ITEM = {
    "ArchiveQueue": {"S": "PENDING"},
    "RecordingUUID": {"S": "r"},
    "x": {"S": "y" * 1466},
}
ARCHIVED_ITEM = {"k": {"S": "x" * 1999}}  # 2,000 bytes: 2 write units


def _callback() -> FunctionRun:
    return FunctionRun(
        calls=[
            {"service": "secrets-manager", "operation": "GetSecretValue"},
            {"service": "dynamodb", "operation": "PutItem", "item": COMPLETED_ITEM},
            # the session index: 2 entries of 1 unit and one of 2 (1,025 bytes)
            {
                "service": "dynamodb",
                "operation": "BatchWriteItem",
                "items": [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}, {"p": {"S": "x" * 1024}}],
                "deletes": 0,
            },
            *[{"service": "kms", "operation": "GenerateMac"}] * 3,
        ],
        duration_ms=20,
        init_ms=400,
        memory_mb=256,
        log_bytes=650,
    )


def _archive() -> FunctionRun:
    ops = [
        ("dynamodb", "UpdateItem"),
        ("dynamodb", "UpdateItem"),
        ("dynamodb", "GetItem"),
        ("s3", "PutObject"),
        ("s3", "PutObjectTagging"),
        ("s3", "HeadObject"),
        ("s3", "AbortMultipartUpload"),
        ("eventbridge", "PutEvents"),
    ]
    return FunctionRun(
        calls=[{"service": s, "operation": o} for s, o in ops],
        duration_ms=1000,
        init_ms=600,
        memory_mb=256,
        log_bytes=650,
    )


def test_one_session_by_hand() -> None:
    assert item_size(COMPLETED_ITEM) == 1500 and item_size(ARCHIVED_ITEM) == 2000
    cost = session_cost(
        SessionMeasurements(
            callbacks=[_callback()], archive=_archive(), archived_item=ARCHIVED_ITEM
        ),
        PRICES,
    )
    expected = {
        "api_gateway_requests": 1e-6,
        "lambda_requests": 2 * 0.2e-6,
        # callback 0.02 s x 0.25 GB + 10 % x 0.4 s x 0.25 GB = 0.015 GB-s;
        # archive 1 s x 0.25 GB + 10 % x 0.6 s x 0.25 GB = 0.265 GB-s
        "lambda_gb_seconds": 0.28 * 0.00001,
        # put 2 + index ALL 2 + KEYS_ONLY 1 + session index 4; two updates x (2 + index 2)
        "dynamodb_write_units": 17 * 1e-6,
        "dynamodb_read_units": 1 * 0.5e-6,
        # 2 PUT class, 1 GET class, abort free
        "s3_requests": 2 * 0.005 / 1000 + 0.0004 / 1000,
        # 3 GenerateMac; 10 % x the secret's Decrypt
        "kms_requests": 3 * 3e-6 + 0.1 * 3e-6,
        "secrets_manager_calls": 0.1 * 5e-6,
        "eventbridge_events": 1e-6,
        "cloudwatch_logs": 2 * 1000 / 1024**3 * 0.5,
    }
    assert cost.keys() == expected.keys() | {"total"}
    for key, value in expected.items():
        assert cost[key] == pytest.approx(value), key
    assert cost["total"] == pytest.approx(43.8313225746e-6)
    assert per_sessions(cost)["total"] == pytest.approx(0.4383)


def test_a_second_callback_adds_its_own_parts_only() -> None:
    one = session_cost(
        SessionMeasurements(
            callbacks=[_callback()], archive=_archive(), archived_item=ARCHIVED_ITEM
        ),
        PRICES,
    )
    two = session_cost(
        SessionMeasurements(
            callbacks=[_callback(), _callback()], archive=_archive(), archived_item=ARCHIVED_ITEM
        ),
        PRICES,
    )
    assert two["api_gateway_requests"] == pytest.approx(2 * one["api_gateway_requests"])
    assert two["eventbridge_events"] == one["eventbridge_events"]
    assert two["dynamodb_write_units"] - one["dynamodb_write_units"] == pytest.approx(9e-6)


def test_batches_share_one_archive_invocation() -> None:
    prices = PRICES | {
        "assumptions": PRICES["assumptions"] | {"records_per_archive_invocation": 10}
    }
    m = SessionMeasurements(
        callbacks=[_callback()], archive=_archive(), archived_item=ARCHIVED_ITEM
    )
    assert session_cost(m, prices)["lambda_requests"] == pytest.approx(1.1 * 0.2e-6)


def test_storage_beside_plivo() -> None:
    got = storage_per_month(PRICES, recording_bytes=5 * 1024**2, item_bytes=[1024**2])
    assert got["s3_standard"] == pytest.approx(5 / 1024 * 0.023)
    assert got["s3_glacier_ir"] == pytest.approx(5 / 1024 * 0.004)
    assert got["dynamodb_items_with_pitr"] == pytest.approx(1 / 1024 * 0.45)
    assert got["plivo_recording_storage"] == pytest.approx(0.002)


def test_snapstart_month() -> None:
    prices = {"snapstart_cache_gb_second": 0.000001, "snapstart_restore_gb": 0.0001}
    got = snapstart_per_month(prices, memory_mb=512, restores=1000, seconds=1_000_000)
    assert got == {"cache": pytest.approx(0.5), "restores": pytest.approx(0.05)}


def test_the_committed_prices_have_a_date_and_every_price_used() -> None:
    prices = load_prices()
    assert prices["region"] == "us-east-1" and prices["as_of"]
    for key in [*PRICES, "snapstart_cache_gb_second", "snapstart_restore_gb"]:
        assert key in prices, key
    for key in PRICES["assumptions"]:
        assert key in prices["assumptions"], key
