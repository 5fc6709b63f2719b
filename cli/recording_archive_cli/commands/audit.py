"""`recording-archive audit [--since DURATION] [--until TIME] [--json]`: the audit records of the
operator CLI (holds, releases, erases, downloads, presigned URLs, retries) written in the window,
oldest first: when, who (the STS caller ARN), what (UUIDs, counts, the reason). `--since`
defaults to 24h; `--until` is an ISO-8601 time (UTC when it names no offset), default now.
Common options: `commands.options.common_options`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from recording_archive_cli.commands.options import common_options, duration
from recording_archive_cli.commands.output import emit, table
from recording_archive_cli.operator.context import Ops


def point_in_time(text: str) -> datetime:
    """An ISO-8601 time ("2026-12-03T17:00:00Z", "2026-12-03"); UTC unless it names an offset."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use ISO-8601, e.g. 2026-12-03T17:00:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _value(value: Any) -> str:
    """A list as its first two values and how many more (an erase names every object key)."""
    if isinstance(value, list):
        shown = ",".join(str(v) for v in value[:2])
        return shown + (f",+{len(value) - 2}" if len(value) > 2 else "")
    return str(value)


def _summary(record: dict[str, Any]) -> str:
    targets = sorted((record.get("Targets") or {}).items())
    parts = [f"{k}={_value(v)}" for k, v in targets if v not in ("", None, [])]
    parts += [f"{k}={v}" for k, v in sorted((record.get("Counts") or {}).items())]
    return " ".join(parts)


def run_audit(args: argparse.Namespace) -> int:
    until = args.until or datetime.now(UTC)
    since = until - args.since
    ops = Ops(args)
    with ops.aws_errors("audit table"):
        records = ops.audit.records(since, until)
    data = [
        {
            "at": r.get("At"),
            "id": r.get("AuditId"),
            "action": r.get("Action"),
            "actor": r.get("Actor"),
            "targets": r.get("Targets") or {},
            "counts": r.get("Counts") or {},
            "reason": r.get("Reason"),
        }
        for r in records
    ]
    rows = [
        (d["at"], d["action"], d["actor"], _summary(records[i]), d["reason"] or "")
        for i, d in enumerate(data)
    ]
    text = table(("at", "action", "actor", "what", "reason"), rows)
    emit(args, data, text + f"\n{len(data)} record(s) since {since.isoformat()}")
    return 0


def _since(text: str) -> timedelta:
    value = duration(text)
    if value > timedelta(days=3660):
        raise argparse.ArgumentTypeError("at most 3660d (one query per day)")
    return value


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser(
        "audit", parents=[common_options()], help="the operator CLI's audit records"
    )
    audit.add_argument(
        "--since", type=_since, default=timedelta(hours=24), help="window length, e.g. 7d (24h)"
    )
    audit.add_argument("--until", type=point_in_time, help="end of the window (ISO-8601; now)")
    audit.set_defaults(func=run_audit)
