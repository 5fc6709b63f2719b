"""The local emulation of ParallelizationFactor (stream) and MaximumConcurrency (SQS).

Real boto3 against moto over HTTP (the events table and its stream created from template.yaml),
real worker processes (`LambdaWorkerPool`) running a logging consumer
(`tests.support.worker_handlers.stream_batch` / `sqs_batch`). What Lambda documents, and these
tests hold the emulation to: up to ParallelizationFactor batches of one shard in flight at once,
records of one key processed in order, a failed batch retried without losing or reordering the
records of its keys (https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from recording_archive_cli.local.event_sources import (
    QueuePoller,
    StreamMapping,
    StreamPoller,
    partition_lanes,
    sqs_maximum_concurrency,
    stream_mapping,
)
from recording_archive_cli.local.filters import stream_filter_patterns
from recording_archive_cli.local.lambda_worker import LambdaWorker, LambdaWorkerPool
from recording_archive_cli.local.resources import LocalResources
from recording_archive_cli.local.template import TemplateError, load_template

HANDLERS = "tests.support.worker_handlers"
SESSIONS = 6
EVENTS_PER_SESSION = 5


def pool(handler: str, size: int, env: dict[str, str]) -> LambdaWorkerPool:
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.getcwd(), **env}

    def make(_index: int) -> LambdaWorker:
        return LambdaWorker(
            "TestFunction",
            f"{HANDLERS}.{handler}",
            base,
            timeout_seconds=20,
            function_name="local-TestFunction",
        )

    return LambdaWorkerPool(size, make)


def log_entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def max_overlap(entries: list[dict[str, Any]]) -> int:
    """The most invocations whose [start, end] intervals overlap at one instant."""
    edges = sorted(
        [(e["start"], 1) for e in entries] + [(e["end"], -1) for e in entries],
        key=lambda edge: (edge[0], edge[1]),
    )
    running = best = 0
    for _, step in edges:
        running += step
        best = max(best, running)
    return best


def put_completed_events(resources: LocalResources) -> list[str]:
    """SESSIONS sessions of EVENTS_PER_SESSION Completed events each, written interleaved
    (seq 1 of every session, then seq 2, ...) so that each key's records are spread out."""
    ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
    sessions = [str(uuid.uuid4()) for _ in range(SESSIONS)]
    for seq in range(1, EVENTS_PER_SESSION + 1):
        for session in sessions:
            ddb.put_item(
                TableName=resources.table_name,
                Item={
                    "SessionUUID": {"S": session},
                    "SequenceNumber": {"N": str(seq)},
                    "EventName": {"S": "SessionRecordingCompleted"},
                },
            )
    # An event the template's filter drops: never delivered.
    ddb.put_item(
        TableName=resources.table_name,
        Item={
            "SessionUUID": {"S": sessions[0]},
            "SequenceNumber": {"N": "99"},
            "EventName": {"S": "SessionRecordingInitiated"},
        },
    )
    return sessions


def stream_poller(
    resources: LocalResources, mapping: StreamMapping, workers: LambdaWorkerPool
) -> tuple[StreamPoller, list[dict[str, Any]], list[str]]:
    delivered: list[dict[str, Any]] = []
    said: list[str] = []
    poller = StreamPoller(
        session=boto3.session.Session(region_name=resources.region),
        endpoint_url=resources.endpoint_url,
        stream_arn=resources.stream_arn,
        region=resources.region,
        mapping=mapping,
        invoke=workers.invoke,
        failure_queue_url=resources.archive_failure_queue_url,
        function_arn="arn:aws:lambda:us-east-1:000000000000:function:local-TestFunction",
        on_delivered=delivered.extend,
        stop=threading.Event(),
        say=said.append,
    )
    return poller, delivered, said


def drain(poller: StreamPoller, delivered: list[dict[str, Any]], expected: int) -> None:
    deadline = time.monotonic() + 60
    while len(delivered) < expected and time.monotonic() < deadline:
        poller.poll_once()
    assert len(delivered) == expected


def template_mapping(factor: int | None, batch_size: int = 2) -> StreamMapping:
    mapping = stream_mapping(
        load_template(), "ArchiveFunction", stream_filter_patterns(), parallelization=factor
    )
    # Batches of 2: several batches per key and per lane, so that order has a chance to break.
    return replace(mapping, batch_size=batch_size)


def completed_order(entries: list[dict[str, Any]]) -> dict[str, list[int]]:
    """SequenceNumbers each session's records were completed in (by completion time), by the
    invocations that succeeded (a function error's records are all delivered again: at least
    once, as Lambda retries the batch)."""
    order: dict[str, list[tuple[float, int, int]]] = {}
    for entry in entries:
        if entry.get("raised"):
            continue
        for position, (session, seq) in enumerate(entry["done"]):
            order.setdefault(session, []).append((entry["end"], position, seq))
    return {s: [seq for *_, seq in sorted(items)] for s, items in order.items()}


