"""`recording-archive sessions show SESSION_UUID`: the session's events in SequenceNumber order
(reconciled events have negative numbers and come first), with event name, time, recording id,
source and archive status. Common options: `commands.options.common_options`."""

from __future__ import annotations

import argparse
from typing import Any

from recording_archive.models import item as f
from recording_archive_cli.commands.options import common_options, identifier
from recording_archive_cli.commands.output import emit, table
from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.archive import public_item
from recording_archive_cli.operator.context import Ops


def run_sessions_show(args: argparse.Namespace) -> int:
    ops = Ops(args)
    _ = ops.names
    with ops.aws_errors("events table"):
        events = ops.index.session_events(args.session_uuid)
    if not events:
        raise CLIError(f"no events for session {args.session_uuid}")
    rows = [
        (
            e[f.SEQUENCE_NUMBER],
            e.get(f.EVENT_NAME),
            e.get(f.EVENT_TIME) or e.get(f.RECEIVED_AT),
            e.get(f.RECORDING_UUID),
            e.get(f.SOURCE),
            e.get(f.ARCHIVE_STATUS),
            e.get(f.ARCHIVE_ATTEMPTS),
        )
        for e in events
    ]
    text = f"session {args.session_uuid}\n" + table(
        ("seq", "event", "time", "recording", "source", "archive", "attempts"), rows
    )
    emit(
        args, {"session_uuid": args.session_uuid, "events": [public_item(e) for e in events]}, text
    )
    return 0


def register(subparsers: Any) -> None:
    sessions = subparsers.add_parser("sessions", help="a masking session's events")
    sessions_sub = sessions.add_subparsers(
        dest="sessions_command", metavar="COMMAND", required=True
    )
    show = sessions_sub.add_parser(
        "show", parents=[common_options()], help="the session's events in SequenceNumber order"
    )
    show.add_argument("session_uuid", metavar="SESSION_UUID", type=identifier)
    show.set_defaults(func=run_sessions_show)
