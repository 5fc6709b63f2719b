"""A backlog of pending recordings larger than the old sweep batch (50), drained through the
sweeper's work queue on `recording-archive local`, with the lag metrics in the functions' EMF.

The stack runs from a copy of template.yaml whose stream filter passes nothing (the stream
archiver never sees a recording: every Completed callback stays PENDING, as when the stream falls
behind). The callbacks go through the real API; the test then makes all of them due at one
instant, so a single sweep finds the whole backlog, enqueues every key on ArchiveWorkQueue, and
ArchiveWorkFunction (the local SQS event source) archives them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from recording_archive_cli.local.template import load_template
from tests.support.emf import emf_values
from tests.support.local_stack import (
    LocalStackProcess,
    bucket_name,
    ddb,
    post_completed,
    start_local,
    stop_tree,
    table_name,
)
from tests.support.media_server import MediaServer, wav_body
from tests.support.net import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BACKLOG = 60  # more than the old sweep's fixed batch of 50
GRACE = 30  # seconds: the test, not the clock, decides when the backlog becomes due


@pytest.fixture(scope="module")
def no_stream_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """template.yaml with ArchiveFunction's stream filter matching no event (JSON is YAML)."""
    template = load_template()
    event = template["Resources"]["ArchiveFunction"]["Properties"]["Events"]
    (mapping,) = event.values()
    mapping["Properties"]["FilterCriteria"] = {
        "Filters": [{"Pattern": json.dumps({"eventName": ["NoSuchEvent"]})}]
    }
    path = tmp_path_factory.mktemp("template") / "template.yaml"
    path.write_text(json.dumps(template), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stack(no_stream_template: Path) -> Iterator[LocalStackProcess]:
    args = ["--no-demo", "--verbose", "--template", str(no_stream_template)]
    args += ["--sweep-interval", "2"]
    for fn in ("SweeperFunction", "ArchiveWorkFunction"):
        args += ["--env", f"{fn}:SWEEP_GRACE_SECONDS={GRACE}"]
    args += ["--env", "ArchiveWorkFunction:MEDIA_RETRY_BUDGET_SECONDS=1"]
    running = start_local(*args)
    yield running
    stop_tree(running)


def _status(stack: LocalStackProcess, key: tuple[str, str]) -> str:
    item = (
        ddb(stack)
        .get_item(
            TableName=table_name(stack),
            Key={"SessionUUID": {"S": key[0]}, "SequenceNumber": {"N": key[1]}},
            ConsistentRead=True,
        )
        .get("Item", {})
    )
    return str(item.get("ArchiveStatus", {}).get("S", ""))


def _metric(stack: LocalStackProcess, name: str) -> list[float]:
    return emf_values("\n".join(stack.stderr), name)


def test_a_backlog_larger_than_one_old_sweep_drains_through_the_work_queue(
    stack: LocalStackProcess, media: MediaServer
) -> None:
    audio = wav_body(0.1)
    first_received = time.time()
    keys: list[tuple[str, str]] = []
    for _ in range(BACKLOG):
        session, _recording = post_completed(
            stack, media, audio, fmt=".wav", content_type="audio/wav"
        )
        keys.append((session, "2"))
    # Every one PENDING: the stream archives nothing, and no sweep found them due yet.
    assert {_status(stack, k) for k in keys} == {"PENDING"}
    assert media.requests == []
    # All due at one instant, a few seconds from now: one sweep sees the whole backlog.
    due_at = int(time.time()) - GRACE + 4
    client = ddb(stack)
    for session, seq in keys:
        client.update_item(
            TableName=table_name(stack),
            Key={"SessionUUID": {"S": session}, "SequenceNumber": {"N": seq}},
            UpdateExpression="SET ArchiveDueAt = :d",
            ExpressionAttributeValues={":d": {"N": str(due_at)}},
        )
    drained = wait_until(
        lambda: all(_status(stack, k) == "ARCHIVED" for k in keys), 120, interval=1.0
    )
    assert drained, stack.output() + "\n".join(stack.stderr[-50:])
    # One sweep enqueued the whole backlog, each key once, through the work queue.
    enqueued = _metric(stack, "RecordingsEnqueued")
    assert max(enqueued) == BACKLOG, enqueued
    assert sum(enqueued) == BACKLOG, enqueued
    assert sum(_metric(stack, "ArchiveWorkSendFailed")) == 0
    s3 = boto3.client("s3", endpoint_url=stack.endpoint, region_name="us-east-1")
    assert s3.list_objects_v2(Bucket=bucket_name(stack))["KeyCount"] == BACKLOG
    # The lag metrics in the functions' EMF output: one ArchiveLagSeconds per recording (from
    # its receipt, so at least the time it waited), and the sweeper's OldestPendingAgeSeconds,
    # which saw the backlog and then nothing pending.
    lags = _metric(stack, "ArchiveLagSeconds")
    assert len(lags) == BACKLOG, lags
    assert all(0 < lag < 300 for lag in lags), lags
    ages = _metric(stack, "OldestPendingAgeSeconds")
    # The sweep that found the backlog ran once it was due, so at least this long after the
    # first callback was received.
    assert max(ages) >= due_at + GRACE - first_received - 1, ages
    assert wait_until(lambda: _metric(stack, "OldestPendingAgeSeconds")[-1] == 0.0, 10, 0.5)
