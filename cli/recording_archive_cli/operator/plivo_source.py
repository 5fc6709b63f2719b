"""The archive against Plivo: reconcile (`logic.reconcile`, the code ReconcileFunction runs) and
purge recordings from Plivo once their archived copy is verified."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from recording_archive.models import item as f
from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.archive import verify_item
from recording_archive_cli.operator.context import Ops, drop_metrics, now_iso


@contextmanager
def plivo_errors() -> Iterator[None]:
    from recording_archive.dal.plivo_api import PlivoApiError

    try:
        yield
    except PlivoApiError as exc:
        raise CLIError(f"Plivo API: {exc.message}") from None


def reconcile(
    ops: Ops,
    since: datetime,
    until: datetime,
    *,
    dry_run: bool,
    on_entry: Callable[[Any], None],
) -> Any:
    """Run the Reconciler on the window; `on_entry` sees each ReconcileEntry. The report."""
    from recording_archive.logic.reconcile import Reconciler

    def each(entry: Any) -> None:
        drop_metrics()
        on_entry(entry)

    reconciler = Reconciler(ops.plivo, ops.index, ops.archiver, entries=ops.session_index)
    with plivo_errors(), ops.aws_errors("reconcile"):
        return reconciler.run(since, until, dry_run=dry_run, on_entry=each)


def archived_before(ops: Ops, before: str) -> dict[str, dict[str, Any]]:
    """Recording UUID -> its first item archived before `before` (ISO time)."""
    items: dict[str, dict[str, Any]] = {}
    with ops.aws_errors("events table"):
        for item in ops.index.archived_items(before=before):
            rid = item.get(f.RECORDING_UUID)
            if rid and rid not in items:
                items[str(rid)] = item
    return items


def purge_one(ops: Ops, item: dict[str, Any], dry_run: bool) -> tuple[str, str]:
    """Delete one recording from Plivo after re-verifying its archived copy: (outcome, detail)."""
    from recording_archive.dal.archive_index import SOURCE_DELETED_AT

    if item.get(SOURCE_DELETED_AT):
        return "already_deleted", str(item[SOURCE_DELETED_AT])
    status, detail = verify_item(ops, item)
    if status != "ok":
        return "not_verified", f"{status}: {detail}"
    if dry_run:
        return "would_delete", ""
    outcome = delete_at_source(ops, str(item[f.RECORDING_UUID]))
    ops.index.mark_source_deleted(
        str(item[f.SESSION_UUID]), int(item[f.SEQUENCE_NUMBER]), at=now_iso()
    )
    return outcome, ""


def delete_at_source(ops: Ops, recording_uuid: str) -> str:
    """Delete one recording from Plivo: "deleted", or "already_gone" (Plivo answered 404).
    Also `erase --include-source`."""
    from recording_archive.dal.plivo_api import PlivoNotFoundError

    try:
        ops.plivo.delete_recording(recording_uuid)
    except PlivoNotFoundError:
        return "already_gone"
    return "deleted"
