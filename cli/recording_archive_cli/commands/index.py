"""`recording-archive index rebuild`: write the session index entries of every stored event.

A one-off for events stored before the index existed (or whose entries a failed index write
left out: the functions count those in `IndexWriteFailed`). It reads the whole events table with a
Scan (the only command that does), computes each event's day and number entries as the functions
do (dal/session_index.py) and writes them in batches. Idempotent: entries are plain puts of fixed
content, so a second run writes the same entries again and changes nothing. Prints the counts.
Common options: `commands.options.common_options`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from recording_archive.models import item as f
from recording_archive_cli.commands.options import common_options
from recording_archive_cli.commands.output import Progress, emit
from recording_archive_cli.commands.sessions import index_errors
from recording_archive_cli.operator.context import Ops

# What an event's entries are computed from: nothing else of the item is read.
_ATTRIBUTES = (
    f.SESSION_UUID,
    f.SEQUENCE_NUMBER,
    f.EVENT_NAME,
    f.RECEIVED_AT,
    f.EXPIRES_AT,
    f.PAYLOAD,
)


def _events(ops: Ops, counts: dict[str, int]) -> Iterator[dict[str, Any]]:
    """Every event of the table (Scan, page after page); an item without the attributes an
    entry needs is counted as skipped."""
    from recording_archive.dal.events_table import deserialize_item

    names = {f"#a{i}": name for i, name in enumerate(_ATTRIBUTES)}
    pages = (
        ops.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=ops.names.table,
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
        )
    )
    progress = Progress("index rebuild")
    try:
        for page in pages:
            for typed in page.get("Items", []):
                item = deserialize_item(typed)
                counts["events"] += 1
                progress.update()
                if not item.get(f.RECEIVED_AT) or item.get(f.SEQUENCE_NUMBER) is None:
                    counts["skipped"] += 1
                    continue
                yield item
    finally:
        progress.close()


def run_index_rebuild(args: argparse.Namespace) -> int:
    ops = Ops(args)
    _ = ops.names
    counts = {"events": 0, "skipped": 0, "entries_written": 0}
    with index_errors(ops):
        counts["entries_written"] = ops.session_index.add_events(_events(ops, counts))
    text = (
        f"index rebuild: {counts['events']} events read from {ops.names.table}, "
        f"{counts['entries_written']} index entries written to {ops.index_table}"
        + (f", {counts['skipped']} events skipped (no ReceivedAt)" if counts["skipped"] else "")
    )
    emit(args, {"table": ops.names.table, "index_table": ops.index_table, **counts}, text)
    return 0


def register(subparsers: Any) -> None:
    index = subparsers.add_parser("index", help="the session index (sessions list / find)")
    index_sub = index.add_subparsers(dest="index_command", metavar="COMMAND", required=True)
    rebuild = index_sub.add_parser(
        "rebuild",
        parents=[common_options()],
        help="write the index entries of every stored event (a Scan of the events table)",
    )
    rebuild.set_defaults(func=run_index_rebuild)
