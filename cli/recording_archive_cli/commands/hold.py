"""`recording-archive hold set|clear (--session UUID | --recording UUID) --reason TEXT`: a legal
hold on a session's or a recording's events and archived objects, or its release.

`set`: S3 Object Lock legal hold ON on every version of the recordings concerned, and the
`LegalHold` marker (reason, time, who) on their event items, whose ExpiresAt is removed while held
(neither S3 nor DynamoDB TTL deletes a held recording or event; `erase` refuses it). `clear`: legal
hold OFF, marker removed, ExpiresAt restored from the stack's retention parameters. Each writes an
audit record (hold.set / hold.clear) with the reason and the counts. A recording not archived yet
has no object to hold: its item's marker is enough, the archiver writes it with the legal hold ON
(the claim reads the marker: dal/events_table.py, dal/recording_store.py); the output lists it.
Common options: `commands.options.common_options`.
"""

from __future__ import annotations

import argparse
from typing import Any

from recording_archive_cli.commands.options import common_options, identifier
from recording_archive_cli.commands.output import emit
from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.compliance import (
    object_versions,
    recording_scope,
    session_scope,
    set_hold,
)
from recording_archive_cli.operator.context import Ops


def _reason(text: str) -> str:
    value = " ".join(text.split())
    if not value:
        raise argparse.ArgumentTypeError("the reason must not be blank")
    if len(value) > 1000:
        raise argparse.ArgumentTypeError("at most 1000 characters")
    return value


def run_hold(args: argparse.Namespace) -> int:
    on = args.hold_command == "set"
    ops = Ops(args)
    _ = ops.names
    if args.session:
        scope = session_scope(ops, [args.session])
        what = f"session {args.session}"
        targets: dict[str, Any] = {"session_uuid": args.session}
    else:
        scope = recording_scope(ops, args.recording)
        what = f"recording {args.recording}"
        targets = {"recording_uuid": args.recording, "sessions": scope.sessions}
    if not scope.items:
        raise CLIError(f"no events of {what} in the archive")
    counts = set_hold(ops, scope, on=on, reason=args.reason)
    with ops.aws_errors("archive bucket"):
        unarchived = sorted(
            rid
            for rid, (_, bucket, key, _) in scope.recordings.items()
            if not (bucket and key and object_versions(ops, bucket, key))
        )
    targets["recordings"] = sorted(scope.recordings)
    action = "hold.set" if on else "hold.clear"
    with ops.aws_errors("audit table"):
        record = ops.audit.write(
            action, actor=ops.caller_arn, targets=targets, counts=counts, reason=args.reason
        )
    verb = "held" if on else "released"
    text = (
        f"{what} {verb}: {counts['items']} event item(s) ({counts['index_entries']} index "
        f"entries), {counts['object_versions']} object version(s) of {counts['recordings']} "
        f"recording(s); audit {record['AuditId']}"
    )
    if on and unarchived:
        text += (
            f"\nnot archived yet (the archiver will write it under legal hold): "
            f"{', '.join(unarchived)}"
        )
    emit(
        args,
        {
            "action": action,
            "targets": targets,
            "counts": counts,
            "not_archived": unarchived,
            "audit_id": record["AuditId"],
        },
        text,
    )
    return 0


def register(subparsers: Any) -> None:
    hold = subparsers.add_parser("hold", help="legal hold on a session or a recording")
    sub = hold.add_subparsers(dest="hold_command", metavar="COMMAND", required=True)
    for name, text in (
        ("set", "hold: Object Lock legal hold on the objects, TTL off on the events"),
        ("clear", "release: legal hold off, TTL restored"),
    ):
        p = sub.add_parser(name, parents=[common_options()], help=text)
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--session", metavar="UUID", type=identifier)
        which.add_argument("--recording", metavar="UUID", type=identifier)
        p.add_argument("--reason", type=_reason, required=True, help="why (kept in the audit)")
        p.set_defaults(func=run_hold)
