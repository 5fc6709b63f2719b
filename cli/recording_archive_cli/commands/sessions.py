"""`recording-archive sessions show|list|find`. Common options: `commands.options.common_options`.

- `show SESSION_UUID`: the session's events in SequenceNumber order (reconciled events have
  negative numbers and come first), with event name, time, recording id, source and archive
  status.
- `list [--since DURATION] [--until TIME] [--status STATUS] [--limit N] [--cursor C]`: the sessions
  with events received in the window, newest first, from the session index's day partitions (no
  Scan); `--status` keeps the sessions with a recording in that archive state (NONE: no
  recording), read from each listed session's events (a Query per session).
- `find --number NUMBER [--since DURATION]`: the sessions in which the number was From, To or
  VirtualNumber, through the blinded index (KMS HMAC of its digits). The number is never printed
  in full: it is masked as in the logs.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from recording_archive.models import item as f
from recording_archive.models.errors import SessionIndexUnavailableError
from recording_archive.observability import mask_phone
from recording_archive_cli.commands.options import (
    common_options,
    duration,
    identifier,
    instant,
    positive_int,
)
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


# --status: an archive state, or NONE for a session without a recording.
NO_RECORDING = "NONE"
STATUSES = (*(s.value for s in f.ArchiveStatus), NO_RECORDING)
DEFAULT_SINCE = "24h"
# Sessions per index page read while filtering by --status.
_PAGE = 100


@contextmanager
def index_errors(ops: Ops) -> Iterator[None]:
    """The session index's failures (table, KMS) as one-line CLIErrors."""
    with ops.aws_errors("session index"):
        try:
            yield
        except SessionIndexUnavailableError as exc:
            raise CLIError(f"{exc} (table {ops.index_table})") from None


def archive_states(events: list[dict[str, Any]]) -> list[str]:
    """The archive states of a session's recordings (Completed events), or [NONE]."""
    states = {
        str(e.get(f.ARCHIVE_STATUS) or NO_RECORDING)
        for e in events
        if e.get(f.EVENT_NAME) == f.EVENT_COMPLETED
    }
    return sorted(states) or [NO_RECORDING]


def _summary_row(summary: Any, states: list[str] | None) -> dict[str, Any]:
    row = {
        "session_uuid": summary.session_uuid,
        "last_received_at": summary.last_received_at,
        "first_received_at": summary.first_received_at,
        "events": summary.events,
    }
    if states is not None:
        row["archive_status"] = states
    return row


def run_sessions_list(args: argparse.Namespace) -> int:
    until: datetime = args.until or datetime.now(UTC)
    since = until - args.since
    ops = Ops(args)
    _ = ops.names
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    cursor: str | None = args.cursor
    with index_errors(ops):
        while len(rows) < args.limit:
            want = args.limit - len(rows)
            try:
                page, cursor = ops.session_index.sessions(
                    since,
                    until,
                    limit=want if args.status is None else min(want, _PAGE),
                    cursor=cursor,
                )
            except ValueError as exc:
                raise CLIError(str(exc)) from None
            for summary in page:
                if summary.session_uuid in seen:
                    continue
                seen.add(summary.session_uuid)
                states = archive_states(ops.index.session_events(summary.session_uuid))
                if args.status is None or args.status in states:
                    rows.append(_summary_row(summary, states))
            if cursor is None:
                break
    text = (
        f"sessions received {since.isoformat()} .. {until.isoformat()}"
        + (f", archive status {args.status}" if args.status else "")
        + "\n"
        + table(
            ("session", "last event", "first event", "events", "archive"),
            [
                (
                    r["session_uuid"],
                    r["last_received_at"],
                    r["first_received_at"],
                    r["events"],
                    ",".join(r["archive_status"]),
                )
                for r in rows
            ],
        )
        + (f"\nmore: --cursor {cursor}" if cursor else "")
    )
    data = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "status": args.status,
        "sessions": rows,
        "next_cursor": cursor,
    }
    emit(args, data, text)
    return 0


def run_sessions_find(args: argparse.Namespace) -> int:
    masked = mask_phone(args.number)
    since = datetime.now(UTC) - args.since if args.since is not None else None
    ops = Ops(args)
    _ = ops.names
    with index_errors(ops):
        try:
            found = ops.session_index.sessions_for_number(args.number, since=since)
        except ValueError:
            # Never the value itself: it may be most of a phone number.
            raise CLIError(
                f"--number {masked}: not a phone number (no digit, or too many)"
            ) from None
    rows = [_summary_row(s, None) for s in found]
    text = (
        f"sessions with number {masked}"
        + (f" since {since.isoformat()}" if since else "")
        + "\n"
        + table(
            ("session", "last event", "first event", "events"),
            [
                (r["session_uuid"], r["last_received_at"], r["first_received_at"], r["events"])
                for r in rows
            ],
        )
    )
    data = {"number": masked, "since": since.isoformat() if since else None, "sessions": rows}
    emit(args, data, text)
    return 0


def _status(text: str) -> str:
    value = text.strip().upper()
    if value not in STATUSES:
        raise argparse.ArgumentTypeError(
            f"not an archive status: {text!r} (one of {', '.join(STATUSES)})"
        )
    return value


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
    listing = sessions_sub.add_parser(
        "list",
        parents=[common_options()],
        help="sessions with events received in a window, newest first (the session index)",
    )
    listing.add_argument(
        "--since",
        type=duration,
        default=duration(DEFAULT_SINCE),
        metavar="DURATION",
        help=f"the window's length before --until, e.g. 30m, 1h, 2d, 1w ({DEFAULT_SINCE})",
    )
    listing.add_argument(
        "--until",
        type=instant,
        metavar="TIME",
        help="the window's end, ISO-8601 (UTC without an offset); default now",
    )
    listing.add_argument(
        "--status",
        type=_status,
        metavar="STATUS",
        help=f"only sessions with a recording in this archive state: {', '.join(STATUSES)}",
    )
    listing.add_argument(
        "--limit", type=positive_int, default=100, metavar="N", help="at most N sessions (100)"
    )
    listing.add_argument("--cursor", help="continue a listing where the last one stopped")
    listing.set_defaults(func=run_sessions_list)
    find = sessions_sub.add_parser(
        "find",
        parents=[common_options()],
        help="sessions in which a phone number was From, To or VirtualNumber (blinded index)",
    )
    find.add_argument(
        "--number",
        required=True,
        metavar="NUMBER",
        help="the phone number, with or without + (digits as Plivo sends them)",
    )
    find.add_argument(
        "--since", type=duration, metavar="DURATION", help="only events received since then"
    )
    find.set_defaults(func=run_sessions_find)
