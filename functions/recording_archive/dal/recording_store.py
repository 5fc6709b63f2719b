"""Create-only streaming upload of one recording to S3, in bounded memory.

`put_stream` reads the source in parts of `part_size` bytes. A body that fits in one part is a
single `put_object`; a larger one goes through our own multipart loop, because s3transfer refuses
`IfNoneMatch` and buffers more than we want. At most `concurrency` parts are in flight while the
next one is read, so memory stays about (concurrency + 1) x part_size whatever the file size.
The defaults (10 MiB parts, 4 in flight: about 50 MiB of buffers) come from
bench/archive_upload.py against moto: peak RSS about 100 MiB for 100 MiB and 1 GiB alike, and the
same peak spent as 16 MiB x 2 or 8 MiB x 2 left the uploads waiting on request latency.

Guarantees:
- Create-only: every write carries `IfNoneMatch='*'`. A 412 means the key exists: the existing
  object is accepted only if its size and stored SHA-256 equal ours (`already_existed=True`),
  otherwise `ArchiveConflictError`. Nothing is ever overwritten.
- Integrity: a SHA-256 checksum on every request body (S3 verifies it), the whole-file SHA-256
  computed while streaming and stored on the object (metadata "sha256" for single PUTs, which are
  also tagged; tag "sha256" for multipart, whose metadata is fixed before the hash is known), and
  the byte count compared with the source's Content-Length.
- No incomplete upload is left behind by this code: any failure aborts the multipart upload.
  (A Lambda killed by its timeout cannot run an abort: the bucket's lifecycle rule that aborts
  incomplete uploads after one day covers that case.)

Versions: the bucket is versioned, and every request after the write names the version it is
about. The SHA-256 tag of a multipart upload goes on the exact version `complete` returned, and
the 412 path reads the tag of (or hashes, then tags) the version whose size its HeadObject just
compared. Without VersionId these requests would act on whatever version is current at that
moment: a version written in between (by anyone not using IfNoneMatch) would get our tag, or
have its hash accepted for the size of another.

Permissions (tests/infra/test_permissions.py checks them against the calls this module makes):
s3:PutObject and s3:PutObjectTagging (put_object with tags, the multipart calls),
s3:AbortMultipartUpload, s3:GetObject (HeadObject), and for the requests that carry a versionId
s3:PutObjectVersionTagging, s3:GetObjectVersionTagging and s3:GetObjectVersion, on the keys;
s3:ListBucket on the bucket (a missing key answers 404, not 403); kms:GenerateDataKey and
kms:Decrypt on the key.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from botocore.exceptions import BotoCoreError, ClientError

from recording_archive.models.archive import ObjectSpec, StoredObject
from recording_archive.models.errors import (
    ArchiveConflictError,
    MediaIntegrityError,
    UploadError,
)
from recording_archive.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PARTS = 10_000
SHA256_KEY = "sha256"
_READ_CHUNK = 1 * MiB
_CONFLICT_RETRIES = 3


class _HoldArgs(TypedDict, total=False):
    ObjectLockLegalHoldStatus: Literal["ON", "OFF"]


def _legal_hold(spec: ObjectSpec) -> _HoldArgs:
    """The upload's Object Lock legal hold (x-amz-object-lock-legal-hold), when the item is held:
    needs s3:PutObjectLegalHold besides s3:PutObject (API_PutObject.html, "Permissions")."""
    return {"ObjectLockLegalHoldStatus": "ON"} if spec.legal_hold else {}


def _b64_sha256(data: bytes | bytearray) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _is_precondition_failed(exc: ClientError) -> bool:
    return _error_code(exc) == "PreconditionFailed" or _http_status(exc) == 412


def _is_conditional_conflict(exc: ClientError) -> bool:
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html: a 409
    # ConditionalRequestConflict answers concurrent conditional writes; the advice is to retry.
    return _error_code(exc) == "ConditionalRequestConflict" or _http_status(exc) == 409


def _is_not_found(exc: ClientError) -> bool:
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound") or _http_status(exc) == 404


def _upload_error(exc: BaseException) -> UploadError:
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
            return UploadError(f"S3 rejected a part's checksum ({code})")
        return UploadError(f"S3 refused the upload ({code or _http_status(exc)})")
    return UploadError(f"S3 upload failed ({type(exc).__name__})")


def _check_size(size: int, expected_size: int | None) -> None:
    if expected_size is not None and size != expected_size:
        raise MediaIntegrityError("the recording's size does not match its Content-Length")


def _read_full(read: Callable[[int], bytes], size: int, prefix: bytes = b"") -> bytearray:
    """`size` bytes (fewer only at the end of the stream) into one preallocated buffer."""
    buf = bytearray(size)
    view = memoryview(buf)
    view[: len(prefix)] = prefix
    filled = len(prefix)
    try:
        while filled < size:
            chunk = read(min(_READ_CHUNK, size - filled))
            if not chunk:
                break
            if len(chunk) > size - filled:
                raise ValueError("read(n) returned more than n bytes")
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    finally:
        view.release()
    if filled < size:
        del buf[filled:]
    return buf


class RecordingStore:
    """Archives recordings into S3; `s3_client` is any boto3 S3 client (thread-safe)."""

    def __init__(
        self,
        s3_client: S3Client,
        *,
        part_size: int = 10 * MiB,
        concurrency: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError("part_size must be at least 5 MiB (S3's minimum part size)")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._s3 = s3_client
        self._part_size = part_size
        self._concurrency = concurrency
        self._sleep = sleep

    # --- public ----------------------------------------------------------------------------
    def put_stream(
        self, spec: ObjectSpec, read: Callable[[int], bytes], expected_size: int | None
    ) -> StoredObject:
        """Store the stream under spec.key unless the same bytes are already there.

        Raises MediaIntegrityError (empty body, or byte count != expected_size), UploadError
        (S3 refused or failed; nothing left behind), ArchiveConflictError (other bytes exist
        under the key), or whatever `read` raises (after aborting).
        """
        first = _read_full(read, self._part_size)
        probe = _read_full(read, 1) if len(first) == self._part_size else bytearray()
        if not probe:
            return self._put_single(spec, first, expected_size)
        # Hand the first part over in a list the upload loop empties: no frame keeps a
        # reference to it while later parts are read (one part of memory saved).
        head = [first]
        del first
        return self._put_multipart(spec, head, probe, read, expected_size)

    def verify_existing(self, spec: ObjectSpec, size: int, sha256_hex: str) -> StoredObject:
        """Accept the object already under spec.key if it has this size and SHA-256."""
        owner = spec.expected_bucket_owner
        try:
            head = self._s3.head_object(Bucket=spec.bucket, Key=spec.key, ExpectedBucketOwner=owner)
        except ClientError as exc:
            if _is_not_found(exc):
                raise UploadError("S3 reported the key as existing but it was not found") from exc
            raise _upload_error(exc) from exc
        except BotoCoreError as exc:
            raise _upload_error(exc) from exc
        version_id = head.get("VersionId")
        if head.get("ContentLength") != size:
            raise ArchiveConflictError("a different object already exists under the key (size)")
        try:
            stored = head.get("Metadata", {}).get(SHA256_KEY) or self._tagged_sha256(
                spec, version_id
            )
            if stored is None:
                # Written by a worker that died between complete and tagging: hash it now and
                # record the result, so the next check is cheap.
                stored = self._hash_object(spec, version_id)
                self._tag(spec, version_id, stored)
        except (ClientError, BotoCoreError) as exc:
            raise _upload_error(exc) from exc
        if stored != sha256_hex:
            raise ArchiveConflictError("a different object already exists under the key (sha256)")
        if spec.legal_hold:
            # Written by an earlier attempt, before the hold: it gets the hold now.
            try:
                self._put_legal_hold(spec, version_id)
            except (ClientError, BotoCoreError) as exc:
                raise _upload_error(exc) from exc
        return StoredObject(spec.bucket, spec.key, version_id, size, sha256_hex, True)

    def _put_legal_hold(self, spec: ObjectSpec, version_id: str | None) -> None:
        version: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        self._s3.put_object_legal_hold(
            Bucket=spec.bucket,
            Key=spec.key,
            LegalHold={"Status": "ON"},
            ChecksumAlgorithm="SHA256",  # Object Lock requests need a checksum (or Content-MD5)
            ExpectedBucketOwner=spec.expected_bucket_owner,
            **version,
        )

    # --- single PUT --------------------------------------------------------------------------
    def _put_single(
        self, spec: ObjectSpec, data: bytearray, expected_size: int | None
    ) -> StoredObject:
        size = len(data)
        if size == 0:
            raise MediaIntegrityError("the recording is empty")
        _check_size(size, expected_size)
        sha_hex = hashlib.sha256(data).hexdigest()
        metadata = {**spec.metadata, SHA256_KEY: sha_hex}
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                response = self._s3.put_object(
                    Bucket=spec.bucket,
                    Key=spec.key,
                    Body=data,  # type: ignore[arg-type]  # botocore sends any bytes-like: no copy
                    ContentLength=size,
                    ContentType=spec.content_type,
                    Metadata=metadata,
                    Tagging=f"{SHA256_KEY}={sha_hex}",
                    ChecksumSHA256=_b64_sha256(data),
                    # Names the algorithm in x-amz-sdk-checksum-algorithm: S3 refuses a put into
                    # a bucket with a default Object Lock retention without it or Content-MD5
                    # (MissingUploadObjectWithObjectLockHeaders; ObjectLockRetentionDays > 0).
                    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-managing.html
                    ChecksumAlgorithm="SHA256",
                    ServerSideEncryption="aws:kms",
                    SSEKMSKeyId=spec.kms_key_id,
                    BucketKeyEnabled=True,
                    IfNoneMatch="*",
                    ExpectedBucketOwner=spec.expected_bucket_owner,
                    **_legal_hold(spec),
                )
            except ClientError as exc:
                if _is_conditional_conflict(exc) and attempt < _CONFLICT_RETRIES:
                    self._sleep(0.2 * 2**attempt)
                    continue
                if _is_precondition_failed(exc) or _is_conditional_conflict(exc):
                    return self.verify_existing(spec, size, sha_hex)
                raise _upload_error(exc) from exc
            except BotoCoreError as exc:
                raise _upload_error(exc) from exc
            return StoredObject(
                spec.bucket, spec.key, response.get("VersionId"), size, sha_hex, False
            )
        raise AssertionError("unreachable")  # pragma: no cover

    # --- multipart ---------------------------------------------------------------------------
    def _put_multipart(
        self,
        spec: ObjectSpec,
        head: list[bytearray],
        probe: bytearray,
        read: Callable[[int], bytes],
        expected_size: int | None,
    ) -> StoredObject:
        owner = spec.expected_bucket_owner
        metadata = {k: v for k, v in spec.metadata.items() if k != SHA256_KEY}
        try:
            created = self._s3.create_multipart_upload(
                Bucket=spec.bucket,
                Key=spec.key,
                ContentType=spec.content_type,
                Metadata=metadata,
                ChecksumAlgorithm="SHA256",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=spec.kms_key_id,
                BucketKeyEnabled=True,
                ExpectedBucketOwner=owner,
                **_legal_hold(spec),
            )
        except (ClientError, BotoCoreError) as exc:
            raise _upload_error(exc) from exc
        upload_id = created["UploadId"]
        digest = hashlib.sha256()
        size = 0
        # try/except BaseException, not Exception: a KeyboardInterrupt, SystemExit or a
        # cancellation raised while parts are in flight must abort the upload too (S3 keeps
        # and bills the parts of an incomplete upload until it is aborted); re-raised as is.
        try:
            parts, size = self._upload_parts(spec, upload_id, head, probe, read, digest=digest)
            _check_size(size, expected_size)
            sha_hex = digest.hexdigest()
            version_id = self._complete(spec, upload_id, parts)
        except _AlreadyExistsError:
            self._abort(spec, upload_id)
            return self.verify_existing(spec, size, digest.hexdigest())
        except BaseException as exc:
            self._abort(spec, upload_id)
            if isinstance(exc, ClientError | BotoCoreError):
                raise _upload_error(exc) from exc
            raise
        try:
            self._tag(spec, version_id, sha_hex)
            if spec.legal_hold:
                # Asked for at creation already; said again on the completed version, which
                # costs one request for a held recording only: moto 5 drops the creation's
                # legal hold when it completes the upload, and this way the tests check the
                # version that exists. A failure here is repaired like the tag: the retry's
                # 412 path sets it (verify_existing).
                self._put_legal_hold(spec, version_id)
        except (ClientError, BotoCoreError) as exc:
            # The object is complete and correct; only its tag (or hold) is missing.
            # verify_existing hashes and tags an untagged object and holds a held one, so a
            # retry of this record repairs it.
            raise _upload_error(exc) from exc
        return StoredObject(spec.bucket, spec.key, version_id, size, sha_hex, False)

    def _upload_parts(
        self,
        spec: ObjectSpec,
        upload_id: str,
        head: list[bytearray],
        probe: bytearray,
        read: Callable[[int], bytes],
        *,
        digest: Any,
    ) -> tuple[list[dict[str, Any]], int]:
        parts: list[dict[str, Any]] = []
        size = 0
        slots = threading.BoundedSemaphore(self._concurrency)
        in_flight: set[Future[dict[str, Any]]] = set()
        pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="s3-part")
        try:
            part: bytearray | None = head.pop()
            number = 0
            while part:
                number += 1
                if number > MAX_PARTS:
                    raise UploadError("the recording needs more than 10,000 parts")
                digest.update(part)
                size += len(part)
                # Wait for a free slot: at most `concurrency` parts in flight, one being read.
                slots.acquire()
                done = {f for f in in_flight if f.done()}
                for f in done:
                    parts.append(f.result())  # raises the part's failure, if any
                in_flight -= done
                future = pool.submit(self._upload_part, spec, upload_id, number, part)
                future.add_done_callback(lambda _f: slots.release())
                in_flight.add(future)
                part = None
                part = _read_full(read, self._part_size, prefix=bytes(probe))
                probe = bytearray()
            finished, _ = wait(in_flight)
            for f in finished:
                parts.append(f.result())
            in_flight.clear()
        finally:
            # On failure: the parts already running finish (an abort during an upload may leave
            # that part behind), the rest are cancelled.
            pool.shutdown(wait=True, cancel_futures=True)
        parts.sort(key=lambda p: int(p["PartNumber"]))
        return parts, size

    def _upload_part(
        self, spec: ObjectSpec, upload_id: str, number: int, data: bytearray
    ) -> dict[str, Any]:
        checksum = _b64_sha256(data)
        response = self._s3.upload_part(
            Bucket=spec.bucket,
            Key=spec.key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,  # type: ignore[arg-type]  # botocore sends any bytes-like: no copy
            ContentLength=len(data),
            ChecksumSHA256=checksum,
            ChecksumAlgorithm="SHA256",  # as put_object: Object Lock buckets require it
            ExpectedBucketOwner=spec.expected_bucket_owner,
        )
        return {
            "PartNumber": number,
            "ETag": response["ETag"],
            "ChecksumSHA256": response.get("ChecksumSHA256", checksum),
        }

    def _complete(
        self, spec: ObjectSpec, upload_id: str, parts: list[dict[str, Any]]
    ) -> str | None:
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                response = self._s3.complete_multipart_upload(
                    Bucket=spec.bucket,
                    Key=spec.key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                    IfNoneMatch="*",
                    ExpectedBucketOwner=spec.expected_bucket_owner,
                )
            except ClientError as exc:
                if _is_conditional_conflict(exc) and attempt < _CONFLICT_RETRIES:
                    self._sleep(0.2 * 2**attempt)
                    continue
                if _is_precondition_failed(exc) or _is_conditional_conflict(exc):
                    raise _AlreadyExistsError from exc
                raise
            return response.get("VersionId")
        raise AssertionError("unreachable")  # pragma: no cover

    def _abort(self, spec: ObjectSpec, upload_id: str) -> None:
        try:
            self._s3.abort_multipart_upload(
                Bucket=spec.bucket,
                Key=spec.key,
                UploadId=upload_id,
                ExpectedBucketOwner=spec.expected_bucket_owner,
            )
        except ClientError as exc:
            if _error_code(exc) == "NoSuchUpload":
                return
            logger.error("abort_multipart_upload failed", extra={"code": _error_code(exc)})
        except BotoCoreError as exc:
            # The bucket's lifecycle rule aborts what is left after a day.
            logger.error("abort_multipart_upload failed", extra={"error": type(exc).__name__})

    # --- sha256 of an existing object ------------------------------------------------------
    def _tag(self, spec: ObjectSpec, version_id: str | None, sha_hex: str) -> None:
        kwargs: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        self._s3.put_object_tagging(
            Bucket=spec.bucket,
            Key=spec.key,
            Tagging={"TagSet": [{"Key": SHA256_KEY, "Value": sha_hex}]},
            ExpectedBucketOwner=spec.expected_bucket_owner,
            **kwargs,
        )

    def _tagged_sha256(self, spec: ObjectSpec, version_id: str | None) -> str | None:
        kwargs: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        tags = self._s3.get_object_tagging(
            Bucket=spec.bucket,
            Key=spec.key,
            ExpectedBucketOwner=spec.expected_bucket_owner,
            **kwargs,
        )
        for tag in tags.get("TagSet", []):
            if tag["Key"] == SHA256_KEY:
                return tag["Value"]
        return None

    def _hash_object(self, spec: ObjectSpec, version_id: str | None) -> str:
        kwargs: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        response = self._s3.get_object(
            Bucket=spec.bucket,
            Key=spec.key,
            ExpectedBucketOwner=spec.expected_bucket_owner,
            **kwargs,
        )
        digest = hashlib.sha256()
        body = response["Body"]
        try:
            for chunk in body.iter_chunks(_READ_CHUNK):
                digest.update(chunk)
        finally:
            body.close()
        return digest.hexdigest()


class _AlreadyExistsError(Exception):
    """complete_multipart_upload answered 412 (or 409 after retries): the key exists."""
