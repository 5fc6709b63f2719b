"""`recording-archive erase (--session UUID | --number NUMBER) [--include-source] [--dry-run]
[--yes]`: deletes everything the archive holds about the sessions: every event item, every
version and delete marker of their recordings' objects, their index entries, and with
`--include-source` the recordings at Plivo (as `purge-source` deletes them). `--number` finds the
sessions through the blinded index (`sessions find --number`).

Refused (exit 1, nothing deleted; a dry run too) when anything concerned is held (an item's
LegalHold marker or an object version's legal hold) or being archived right now. Asks for
confirmation on a terminal unless `--yes`, and refuses without a terminal. `--dry-run` prints
what it would delete and changes nothing. Idempotent and resumable: the sessions and object keys
go into an "erase.start" audit record before anything is deleted and "erase.done" follows; every
run first finishes the erases it finds started and not done (`operator.compliance`).
RecordingErased is published per recording. What it cannot reach is said: messages waiting in
the fallback queue, its dead-letter queue or the archive failure queue (they may hold events of
these sessions: run erase again after the drain), and the recordings at Plivo without
`--include-source`.
Common options: `commands.options.common_options`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from recording_archive.observability import mask_phone
from recording_archive_cli.commands.options import common_options, identifier, plivo_option
from recording_archive_cli.commands.output import emit, table
from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.compliance import (
    ErasePlan,
    execute_erase,
    object_uris,
    plan_erase,
    unfinished_erases,
    waiting_messages,
)
from recording_archive_cli.operator.context import Ops


def _number(text: str) -> str:
    from recording_archive.models.phone import normalise_number

    if normalise_number(text) is None:
        raise argparse.ArgumentTypeError("not a phone number (no digits, or too many)")
    return text


def _sessions(ops: Ops, args: argparse.Namespace) -> list[str]:
    if args.session:
        return [args.session]
    from recording_archive.models.errors import RecordingArchiveError

    try:
        with ops.aws_errors("session index"):
            found = ops.session_index.sessions_for_number(args.number)
    except RecordingArchiveError as exc:
        raise CLIError(f"session index: {exc or type(exc).__name__}") from None
    return [s.session_uuid for s in found]


def _confirm(plan: ErasePlan) -> bool:
    c = plan.counts()
    print(
        f"Erase {c['sessions']} session(s): {c['items']} event item(s), {c['object_versions']} "
        f"object version(s), {c['recordings']} recording(s)? This cannot be undone. [y/N] ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _refuse_if_blocked(plan: ErasePlan) -> None:
    if plan.held:
        shown = "; ".join(plan.held[:5]) + (" ..." if len(plan.held) > 5 else "")
        raise CLIError(f"refused, nothing deleted: {len(plan.held)} held ({shown})")
    if plan.busy:
        raise CLIError(
            "refused, nothing deleted: an archive attempt is running for "
            + "; ".join(plan.busy)
            + ": run erase again after it"
        )


def _erase(
    ops: Ops,
    plan: ErasePlan,
    start_targets: dict[str, Any],
    include_source: bool,
    start: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One erase: the start record (an unfinished erase has one already), the deletions, the
    done record naming the start (unless something is left)."""
    if start is None:
        with ops.aws_errors("audit table"):
            start = ops.audit.write(
                "erase.start",
                actor=ops.caller_arn,
                targets={**start_targets, "objects": object_uris(plan.scope)},
                counts=plan.counts(),
            )
    done = execute_erase(ops, plan, include_source=include_source)
    left = done.pop("left")
    if left:
        raise CLIError(
            f"erase {start['AuditId']} not finished, found again after deleting: "
            + "; ".join(left)
            + " (run erase again)"
        )
    with ops.aws_errors("audit table"):
        ops.audit.write(
            "erase.done",
            actor=ops.caller_arn,
            targets={"start_id": start["AuditId"], "sessions": plan.scope.sessions},
            counts=done,
        )
    return {"start_id": start["AuditId"], "sessions": plan.scope.sessions, "deleted": done}


