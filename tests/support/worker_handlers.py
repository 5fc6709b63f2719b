"""Handlers run by `LambdaWorker` children in tests/unit/test_lambda_worker.py (imported by
name in a child process, so they live in tests/support, not in a test package)."""

from __future__ import annotations

import os
import time
from typing import Any

print("noise printed at import must not break the protocol")


def env(event: dict[str, Any], context: Any) -> dict[str, Any]:
    print("noise printed by a handler must not break the protocol")
    return {
        "values": {name: os.environ.get(name) for name in event["names"]},
        "function_name": context.function_name,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "pid": os.getpid(),
    }


def fail(event: dict[str, Any], context: Any) -> None:
    raise ValueError("bad record")


def sleep(event: dict[str, Any], context: Any) -> int:
    time.sleep(event["seconds"])
    return os.getpid()


def die(event: dict[str, Any], context: Any) -> None:
    os._exit(3)
