"""`recording-archive local --parallelization-factor N`: the stack's stream mapping runs up to N
archive batches of a shard at once, each in its own ArchiveFunction execution environment.

Slow media (the server drips each recording) keeps the first invocation busy while the burst's
other Completed callbacks arrive, so the next read of the shard holds several sessions: with
N = 3 they are archived by concurrent invocations, seen as more than one live ArchiveFunction
worker process; every recording is archived. A factor out of range is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.local_stack import (
    LocalStackProcess,
    post_completed,
    run_cli,
    start_local,
    stop_tree,
)
from tests.support.media_server import Drip, GeneratedBody, MediaServer
from tests.support.net import wait_until
from tests.support.processes import worker_pids

pytestmark = pytest.mark.e2e

SESSIONS = 9
BODY_BYTES = 256 * 1024


@pytest.fixture
def media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        yield server


def burst(stack: LocalStackProcess, media: MediaServer) -> list[str]:
    sessions = [str(uuid.uuid4()) for _ in range(SESSIONS)]
    for index, session in enumerate(sessions):
        # 16 KiB every 0.05 s: about 0.8 s per recording, fast enough for the read timeouts.
        body = GeneratedBody(BODY_BYTES, seed=index)
        post_completed(stack, media, body, session_uuid=session, faults=(Drip(0.05, 16 * 1024),))
    return sessions


def archived(stack: LocalStackProcess, sessions: list[str]) -> int:
    from tests.support.local_stack import ddb, table_name

    client = ddb(stack)
    done = 0
    for session in sessions:
        item = client.get_item(
            TableName=table_name(stack),
            Key={"SessionUUID": {"S": session}, "SequenceNumber": {"N": "2"}},
            ConsistentRead=True,
        ).get("Item", {})
        done += item.get("ArchiveStatus", {}).get("S") == "ARCHIVED"
    return done


def test_factor_three_archives_a_burst_with_concurrent_environments(media: MediaServer) -> None:
    stack = start_local("--no-demo", "--sweep-interval", "3600", "--parallelization-factor", "3")
    try:
        assert len(worker_pids(stack.proc.pid, "ArchiveFunction")) == 1  # one started, warm
        sessions = burst(stack, media)
        assert wait_until(lambda: archived(stack, sessions) == SESSIONS, 60, interval=0.5), (
            stack.output()
        )
        # More than one environment was needed: invocations overlapped; never more than 3.
        assert 1 < len(worker_pids(stack.proc.pid, "ArchiveFunction")) <= 3
    finally:
        stop_tree(stack)


@pytest.mark.parametrize("value", ["0", "11", "four"])
def test_factor_out_of_range_is_refused(value: str) -> None:
    result = run_cli("local", "--no-demo", "--parallelization-factor", value)
    assert result.returncode == 2
    assert "--parallelization-factor" in result.stderr
    assert "expected 1 to 10" in result.stderr
