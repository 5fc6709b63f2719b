"""`recording-archive local` as a subprocess on free loopback ports, and what the suites read
from it: the local AWS (boto3 clients), the functions' worker processes, every output line."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from tests.e2e.conftest import LocalStackProcess, alive, descendants, start_local, stop_tree

TOKEN = "reliability-auth-token-5f0c2a9e"  # noqa: S105 - a local-only test token
REGION = "us-east-1"


class Stack:
    """A running local stack: its process, ports, resource names and AWS clients."""

    def __init__(self, proc: LocalStackProcess) -> None:
        self.proc = proc
        ready = proc.wait_for(lambda line: line.startswith("ready:"))
        self.table = ready.split("| table ", 1)[1].split(" ", 1)[0]
        self.bucket = ready.split("| bucket ", 1)[1].split(" ", 1)[0]
        self.callback_url = proc.callback_url
        self.endpoint = proc.endpoint
        self.token = proc.token

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto accepts anything
        )

    def lines(self) -> list[str]:
        """Every line the stack printed so far (its stdout, then the functions' stderr logs)."""
        with self.proc._lock:
            return [*self.proc.stdout, *self.proc.stderr]

    def worker_pids(self, logical_id: str) -> list[int]:
        """Live worker processes of one function (found by their --function-name argument)."""
        wanted = f"local-{logical_id}".encode()
        found = []
        for pid in descendants(self.proc.proc.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"recording_archive_cli.lambda_worker" in argv and wanted in argv and alive(pid):
                found.append(pid)
        return found

    def items(self) -> list[dict[str, Any]]:
        """Every item of the events table (consistent scan)."""
        ddb = self.client("dynamodb")
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        for _ in range(100_000):
            page = ddb.scan(**kwargs)
            out.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return out


def start_stack(*extra: str, aws_port: int | None = None, verbose: bool = True) -> Stack:
    flags = ["--no-demo", *(["--verbose"] if verbose else []), *extra]
    proc = start_local(*flags, token=TOKEN, aws_port=aws_port)
    try:
        return Stack(proc)
    except (IndexError, AssertionError):  # a ready line this code cannot read
        stop_tree(proc)
        raise


@contextmanager
def running_stack(*extra: str, aws_port: int | None = None) -> Iterator[Stack]:
    stack = start_stack(*extra, aws_port=aws_port)
    try:
        yield stack
    finally:
        stop_tree(stack.proc)


def wait_until(predicate: Any, timeout: float, interval: float = 0.5) -> bool:
    """Poll `predicate()` until true or `timeout` seconds have passed (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def env_args(pairs: Sequence[tuple[str, str, str]]) -> list[str]:
    out: list[str] = []
    for function, name, value in pairs:
        out += ["--env", f"{function}:{name}={value}"]
    return out
