"""`recording-archive local` as a subprocess on free loopback ports, and what the suites read
from it: the local AWS (boto3 clients), the functions' worker processes, every output line."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import boto3

from tests.support.local_stack import LocalStackProcess, start_local, stop_tree
from tests.support.processes import worker_pids

TOKEN = "reliability-auth-token-5f0c2a9e"  # noqa: S105 - a local-only test token
REGION = "us-east-1"


class Stack:
    """A running local stack: its process, ports, resource names and AWS clients."""

    def __init__(self, proc: LocalStackProcess) -> None:
        self.proc = proc
        # The stack's machine-readable ready file (read by start_local), not its console line.
        self.table: str = proc.ready["table"]
        self.bucket: str = proc.ready["bucket"]
        self.callback_url: str = proc.ready["callback_url"]
        self.endpoint: str = proc.ready["aws_endpoint_url"]
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
        return worker_pids(self.proc.proc.pid, logical_id)

    @cached_property
    def ddb(self) -> Any:
        """One DynamoDB client for the many reads of a suite (boto3 clients are thread-safe)."""
        return self.client("dynamodb")

    def item(self, session: str, seq: int, projection: str | None = None) -> dict[str, Any]:
        """One item of the events table (consistent read; {} when there is none)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"SessionUUID": {"S": session}, "SequenceNumber": {"N": str(seq)}},
            "ConsistentRead": True,
        }
        if projection:
            kwargs["ProjectionExpression"] = projection
        result: dict[str, Any] = self.ddb.get_item(**kwargs).get("Item", {})
        return result

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
    except KeyError:  # a ready file without a key this code reads
        stop_tree(proc)
        raise


@contextmanager
def running_stack(*extra: str, aws_port: int | None = None) -> Iterator[Stack]:
    stack = start_stack(*extra, aws_port=aws_port)
    try:
        yield stack
    finally:
        stop_tree(stack.proc)


def env_args(pairs: Sequence[tuple[str, str, str]]) -> list[str]:
    out: list[str] = []
    for function, name, value in pairs:
        out += ["--env", f"{function}:{name}={value}"]
    return out
