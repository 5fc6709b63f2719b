"""`recording-archive sessions|recordings|verify`: find, fetch, prove and push through recordings.

- `sessions show SESSION_UUID`: the session's events in SequenceNumber order (reconciled events
  have negative numbers and come first), with event name, time, recording id, source and archive
  status.
- `recordings get RECORDING_UUID [--url | --download PATH]`: the archived object's details; a
  presigned URL (`--expires`, 300 s by default, at most an hour); or the file, written next to
  PATH first and moved into place only once its size and SHA-256 equal the index's.
- `recordings pending` / `recordings failed`: the ArchiveQueueIndex, with attempts and last error.
- `recordings retry (RECORDING_UUID... | --failed)`: requeued and archived now through the
  archiver itself (create-only, verified); exit 1 if any is not archived.
- `verify [--since DURATION]`: re-reads each archived object (by its version when known) and
  compares size and SHA-256 with the index; exit 1 on any mismatch or missing object.
Common options: see `recording_archive_cli.ops`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from recording_archive_cli.errors import CLIError
from recording_archive_cli.ops import (
    Ops,
    Progress,
    common_options,
    drop_metrics,
    duration,
    emit,
    identifier,
    media_retry_option,
    now_iso,
    plain,
    runtime_logs,
    table,
)

_CHUNK = 1024 * 1024
MAX_URL_EXPIRY = 3600


# --- shared helpers ------------------------------------------------------------------------------
def _f() -> Any:
    from recording_archive.models import item

    return item


def public_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item for output: the raw body dropped, phone numbers in the payload masked."""
    from recording_archive.observability import masked_fields

    out = {k: v for k, v in item.items() if k != "RawBody"}
    payload = out.get("Payload")
    if isinstance(payload, dict):
        out["Payload"] = masked_fields(payload)
    result: dict[str, Any] = plain(out)
    return result


def _when(epoch: Any) -> str:
    if epoch is None:
        return ""
    return now_iso(datetime.fromtimestamp(int(epoch), tz=UTC))


def read_object(ops: Ops, item: Mapping[str, Any], sink: BinaryIO | None = None) -> tuple[int, str]:
    """Stream the archived object of `item` (its version when known): (size, SHA-256 hex)."""
    f = _f()
    kwargs: dict[str, Any] = {
        "Bucket": str(item[f.ARCHIVE_BUCKET]),
        "Key": str(item[f.ARCHIVE_KEY]),
        "ExpectedBucketOwner": ops.names.account_id,
    }
    if item.get(f.ARCHIVE_VERSION_ID):
        kwargs["VersionId"] = str(item[f.ARCHIVE_VERSION_ID])
    body = ops.s3.get_object(**kwargs)["Body"]
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in body.iter_chunks(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if sink is not None:
                sink.write(chunk)
    finally:
        body.close()
    return size, digest.hexdigest()


def verify_item(ops: Ops, item: Mapping[str, Any]) -> tuple[str, str]:  # noqa: PLR0911
    """("ok" | "missing" | "size_mismatch" | "sha256_mismatch" | "unindexed" | "error", detail)."""
    from botocore.exceptions import BotoCoreError, ClientError

    f = _f()
    if (
        not item.get(f.ARCHIVE_KEY)
        or not item.get(f.ARCHIVE_SHA256)
        or item.get(f.ARCHIVE_SIZE) is None
    ):
        return "unindexed", "ARCHIVED without bucket, key, size or SHA-256"
    try:
        size, sha = read_object(ops, item)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "NoSuchVersion", "404"):
            return "missing", f"s3://{item[f.ARCHIVE_BUCKET]}/{item[f.ARCHIVE_KEY]} not found"
        return "error", code
    except BotoCoreError as exc:
        return "error", type(exc).__name__
    if size != int(item[f.ARCHIVE_SIZE]):
        return "size_mismatch", f"index {int(item[f.ARCHIVE_SIZE])} bytes, object {size}"
    if sha != str(item[f.ARCHIVE_SHA256]):
        return "sha256_mismatch", f"index {item[f.ARCHIVE_SHA256]}, object {sha}"
    return "ok", ""


