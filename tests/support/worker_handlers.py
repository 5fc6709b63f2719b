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


def stream_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A stream consumer that logs what it did (tests/integration/test_stream_parallelization).

    Appends one JSON line per invocation to $RA_TEST_LOG: pid, start and end times, and the
    (SessionUUID, SequenceNumber) of each record it completed. Sleeps $RA_TEST_SLEEP seconds
    (so concurrent invocations overlap). A record whose SessionUUID is $RA_TEST_FAIL_SESSION
    and SequenceNumber $RA_TEST_FAIL_SEQ fails once (a marker file next to the log remembers it,
    across worker processes): as a partial batch failure, or with $RA_TEST_FAIL_MODE=raise as a
    function error.
    """
    import json
    from pathlib import Path

    start = time.time()
    time.sleep(float(os.environ.get("RA_TEST_SLEEP", "0")))
    log = Path(os.environ["RA_TEST_LOG"])
    done: list[tuple[str, int]] = []
    failures: list[dict[str, str]] = []
    for record in event["Records"]:
        keys = record["dynamodb"]["Keys"]
        key = (keys["SessionUUID"]["S"], int(keys["SequenceNumber"]["N"]))
        wanted = (os.environ.get("RA_TEST_FAIL_SESSION"), os.environ.get("RA_TEST_FAIL_SEQ"))
        marker = log.with_suffix(".failed")
        if (key[0], str(key[1])) == wanted and not marker.exists():
            marker.write_text("1")
            if os.environ.get("RA_TEST_FAIL_MODE") == "raise":
                entry = {"pid": os.getpid(), "start": start, "end": time.time(), "done": done}
                with log.open("a") as out:
                    out.write(json.dumps({**entry, "raised": True}) + "\n")
                raise RuntimeError("injected function error")
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
            break  # a consumer stops at its first failure (the rest is retried after it)
        done.append(key)
    entry = {"pid": os.getpid(), "start": start, "end": time.time(), "done": done}
    with log.open("a") as out:
        out.write(json.dumps(entry) + "\n")
    return {"batchItemFailures": failures}


def sqs_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An SQS consumer that logs pid, start, end and message bodies to $RA_TEST_LOG, after
    sleeping $RA_TEST_SLEEP seconds."""
    import json
    from pathlib import Path

    start = time.time()
    time.sleep(float(os.environ.get("RA_TEST_SLEEP", "0")))
    bodies = [record["body"] for record in event["Records"]]
    entry = {"pid": os.getpid(), "start": start, "end": time.time(), "done": bodies}
    with Path(os.environ["RA_TEST_LOG"]).open("a") as out:
        out.write(json.dumps(entry) + "\n")
    return {"batchItemFailures": []}
