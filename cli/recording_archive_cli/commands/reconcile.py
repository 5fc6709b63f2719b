"""`recording-archive reconcile --since DURATION [--until DURATION-AGO] [--dry-run]`:
`logic.reconcile`, the code ReconcileFunction runs: every recording Plivo holds for the masking
sessions created in the window that the archive lacks is recorded as a reconciled event and
archived (create-only, verified). Idempotent. Exit 1 when a recording could not be archived or
Plivo could not say. Credentials: the Plivo auth id and first token of the stack's auth secret.
Common options: `commands.options.common_options`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from recording_archive_cli.commands.options import (
    common_options,
    duration,
    media_retry_option,
    plivo_option,
)
from recording_archive_cli.commands.output import Progress, emit, table
from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.context import Ops, runtime_logs
from recording_archive_cli.operator.plivo_source import reconcile


def run_reconcile(args: argparse.Namespace) -> int:
    ops = Ops(args)
    _ = ops.names
    until = datetime.now(UTC) - (args.until or timedelta(0))
    since = until - args.since if args.until else datetime.now(UTC) - args.since
    if since >= until:
        raise CLIError("--since must reach further back than --until")
    progress = Progress("reconcile")
    with runtime_logs(args.verbose):
        report = reconcile(
            ops,
            since,
            until,
            dry_run=args.dry_run,
            on_entry=lambda entry: progress.update(note=entry.action.value),
        )
    progress.close()
    entries = [
        {
            "session_uuid": e.session_uuid,
            "recording_uuid": e.recording_uuid,
            "action": e.action.value,
            "sequence_number": e.sequence_number,
            "reconciled_event": e.reconciled_event,
            "detail": e.detail,
        }
        for e in report.entries
    ]
    counts = report.counts()
    summary = (
        f"{'dry run: ' if args.dry_run else ''}{report.sessions} sessions, "
        f"{len(entries)} recordings on Plivo: "
        + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to do")
    )
    shown = [e for e in entries if e["action"] != "already_archived"]
    text = summary
    if shown:
        text = (
            table(
                ("session", "recording", "action", "seq", "new event", "detail"),
                [
                    (
                        e["session_uuid"],
                        e["recording_uuid"],
                        e["action"],
                        e["sequence_number"],
                        "yes" if e["reconciled_event"] else "",
                        e["detail"],
                    )
                    for e in shown
                ],
            )
            + "\n"
            + summary
        )
    data = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "dry_run": args.dry_run,
        "sessions": report.sessions,
        "counts": counts,
        "entries": entries,
    }
    emit(args, data, text)
    return 0 if report.ok else 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        parents=[common_options()],
        help="archive every recording Plivo holds that the archive lacks",
        description=(
            "Ask Plivo's REST APIs for the masking sessions created in the window, their "
            "recordings, and archive each one the archive lacks (a reconciled event is recorded "
            "for it). Idempotent."
        ),
    )
    parser.add_argument(
        "--since", type=duration, required=True, help="window length, e.g. 48h or 7d"
    )
    parser.add_argument(
        "--until",
        type=duration,
        default=None,
        help="end the window this long ago (default: now)",
    )
    parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
    plivo_option(parser)
    media_retry_option(parser)
    parser.set_defaults(func=run_reconcile)