def completed_items(ops: Ops, recording_uuid: str) -> list[dict[str, Any]]:
    f = _f()
    with ops.aws_errors("events table"):
        found = ops.index.find_recording(recording_uuid)
    return [i for i in found if i.get(f.EVENT_NAME) == f.EVENT_COMPLETED]


# --- sessions show -------------------------------------------------------------------------------
def run_sessions_show(args: argparse.Namespace) -> int:
    f = _f()
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


# --- recordings get ------------------------------------------------------------------------------
def _archived_item(ops: Ops, recording_uuid: str) -> tuple[dict[str, Any] | None, list[Any]]:
    f = _f()
    items = completed_items(ops, recording_uuid)
    if not items:
        raise CLIError(f"no recording {recording_uuid} in the archive")
    archived = [i for i in items if i.get(f.ARCHIVE_STATUS) == f.ArchiveStatus.ARCHIVED]
    return (archived[0] if archived else None), items


def run_recordings_get(args: argparse.Namespace) -> int:
    f = _f()
    ops = Ops(args)
    item, items = _archived_item(ops, args.recording_uuid)
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
    if args.url:
        return _presign(ops, args, item, details)
    if args.download:
        return _download(ops, args, item, details)
    text = "\n".join(f"{k:<17} {'' if v is None else plain(v)}" for k, v in details.items())
    emit(args, details, text)
    return 0


def _presign(
    ops: Ops, args: argparse.Namespace, item: Mapping[str, Any], details: dict[str, Any]
) -> int:
    f = _f()
    params: dict[str, Any] = {"Bucket": item[f.ARCHIVE_BUCKET], "Key": item[f.ARCHIVE_KEY]}
    if item.get(f.ARCHIVE_VERSION_ID):
        params["VersionId"] = item[f.ARCHIVE_VERSION_ID]
    with ops.aws_errors("presign"):
        url = ops.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=args.expires)
    emit(args, {**details, "url": url, "expires_in": args.expires}, url)
    return 0


