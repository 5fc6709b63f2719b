"""RecordingStore against a real moto server over HTTP: single and multipart uploads into a
versioned, KMS-encrypted bucket, create-only semantics, and nothing left behind on failure."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from recording_archive.dal.media import MediaPolicy, MediaSource
from recording_archive.dal.recording_store import RecordingStore
from recording_archive.models.archive import ObjectSpec, StoredObject
from recording_archive.models.errors import (
    ArchiveConflictError,
    MediaIntegrityError,
    MediaUnavailableError,
)
from tests.support.media_server import GeneratedBody, MediaServer, Truncate, WrongLength

MiB = 1024 * 1024
OWNER = "123456789012"  # moto's account
BUCKET = "recording-archive-test"
KEY = "recordings/2026/11/26/SESSION-1/REC-1.mp3"
META = {
    "session-uuid": "SESSION-1",
    "recording-uuid": "REC-1",
    "sequence-number": "3",
    "format": "mp3",
}


@pytest.fixture
def s3(aws: str) -> Any:
    return boto3.client("s3", endpoint_url=aws)


@pytest.fixture
def kms_key(aws: str) -> str:
    kms = boto3.client("kms", endpoint_url=aws)
    return str(kms.create_key(Description="archive")["KeyMetadata"]["Arn"])


@pytest.fixture
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return BUCKET


@pytest.fixture
def spec(bucket: str, kms_key: str) -> ObjectSpec:
    return ObjectSpec(
        bucket=bucket,
        key=KEY,
        content_type="audio/mpeg",
        metadata=dict(META),
        kms_key_id=kms_key,
        expected_bucket_owner=OWNER,
    )


def reader(data: bytes, chunk: int = 300_000) -> Callable[[int], bytes]:
    """A source that hands out at most `chunk` bytes a call, like a socket."""
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        piece = data[pos : pos + min(n, chunk)]
        pos += len(piece)
        return piece

    return read


def body(size: int, seed: int = 1) -> bytes:
    return GeneratedBody(size, seed).read_all()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def versions(s3: Any) -> list[dict[str, Any]]:
    return list(s3.list_object_versions(Bucket=BUCKET).get("Versions", []))


def uploads(s3: Any) -> list[dict[str, Any]]:
    return list(s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def tags(s3: Any) -> dict[str, str]:
    tag_set = s3.get_object_tagging(Bucket=BUCKET, Key=KEY)["TagSet"]
    return {t["Key"]: t["Value"] for t in tag_set}


def stored_bytes(s3: Any) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read())


def assert_nothing_left(s3: Any) -> None:
    assert versions(s3) == []
    assert uploads(s3) == []


@pytest.fixture
def store(s3: Any) -> RecordingStore:
    return RecordingStore(s3, part_size=5 * MiB, concurrency=2)


def test_small_file_is_one_put(s3: Any, store: RecordingStore, spec: ObjectSpec) -> None:
    data = body(300_000)
    result = store.put_stream(spec, reader(data), len(data))
    assert result == StoredObject(BUCKET, KEY, result.version_id, len(data), sha(data), False)
    assert result.version_id
    assert stored_bytes(s3) == data
    head = s3.head_object(Bucket=BUCKET, Key=KEY)
    assert head["ContentType"] == "audio/mpeg"
    assert head["Metadata"] == {**META, "sha256": sha(data)}
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == spec.kms_key_id
    assert head["BucketKeyEnabled"] is True
    assert "PartsCount" not in head
    assert tags(s3) == {"sha256": sha(data)}
    assert uploads(s3) == []


def test_large_file_is_multipart(s3: Any, store: RecordingStore, spec: ObjectSpec) -> None:
    data = body(12 * MiB, seed=2)
    result = store.put_stream(spec, reader(data), len(data))
    assert (result.size, result.sha256_hex, result.already_existed) == (len(data), sha(data), False)
    assert result.version_id
    assert stored_bytes(s3) == data
    head = s3.head_object(Bucket=BUCKET, Key=KEY, PartNumber=1)
    assert head["PartsCount"] == 3
    head = s3.head_object(Bucket=BUCKET, Key=KEY)
    assert head["ContentType"] == "audio/mpeg"
    assert head["Metadata"] == META  # the whole-file hash is not known when metadata is fixed
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == spec.kms_key_id
    assert tags(s3) == {"sha256": sha(data)}
    assert uploads(s3) == []
    assert len(versions(s3)) == 1


@pytest.mark.parametrize(("size", "parts"), [(5 * MiB, None), (5 * MiB + 1, 2), (10 * MiB, 2)])
def test_part_boundaries(
    s3: Any, store: RecordingStore, spec: ObjectSpec, size: int, parts: int | None
) -> None:
    data = body(size, seed=3)
    result = store.put_stream(spec, reader(data, chunk=MiB), size)
    assert result.sha256_hex == sha(data)
    assert stored_bytes(s3) == data
    head = s3.head_object(Bucket=BUCKET, Key=KEY, PartNumber=1)
    assert head.get("PartsCount") == parts


def test_unknown_size_is_accepted(s3: Any, store: RecordingStore, spec: ObjectSpec) -> None:
    data = body(6 * MiB)
    assert store.put_stream(spec, reader(data), None).sha256_hex == sha(data)
    assert stored_bytes(s3) == data


@pytest.mark.parametrize("size", [1000, 12 * MiB])
def test_same_put_twice_is_one_object_one_version(
    s3: Any, store: RecordingStore, spec: ObjectSpec, size: int
) -> None:
    data = body(size, seed=4)
    first = store.put_stream(spec, reader(data), size)
    second = store.put_stream(spec, reader(data), size)
    assert not first.already_existed
    assert second.already_existed
    assert (second.size, second.sha256_hex, second.version_id) == (
        size,
        sha(data),
        first.version_id,
    )
    assert len(versions(s3)) == 1
    assert uploads(s3) == []


@pytest.mark.parametrize("size", [1000, 11 * MiB])
def test_two_uploads_at_once_make_one_object(
    s3: Any, store: RecordingStore, spec: ObjectSpec, size: int
) -> None:
    data = body(size, seed=5)
    # Both uploads are under way at the same time (each has read its first part, or its whole
    # body, before either writes it). moto checks If-None-Match and then writes without a lock
    # between its request threads, where S3 is atomic: the writes themselves are serialised
    # here, in S3's place, so the test checks our code and not moto's race.
    barrier = threading.Barrier(2, timeout=30)
    serial = threading.Lock()

    def enter(**_: object) -> None:
        serial.acquire()

    def leave(**_: object) -> None:
        serial.release()

    for op in ("PutObject", "CompleteMultipartUpload"):
        s3.meta.events.register(f"before-call.s3.{op}", enter)
        s3.meta.events.register(f"after-call.s3.{op}", leave)
        s3.meta.events.register(f"after-call-error.s3.{op}", leave)

    def gated() -> Callable[[int], bytes]:
        inner = reader(data)
        fed = 0

        def read(n: int) -> bytes:
            nonlocal fed
            piece = inner(n)
            fed += len(piece)
            if not piece or (size > 5 * MiB and fed > 5 * MiB and fed - len(piece) <= 5 * MiB):
                barrier.wait()
            return piece

        return read

    results: list[StoredObject] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(store.put_stream(spec, gated(), size))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(r.already_existed for r in results) == [False, True]
    assert {r.sha256_hex for r in results} == {sha(data)}
    assert len(versions(s3)) == 1
    assert uploads(s3) == []
    assert stored_bytes(s3) == data
    if size > 5 * MiB:
        assert tags(s3) == {"sha256": sha(data)}


@pytest.mark.parametrize(
    ("size", "other_size"), [(1000, 1000), (1000, 2000), (11 * MiB, 11 * MiB), (11 * MiB, 6 * MiB)]
)
def test_different_body_under_the_same_key_is_a_conflict(
    s3: Any, store: RecordingStore, spec: ObjectSpec, size: int, other_size: int
) -> None:
    original = body(size, seed=6)
    store.put_stream(spec, reader(original), size)
    other = body(other_size, seed=7)
    with pytest.raises(ArchiveConflictError) as info:
        store.put_stream(spec, reader(other), other_size)
    assert not info.value.retryable
    assert stored_bytes(s3) == original
    assert len(versions(s3)) == 1
    assert uploads(s3) == []


@pytest.mark.parametrize(
    ("actual", "declared"),
    [(1000, 2000), (2000, 1000), (12 * MiB, 13 * MiB), (12 * MiB, 11 * MiB), (6 * MiB, 5 * MiB)],
)
def test_size_not_matching_content_length_keeps_nothing(
    s3: Any, store: RecordingStore, spec: ObjectSpec, actual: int, declared: int
) -> None:
    with pytest.raises(MediaIntegrityError):
        store.put_stream(spec, reader(body(actual)), declared)
    assert_nothing_left(s3)


def test_empty_body_is_an_integrity_error(s3: Any, store: RecordingStore, spec: ObjectSpec) -> None:
    with pytest.raises(MediaIntegrityError, match="empty"):
        store.put_stream(spec, reader(b""), 0)
    assert_nothing_left(s3)


class SourceFailedError(Exception):
    pass


@pytest.mark.parametrize(
    "exc", [SourceFailedError("boom"), MediaUnavailableError("read timeout"), KeyboardInterrupt()]
)
def test_failure_of_the_source_mid_stream_aborts(
    s3: Any, store: RecordingStore, spec: ObjectSpec, exc: BaseException
) -> None:
    data = body(16 * MiB)
    inner = reader(data)
    fed = 0

    def read(n: int) -> bytes:
        nonlocal fed
        if fed > 11 * MiB:  # two parts are uploaded or in flight by then
            raise exc
        piece = inner(n)
        fed += len(piece)
        return piece

    with pytest.raises(type(exc)):
        store.put_stream(spec, read, len(data))
    assert_nothing_left(s3)


def test_untagged_multipart_object_is_hashed_and_tagged_on_verify(
    s3: Any, store: RecordingStore, spec: ObjectSpec
) -> None:
    """A worker that died between complete and tagging left an object without any sha256."""
    data = body(11 * MiB, seed=8)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=KEY)
    etags = []
    for number, start in enumerate(range(0, len(data), 5 * MiB), start=1):
        part = s3.upload_part(
            Bucket=BUCKET,
            Key=KEY,
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=data[start : start + 5 * MiB],
        )
        etags.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=KEY, UploadId=upload["UploadId"], MultipartUpload={"Parts": etags}
    )
    assert tags(s3) == {}
    result = store.put_stream(spec, reader(data), len(data))
    assert result.already_existed
    assert result.sha256_hex == sha(data)
    assert tags(s3) == {"sha256": sha(data)}
    assert len(versions(s3)) == 1
    with pytest.raises(ArchiveConflictError):
        store.verify_existing(spec, len(data), sha(b"other"))


def test_parts_in_flight_never_exceed_the_concurrency(s3: Any, spec: ObjectSpec) -> None:
    lock = threading.Lock()
    in_flight = 0
    peak = 0

    def before(**_: object) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)

    def after(**_: object) -> None:
        nonlocal in_flight
        with lock:
            in_flight -= 1

    s3.meta.events.register("before-call.s3.UploadPart", before)
    s3.meta.events.register("after-call.s3.UploadPart", after)
    data = body(26 * MiB, seed=9)
    result = RecordingStore(s3, part_size=5 * MiB, concurrency=2).put_stream(
        spec, reader(data, chunk=MiB), len(data)
    )
    assert result.sha256_hex == sha(data)
    assert 1 <= peak <= 2


def test_constructor_refuses_parts_s3_would_refuse(s3: Any) -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        RecordingStore(s3, part_size=MiB)
    with pytest.raises(ValueError, match="concurrency"):
        RecordingStore(s3, concurrency=0)


# --- end to end: media server -> MediaSource -> RecordingStore -> moto -------------------------
def archive(media: MediaServer, store: RecordingStore, spec: ObjectSpec, path: str) -> StoredObject:
    source = MediaSource(MediaPolicy(allowed_hosts=(), allow_loopback=True, retry_budget=0))
    with source.open(media.url(path)) as stream:
        return store.put_stream(spec, stream.read, stream.content_length)


def test_recording_streamed_from_the_media_host(
    s3: Any, store: RecordingStore, spec: ObjectSpec, media: MediaServer
) -> None:
    source_body = media.add("/r.mp3", GeneratedBody(13 * MiB + 7, seed=10))
    result = archive(media, store, spec, "/r.mp3")
    assert (result.size, result.sha256_hex) == (source_body.size, source_body.sha256_hex)
    assert sha(stored_bytes(s3)) == source_body.sha256_hex
    assert uploads(s3) == []


@pytest.mark.parametrize(
    "fault",
    [Truncate(7 * MiB), WrongLength(declared=14 * MiB), WrongLength(declared=12 * MiB)],
    ids=["truncated", "declared-longer", "declared-shorter"],
)
def test_broken_media_bodies_leave_nothing(
    s3: Any, store: RecordingStore, spec: ObjectSpec, media: MediaServer, fault: object
) -> None:
    media.add("/r.mp3", GeneratedBody(13 * MiB, seed=11), faults=[fault])  # type: ignore[list-item]
    with pytest.raises(MediaIntegrityError):
        archive(media, store, spec, "/r.mp3")
    assert_nothing_left(s3)


def test_empty_media_file_leaves_nothing(
    s3: Any, store: RecordingStore, spec: ObjectSpec, media: MediaServer
) -> None:
    media.add("/r.mp3", b"")
    with pytest.raises(MediaIntegrityError):
        archive(media, store, spec, "/r.mp3")
    assert_nothing_left(s3)