def run_stream(
    resources: LocalResources, log: Path, factor: int, sleep: str
) -> tuple[list[str], list[dict[str, Any]], LambdaWorkerPool]:
    """The events of `put_completed_events` through a poller at `factor`, 4 environments."""
    sessions = put_completed_events(resources)
    workers = pool("stream_batch", 4, {"RA_TEST_LOG": str(log), "RA_TEST_SLEEP": sleep})
    poller, delivered, _ = stream_poller(resources, template_mapping(factor), workers)
    try:
        drain(poller, delivered, SESSIONS * EVENTS_PER_SESSION)
    finally:
        workers.stop()
    return sessions, log_entries(log), workers


def test_parallel_batches_overlap_and_keep_each_keys_order(
    resources: LocalResources, tmp_path: Path
) -> None:
    sessions, entries, workers = run_stream(resources, tmp_path / "log.jsonl", 4, "0.3")
    # Concurrency > 1, observed: invocations overlapping in time, in several processes.
    assert max_overlap(entries) > 1
    assert workers.peak_concurrency > 1
    assert len({e["pid"] for e in entries}) > 1
    # Each key in order, every record exactly once; the Initiated event filtered out.
    assert completed_order(entries) == {s: list(range(1, EVENTS_PER_SESSION + 1)) for s in sessions}


def test_factor_one_is_one_batch_at_a_time(resources: LocalResources, tmp_path: Path) -> None:
    _, entries, workers = run_stream(resources, tmp_path / "log.jsonl", 1, "0.05")
    assert max_overlap(entries) == 1
    assert workers.peak_concurrency == 1
    assert len({e["pid"] for e in entries}) == 1


@pytest.mark.parametrize("mode", ["partial", "raise"])
def test_a_failed_batch_loses_and_reorders_nothing_of_its_keys(
    resources: LocalResources, tmp_path: Path, mode: str
) -> None:
    sessions = put_completed_events(resources)
    log = tmp_path / "invocations.jsonl"
    env = {
        "RA_TEST_LOG": str(log),
        "RA_TEST_SLEEP": "0.1",
        "RA_TEST_FAIL_SESSION": sessions[2],
        "RA_TEST_FAIL_SEQ": "2",
        "RA_TEST_FAIL_MODE": mode,
    }
    workers = pool("stream_batch", 3, env)
    poller, delivered, said = stream_poller(resources, template_mapping(3), workers)
    try:
        drain(poller, delivered, SESSIONS * EVENTS_PER_SESSION)
    finally:
        workers.stop()
    entries = log_entries(log)
    assert log.with_suffix(".failed").exists()  # the failure did happen
    assert any("retry" in line or "error" in line for line in said)
    if mode == "raise":
        assert any(e.get("raised") for e in entries)
    # Every record of the failing key and of the others completed once, in order.
    assert completed_order(entries) == {s: list(range(1, EVENTS_PER_SESSION + 1)) for s in sessions}
    # Nothing given up: the on-failure queue is empty.
    sqs = boto3.client("sqs", endpoint_url=resources.endpoint_url)
    received = sqs.receive_message(QueueUrl=resources.archive_failure_queue_url, WaitTimeSeconds=0)
    assert not received.get("Messages")


def test_retries_exhausted_in_one_lane_go_to_on_failure_and_nothing_is_reordered(
    resources: LocalResources, tmp_path: Path
) -> None:
    sessions = put_completed_events(resources)
    log = tmp_path / "invocations.jsonl"
    env = {
        "RA_TEST_LOG": str(log),
        "RA_TEST_FAIL_SESSION": sessions[1],
        "RA_TEST_FAIL_SEQ": "3",
    }
    workers = pool("stream_batch", 3, env)
    mapping = replace(template_mapping(3), max_retry_attempts=0)
    poller, delivered, said = stream_poller(resources, mapping, workers)
    try:
        deadline = time.monotonic() + 60
        while poller.poll_once() or not delivered:  # until a read finds nothing new
            assert time.monotonic() < deadline
    finally:
        workers.stop()
    order = completed_order(log_entries(log))
    # No retry allowed: the failed record and what followed it in its batch (batches of 2 per
    # lane: itself, or itself and the next record of its lane) went to the on-failure queue.
    sqs = boto3.client("sqs", endpoint_url=resources.endpoint_url)
    messages = sqs.receive_message(
        QueueUrl=resources.archive_failure_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    ).get("Messages", [])
    infos = [json.loads(m["Body"])["DDBStreamBatchInfo"] for m in messages]
    given_up = sum(info["batchSize"] for info in infos)
    assert given_up in (1, 2)
    assert any("gave up" in line for line in said)
    # Every record either delivered once or given up; none out of its key's order; the failed
    # one never delivered; sessions outside that batch complete.
    assert len(delivered) + given_up == SESSIONS * EVENTS_PER_SESSION
    done = sum(len(seqs) for seqs in order.values())
    assert done == len(delivered)
    assert all(seqs == sorted(seqs) for seqs in order.values())
    assert 3 not in order[sessions[1]]
    complete = [s for s in sessions if order.get(s) == list(range(1, EVENTS_PER_SESSION + 1))]
    assert len(complete) >= SESSIONS - given_up