def _download(
    ops: Ops, args: argparse.Namespace, item: Mapping[str, Any], details: dict[str, Any]
) -> int:
    f = _f()
    target = Path(args.download)
    if target.exists():
        raise CLIError(f"{target} exists: choose another path")
    partial = target.with_name(target.name + ".part")
    try:
        with ops.aws_errors("download"), partial.open("xb") as sink:
            size, sha = read_object(ops, item, sink)
        if size != int(item[f.ARCHIVE_SIZE]) or sha != str(item[f.ARCHIVE_SHA256]):
            raise CLIError(
                f"downloaded file does not match the index (size {size}, sha256 {sha}): not written"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    emit(
        args,
        {**details, "path": str(target), "verified": True},
        f"{target}: {size} bytes, sha256 {sha} (verified against the index)",
    )
    return 0


# --- recordings pending / failed -----------------------------------------------------------------
def run_recordings_queue(args: argparse.Namespace) -> int:
    f = _f()
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


# --- recordings retry ----------------------------------------------------------------------------
def retry_item(ops: Ops, item: Mapping[str, Any]) -> tuple[str, str]:
    """Requeue and archive one Completed item now: (outcome, detail)."""
    from recording_archive.logic.archive_recording import (
        ArchiveJob,
        ArchiveOutcome,
        NotArchivableError,
    )
    from recording_archive.models.errors import ArchiveError

    f = _f()
    session, seq = str(item[f.SESSION_UUID]), int(item[f.SEQUENCE_NUMBER])
    if item.get(f.ARCHIVE_STATUS) == f.ArchiveStatus.ARCHIVED:
        return "already_archived", ""
    try:
        job = ArchiveJob.from_item(item)
    except NotArchivableError as exc:
        return "not_archivable", str(exc)
    with ops.aws_errors("retry"):
        ops.index.requeue(session, seq, due_at=int(datetime.now(UTC).timestamp()))
        try:
            outcome = ops.archiver.archive(job)
        except ArchiveError as exc:
            return "retry_later", f"{type(exc).__name__}: {exc}"
        finally:
            drop_metrics()
        if outcome == ArchiveOutcome.FAILED:
            current = ops.index.get(session, seq) or {}
            return "failed", str(current.get(f.ARCHIVE_LAST_ERROR) or "")
    return outcome.value, job.key


def run_recordings_retry(args: argparse.Namespace) -> int:
    f = _f()
    if bool(args.recording_uuids) == bool(args.failed):
        raise CLIError("name recordings to retry, or pass --failed (not both)")
    ops = Ops(args)
    _ = ops.names
    targets: list[tuple[str, dict[str, Any] | None]] = []
    if args.failed:
        with ops.aws_errors("events table"):
            for item in ops.index.archive_queue(f.ArchiveStatus.FAILED, limit=args.limit):
                full = ops.index.get(str(item[f.SESSION_UUID]), int(item[f.SEQUENCE_NUMBER]))
                targets.append((str(item.get(f.RECORDING_UUID) or ""), full or item))
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
    emit(args, results, text + f"\n{len(results)} retried")
    good = {"archived", "already_archived"}
    return 0 if all(r["outcome"] in good for r in results) else 1


# --- verify --------------------------------------------------------------------------------------
def run_verify(args: argparse.Namespace) -> int:
    f = _f()
    ops = Ops(args)
    _ = ops.names
    after = now_iso(datetime.now(UTC) - args.since) if args.since else None
    results = []
    progress = Progress("verify")
    with ops.aws_errors("events table"):
        for item in ops.index.archived_items(after=after):
            status, detail = verify_item(ops, item)
            results.append(
                {
                    "recording_uuid": item.get(f.RECORDING_UUID),
                    "session_uuid": item[f.SESSION_UUID],
                    "sequence_number": item[f.SEQUENCE_NUMBER],
                    "key": item.get(f.ARCHIVE_KEY),
                    "size": item.get(f.ARCHIVE_SIZE),
                    "status": status,
                    "detail": detail,
                }
            )
            progress.update(note=status)
    progress.close()
    bad = [r for r in results if r["status"] != "ok"]
    text = ""
    if bad:
        text = (
            table(
                ("recording", "session", "status", "detail"),
                [(r["recording_uuid"], r["session_uuid"], r["status"], r["detail"]) for r in bad],
            )
            + "\n"
        )
    text += f"{len(results)} archived objects checked, {len(bad)} problem(s)"
    emit(args, {"checked": len(results), "problems": len(bad), "results": results}, text)
    return 1 if bad else 0


# --- registration --------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    common = common_options()

    sessions = subparsers.add_parser("sessions", help="a masking session's events")
    sessions_sub = sessions.add_subparsers(
        dest="sessions_command", metavar="COMMAND", required=True
    )
    show = sessions_sub.add_parser(
        "show", parents=[common], help="the session's events in SequenceNumber order"
    )
    show.add_argument("session_uuid", metavar="SESSION_UUID", type=identifier)
    show.set_defaults(func=run_sessions_show)

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
        q.add_argument("--limit", type=_positive, default=1000)
        q.set_defaults(func=run_recordings_queue, queue=queue)

    retry = rec_sub.add_parser(
        "retry", parents=[common], help="re-archive now (create-only, verified)"
    )
    retry.add_argument("recording_uuids", metavar="RECORDING_UUID", nargs="*", type=identifier)
    retry.add_argument("--failed", action="store_true", help="every FAILED recording")
    retry.add_argument("--limit", type=_positive, default=1000)
    media_retry_option(retry)
    retry.set_defaults(func=run_recordings_retry)

    verify = subparsers.add_parser(
        "verify", parents=[common], help="re-read archived objects: size and SHA-256 vs the index"
    )
    verify.add_argument(
        "--since", type=duration, default=None, help="only objects archived in this last DURATION"
    )
    verify.set_defaults(func=run_verify)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _expiry(text: str) -> int:
    value = _positive(text)
    if value > MAX_URL_EXPIRY:
        raise argparse.ArgumentTypeError(f"at most {MAX_URL_EXPIRY} seconds")
    return value
