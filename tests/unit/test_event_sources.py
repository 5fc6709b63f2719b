"""The event source mapping emulation: stream retry/filter rules, record shapes, template reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from recording_archive_cli.local.event_sources import (
    StreamMapping,
    lambda_sqs_record,
    lambda_stream_record,
    on_failure_message,
    process_stream_records,
    scheduled_event,
    sqs_batch_size,
    stream_mapping,
)
from recording_archive_cli.local.filters import stream_filter_patterns
from recording_archive_cli.local.functions import function_setting
from recording_archive_cli.local.lambda_worker import FunctionError, FunctionTimeoutError
from recording_archive_cli.local.template import TemplateError, load_template

COMPLETED_FILTER = {
    "eventName": ["INSERT"],
    "dynamodb": {"NewImage": {"EventName": {"S": ["SessionRecordingCompleted"]}}},
}


def record(
    seq: int,
    *,
    event_name: str = "INSERT",
    callback: str = "SessionRecordingCompleted",
    created: int = 1_800_000_000,
) -> dict[str, Any]:
    return {
        "eventID": f"id-{seq}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"SessionUUID": {"S": "s"}, "SequenceNumber": {"N": str(seq)}},
            "NewImage": {"EventName": {"S": callback}, "SequenceNumber": {"N": str(seq)}},
            "SequenceNumber": f"{seq:021d}",
            "ApproximateCreationDateTime": created,
            "SizeBytes": 10,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
    }


def seqs(records: list[dict[str, Any]]) -> list[int]:
    return [int(r["dynamodb"]["Keys"]["SequenceNumber"]["N"]) for r in records]


class Recorder:
    """Plays scripted results, one per invocation, and records each batch it was given."""

    def __init__(self, *results: Any) -> None:
        self.results = list(results)
        self.batches: list[list[int]] = []
        self.given_up: list[tuple[list[int], str, int, str | None]] = []
        self.waits: list[float] = []

    def invoke(self, event: dict[str, Any]) -> Any:
        self.batches.append(seqs(event["Records"]))
        result = self.results.pop(0) if self.results else None
        if isinstance(result, Exception):
            raise result
        if callable(result):
            return result(event["Records"])
        return result

    def give_up(self, batch: list[dict[str, Any]], cond: str, n: int, err: str | None) -> None:
        self.given_up.append((seqs(batch), cond, n, err))

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False


def fail(*sequence_numbers: int) -> Any:
    def result(records: list[dict[str, Any]]) -> dict[str, Any]:
        ids = {f"{n:021d}" for n in sequence_numbers}
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
                for r in records
                if r["dynamodb"]["SequenceNumber"] in ids
            ]
        }

    return result


MAPPING = StreamMapping(
    batch_size=10,
    max_retry_attempts=3,
    bisect_on_error=True,
    report_batch_item_failures=True,
    filters=(COMPLETED_FILTER,),
)


def run(
    recorder: Recorder,
    records: list[dict[str, Any]],
    mapping: StreamMapping = MAPPING,
    **kwargs: Any,
) -> Any:
    return process_stream_records(
        records, mapping, recorder.invoke, recorder.give_up, wait=recorder.wait, **kwargs
    )


def test_filter_drops_modify_and_other_events_before_batching() -> None:
    rec = Recorder({"batchItemFailures": []})
    records = [
        record(1),
        record(2, callback="SessionRecordingInitiated"),
        record(3, event_name="MODIFY"),
        record(4),
    ]
    report = run(rec, records)
    assert rec.batches == [[1, 4]]
    assert report.filtered_out == 2
    assert seqs(report.delivered) == [1, 4]
    assert report.given_up == []


def test_no_filter_delivers_everything() -> None:
    rec = Recorder(None)
    report = run(rec, [record(1, event_name="MODIFY")], StreamMapping(batch_size=5))
    assert rec.batches == [[1]]
    assert report.filtered_out == 0


def test_batches_follow_batch_size() -> None:
    rec = Recorder(None, None, None)
    run(rec, [record(n) for n in range(1, 8)], StreamMapping(batch_size=3))
    assert rec.batches == [[1, 2, 3], [4, 5, 6], [7]]


def test_partial_failure_retries_from_first_failed_record() -> None:
    rec = Recorder(fail(3, 5), fail(5), None)
    report = run(rec, [record(n) for n in range(1, 7)])
    # 1-2 are checkpointed; the retry starts at 3 (the lowest failed), then at 5.
    assert rec.batches == [[1, 2, 3, 4, 5, 6], [3, 4, 5, 6], [5, 6]]
    assert seqs(report.delivered) == [1, 2, 3, 4, 5, 6]
    assert rec.waits == [0.5, 1.0]


def test_retries_exhausted_sends_the_rest_to_on_failure() -> None:
    rec = Recorder(fail(2), fail(2), fail(2), fail(2))
    report = run(rec, [record(1), record(2), record(3)])
    assert rec.batches == [[1, 2, 3], [2, 3], [2, 3], [2, 3]]  # 1 try + 3 retries
    assert rec.given_up == [([2, 3], "RetryAttemptsExhausted", 4, None)]
    assert seqs(report.delivered) == [1]
    assert seqs(report.given_up) == [2, 3]


def test_unknown_item_identifier_fails_the_whole_batch() -> None:
    rec = Recorder({"batchItemFailures": [{"itemIdentifier": "nope"}]}, None)
    run(rec, [record(1), record(2)])
    assert rec.batches == [[1, 2], [1, 2]]


def test_empty_item_identifier_fails_the_whole_batch() -> None:
    rec = Recorder({"batchItemFailures": [{"itemIdentifier": ""}]}, None)
    run(rec, [record(1), record(2)])
    assert rec.batches == [[1, 2], [1, 2]]


def test_failures_ignored_without_report_batch_item_failures() -> None:
    mapping = StreamMapping(batch_size=10, max_retry_attempts=3)
    rec = Recorder(fail(1))
    report = run(rec, [record(1), record(2)], mapping)
    assert rec.batches == [[1, 2]]
    assert seqs(report.delivered) == [1, 2]


def test_function_error_bisects_then_retries_single_record() -> None:
    boom = FunctionError("RuntimeError", "boom", [])
    # [1..4] errors -> [1,2] ok, [3,4] errors -> [3] ok, [4] errors, retried, ok.
    rec = Recorder(boom, None, boom, None, boom, None)
    report = run(rec, [record(n) for n in range(1, 5)])
    assert rec.batches == [[1, 2, 3, 4], [1, 2], [3, 4], [3], [4], [4]]
    assert seqs(report.delivered) == [1, 2, 3, 4]


def test_function_error_without_bisect_retries_whole_batch_then_gives_up() -> None:
    mapping = StreamMapping(batch_size=10, max_retry_attempts=1, report_batch_item_failures=True)
    timeout = FunctionTimeoutError("timed out")
    rec = Recorder(timeout, timeout)
    report = run(rec, [record(1), record(2)], mapping)
    assert rec.batches == [[1, 2], [1, 2]]
    assert rec.given_up == [([1, 2], "RetryAttemptsExhausted", 2, "Unhandled")]
    assert report.delivered == []


def test_record_older_than_maximum_age_is_given_up_without_invoking() -> None:
    mapping = StreamMapping(batch_size=10, max_record_age_seconds=60)
    rec = Recorder()
    report = run(rec, [record(1, created=1000)], mapping, clock=lambda: 1061.0)
    assert rec.batches == []
    assert rec.given_up == [([1], "RecordAgeExceeded", 0, None)]
    assert seqs(report.given_up) == [1]


def test_stop_during_retry_wait_returns_at_once() -> None:
    rec = Recorder(fail(1))
    report = process_stream_records(
        [record(1)], MAPPING, rec.invoke, rec.give_up, wait=lambda _s: True
    )
    assert report.stopped is True
    assert rec.batches == [[1]]
    assert rec.given_up == []


def test_retry_waits_grow_and_are_capped() -> None:
    mapping = StreamMapping(batch_size=1, max_retry_attempts=-1, report_batch_item_failures=True)
    rec = Recorder(*([fail(1)] * 7), None)
    run(rec, [record(1)], mapping)
    assert rec.waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


# --- shapes ---------------------------------------------------------------------------------


def test_lambda_stream_record_shape() -> None:
    from datetime import UTC, datetime

    raw = {
        "eventID": "e1",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 11, 26, tzinfo=UTC),
            "Keys": {"SessionUUID": {"S": "s"}},
            "NewImage": {"SessionUUID": {"S": "s"}},
            "SequenceNumber": "100",
            "SizeBytes": 5,
            "StreamViewType": "NEW_IMAGE",
        },
    }
    out = lambda_stream_record(raw, region="us-east-1", stream_arn="arn:stream")
    assert out["eventSource"] == "aws:dynamodb"
    assert out["eventSourceARN"] == "arn:stream"
    assert out["dynamodb"]["ApproximateCreationDateTime"] == 1_795_651_200
    assert out["dynamodb"]["Keys"] == {"SessionUUID": {"S": "s"}}
    assert json.dumps(out)  # JSON-serialisable, as it crosses the worker pipe


def test_lambda_sqs_record_shape() -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "rh",
        "Body": "{}",
        "MD5OfBody": "x",
        "Attributes": {"ApproximateReceiveCount": "1"},
        "MessageAttributes": {"a": {"StringValue": "v", "DataType": "String"}},
    }
    out = lambda_sqs_record(message, queue_arn="arn:q", region="us-east-1")
    assert out["messageId"] == "m1"
    assert out["receiptHandle"] == "rh"
    assert out["eventSource"] == "aws:sqs"
    assert out["eventSourceARN"] == "arn:q"
    assert out["messageAttributes"]["a"]["stringValue"] == "v"
    assert out["messageAttributes"]["a"]["dataType"] == "String"


def test_on_failure_message_describes_the_batch() -> None:
    msg = on_failure_message(
        [record(2), record(3)],
        condition="RetryAttemptsExhausted",
        invoke_count=4,
        function_arn="arn:fn",
        stream_arn="arn:stream",
        shard_id="shard-1",
        function_error=None,
    )
    info = msg["DDBStreamBatchInfo"]
    assert info["startSequenceNumber"] == f"{2:021d}"
    assert info["endSequenceNumber"] == f"{3:021d}"
    assert info["batchSize"] == 2
    assert info["shardId"] == "shard-1"
    assert msg["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert msg["requestContext"]["approximateInvokeCount"] == 4
    assert "functionError" not in msg["responseContext"]


def test_scheduled_event_shape() -> None:
    event = scheduled_event(account_id="123456789012", region="us-east-1", rule_arn="arn:rule")
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == ["arn:rule"]


# --- the template's settings ----------------------------------------------------------------


def test_stream_mapping_is_read_from_the_template() -> None:
    template = load_template()
    mapping = stream_mapping(template, "ArchiveFunction", stream_filter_patterns())
    assert mapping.batch_size == 10
    assert mapping.max_retry_attempts == 3
    assert mapping.bisect_on_error is True
    assert mapping.report_batch_item_failures is True
    assert mapping.starting_position == "TRIM_HORIZON"
    assert mapping.filters == (COMPLETED_FILTER,)
    assert sqs_batch_size(template, "FallbackDrainFunction") == 10
    assert function_setting(template, "CallbackFunction", "Timeout", 3) == 20
    assert function_setting(template, "FallbackDrainFunction", "Timeout", 3) == 30  # Globals


def test_template_errors_are_cli_errors() -> None:
    template = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Timeout": {"Ref": "T"},
                    "Events": {"S": {"Type": "DynamoDB", "Properties": {"StartingPosition": "AT"}}},
                },
            }
        }
    }
    with pytest.raises(TemplateError, match="Timeout must be a plain number"):
        function_setting(template, "Fn", "Timeout", 3)
    with pytest.raises(TemplateError, match="StartingPosition"):
        stream_mapping(template, "Fn", [])
    with pytest.raises(TemplateError, match="exactly one SQS event"):
        sqs_batch_size(template, "Fn")
    with pytest.raises(TemplateError, match="no such AWS::Serverless::Function"):
        function_setting(template, "Missing", "Timeout", 3)