def test_same_key_same_lane_and_lane_order_kept() -> None:
    records = [
        {"dynamodb": {"Keys": {"SessionUUID": {"S": f"s{i % 7}"}, "SequenceNumber": {"N": str(i)}}}}
        for i in range(70)
    ]
    lanes = partition_lanes(records, 4, "SessionUUID")
    assert 1 < len(lanes) <= 4
    assert sum(len(lane) for lane in lanes) == 70
    lane_of: dict[str, int] = {}
    for index, lane in enumerate(lanes):
        seqs = [int(r["dynamodb"]["Keys"]["SequenceNumber"]["N"]) for r in lane]
        assert seqs == sorted(seqs)
        for record in lane:
            key = record["dynamodb"]["Keys"]["SessionUUID"]["S"]
            assert lane_of.setdefault(key, index) == index
    assert partition_lanes(records, 1, "SessionUUID") == [records]
    assert partition_lanes([], 4, "SessionUUID") == []


def test_parallelization_factor_is_read_from_the_template() -> None:
    template = load_template()
    events = template["Resources"]["ArchiveFunction"]["Properties"]["Events"]
    props = next(e["Properties"] for e in events.values() if e["Type"] == "DynamoDB")
    mapping = stream_mapping(template, "ArchiveFunction", [])
    assert mapping.partition_key == "SessionUUID"
    value = props.get("ParallelizationFactor", 1)
    if isinstance(value, dict):
        value = template["Parameters"][value["Ref"]]["Default"]
    assert mapping.parallelization_factor == int(value)
    # A parameter reference is read as its Default; the override wins; out of range refused.
    props["ParallelizationFactor"] = {"Ref": "TestFactor"}
    template.setdefault("Parameters", {})["TestFactor"] = {"Type": "Number", "Default": 7}
    assert stream_mapping(template, "ArchiveFunction", []).parallelization_factor == 7
    assert (
        stream_mapping(template, "ArchiveFunction", [], parallelization=2).parallelization_factor
        == 2
    )
    template["Parameters"]["TestFactor"]["Default"] = 11
    with pytest.raises(TemplateError, match="1 to 10"):
        stream_mapping(template, "ArchiveFunction", [])
    props["ParallelizationFactor"] = {"Ref": "NoSuchParameter"}
    with pytest.raises(TemplateError, match="NoSuchParameter"):
        stream_mapping(template, "ArchiveFunction", [])


def test_sqs_maximum_concurrency_is_read_from_the_template() -> None:
    template = load_template()
    events = template["Resources"]["FallbackDrainFunction"]["Properties"]["Events"]
    props = next(e["Properties"] for e in events.values() if e["Type"] == "SQS")
    props.pop("ScalingConfig", None)
    assert sqs_maximum_concurrency(template, "FallbackDrainFunction") is None
    props["ScalingConfig"] = {"MaximumConcurrency": 5}
    assert sqs_maximum_concurrency(template, "FallbackDrainFunction") == 5


def test_queue_poller_runs_up_to_maximum_concurrency_batches(
    resources: LocalResources, tmp_path: Path
) -> None:
    sqs = boto3.client("sqs", endpoint_url=resources.endpoint_url)
    queue_url = sqs.create_queue(QueueName=f"work-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    bodies = [f"m{i}" for i in range(24)]
    for i in range(0, len(bodies), 10):
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + 10])],
        )
    log = tmp_path / "sqs.jsonl"
    workers = pool("sqs_batch", 3, {"RA_TEST_LOG": str(log), "RA_TEST_SLEEP": "0.4"})
    stop = threading.Event()
    poller = QueuePoller(
        session=boto3.session.Session(region_name=resources.region),
        endpoint_url=resources.endpoint_url,
        queue_url=queue_url,
        region=resources.region,
        batch_size=2,
        invoke=workers.invoke,
        stop=stop,
        say=lambda _line: None,
        max_concurrency=3,
    )
    poller.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = [b for e in log_entries(log) for b in e["done"]]
            if len(done) >= len(bodies):
                break
            time.sleep(0.1)
    finally:
        stop.set()
        poller.join(timeout=10)
        workers.stop()
    entries = log_entries(log)
    assert sorted(b for e in entries for b in e["done"]) == sorted(bodies)
    assert 1 < max_overlap(entries) <= 3
    assert workers.peak_concurrency <= 3
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
