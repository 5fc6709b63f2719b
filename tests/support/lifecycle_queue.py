"""Read the lifecycle events that the local rule `{stack}-lifecycle-events` forwarded to the
queue `{stack}-LifecycleEvents` (cli/recording_archive_cli/local/resources.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3


def receive_lifecycle_events(
    endpoint_url: str, queue_url: str, *, count: int | None = None, timeout: float = 2.0
) -> list[dict[str, Any]]:
    """Every EventBridge event on the queue (each deleted once read), as delivered: the
    envelope with `source`, `detail-type`, `detail` ... Waits up to `timeout` seconds for
    `count` events (None: until the queue stays empty for one poll)."""
    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1")
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = answer.get("Messages") or []
        for message in messages:
            events.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if count is not None and len(events) >= count:
            break
        if count is None and not messages and events:
            break
        time.sleep(0.1)
    return events
