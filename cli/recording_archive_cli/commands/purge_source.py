"""`recording-archive purge-source --archived-before DURATION [--dry-run] [--yes]`: deletes from
Plivo the recordings archived before now - DURATION, each only after its archived object has
been re-read and found equal (size and SHA-256) to the index, right before the deletion. Asks
for confirmation on stdin unless `--yes`. The deletion is noted on the item (SourceDeletedAt),
so a second run skips it. Exit 1 if any recording could not be verified or deleted.
Credentials: the Plivo auth id and first token of the stack's auth secret. Common options:
`commands.options.common_options`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from recording_archive.models import item as f
from recording_archive_cli.commands.options import common_options, duration, plivo_option
from recording_archive_cli.commands.output import Progress, emit, table
from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.context import Ops, now_iso
from recording_archive_cli.operator.plivo_source import archived_before, plivo_errors, purge_one


def _confirm(count: int) -> bool:
    print(
        f"Delete {count} recording(s) from Plivo? They stay in the archive. [y/N] ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def run_purge_source(args: argparse.Namespace) -> int:
    ops = Ops(args)
    _ = ops.names
    before = now_iso(datetime.now(UTC) - args.archived_before)
    items = archived_before(ops, before)
    if not args.dry_run and items:
        _ = ops.plivo  # credentials checked before asking
        if not args.yes and not _confirm(len(items)):
            raise CLIError("aborted: nothing deleted")
    results = []
    progress = Progress("purge-source", len(items))
    with plivo_errors(), ops.aws_errors("purge-source"):
        for rid, item in items.items():
            outcome, detail = purge_one(ops, item, args.dry_run)
            results.append(
                {
                    "recording_uuid": rid,
                    "session_uuid": item[f.SESSION_UUID],
                    "archived_at": item.get(f.ARCHIVED_AT),
                    "outcome": outcome,
                    "detail": detail,
                }
            )
            progress.update(note=outcome)
    progress.close()
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    summary = f"{'dry run: ' if args.dry_run else ''}{len(results)} archived before {before}: " + (
        ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to purge"
    )
    text = summary
    if results:
        text = (
            table(
                ("recording", "session", "archived at", "outcome", "detail"),
                [
                    (
                        r["recording_uuid"],
                        r["session_uuid"],
                        r["archived_at"],
                        r["outcome"],
                        r["detail"],
                    )
                    for r in results
                ],
            )
            + "\n"
            + summary
        )
    emit(
        args,
        {"archived_before": before, "dry_run": args.dry_run, "counts": counts, "results": results},
        text,
    )
    return 1 if counts.get("not_verified") else 0


def register(subparsers: Any) -> None:
    purge = subparsers.add_parser(
        "purge-source",
        parents=[common_options()],
        help="delete from Plivo the recordings archived and verified (opt-in)",
    )
    purge.add_argument(
        "--archived-before",
        type=duration,
        required=True,
        help="only recordings archived longer ago than this, e.g. 7d",
    )
    purge.add_argument("--dry-run", action="store_true", help="verify and report, delete nothing")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    plivo_option(purge)
    purge.set_defaults(func=run_purge_source)
