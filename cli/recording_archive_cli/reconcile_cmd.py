"""`recording-archive reconcile` and `recording-archive purge-source`: the archive vs Plivo.

- `reconcile --since DURATION [--until DURATION-AGO] [--dry-run]`: `logic.reconcile`, the code
  ReconcileFunction runs: every recording Plivo holds for the masking sessions created in the
  window that the archive lacks is recorded as a reconciled event and archived (create-only,
  verified). Idempotent. Exit 1 when a recording could not be archived or Plivo could not say.
- `purge-source --archived-before DURATION [--dry-run] [--yes]`: deletes from Plivo the
  recordings archived before now - DURATION, each only after its archived object has been re-read
  and found equal (size and SHA-256) to the index, right before the deletion. Asks for
  confirmation on stdin unless `--yes`. The deletion is noted on the item (SourceDeletedAt), so a
  second run skips it. Exit 1 if any recording could not be verified or deleted.
Credentials: the Plivo auth id and first token of the stack's auth secret. Common options: see
`recording_archive_cli.ops`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from recording_archive_cli.errors import CLIError
from recording_archive_cli.ops import (
    Ops,
    Progress,
    common_options,
    drop_metrics,
    duration,
    emit,
    media_retry_option,
    now_iso,
    plivo_option,
    runtime_logs,
    table,
)
from recording_archive_cli.ops_commands import verify_item


@contextmanager
def plivo_errors() -> Iterator[None]:
    from recording_archive.dal.plivo_api import PlivoApiError

    try:
        yield
    except PlivoApiError as exc:
        raise CLIError(f"Plivo API: {exc.message}") from None


# --- reconcile -----------------------------------------------------------------------------------
def run_reconcile(args: argparse.Namespace) -> int:
    from recording_archive.logic.reconcile import ReconcileEntry, Reconciler

    ops = Ops(args)
    _ = ops.names
    until = datetime.now(UTC) - (args.until or timedelta(0))
    since = until - args.since if args.until else datetime.now(UTC) - args.since
    if since >= until:
        raise CLIError("--since must reach further back than --until")
    progress = Progress("reconcile")

    def on_entry(entry: ReconcileEntry) -> None:
        drop_metrics()
        progress.update(note=entry.action.value)

    reconciler = Reconciler(ops.plivo, ops.index, ops.archiver)
    with runtime_logs(args.verbose), plivo_errors(), ops.aws_errors("reconcile"):
        report = reconciler.run(since, until, dry_run=args.dry_run, on_entry=on_entry)
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


# --- purge-source --------------------------------------------------------------------------------
def _confirm(count: int) -> bool:
    print(
        f"Delete {count} recording(s) from Plivo? They stay in the archive. [y/N] ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _purge_one(ops: Ops, item: dict[str, Any], dry_run: bool) -> tuple[str, str]:
    from recording_archive.dal.archive_index import SOURCE_DELETED_AT
    from recording_archive.dal.plivo_api import PlivoNotFoundError
    from recording_archive.models import item as f

    if item.get(SOURCE_DELETED_AT):
        return "already_deleted", str(item[SOURCE_DELETED_AT])
    status, detail = verify_item(ops, item)
    if status != "ok":
        return "not_verified", f"{status}: {detail}"
    if dry_run:
        return "would_delete", ""
    rid = str(item[f.RECORDING_UUID])
    outcome = "deleted"
    try:
        ops.plivo.delete_recording(rid)
    except PlivoNotFoundError:
        outcome = "already_gone"
    ops.index.mark_source_deleted(
        str(item[f.SESSION_UUID]), int(item[f.SEQUENCE_NUMBER]), at=now_iso()
    )
    return outcome, ""


def run_purge_source(args: argparse.Namespace) -> int:
    from recording_archive.models import item as f

    ops = Ops(args)
    _ = ops.names
    before = now_iso(datetime.now(UTC) - args.archived_before)
    with ops.aws_errors("events table"):
        items: dict[str, dict[str, Any]] = {}
        for item in ops.index.archived_items(before=before):
            rid = item.get(f.RECORDING_UUID)
            if rid and rid not in items:
                items[str(rid)] = item
    if not args.dry_run and items:
        _ = ops.plivo  # credentials checked before asking
        if not args.yes and not _confirm(len(items)):
            raise CLIError("aborted: nothing deleted")
    results = []
    progress = Progress("purge-source", len(items))
    with plivo_errors(), ops.aws_errors("purge-source"):
        for rid, item in items.items():
            outcome, detail = _purge_one(ops, item, args.dry_run)
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


# --- registration --------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    common = common_options()
    reconcile = subparsers.add_parser(
        "reconcile",
        parents=[common],
        help="archive every recording Plivo holds that the archive lacks",
        description=(
            "Ask Plivo's REST APIs for the masking sessions created in the window, their "
            "recordings, and archive each one the archive lacks (a reconciled event is recorded "
            "for it). Idempotent."
        ),
    )
    reconcile.add_argument(
        "--since", type=duration, required=True, help="window length, e.g. 48h or 7d"
    )
    reconcile.add_argument(
        "--until",
        type=duration,
        default=None,
        help="end the window this long ago (default: now)",
    )
    reconcile.add_argument("--dry-run", action="store_true", help="report, write nothing")
    plivo_option(reconcile)
    media_retry_option(reconcile)
    reconcile.set_defaults(func=run_reconcile)

    purge = subparsers.add_parser(
        "purge-source",
        parents=[common],
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
