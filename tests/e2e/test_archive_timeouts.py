"""Bounded, counted archive attempts on `recording-archive local`: workers that never report.

The stack runs from a copy of template.yaml whose archiving functions have a 4 s Timeout, which
the local stack enforces as Lambda does (it kills the execution environment and starts a new one
for the next invocation). The media server sends 6 MiB of a recording and then stalls, longer
than the functions' media read timeout allows (30 s here), so no attempt can stop by itself: each
one is either SIGKILLed by the test or killed by the emulated Timeout, holding its claim.
Either way each attempt is counted when it claims; once its lease runs out (Timeout + 1 s of
slack here) the sweeper enqueues the item and ArchiveWorkFunction makes the next attempt; and once
SWEEP_MAX_ATTEMPTS (2) attempts were made the item is FAILED, with RecordingsFailed and the error
log line, and no more download.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from recording_archive.logic.archive_recording import ABANDONED_ERROR
from recording_archive_cli.local.functions import function_setting
from recording_archive_cli.local.template import load_template
from tests.support.local_stack import (
    LocalStackProcess,
    bucket_name,
    ddb,
    post_completed,
    start_local,
    stop_tree,
    table_name,
)
from tests.support.media_server import GeneratedBody, MediaServer, Stall
from tests.support.net import wait_until
from tests.support.processes import worker_pids

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MiB = 1024 * 1024
TIMEOUT_SECONDS = 4
ARCHIVING = ("ArchiveFunction", "ArchiveWorkFunction")
SETTINGS = {
    "ARCHIVE_LEASE_SLACK_SECONDS": "1",
    "ARCHIVE_STOP_MARGIN_SECONDS": "1",
    "MEDIA_READ_TIMEOUT_SECONDS": "30",  # a stalled read outlasts the Timeout
    "PART_SIZE_MIB": "5",
}
WORK_SETTINGS = {"SWEEP_GRACE_SECONDS": "0", "SWEEP_MAX_ATTEMPTS": "2"}
WAIT_SECONDS = 60.0


@pytest.fixture(scope="module")
def short_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """template.yaml with the archiving functions' Timeout lowered (JSON is YAML)."""
    template = load_template()
    for logical_id in ARCHIVING:
        template["Resources"][logical_id]["Properties"]["Timeout"] = TIMEOUT_SECONDS
    # The stream makes the first attempt only: its retries would race the work queue for the
    # next claim once a lease runs out. Both count towards SWEEP_MAX_ATTEMPTS (the count is the
    # same either way: tests/integration/test_archive.py), but this module kills each attempt's
    # worker by its function's name.
    (stream,) = template["Resources"]["ArchiveFunction"]["Properties"]["Events"].values()
    stream["Properties"]["MaximumRetryAttempts"] = 0
    path = tmp_path_factory.mktemp("template") / "template.yaml"
    path.write_text(json.dumps(template), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stack(short_template: Path) -> Iterator[LocalStackProcess]:
    env = [
        *(f"ArchiveFunction:{k}={v}" for k, v in SETTINGS.items()),
        *(f"ArchiveWorkFunction:{k}={v}" for k, v in (SETTINGS | WORK_SETTINGS).items()),
        "SweeperFunction:SWEEP_GRACE_SECONDS=0",
    ]
    args = ["--no-demo", "--verbose", "--template", str(short_template), "--sweep-interval", "1"]
    for item in env:
        args += ["--env", item]
    running = start_local(*args)
    yield running
    stop_tree(running)


def test_the_local_stack_takes_each_functions_timeout_from_the_template(
    short_template: Path,
) -> None:
    template = load_template(short_template)
    for logical_id in ARCHIVING:
        assert function_setting(template, logical_id, "Timeout", 3) == TIMEOUT_SECONDS
    # The deployed template: Lambda's maximum, which an attempt without a context also gets.
    assert function_setting(load_template(), "ArchiveFunction", "Timeout", 3) == 900


def _stalled_recording(stack: LocalStackProcess, media: MediaServer) -> tuple[str, str]:
    """A Completed callback whose recording stalls after 6 MiB: (session, key prefix)."""
    body, stall = GeneratedBody(8 * MiB, seed=7), Stall(6 * MiB, 120, times=None)
    session, recording = post_completed(stack, media, body, faults=(stall,))
    return session, f"{session}/{recording}.mp3"


def _item(stack: LocalStackProcess, session: str) -> dict[str, Any]:
    found: dict[str, Any] = (
        ddb(stack)
        .get_item(
            TableName=table_name(stack),
            Key={"SessionUUID": {"S": session}, "SequenceNumber": {"N": "2"}},
            ConsistentRead=True,
        )
        .get("Item", {})
    )
    return found


def _wait(what: str, check: Callable[[], bool], stack: LocalStackProcess) -> None:
    if not wait_until(check, WAIT_SECONDS, interval=0.1):
        raise AssertionError(f"{what}: not within {WAIT_SECONDS:g} s\n{stack.output()}")


def _uploads(stack: LocalStackProcess, key_suffix: str) -> int:
    """Multipart uploads in progress (or left behind) for the key."""
    s3 = boto3.client("s3", endpoint_url=stack.endpoint, region_name="us-east-1")
    uploads = s3.list_multipart_uploads(Bucket=bucket_name(stack)).get("Uploads", [])
    return sum(1 for u in uploads if u["Key"].endswith(key_suffix))


def _attempts(stack: LocalStackProcess, session: str) -> int:
    return int(_item(stack, session).get("ArchiveAttempts", {}).get("N", "0"))


def _worker_pid(stack: LocalStackProcess, logical_id: str) -> int | None:
    """The execution environment of one function among the stack's processes, if running."""
    return next(iter(worker_pids(stack.proc.pid, logical_id)), None)


def _failed_with_the_alarm(stack: LocalStackProcess, session: str, failed_before: int) -> None:
    _wait("FAILED", lambda: _item(stack, session).get("ArchiveStatus") == {"S": "FAILED"}, stack)
    item = _item(stack, session)
    assert item["ArchiveAttempts"] == {"N": "2"}
    assert item["ArchiveLastError"] == {"S": ABANDONED_ERROR}
    assert item["ArchiveQueue"] == {"S": "FAILED"}
    assert "ArchiveLeaseUntil" not in item
    _wait("RecordingsFailed", lambda: _recordings_failed(stack) == failed_before + 1, stack)
    error_lines = [
        json.loads(line)
        for line in stack.stderr
        if '"recording FAILED"' in line and session in line
    ]
    assert [(e["level"], e["attempts"]) for e in error_lines] == [("ERROR", 2)]


def _recordings_failed(stack: LocalStackProcess) -> int:
    """RecordingsFailed over the EMF documents the functions printed."""
    total = 0
    for line in list(stack.stderr):
        if line.startswith('{"_aws"') and "RecordingsFailed" in line:
            value = json.loads(line)["RecordingsFailed"]
            total += int(sum(value) if isinstance(value, list) else value)
    return total


def test_workers_killed_mid_transfer_count_their_attempts_then_failed(
    stack: LocalStackProcess, media: MediaServer
) -> None:
    failed_before = _recordings_failed(stack)
    session, key = _stalled_recording(stack, media)
    # Attempt 1 (the stream): SIGKILLed with its multipart upload under way.
    _wait("the stream's upload", lambda: _uploads(stack, key) == 1, stack)
    assert _attempts(stack, session) == 1
    stream_worker = _worker_pid(stack, "ArchiveFunction")
    assert stream_worker is not None
    os.kill(stream_worker, signal.SIGKILL)
    item = _item(stack, session)
    assert item["ArchiveStatus"] == {"S": "PENDING"} and "ArchiveLeaseUntil" in item
    # Attempt 2 (the sweeper's work queue, once the lease ran out): SIGKILLed as well.
    _wait("the work queue's attempt", lambda: _attempts(stack, session) == 2, stack)
    # The killed stream attempt's upload is still there (the bucket's lifecycle rule removes
    # it after a day; moto runs none): a second one is the work queue consumer's.
    _wait("the work queue's upload", lambda: _uploads(stack, key) == 2, stack)
    sweeper_worker = _worker_pid(stack, "ArchiveWorkFunction")
    # Killed by the test about 1 s into its 4 s; on a machine so loaded that the Timeout came
    # first, the attempt ended the other way this module tests, and the outcome is the same.
    if sweeper_worker is not None:
        os.kill(sweeper_worker, signal.SIGKILL)
    _failed_with_the_alarm(stack, session, failed_before)


def test_attempts_the_emulated_timeout_kills_are_counted_then_failed(
    stack: LocalStackProcess, media: MediaServer
) -> None:
    failed_before = _recordings_failed(stack)
    session, _ = _stalled_recording(stack, media)
    started = time.monotonic()
    _failed_with_the_alarm(stack, session, failed_before)
    # Two attempts, each ended by the 4 s Timeout and held for 1 s more: at least 10 s.
    assert time.monotonic() - started >= 2 * (TIMEOUT_SECONDS + 1)
    assert any("timed out after 4 s" in line for line in stack.output().splitlines() + stack.stderr)