def run_erase(args: argparse.Namespace) -> int:
    ops = Ops(args)
    _ = ops.names
    # 1. Erases that started and never finished are finished first (their sessions are known
    # from the start record even when the index entries that found them are gone).
    pending = unfinished_erases(ops)
    resumed: list[dict[str, Any]] = []
    plans: list[tuple[ErasePlan, dict[str, Any], bool]] = []
    for record in pending:
        targets = record.get("Targets") or {}
        plan = plan_erase(
            ops, [str(s) for s in targets.get("sessions") or []], targets.get("objects") or []
        )
        plans.append((plan, record, bool(targets.get("include_source"))))
    # 2. This request.
    sessions = _sessions(ops, args)
    request: dict[str, Any] = {"sessions": sessions, "include_source": args.include_source}
    if args.session:
        request["session_uuid"] = args.session
    else:
        request["number"] = mask_phone(args.number)
    plan = plan_erase(ops, sessions)
    for p, _, _ in plans:
        _refuse_if_blocked(p)
    _refuse_if_blocked(plan)
    counts = plan.counts()
    waiting = waiting_messages(ops)
    what = f"session {args.session}" if args.session else f"number {request['number']}"
    lines = []
    for p, record, _ in plans:
        lines.append(f"unfinished erase {record['AuditId']}: {p.counts()}")
    rows = [(k.replace("_", " "), v) for k, v in counts.items()]
    if args.dry_run:
        text = "\n".join(
            [*lines, f"dry run: erase of {what} would delete", table(("what", "count"), rows)]
        )
        text += _unreachable_text(waiting, args.include_source)
        emit(
            args,
            {
                "dry_run": True,
                "request": request,
                "would_delete": counts,
                "unfinished": [r["AuditId"] for _, r, _ in plans],
                "waiting_messages": waiting,
            },
            text,
        )
        return 0
    if not plans and not plan.scope.items and not any(plan.versions.values()):
        emit(
            args,
            {"dry_run": False, "request": request, "erased": [], "waiting_messages": waiting},
            f"nothing to erase for {what}" + _unreachable_text(waiting, args.include_source),
        )
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise CLIError("refusing to erase without --yes: no terminal to confirm on")
        if not _confirm(plan):
            raise CLIError("aborted: nothing deleted")
    if args.include_source or any(src for _, _, src in plans):
        _ = ops.plivo  # credentials checked before anything is deleted
    for p, record, include_source in plans:
        resumed.append(_erase(ops, p, {}, include_source, start=record))
    nothing = not plan.scope.items and not any(plan.versions.values())
    erased = None if nothing else _erase(ops, plan, request, args.include_source)
    text_lines = [f"finished unfinished erase {r['start_id']}: {r['deleted']}" for r in resumed]
    if erased is not None:
        deleted = erased["deleted"]
        text_lines.append(
            f"erased {what}: {len(sessions)} session(s)\n"
            + table(("what", "count"), [(k.replace("_", " "), v) for k, v in deleted.items()])
        )
    else:
        text_lines.append(f"nothing (left) to erase for {what}")
    emit(
        args,
        {
            "dry_run": False,
            "request": request,
            "resumed": resumed,
            "erased": erased,
            "waiting_messages": waiting,
        },
        "\n".join(text_lines) + _unreachable_text(waiting, args.include_source),
    )
    return 0


def _unreachable_text(waiting: dict[str, int], include_source: bool) -> str:
    parts = [f"{n} in the {label}" for label, n in waiting.items() if n]
    text = ""
    if parts:
        text += (
            "\nnot reachable: approximately "
            + ", ".join(parts)
            + " message(s) that may hold events of these sessions: run erase again after the drain"
        )
    if not include_source:
        text += "\nthe recordings at Plivo are not deleted (use --include-source)"
    return text


def register(subparsers: Any) -> None:
    erase = subparsers.add_parser(
        "erase",
        parents=[common_options()],
        help="delete every event, object version and index entry of sessions (right to erasure)",
    )
    which = erase.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", metavar="UUID", type=identifier)
    which.add_argument(
        "--number", metavar="NUMBER", type=_number, help="every session of this phone number"
    )
    erase.add_argument(
        "--include-source", action="store_true", help="also delete the recordings at Plivo"
    )
    erase.add_argument("--dry-run", action="store_true", help="print what would go; change nothing")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    plivo_option(erase)
    erase.set_defaults(func=run_erase)
