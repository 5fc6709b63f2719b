"""Regression tests for what `make reliability` found (see reliability/ and the README)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from recording_archive.handlers import sweeper
from recording_archive_cli.local_resources import LocalResources
from tests.support.lambda_context import FakeLambdaContext


def test_sweeper_failing_an_unarchivable_item_emits_the_alarmed_metric(
    function_env: Any, resources: LocalResources, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Completed item that cannot be archived (no RecordingURL: e.g. written by a repair or a
    reconcile with partial data) used to become FAILED silently: no RecordingsFailed, so the
    RecordingsFailedAlarm never told anyone a recording will not be archived."""
    function_env("SweeperFunction", SWEEP_GRACE_SECONDS="0")
    session = str(uuid.uuid4())
    ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
    ddb.put_item(
        TableName=resources.table_name,
        Item={
            "SessionUUID": {"S": session},
            "SequenceNumber": {"N": "2"},
            "EventName": {"S": "SessionRecordingCompleted"},
            "RecordingUUID": {"S": "r1"},
            "ReceivedAt": {"S": "2026-11-20T10:25:40.000Z"},
            "ArchiveStatus": {"S": "PENDING"},
            "ArchiveQueue": {"S": "PENDING"},
            "ArchiveDueAt": {"N": "1"},
            "ArchiveAttempts": {"N": "0"},
        },
    )
    capsys.readouterr()
    assert sweeper.lambda_handler({}, FakeLambdaContext()) == {"failed": 1}  # type: ignore[arg-type]
    item = ddb.get_item(
        TableName=resources.table_name,
        Key={"SessionUUID": {"S": session}, "SequenceNumber": {"N": "2"}},
        ConsistentRead=True,
    )["Item"]
    assert item["ArchiveStatus"] == {"S": "FAILED"}
    out = capsys.readouterr().out.splitlines()
    metrics_out = [json.loads(line) for line in out if line.startswith('{"_aws"')]
    assert any(m.get("RecordingsFailed") in (1.0, [1.0]) for m in metrics_out), metrics_out
