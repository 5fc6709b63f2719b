"""`recording-archive local` emulates the lifecycle bus: the demo recording's RecordingArchived
arrives on `local-LifecycleEvents`, through the rule `local-lifecycle-events` on moto's default
bus, published by the real ArchiveFunction handler in its own worker process."""

from __future__ import annotations

import json
import re
import signal

import pytest

from tests.support.lifecycle_queue import receive_lifecycle_events
from tests.support.local_stack import start_local

pytestmark = pytest.mark.e2e


def test_the_demo_recording_is_announced_on_the_local_queue() -> None:
    stack = start_local()  # with the demo
    try:
        archived = stack.wait_for(lambda line: "demo: archived s3://" in line, timeout=60)
        timeline = stack.wait_for(lambda line: "demo: timeline of session" in line)
        queue_url = stack.ready["lifecycle_events_queue_url"]
        assert queue_url.endswith("/local-LifecycleEvents")
        events = receive_lifecycle_events(stack.endpoint, queue_url, count=1, timeout=10)
    finally:
        assert stack.stop(signal.SIGINT) == 0
    session = re.search(r"timeline of session ([0-9a-f-]{36})", timeline)
    uri = re.search(r"s3://([^/\s]+)/(\S+)", archived)
    assert session and uri, (timeline, archived)
    [event] = events
    assert (event["source"], event["detail-type"]) == (
        "plivo-recording-archive",
        "RecordingArchived",
    )
    detail = event["detail"]
    assert detail["SessionUUID"] == session.group(1)
    assert (detail["Bucket"], detail["Key"]) == (uri.group(1), uri.group(2))
    assert f"size={detail['Size']} sha256={detail['Sha256']}" in archived
    assert set(detail) == {
        "SessionUUID",
        "SequenceNumber",
        "RecordingUUID",
        "Bucket",
        "Key",
        "VersionId",
        "Size",
        "Sha256",
        "DurationSeconds",
    }
    assert re.fullmatch(r"[0-9a-f]{64}", detail["Sha256"])
    assert "+1" not in json.dumps(event)  # no phone number of the demo's session
