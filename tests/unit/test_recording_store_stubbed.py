"""RecordingStore on answers moto does not model (see TOOLING.md): BadDigest, 409
ConditionalRequestConflict, 412 on complete, AccessDenied. botocore's Stubber checks every call's
exact parameters (create-only, checksums, SSE-KMS, ExpectedBucketOwner) and their order."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from recording_archive.dal.recording_store import RecordingStore
from recording_archive.models.archive import ObjectSpec
from recording_archive.models.errors import ArchiveConflictError, UploadError

MiB = 1024 * 1024
PART = 5 * MiB
OWNER = "123456789012"
B, K, U = "bucket-x", "recordings/2026/01/02/S/R.mp3", "upload-1"
KMS = "arn:aws:kms:us-east-1:123456789012:key/k-1"
SPEC = ObjectSpec(B, K, "audio/mpeg", {"session-uuid": "S"}, KMS, OWNER)
DATA = bytes(range(256)) * (PART * 2 // 256) + b"tail"  # two full parts and a 4-byte third
SHA = hashlib.sha256(DATA).hexdigest()


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


PARTS = [DATA[i : i + PART] for i in range(0, len(DATA), PART)]
PART_LIST = [
    {"PartNumber": n, "ETag": f'"etag-{n}"', "ChecksumSHA256": b64sha(p)}
    for n, p in enumerate(PARTS, start=1)
]


def reader(data: bytes) -> Callable[[int], bytes]:
    stream = io.BytesIO(data)
    return stream.read


Stubbed = tuple[Any, Stubber, list[float]]  # client, its Stubber, the sleeps asked for


@pytest.fixture
def stubbed() -> Iterator[Stubbed]:
    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub, []
        stub.assert_no_pending_responses()


def store(client: Any, sleeps: list[float]) -> RecordingStore:
    # concurrency 1: parts go out in order, which the Stubber's ordered queue needs.
    return RecordingStore(client, part_size=PART, concurrency=1, sleep=sleeps.append)


def expect_create(stub: Stubber) -> None:
    stub.add_response(
        "create_multipart_upload",
        {"UploadId": U, "Bucket": B, "Key": K},
        {
            "Bucket": B,
            "Key": K,
            "ContentType": "audio/mpeg",
            "Metadata": {"session-uuid": "S"},
            "ChecksumAlgorithm": "SHA256",
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": KMS,
            "BucketKeyEnabled": True,
            "ExpectedBucketOwner": OWNER,
        },
    )


def expect_part(stub: Stubber, n: int) -> None:
    stub.add_response(
        "upload_part",
        {"ETag": f'"etag-{n}"', "ChecksumSHA256": b64sha(PARTS[n - 1])},
        {
            "Bucket": B,
            "Key": K,
            "UploadId": U,
            "PartNumber": n,
            "Body": ANY,
            "ContentLength": len(PARTS[n - 1]),
            "ChecksumSHA256": b64sha(PARTS[n - 1]),
            "ChecksumAlgorithm": "SHA256",
            "ExpectedBucketOwner": OWNER,
        },
    )


def complete_params() -> dict[str, Any]:
    return {
        "Bucket": B,
        "Key": K,
        "UploadId": U,
        "MultipartUpload": {"Parts": PART_LIST},
        "IfNoneMatch": "*",
        "ExpectedBucketOwner": OWNER,
    }


def expect_all_parts(stub: Stubber) -> None:
    """The upload created and its three parts sent, as expected."""
    expect_create(stub)
    for n in (1, 2, 3):
        expect_part(stub, n)


def put(client: Any, sleeps: list[float], data: bytes = DATA) -> Any:
    """RecordingStore.put_stream of `data` (by default the three-part DATA) to SPEC."""
    return store(client, sleeps).put_stream(SPEC, reader(data), len(data))


def expect_abort(stub: Stubber) -> None:
    stub.add_response(
        "abort_multipart_upload",
        {},
        {"Bucket": B, "Key": K, "UploadId": U, "ExpectedBucketOwner": OWNER},
    )


def expect_tagging(stub: Stubber, version: str = "v1", sha: str = SHA) -> None:
    stub.add_response(
        "put_object_tagging",
        {},
        {
            "Bucket": B,
            "Key": K,
            "VersionId": version,
            "Tagging": {"TagSet": [{"Key": "sha256", "Value": sha}]},
            "ExpectedBucketOwner": OWNER,
        },
    )


def expect_head(
    stub: Stubber, size: int = len(DATA), metadata: dict[str, str] | None = None
) -> None:
    stub.add_response(
        "head_object",
        {"ContentLength": size, "Metadata": metadata or {}, "VersionId": "v0"},
        {"Bucket": B, "Key": K, "ExpectedBucketOwner": OWNER},
    )


def test_multipart_happy_path_parameters(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    expect_all_parts(stub)
    stub.add_response("complete_multipart_upload", {"VersionId": "v1"}, complete_params())
    expect_tagging(stub)
    result = put(client, sleeps)
    assert (result.version_id, result.size, result.sha256_hex) == ("v1", len(DATA), SHA)
    assert not result.already_existed


def test_single_put_parameters(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    data = b"ID3 small recording"
    sha = hashlib.sha256(data).hexdigest()
    stub.add_response(
        "put_object",
        {"VersionId": "v9"},
        {
            "Bucket": B,
            "Key": K,
            "Body": ANY,
            "ContentLength": len(data),
            "ContentType": "audio/mpeg",
            "Metadata": {"session-uuid": "S", "sha256": sha},
            "Tagging": f"sha256={sha}",
            "ChecksumSHA256": b64sha(data),
            "ChecksumAlgorithm": "SHA256",
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": KMS,
            "BucketKeyEnabled": True,
            "IfNoneMatch": "*",
            "ExpectedBucketOwner": OWNER,
        },
    )
    result = put(client, sleeps, data)
    assert (result.version_id, result.sha256_hex) == ("v9", sha)


@pytest.mark.parametrize(
    ("parts_sent", "code", "message", "status"),
    [
        (0, "BadDigest", "The Content-MD5 you specified did not match", 400),
        (1, "InvalidDigest", "bad checksum", 400),
        (0, "AccessDenied", "Access Denied", 403),
    ],
)
def test_an_error_on_a_part_aborts(
    stubbed: Stubbed, parts_sent: int, code: str, message: str, status: int
) -> None:
    client, stub, sleeps = stubbed
    expect_create(stub)
    for n in range(1, parts_sent + 1):
        expect_part(stub, n)
    stub.add_client_error("upload_part", code, message, status)
    expect_abort(stub)
    with pytest.raises(UploadError, match=code):
        put(client, sleeps)


def test_bad_digest_on_single_put(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    stub.add_client_error("put_object", "BadDigest", "checksum mismatch")
    with pytest.raises(UploadError, match="BadDigest"):
        put(client, sleeps, b"abc")


def test_409_on_complete_is_retried(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    expect_all_parts(stub)
    for _ in range(2):
        stub.add_client_error(
            "complete_multipart_upload",
            "ConditionalRequestConflict",
            "A conflicting operation occurred",
            http_status_code=409,
            expected_params=complete_params(),
        )
    stub.add_response("complete_multipart_upload", {"VersionId": "v1"}, complete_params())
    expect_tagging(stub)
    result = put(client, sleeps)
    assert not result.already_existed
    assert len(sleeps) == 2


def test_persistent_409_is_treated_like_412(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    expect_all_parts(stub)
    for _ in range(4):
        stub.add_client_error(
            "complete_multipart_upload", "ConditionalRequestConflict", "conflict", 409
        )
    expect_abort(stub)
    expect_head(stub, metadata={"sha256": SHA})
    result = put(client, sleeps)
    assert result.already_existed
    assert result.version_id == "v0"
    assert len(sleeps) == 3


def test_409_on_single_put_is_retried(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    stub.add_client_error("put_object", "ConditionalRequestConflict", "conflict", 409)
    stub.add_response("put_object", {"VersionId": "v2"})
    result = put(client, sleeps, b"abc")
    assert result.version_id == "v2"
    assert len(sleeps) == 1


def test_412_on_complete_verifies_the_tagged_object(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    expect_all_parts(stub)
    stub.add_client_error(
        "complete_multipart_upload", "PreconditionFailed", "At least one precondition", 412
    )
    expect_abort(stub)
    expect_head(stub)
    stub.add_response(
        "get_object_tagging",
        {"TagSet": [{"Key": "sha256", "Value": SHA}]},
        {"Bucket": B, "Key": K, "VersionId": "v0", "ExpectedBucketOwner": OWNER},
    )
    result = put(client, sleeps)
    assert result.already_existed
    assert (result.size, result.sha256_hex) == (len(DATA), SHA)


def test_412_on_complete_with_other_bytes_is_a_conflict(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    expect_all_parts(stub)
    stub.add_client_error("complete_multipart_upload", "PreconditionFailed", "", 412)
    expect_abort(stub)
    expect_head(stub)
    stub.add_response("get_object_tagging", {"TagSet": [{"Key": "sha256", "Value": "0" * 64}]})
    with pytest.raises(ArchiveConflictError):
        put(client, sleeps)


def test_412_on_an_untagged_object_hashes_and_tags_it(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    stub.add_client_error("put_object", "PreconditionFailed", "", 412)
    data = b"existing bytes"
    sha = hashlib.sha256(data).hexdigest()
    expect_head(stub, size=len(data))
    stub.add_response("get_object_tagging", {"TagSet": []})
    stub.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data)},
        {"Bucket": B, "Key": K, "VersionId": "v0", "ExpectedBucketOwner": OWNER},
    )
    expect_tagging(stub, version="v0", sha=sha)
    result = put(client, sleeps, data)
    assert result.already_existed


def test_412_but_the_object_is_gone_is_retryable(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    stub.add_client_error("put_object", "PreconditionFailed", "", 412)
    stub.add_client_error("head_object", "404", "Not Found", 404)
    with pytest.raises(UploadError) as info:
        put(client, sleeps, b"abc")
    assert info.value.retryable


def test_412_with_a_different_size_is_a_conflict(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    stub.add_client_error("put_object", "PreconditionFailed", "", 412)
    expect_head(stub, size=4, metadata={"sha256": hashlib.sha256(b"abc").hexdigest()})
    with pytest.raises(ArchiveConflictError):
        put(client, sleeps, b"abc")


@pytest.mark.parametrize(
    ("operation", "data"), [("create_multipart_upload", DATA), ("put_object", b"abc")]
)
def test_access_denied_on_create_or_put(stubbed: Stubbed, operation: str, data: bytes) -> None:
    client, stub, sleeps = stubbed
    stub.add_client_error(operation, "AccessDenied", "Access Denied", 403)
    with pytest.raises(UploadError, match="AccessDenied") as info:
        put(client, sleeps, data)
    assert info.value.retryable


def test_failed_abort_does_not_hide_the_original_error(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    expect_create(stub)
    stub.add_client_error("upload_part", "InternalError", "We encountered an internal error", 500)
    stub.add_client_error("abort_multipart_upload", "AccessDenied", "Access Denied", 403)
    with pytest.raises(UploadError, match="InternalError"):
        put(client, sleeps)


def test_upload_already_gone_on_abort_is_fine(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    expect_all_parts(stub)
    stub.add_client_error("complete_multipart_upload", "PreconditionFailed", "", 412)
    stub.add_client_error("abort_multipart_upload", "NoSuchUpload", "gone", 404)
    expect_head(stub, metadata={"sha256": SHA})
    assert put(client, sleeps).already_existed


def test_tagging_failure_after_complete_is_retryable(stubbed: Stubbed) -> None:
    client, stub, sleeps = stubbed
    expect_all_parts(stub)
    stub.add_response("complete_multipart_upload", {"VersionId": "v1"})
    stub.add_client_error("put_object_tagging", "AccessDenied", "Access Denied", 403)
    with pytest.raises(UploadError) as info:
        put(client, sleeps)
    assert info.value.retryable
