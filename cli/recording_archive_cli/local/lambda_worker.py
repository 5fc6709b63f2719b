"""One Lambda function's execution environment: a child process running its real handler.

Why a process per function: the handlers read their settings from `os.environ` and cache them
(settings, boto3 clients, the auth secret) for the life of the process, exactly as in Lambda.
Running each function in its own child, started with *only* that function's environment (the
template's variables resolved to the local resources, plus the runtime's AWS_* variables),
means settings never leak from one function to another and every cache behaves as in one Lambda
execution environment. A plain subprocess with a JSON-lines pipe is the simplest robust
protocol: no pickling, no fork of a threaded parent, and the child dies with its pipe.

Protocol (child side, `python -m recording_archive_cli.local.lambda_worker --handler H ...`):
- the child moves its real stdout to a private descriptor and points descriptor 1 at stderr,
  so whatever the handler prints (Powertools' JSON logs, EMF metrics) goes to the terminal and
  never into the protocol;
- it imports the handler (the cold start), then writes `{"ready": true}` (or an error);
- for each line `{"event": ..., "requestId": ..., "deadlineMs": ...}` on stdin it calls the
  handler with a Lambda-like context and answers one line: `{"result": ...}` or
  `{"error": {"errorType", "errorMessage", "stackTrace"}}`, like Lambda's function error;
- it ignores SIGINT (Ctrl-C reaches the whole process group; the parent decides) and exits
  when stdin closes, so it never outlives the parent's pipe.

Parent side: `LambdaWorker` starts the child, invokes it one event at a time (a lock; one
execution environment handles one invocation at a time, as in Lambda), enforces the function's
Timeout by killing the child (the next invocation starts a fresh one: a new cold start, as
Lambda does after a timeout), and restarts a child that died. `LambdaWorkerPool` is a function's
concurrency: up to `size` such environments, each started (cold) the first time the concurrent
invocations need it and reused warm after, as Lambda scales a function's environments with its
concurrent invocations (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from recording_archive_cli.local import aws_call_log

READY_TIMEOUT_SECONDS = 60.0


class WorkerError(Exception):
    """The execution environment failed: it could not start, it crashed, or it timed out."""


class FunctionTimeoutError(WorkerError):
    """The invocation ran longer than the function's Timeout."""


class FunctionError(Exception):
    """The handler raised: Lambda's "Unhandled" function error."""

    def __init__(self, error_type: str, message: str, stack: list[str]) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.error_message = message
        self.stack = stack


# ------------------------------------------------------------------------------------------
# Child
# ------------------------------------------------------------------------------------------


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers (and Powertools) read."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


def _child(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambda_worker")
    parser.add_argument("--handler", required=True)
    parser.add_argument("--function-name", required=True)
    parser.add_argument("--function-arn", required=True)
    parser.add_argument("--memory", type=int, default=128)
    args = parser.parse_args(argv)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The permission test's call recorder, when the test session asked for it (before the
    # handler's import, so that every client the handler creates is recorded).
    aws_call_log.install()
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)

    def send(message: Mapping[str, Any]) -> None:
        protocol.write(json.dumps(message, default=str) + "\n")
        protocol.flush()

    module_name, _, function_name = args.handler.rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is reported to the parent
        send({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"ready": True})

    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        context = LambdaContext(
            function_name=args.function_name,
            function_version="$LATEST",
            invoked_function_arn=args.function_arn,
            memory_limit_in_mb=args.memory,
            aws_request_id=str(message.get("requestId") or uuid.uuid4()),
            log_group_name=f"/aws/lambda/{args.function_name}",
            log_stream_name="local",
            deadline_ms=int(message["deadlineMs"]),
        )
        try:
            result = handler(message["event"], context)
        except Exception as exc:  # noqa: BLE001 - Lambda turns any exception into a function error
            send(
                {
                    "error": {
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                        "stackTrace": traceback.format_exception(exc),
                    }
                }
            )
            continue
        send({"result": result})
    return 0


# ------------------------------------------------------------------------------------------
# Parent
# ------------------------------------------------------------------------------------------


