"""Run one function's code in a process of its own, with a worker's exact environment.

    python -m reliability.invoke sweep [--now-offset SECONDS]
    python -m reliability.invoke archive-batch EVENT.json

`sweep` runs SweeperFunction's `sweep()` as the schedule would, then ArchiveWorkFunction's record
handler on each key it enqueued, with the clock moved forward by `--now-offset` (standing in for
the backoff minutes between sweeps; run with both functions' environments); `archive-batch` runs
ArchiveFunction's `lambda_handler` on a stream event. Both print their result as JSON on stdout;
the functions' own logs (JSON, EMF metrics) go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.lambda_context import FakeLambdaContext


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reliability.invoke")
    sub = parser.add_subparsers(dest="what", required=True)
    sweep = sub.add_parser("sweep")
    sweep.add_argument("--now-offset", type=float, default=0.0)
    batch = sub.add_parser("archive-batch")
    batch.add_argument("event", type=Path)
    args = parser.parse_args(argv)
    result: Any
    if args.what == "sweep":
        from tests.support.archive_work import sweep_and_archive

        # The sweep, then ArchiveWorkFunction's handler on each key it enqueued, in this process
        # with the moved clock (the stack's own poller would archive on the real one).
        result = sweep_and_archive(now=time.time() + args.now_offset, via_queue=False)
    else:
        from recording_archive.handlers import archive_stream

        event = json.loads(args.event.read_text("utf-8"))
        result = archive_stream.lambda_handler(event, FakeLambdaContext())  # type: ignore[arg-type]
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
