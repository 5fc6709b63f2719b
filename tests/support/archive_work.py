"""The sweep as the deployed stack runs it, in-process on moto: SweeperFunction enqueues the keys
of the PENDING items due on ArchiveWorkQueue, then ArchiveWorkFunction's record handler archives
each message received from it (deleted when handled, left for SQS to deliver again when it
failed, as Lambda's event source mapping does with a batch item failure).

Both functions' environments must be applied first (the integration `function_env` fixture:
"SweeperFunction" and "ArchiveWorkFunction"). `now` moves both clocks (the sweep's and the
attempts' claims and backoff), as `sweeper.sweep(now=...)` does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from recording_archive.dal.work_queue import encode_key
from recording_archive.handlers import archive_work, sweeper, wiring
from recording_archive.models.archive import WorkKey
from recording_archive.models.errors import ArchiveError
from tests.support.lambda_context import FakeLambdaContext


def sqs_event_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS event record (Lambda's shape) of a received message."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


def receive_all(queue_url: str) -> list[dict[str, Any]]:
    """Every message visible on the queue now (received: invisible until deleted or expired)."""
    sqs = boto3.client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return messages
        messages += got


def drain_work_queue(now: float | None = None) -> Counter[str]:
    """Archive every message on the work queue through ArchiveWorkFunction's record handler.
    Outcomes: the handler's ("archived", "already_archived", "gone", ...), "retry_later" for an
    ArchiveError (a batch item failure: the message is not deleted)."""
    deps = wiring.archive_work_collaborators()
    sweep_deps = wiring.sweeper_collaborators()
    url = sweep_deps.settings.archive_work_queue_url
    sqs = boto3.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    outcomes: Counter[str] = Counter()
    for message in receive_all(url):
        record = SQSRecord(sqs_event_record(message, arn))
        try:
            outcome = archive_work.archive_message(record, collaborators=deps, now=now)
        except ArchiveError:
            outcomes["retry_later"] += 1
            continue
        outcomes[outcome] += 1
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return outcomes


class _KeptQueue:
    """A work queue that keeps the keys in this process (the sweep's other half runs here)."""

    def __init__(self) -> None:
        self.keys: list[WorkKey] = []

    def send(self, keys: Sequence[WorkKey]) -> list[WorkKey]:
        self.keys += keys
        return []


def sweep_and_archive(
    now: float | None = None,
    *,
    time_left_ms: Callable[[], int] | None = None,
    via_queue: bool = True,
) -> dict[str, int]:
    """One sweep, then the work it enqueued, with the EMF metrics flushed as the invocations
    do. The counts as the sweep reported them (without `enqueued`), plus the consumer's
    outcomes: what the sweeper's own archiving used to count.

    `via_queue=False` hands the keys to the consumer in this process instead of through SQS:
    for a running local stack, whose own poller would otherwise take the messages and
    archive them on the real clock rather than at `now` (reliability/faults.py)."""
    from recording_archive.observability import metrics

    def run(_event: Any, _context: Any) -> dict[str, int]:
        deps = wiring.sweeper_collaborators()
        kept = _KeptQueue()
        if not via_queue:
            deps = replace(deps, queue=kept)
        counts = Counter(sweeper.sweep(deps, now=now, time_left_ms=time_left_ms))
        counts.pop("enqueued", None)
        if via_queue:
            counts.update(drain_work_queue(now))
        for key in kept.keys:
            message = {"MessageId": "local", "ReceiptHandle": "local", "Body": encode_key(key)}
            record = SQSRecord(sqs_event_record(message, "arn:aws:sqs:::kept"))
            try:
                outcome = archive_work.archive_message(
                    record, collaborators=wiring.archive_work_collaborators(), now=now
                )
            except ArchiveError:
                outcome = "retry_later"
            counts[outcome] += 1
        return dict(counts)

    result: dict[str, int] = metrics.log_metrics(run)({}, FakeLambdaContext())
    return result