class LambdaWorker:
    """A function's execution environment in a child process, started with `env` only."""

    def __init__(
        self,
        logical_id: str,
        handler: str,
        env: Mapping[str, str],
        *,
        timeout_seconds: float,
        memory_mb: int = 128,
        function_arn: str = "",
        function_name: str = "",
        show_line: Callable[[str], bool] | None = None,
    ) -> None:
        self.logical_id = logical_id
        self.handler = handler
        # Only `env` reaches the child, plus the permission test's call log when it is on.
        self.env = {**aws_call_log.inherited_environment(), **env}
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.function_name = function_name or logical_id
        self.function_arn = function_arn or (
            f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"
        )
        # The child's output (its handler's logs) is forwarded to this process's stderr, line
        # by line, when show_line(line) is true (all lines by default).
        self._show_line = show_line or (lambda _line: True)
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        self._closed = False
        self.pids: list[int] = []

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child and wait for its handler to be imported (its cold start)."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        if self._closed:
            raise WorkerError(f"{self.logical_id}: stopped")
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._proc = None
        self._buffer = b""
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recording_archive_cli.local.lambda_worker",
                "--handler",
                self.handler,
                "--function-name",
                self.function_name,
                "--function-arn",
                self.function_arn,
                "--memory",
                str(self.memory_mb),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        self._proc = proc
        threading.Thread(
            target=self._forward_output, args=(proc,), name=f"{self.logical_id}-output", daemon=True
        ).start()
        self.pids.append(proc.pid)
        try:
            ready = self._read_message(proc, time.monotonic() + READY_TIMEOUT_SECONDS)
        except WorkerError:
            self._kill(proc)
            raise
        if not ready.get("ready"):
            self._kill(proc)
            raise WorkerError(
                f"{self.logical_id}: handler {self.handler} failed to load: "
                f"{ready.get('error', 'unknown error')}"
            )
        return proc

    def invoke(self, event: Any, *, request_id: str | None = None) -> Any:
        """Run the handler on `event`; its return value, or FunctionError / WorkerError."""
        with self._lock:
            proc = self._ensure_started()
            deadline = time.monotonic() + self.timeout_seconds
            message = {
                "event": event,
                "requestId": request_id or str(uuid.uuid4()),
                "deadlineMs": int((time.time() + self.timeout_seconds) * 1000),
            }
            try:
                assert proc.stdin is not None  # noqa: S101 - Popen(stdin=PIPE)
                proc.stdin.write(json.dumps(message).encode() + b"\n")
                proc.stdin.flush()
            except OSError as exc:
                self._kill(proc)
                raise WorkerError(f"{self.logical_id}: execution environment died") from exc
            try:
                answer = self._read_message(proc, deadline)
            except FunctionTimeoutError:
                self._kill(proc)
                raise
            if "error" in answer:
                error = answer["error"]
                raise FunctionError(
                    str(error.get("errorType", "Error")),
                    str(error.get("errorMessage", "")),
                    list(error.get("stackTrace") or []),
                )
            return answer.get("result")

    def _read_message(self, proc: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
        assert proc.stdout is not None  # noqa: S101 - Popen(stdout=PIPE)
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FunctionTimeoutError(
                        f"{self.logical_id}: timed out after {self.timeout_seconds:g} s"
                    )
                if not selector.select(min(remaining, 1.0)):
                    continue
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    self._kill(proc)
                    raise WorkerError(
                        f"{self.logical_id}: execution environment exited "
                        f"(status {proc.returncode})"
                    )
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        decoded: dict[str, Any] = json.loads(line)
        return decoded

    def _forward_output(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None  # noqa: S101 - Popen(stderr=PIPE)
        with proc.stderr:
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip("\n")
                if self._show_line(line):
                    print(line, file=sys.stderr, flush=True)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        if self._proc is proc:
            self._proc = None

    def stop(self, grace_seconds: float = 3.0) -> None:
        """Close the child's stdin (it exits), then terminate/kill it if it lingers."""
        self._closed = True
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self._proc = None


class LambdaWorkerPool:
    """Up to `size` execution environments of one function (`LambdaWorker`s with the same
    settings), so that up to `size` invocations run at once; more wait for a free one, as an
    event source mapping's concurrent batches do for its concurrency limit.

    `start` starts the first environment only; the others start on demand (a cold start each).
    An environment that timed out or died is restarted by its own `LambdaWorker`.
    """

    def __init__(self, size: int, make: Callable[[int], LambdaWorker]) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self._make = make
        self._workers: list[LambdaWorker] = []
        self._idle: list[LambdaWorker] = []
        self._free = threading.Condition()
        self._busy = 0
        self._closed = False
        # The most invocations seen running at the same time (the bench and tests read it).
        self.peak_concurrency = 0

    @property
    def logical_id(self) -> str:
        return self._workers[0].logical_id if self._workers else ""

    @property
    def pid(self) -> int | None:
        return self._workers[0].pid if self._workers else None

    @property
    def pids(self) -> list[int]:
        return [pid for worker in self._workers for pid in worker.pids]

    def start(self) -> None:
        worker = self._acquire()
        try:
            worker.start()
        finally:
            self._release(worker)

    def _acquire(self) -> LambdaWorker:
        with self._free:
            while not self._idle and len(self._workers) >= self.size and not self._closed:
                self._free.wait()
            if self._closed:
                raise WorkerError("worker pool: stopped")
            if self._idle:
                worker = self._idle.pop()
            else:
                worker = self._make(len(self._workers))
                self._workers.append(worker)
            self._busy += 1
            self.peak_concurrency = max(self.peak_concurrency, self._busy)
            return worker

    def _release(self, worker: LambdaWorker) -> None:
        with self._free:
            self._busy -= 1
            # The most recently used environment is reused first: it is the warmest.
            self._idle.append(worker)
            self._free.notify()

    def invoke(self, event: Any, *, request_id: str | None = None) -> Any:
        """`LambdaWorker.invoke` on a free environment (waiting for one when all are busy)."""
        worker = self._acquire()
        try:
            return worker.invoke(event, request_id=request_id)
        finally:
            self._release(worker)

    def stop(self, grace_seconds: float = 3.0) -> None:
        with self._free:
            self._closed = True
            self._free.notify_all()
            workers = list(self._workers)
        for worker in workers:
            worker.stop(grace_seconds)


if __name__ == "__main__":
    sys.exit(_child())
