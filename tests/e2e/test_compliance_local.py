"""The compliance sequence of issue 15 against `recording-archive local`, as an operator runs it:
two sessions of one caller are found by number and listed; a hold on A makes its erase fail with
nothing deleted; after the release the erase leaves nothing of A while B is untouched; the audit
shows the hold, the release and the erase without the number; B's RecordingArchived event was
published (read from the local rule's queue)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from tests.support.lifecycle_queue import receive_lifecycle_events
from tests.support.local_stack import (
    LocalStackProcess,
    bucket_name,
    ddb,
    post,
    run_cli,
    session_items,
)
from tests.support.media_server import MediaServer, wav_body
from tests.support.net import wait_until
from tests.support.plivo import AUTH_ID, recording_event

pytestmark = pytest.mark.e2e

CALLER = "+1 415 555 0123"  # as an operator types it; Plivo sends "14155550123"
CALLER_DIGITS = "14155550123"


def _session(stack: LocalStackProcess, media: MediaServer) -> tuple[str, str]:
    session, rec = str(uuid.uuid4()), str(uuid.uuid4())
    path = f"/v1/Account/{AUTH_ID}/Recording/{rec}.wav"
    media.add(path, wav_body(0.5), content_type="audio/wav")
    for name, seq, url in (
        ("SessionRecordingInitiated", 1, ""),
        ("SessionRecordingCompleted", 2, media.url(path)),
    ):
        params = recording_event(
            name, session_uuid=session, sequence=seq, recording_uuid=rec, fmt=".wav",
            recording_url=url,
        )  # fmt: skip
        params["From"] = CALLER_DIGITS
        assert post(stack, params)[0] == 200
    return session, rec


def _archived(stack: LocalStackProcess, session: str) -> bool:
    return any(
        i.get("ArchiveStatus", {}).get("S") == "ARCHIVED" for i in session_items(stack, session)
    )


def _versions(stack: LocalStackProcess, session: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=stack.endpoint, region_name="us-east-1")
    answer = s3.list_object_versions(Bucket=bucket_name(stack))
    return [
        v["VersionId"]
        for kind in ("Versions", "DeleteMarkers")
        for v in answer.get(kind, [])
        if f"/{session}/" in v["Key"]
    ]


def _index_entries(stack: LocalStackProcess, session: str) -> list[dict[str, Any]]:
    items = ddb(stack).scan(TableName="local-IndexTable", ConsistentRead=True)["Items"]
    return [i for i in items if i.get("SessionUUID", {}).get("S") == session]


def _state(stack: LocalStackProcess, session: str) -> tuple[Any, ...]:
    """The session's items, object versions and markers, index entries."""
    return (
        session_items(stack, session),
        _versions(stack, session),
        _index_entries(stack, session),
    )


def _cli(stack: LocalStackProcess, *args: str) -> tuple[int, str, str]:
    done = run_cli(*args, "--endpoint-url", stack.endpoint)
    return done.returncode, done.stdout, done.stderr


def test_find_hold_erase_audit(local_stack: LocalStackProcess, media: MediaServer) -> None:
    stack = local_stack
    a, rec_a = _session(stack, media)
    b, rec_b = _session(stack, media)
    for s in (a, b):
        assert wait_until(lambda s=s: _archived(stack, s), 60, interval=0.5), stack.output()

    rc, out, err = _cli(stack, "sessions", "find", "--number", CALLER, "--json")
    assert rc == 0, err
    assert {a, b} <= {s["session_uuid"] for s in json.loads(out)["sessions"]}
    rc, out, err = _cli(stack, "sessions", "list", "--since", "1h", "--json")
    assert rc == 0, err
    assert {a, b} <= {s["session_uuid"] for s in json.loads(out)["sessions"]}

    rc, _, err = _cli(stack, "hold", "set", "--session", a, "--reason", "dispute 4711")
    assert rc == 0, err
    before = _state(stack, a)
    rc, _, err = _cli(stack, "erase", "--session", a, "--yes")
    assert rc == 1 and "refused, nothing deleted" in err
    assert _state(stack, a) == before

    rc, _, err = _cli(stack, "hold", "clear", "--session", a, "--reason", "dispute settled")
    assert rc == 0, err
    b_items, b_versions, b_entries = b_before = _state(stack, b)
    assert len(b_items) == 2 and b_versions and b_entries
    rc, out, err = _cli(stack, "erase", "--session", a, "--yes")
    assert rc == 0, err
    assert _state(stack, a) == ([], [], [])
    # B untouched: its items, versions and index entries as before.
    assert _state(stack, b) == b_before

    rc, out, err = _cli(stack, "audit", "--since", "1h", "--json")
    assert rc == 0, err
    records = json.loads(out)
    assert [r["action"] for r in records] == ["hold.set", "hold.clear", "erase.start", "erase.done"]
    assert records[0]["targets"]["session_uuid"] == a and records[0]["reason"] == "dispute 4711"
    assert records[3]["targets"]["start_id"] == records[2]["id"]
    assert CALLER_DIGITS not in out and "555 0123" not in out

    queue = boto3.client("sqs", endpoint_url=stack.endpoint, region_name="us-east-1").get_queue_url(
        QueueName="local-LifecycleEvents"
    )["QueueUrl"]
    events = receive_lifecycle_events(stack.endpoint, queue, timeout=10)
    kinds = {(e["detail-type"], e["detail"].get("RecordingUUID")) for e in events}
    assert ("RecordingArchived", rec_b) in kinds
    assert ("RecordingErased", rec_a) in kinds
    assert CALLER_DIGITS not in json.dumps(events)
