"""The 412 path of a multipart object through the real ArchiveFunction handler.

A worker that dies between CompleteMultipartUpload and tagging leaves the right bytes under the
key without their SHA-256 tag. The next attempt's create-only upload gets 412; the archiver must
then read the tag of, hash, and tag the very version its HeadObject measured (VersionId on every
request: the *Version* IAM actions, which tests/infra/test_permissions.py checks on the role).
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3

from recording_archive.handlers import archive_stream, wiring
from recording_archive_cli.local.filters import event_matches_filters, stream_filter_patterns
from recording_archive_cli.local.resources import LocalResources
from tests.support.callback_flow import post_signed_callback
from tests.support.lambda_context import FakeLambdaContext
from tests.support.media_server import GeneratedBody, MediaServer
from tests.support.moto_resources import TOKEN
from tests.support.plivo import AUTH_ID, recording_event
from tests.support.streams import stream_records

MiB = 1024 * 1024


def _untagged_multipart_object(s3: Any, bucket: str, key: str, data: bytes) -> str:
    """The object a worker killed right after CompleteMultipartUpload leaves: no sha256 tag."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), 5 * MiB), start=1):
        etag = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            PartNumber=number,
            Body=data[start : start + 5 * MiB],
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return str(done["VersionId"])


def test_an_untagged_multipart_object_is_hashed_tagged_on_its_version_and_accepted(
    function_env: Any, resources: LocalResources, media: MediaServer
) -> None:
    body = GeneratedBody(11 * MiB, seed=12)
    data = b"".join(body.chunks())
    recording = str(uuid.uuid4())
    path = f"/v1/Account/{AUTH_ID}/Recording/{recording}.mp3"
    media.add(path, body, content_type="audio/mpeg")
    params = recording_event(
        "SessionRecordingCompleted",
        sequence=2,
        recording_uuid=recording,
        recording_url=media.url(path),
    )
    s3 = boto3.client("s3", endpoint_url=resources.endpoint_url)
    bucket = resources.bucket_name
    # The archive key of recording_event's start time (the same layout test_archive.py uses).
    key = f"recordings/2026/11/20/{params['SessionUUID']}/{recording}.mp3"
    version = _untagged_multipart_object(s3, bucket, key, data)
    try:
        function_env("CallbackFunction", MEDIA_ALLOW_LOOPBACK="true")
        assert post_signed_callback(params, TOKEN) == 200
        function_env(
            "ArchiveFunction",
            MEDIA_ALLOW_LOOPBACK="true",
            MEDIA_RETRY_BUDGET_SECONDS="0.5",
            PART_SIZE_MIB="5",
        )
        wiring.reset()
        patterns = stream_filter_patterns("ArchiveFunction")
        records = [
            r
            for r in stream_records(resources.endpoint_url, resources.stream_arn)
            if event_matches_filters(r, patterns)
        ]
        assert len(records) == 1
        result = archive_stream.lambda_handler({"Records": records}, FakeLambdaContext())
    finally:
        wiring.reset()
    assert result == {"batchItemFailures": []}
    # Nothing was overwritten: still one version, now tagged with the whole file's SHA-256.
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert [v["VersionId"] for v in versions] == [version]
    tags = s3.get_object_tagging(Bucket=bucket, Key=key, VersionId=version)["TagSet"]
    assert {"Key": "sha256", "Value": body.sha256_hex} in tags
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
    item = ddb.get_item(
        TableName=resources.table_name,
        Key={"SessionUUID": {"S": params["SessionUUID"]}, "SequenceNumber": {"N": "2"}},
        ConsistentRead=True,
    )["Item"]
    assert item["ArchiveStatus"] == {"S": "ARCHIVED"}
    assert item["ArchiveKey"] == {"S": key}
    assert item["ArchiveSha256"] == {"S": body.sha256_hex}
