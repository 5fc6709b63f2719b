"""`recording-archive verify [--since DURATION]`: re-reads each archived object (by its version
when known) and compares size and SHA-256 with the index; exit 1 on any mismatch or missing
object. Common options: `commands.options.common_options`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from recording_archive.models import item as f
from recording_archive_cli.commands.options import common_options, duration
from recording_archive_cli.commands.output import Progress, emit, table
from recording_archive_cli.operator.archive import verify_item
from recording_archive_cli.operator.context import Ops, now_iso


def run_verify(args: argparse.Namespace) -> int:
    ops = Ops(args)
    _ = ops.names
    after = now_iso(datetime.now(UTC) - args.since) if args.since else None
    results = []
    progress = Progress("verify")
    with ops.aws_errors("events table"):
        for item in ops.index.archived_items(after=after):
            status, detail = verify_item(ops, item)
            results.append(
                {
                    "recording_uuid": item.get(f.RECORDING_UUID),
                    "session_uuid": item[f.SESSION_UUID],
                    "sequence_number": item[f.SEQUENCE_NUMBER],
                    "key": item.get(f.ARCHIVE_KEY),
                    "size": item.get(f.ARCHIVE_SIZE),
                    "status": status,
                    "detail": detail,
                }
            )
            progress.update(note=status)
    progress.close()
    bad = [r for r in results if r["status"] != "ok"]
    text = ""
    if bad:
        text = (
            table(
                ("recording", "session", "status", "detail"),
                [(r["recording_uuid"], r["session_uuid"], r["status"], r["detail"]) for r in bad],
            )
            + "\n"
        )
    text += f"{len(results)} archived objects checked, {len(bad)} problem(s)"
    emit(args, {"checked": len(results), "problems": len(bad), "results": results}, text)
    return 1 if bad else 0


def register(subparsers: Any) -> None:
    verify = subparsers.add_parser(
        "verify",
        parents=[common_options()],
        help="re-read archived objects: size and SHA-256 vs the index",
    )
    verify.add_argument(
        "--since", type=duration, default=None, help="only objects archived in this last DURATION"
    )
    verify.set_defaults(func=run_verify)
