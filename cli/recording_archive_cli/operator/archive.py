"""Archived recordings: find, read, verify, download and re-archive them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from recording_archive.models import item as f
from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.context import Ops, drop_metrics

_CHUNK = 1024 * 1024


def public_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item for output: the raw body dropped, phone numbers in the payload masked."""
    from recording_archive.observability import masked_fields

    out = {k: v for k, v in item.items() if k != "RawBody"}
    payload = out.get("Payload")
    if isinstance(payload, dict):
        out["Payload"] = masked_fields(payload)
    return out


def read_object(ops: Ops, item: Mapping[str, Any], sink: BinaryIO | None = None) -> tuple[int, str]:
    """Stream the archived object of `item` (its version when known): (size, SHA-256 hex)."""
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
    """The recording's Completed events (one per session that recorded it)."""
    with ops.aws_errors("events table"):
        found = ops.index.find_recording(recording_uuid)
    return [i for i in found if i.get(f.EVENT_NAME) == f.EVENT_COMPLETED]


def archived_item(ops: Ops, recording_uuid: str) -> tuple[dict[str, Any] | None, list[Any]]:
    """(the archived Completed item or None, all its Completed items); CLIError when none."""
    items = completed_items(ops, recording_uuid)
    if not items:
        raise CLIError(f"no recording {recording_uuid} in the archive")
    archived = [i for i in items if i.get(f.ARCHIVE_STATUS) == f.ArchiveStatus.ARCHIVED]
    return (archived[0] if archived else None), items


def presigned_url(
    ops: Ops, item: Mapping[str, Any], expires: int, *, attachment: str | None = None
) -> str:
    """A GET URL of the archived object; `attachment`: the file name S3 answers it under as a
    download (ResponseContentDisposition, signed into the URL)."""
    params: dict[str, Any] = {"Bucket": item[f.ARCHIVE_BUCKET], "Key": item[f.ARCHIVE_KEY]}
    if item.get(f.ARCHIVE_VERSION_ID):
        params["VersionId"] = item[f.ARCHIVE_VERSION_ID]
    if attachment is not None:
        params["ResponseContentDisposition"] = f'attachment; filename="{attachment}"'
    with ops.aws_errors("presign"):
        url: str = ops.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)
    return url


def download_verified(ops: Ops, item: Mapping[str, Any], target: Path) -> tuple[int, str]:
    """Write the object to `target`, next to it first and moved into place only once its size
    and SHA-256 equal the index's: (size, SHA-256 hex)."""
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
    return size, sha


def retry_item(ops: Ops, item: Mapping[str, Any]) -> tuple[str, str]:
    """Requeue and archive one Completed item now: (outcome, detail)."""
    from recording_archive.logic.archive_recording import (
        ArchiveJob,
        ArchiveOutcome,
        NotArchivableError,
    )
    from recording_archive.models.errors import ArchiveError

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


def failed_items(ops: Ops, limit: int) -> list[tuple[str, dict[str, Any]]]:
    """(recording UUID, full item) of each FAILED recording, at most `limit`."""
    out: list[tuple[str, dict[str, Any]]] = []
    with ops.aws_errors("events table"):
        for item in ops.index.archive_queue(f.ArchiveStatus.FAILED, limit=limit):
            full = ops.index.get(str(item[f.SESSION_UUID]), int(item[f.SEQUENCE_NUMBER]))
            out.append((str(item.get(f.RECORDING_UUID) or ""), full or item))
    return out
