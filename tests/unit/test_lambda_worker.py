"""LambdaWorker: each function in its own process, with only its own environment."""

from __future__ import annotations

import os
import sys

import pytest

from recording_archive_cli.local.lambda_worker import (
    FunctionError,
    FunctionTimeoutError,
    LambdaWorker,
    WorkerError,
)

HANDLERS = "tests.support.worker_handlers"
BASE_ENV = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.getcwd()}


def worker(handler: str, env: dict[str, str] | None = None, timeout: float = 10) -> LambdaWorker:
    return LambdaWorker(
        "TestFunction",
        f"{HANDLERS}.{handler}",
        {**BASE_ENV, **(env or {})},
        timeout_seconds=timeout,
        function_name="local-TestFunction",
    )


def test_each_worker_sees_only_its_own_environment() -> None:
    os.environ["RA_TEST_LEAK"] = "parent"
    first = worker("env", {"EVENTS_TABLE_NAME": "one"})
    second = worker("env", {"ARCHIVE_BUCKET_NAME": "two"})
    try:
        names = ["EVENTS_TABLE_NAME", "ARCHIVE_BUCKET_NAME", "RA_TEST_LEAK"]
        a = first.invoke({"names": names}, request_id="req-1")
        b = second.invoke({"names": names})
    finally:
        first.stop()
        second.stop()
        del os.environ["RA_TEST_LEAK"]
    assert a["values"] == {
        "EVENTS_TABLE_NAME": "one",
        "ARCHIVE_BUCKET_NAME": None,
        "RA_TEST_LEAK": None,
    }
    assert b["values"] == {
        "EVENTS_TABLE_NAME": None,
        "ARCHIVE_BUCKET_NAME": "two",
        "RA_TEST_LEAK": None,
    }
    assert a["function_name"] == "local-TestFunction"
    assert a["request_id"] == "req-1"
    assert 0 < a["remaining_ms"] <= 10_000
    assert a["pid"] != b["pid"] != os.getpid()


def test_execution_environment_is_reused_between_invocations() -> None:
    w = worker("env")
    try:
        pids = {w.invoke({"names": []})["pid"] for _ in range(3)}
    finally:
        w.stop()
    assert len(pids) == 1
    assert w.pids == list(pids)


def test_handler_exception_is_a_function_error() -> None:
    w = worker("fail")
    try:
        with pytest.raises(FunctionError) as info:
            w.invoke({})
        # The environment survives a function error, as in Lambda.
        with pytest.raises(FunctionError):
            w.invoke({})
    finally:
        w.stop()
    assert info.value.error_type == "ValueError"
    assert info.value.error_message == "bad record"
    assert any("bad record" in line for line in info.value.stack)
    assert len(w.pids) == 1


def test_timeout_kills_the_environment_and_the_next_invocation_starts_a_new_one() -> None:
    w = worker("sleep", timeout=1)
    try:
        with pytest.raises(FunctionTimeoutError, match="timed out after 1 s"):
            w.invoke({"seconds": 5})
        first_pid = w.pids[0]
        assert w.invoke({"seconds": 0}) != first_pid
    finally:
        w.stop()
    assert len(w.pids) == 2
    assert not os.path.exists(f"/proc/{first_pid}")  # killed and reaped


def test_crashed_environment_is_a_worker_error_then_restarts() -> None:
    w = worker("die")
    try:
        with pytest.raises(WorkerError, match="exited"):
            w.invoke({})
        with pytest.raises(WorkerError):
            w.invoke({})
    finally:
        w.stop()
    assert len(w.pids) == 2


def test_handler_that_cannot_be_imported_fails_at_start() -> None:
    w = worker("does_not_exist")
    with pytest.raises(WorkerError, match="failed to load: AttributeError"):
        w.start()
    w.stop()


def test_stop_ends_the_child_and_refuses_later_invocations() -> None:
    w = worker("env")
    w.start()
    pid = w.pid
    assert pid is not None
    w.stop()
    assert not os.path.exists(f"/proc/{pid}")
    with pytest.raises(WorkerError, match="stopped"):
        w.invoke({"names": []})


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_sigint_to_the_process_group_does_not_kill_the_child() -> None:
    import signal
    import time

    w = worker("env")
    try:
        w.start()
        assert w.pid is not None
        os.kill(w.pid, signal.SIGINT)
        time.sleep(0.3)
        assert w.invoke({"names": []})["pid"] == w.pid
    finally:
        w.stop()
