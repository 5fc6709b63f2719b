"""`recording-archive recordings get|pending|failed|retry`: find, fetch and push through
recordings.

- `get RECORDING_UUID [--url | --download PATH]`: the archived object's details; a presigned URL
  (`--expires`, 300 s by default, at most an hour); or the file, written next to PATH first and
  moved into place only once its size and SHA-256 equal the index's.
- `pending` / `failed`: the ArchiveQueueIndex, with attempts and last error.
- `retry (RECORDING_UUID... | --failed)`: requeued and archived now through the archiver itself
  (create-only, verified); exit 1 if any is not archived.
Common options: `commands.options.common_options`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recording_archive.models import item as f
from recording_archive_cli.commands.options import (
    common_options,
    identifier,
    media_retry_option,
    positive_int,
)
from recording_archive_cli.commands.output import Progress, emit, plain, table
from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.archive import (
    archived_item,
    completed_items,
    download_verified,
    failed_items,
    presigned_url,
    public_item,
    retry_item,
)
from recording_archive_cli.operator.context import Ops, now_iso, runtime_logs

MAX_URL_EXPIRY = 3600


def _when(epoch: Any) -> str:
    if epoch is None:
        return ""
    return now_iso(datetime.fromtimestamp(int(epoch), tz=UTC))


def _audit(
    ops: Ops, action: str, targets: dict[str, Any], counts: dict[str, int] | None = None
) -> None:
    with ops.aws_errors("audit table"):
        ops.audit.write(action, actor=ops.caller_arn, targets=targets, counts=counts)


# --- get -----------------------------------------------------------------------------------------
def run_recordings_get(args: argparse.Namespace) -> int:
    ops = Ops(args)
    item, items = archived_item(ops, args.recording_uuid)
    if item is None:
        states = ", ".join(sorted({str(i.get(f.ARCHIVE_STATUS)) for i in items}))
        if args.url or args.download:
            raise CLIError(f"recording {args.recording_uuid} is not archived ({states})")
        emit(
            args,
            {"archived": False, "events": [public_item(i) for i in items]},
            f"recording {args.recording_uuid} is not archived yet ({states})",
        )
        return 1
    details = {
        "recording_uuid": args.recording_uuid,
        "session_uuid": item[f.SESSION_UUID],
        "sequence_number": item[f.SEQUENCE_NUMBER],
        "source": item.get(f.SOURCE),
        "bucket": item.get(f.ARCHIVE_BUCKET),
        "key": item.get(f.ARCHIVE_KEY),
        "version_id": item.get(f.ARCHIVE_VERSION_ID),
        "size": item.get(f.ARCHIVE_SIZE),
        "sha256": item.get(f.ARCHIVE_SHA256),
        "archived_at": item.get(f.ARCHIVED_AT),
        "duration_seconds": item.get(f.RECORDING_DURATION_SECONDS),
        "start_time": item.get(f.RECORDING_START_TIME),
    }
    # Audited before the URL or the file is handed out: no access without its record.
    audit_targets = {k: details[k] for k in ("recording_uuid", "session_uuid", "key", "version_id")}
    if args.url:
        url = presigned_url(ops, item, args.expires)
        _audit(ops, "recording.url", audit_targets, {"expires_in": args.expires})
        emit(args, {**details, "url": url, "expires_in": args.expires}, url)
        return 0
    if args.download:
        target = Path(args.download)
        if target.exists():  # checked again by download_verified; before the audit record
            raise CLIError(f"{target} exists: choose another path")
        _audit(ops, "recording.download", audit_targets)
        size, sha = download_verified(ops, item, target)
        emit(
            args,
            {**details, "path": str(target), "verified": True},
            f"{target}: {size} bytes, sha256 {sha} (verified against the index)",
        )
        return 0
    text = "\n".join(f"{k:<17} {'' if v is None else plain(v)}" for k, v in details.items())
    emit(args, details, text)
    return 0


# --- pending / failed ----------------------------------------------------------------------------
def run_recordings_queue(args: argparse.Namespace) -> int:
    state = f.ArchiveStatus.FAILED if args.queue == "failed" else f.ArchiveStatus.PENDING
    ops = Ops(args)
    _ = ops.names
    with ops.aws_errors("events table"):
        items = list(ops.index.archive_queue(state, limit=args.limit))
    rows = [
        (
            i[f.SESSION_UUID],
            i[f.SEQUENCE_NUMBER],
            i.get(f.RECORDING_UUID),
            i.get(f.SOURCE),
            i.get(f.ARCHIVE_ATTEMPTS, 0),
            _when(i.get(f.ARCHIVE_DUE_AT)),
            " ".join(str(i.get(f.ARCHIVE_LAST_ERROR) or "").split())[:80],
        )
        for i in items
    ]
    text = table(("session", "seq", "recording", "source", "attempts", "due", "last error"), rows)
    text += f"\n{len(items)} {state.value.lower()}"
    data = [
        {
            "session_uuid": i[f.SESSION_UUID],
            "sequence_number": i[f.SEQUENCE_NUMBER],
            "recording_uuid": i.get(f.RECORDING_UUID),
            "source": i.get(f.SOURCE),
            "attempts": i.get(f.ARCHIVE_ATTEMPTS, 0),
            "due_at": _when(i.get(f.ARCHIVE_DUE_AT)),
            "last_error": i.get(f.ARCHIVE_LAST_ERROR),
        }
        for i in items
    ]
    emit(args, data, text)
    return 0


# --- retry ---------------------------------------------------------------------------------------
def run_recordings_retry(args: argparse.Namespace) -> int:
    if bool(args.recording_uuids) == bool(args.failed):
        raise CLIError("name recordings to retry, or pass --failed (not both)")
    ops = Ops(args)
    _ = ops.names
    targets: list[tuple[str, dict[str, Any] | None]] = []
    if args.failed:
        targets.extend(failed_items(ops, args.limit))
    else:
        for rid in args.recording_uuids:
            items = completed_items(ops, rid)
            if items:
                targets.extend((rid, i) for i in items)
            else:
                targets.append((rid, None))
    results = []
    progress = Progress("retry", len(targets))
    with runtime_logs(args.verbose):
        for rid, item in targets:
            if item is None:
                outcome, detail, session, seq = "not_found", "no such recording", None, None
            else:
                outcome, detail = retry_item(ops, item)
                session, seq = item[f.SESSION_UUID], item[f.SEQUENCE_NUMBER]
            results.append(
                {
                    "recording_uuid": rid,
                    "session_uuid": session,
                    "sequence_number": seq,
                    "outcome": outcome,
                    "detail": detail,
                }
            )
            progress.update(note=rid)
    progress.close()
    text = table(
        ("recording", "session", "seq", "outcome", "detail"),
        [
            (
                r["recording_uuid"],
                r["session_uuid"],
                r["sequence_number"],
                r["outcome"],
                r["detail"],
            )
            for r in results
        ],
    )
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[str(r["outcome"])] = outcomes.get(str(r["outcome"]), 0) + 1
    _audit(
        ops,
        "recording.retry",
        {"recordings": sorted({str(r["recording_uuid"]) for r in results})},
        outcomes,
    )
    emit(args, results, text + f"\n{len(results)} retried")
    good = {"archived", "already_archived"}
    return 0 if all(r["outcome"] in good for r in results) else 1


# --- registration --------------------------------------------------------------------------------
def _expiry(text: str) -> int:
    value = positive_int(text)
    if value > MAX_URL_EXPIRY:
        raise argparse.ArgumentTypeError(f"at most {MAX_URL_EXPIRY} seconds")
    return value


def register(subparsers: Any) -> None:
    common = common_options()
    recordings = subparsers.add_parser("recordings", help="find, fetch and retry recordings")
    rec_sub = recordings.add_subparsers(dest="recordings_command", metavar="COMMAND", required=True)
    get = rec_sub.add_parser("get", parents=[common], help="an archived recording")
    get.add_argument("recording_uuid", metavar="RECORDING_UUID", type=identifier)
    how = get.add_mutually_exclusive_group()
    how.add_argument("--url", action="store_true", help="print a presigned URL")
    how.add_argument("--download", metavar="PATH", help="write the file, verified by SHA-256")
    get.add_argument(
        "--expires", type=_expiry, default=300, help="presigned URL lifetime in seconds (300)"
    )
    get.set_defaults(func=run_recordings_get)

    for queue, text in (
        ("pending", "recordings the archiver has not finished"),
        ("failed", "recordings that failed for good (until retried)"),
    ):
        q = rec_sub.add_parser(queue, parents=[common], help=text)
        q.add_argument("--limit", type=positive_int, default=1000)
        q.set_defaults(func=run_recordings_queue, queue=queue)

    retry = rec_sub.add_parser(
        "retry", parents=[common], help="re-archive now (create-only, verified)"
    )
    retry.add_argument("recording_uuids", metavar="RECORDING_UUID", nargs="*", type=identifier)
    retry.add_argument("--failed", action="store_true", help="every FAILED recording")
    retry.add_argument("--limit", type=positive_int, default=1000)
    media_retry_option(retry)
    retry.set_defaults(func=run_recordings_retry)
