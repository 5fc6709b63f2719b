"""Callback -> table -> stream -> the real ArchiveFunction handler -> S3, and the sweeper.

Everything runs for real: the callback handler writes the table in moto, the stream records come
from moto's DynamoDB Streams, filtered by the template's own FilterCriteria, and the media comes
over HTTP from a scripted server on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from recording_archive.handlers import archive_stream, sweeper
from recording_archive.handlers.recording_callback import lambda_handler as callback_handler
from recording_archive_cli.local_resources import (
    LocalResources,
    event_matches_filters,
    stream_filter_patterns,
)
from tests.integration.conftest import TOKEN, clear_caches, set_secret
from tests.support.http_events import form_body, http_event
from tests.support.media_server import GeneratedBody, MediaServer, Status, wav_body
from tests.support.plivo import AUTH_ID, recording_event, sdk_signature
from tests.support.streams import stream_records

MiB = 1024 * 1024
PUBLIC_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/callbacks/recording"
FAST = {"MEDIA_RETRY_BUDGET_SECONDS": "0.5", "MEDIA_ALLOW_LOOPBACK": "true"}


@pytest.fixture
def media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        yield server


@pytest.fixture
def stack(function_env: Any, resources: LocalResources) -> Any:
    class Stack:
        res = resources

        def post(self, params: dict[str, str]) -> int:
            function_env("CallbackFunction", MEDIA_ALLOW_LOOPBACK="true")
            nonce = uuid.uuid4().hex
            sig = sdk_signature(TOKEN, "POST", PUBLIC_URL, params, nonce)
            event = http_event(
                "POST",
                body=form_body(params),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Plivo-Signature-V3": sig,
                    "X-Plivo-Signature-V3-Nonce": nonce,
                },
            )
            return int(callback_handler(event, _ctx())["statusCode"])

        def archive_env(self, **overrides: str) -> None:
            function_env("ArchiveFunction", **(FAST | overrides))
            archive_stream.default_archiver.cache_clear()

        def sweeper_env(self, **overrides: str) -> None:
            function_env("SweeperFunction", **(FAST | {"SWEEP_GRACE_SECONDS": "0"} | overrides))
            sweeper._defaults.cache_clear()

        def matching_records(self) -> list[dict[str, Any]]:
            patterns = stream_filter_patterns("ArchiveFunction")
            return [
                r
                for r in stream_records(resources.endpoint_url, resources.stream_arn)
                if event_matches_filters(r, patterns)
            ]

        def run_archiver(self, records: list[dict[str, Any]]) -> dict[str, Any]:
            return archive_stream.lambda_handler({"Records": records}, _ctx())

        def item(self, session: str, seq: int) -> dict[str, Any]:
            ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
            key = {"SessionUUID": {"S": session}, "SequenceNumber": {"N": str(seq)}}
            return ddb.get_item(TableName=resources.table_name, Key=key, ConsistentRead=True)[
                "Item"
            ]

        def s3(self) -> Any:
            return boto3.client("s3", endpoint_url=resources.endpoint_url)

        def no_incomplete_uploads(self) -> bool:
            resp = self.s3().list_multipart_uploads(Bucket=resources.bucket_name)
            return not resp.get("Uploads")

    yield Stack()
    archive_stream.default_archiver.cache_clear()
    sweeper._defaults.cache_clear()
    clear_caches()


def _ctx() -> Any:
    from tests.support.lambda_context import FakeLambdaContext

    return FakeLambdaContext()


def _completed(media: MediaServer, body: Any, *, ext: str = "wav", seq: int = 2) -> dict[str, str]:
    rec = str(uuid.uuid4())
    path = f"/v1/Account/{AUTH_ID}/Recording/{rec}.{ext}"
    media.add(path, body, content_type="audio/wav" if ext == "wav" else "audio/mpeg")
    return recording_event(
        "SessionRecordingCompleted",
        sequence=seq,
        recording_uuid=rec,
        recording_url=media.url(path),
        fmt=f".{ext}",
    )


def test_completed_callback_ends_archived_with_matching_bytes(
    stack: Any, media: MediaServer
) -> None:
    audio = wav_body(seconds=2.0)
    initiated = recording_event("SessionRecordingInitiated", sequence=1)
    params = _completed(media, audio) | {"SessionUUID": initiated["SessionUUID"]}
    assert stack.post(initiated) == 200
    assert stack.post(params) == 200

    records = stack.matching_records()
    assert [r["dynamodb"]["NewImage"]["EventName"]["S"] for r in records] == [
        "SessionRecordingCompleted"
    ]  # the template's filter passes only the Completed INSERT
    stack.archive_env()
    assert stack.run_archiver(records) == {"batchItemFailures": []}

    session, rec = params["SessionUUID"], params["RecordingUUID"]
    key = f"recordings/2026/11/20/{session}/{rec}.wav"
    obj = stack.s3().get_object(Bucket=stack.res.bucket_name, Key=key)
    data = obj["Body"].read()
    assert data == audio.data
    assert obj["ContentType"] == "audio/wav"
    assert obj["ServerSideEncryption"] == "aws:kms"
    assert obj["SSEKMSKeyId"] == stack.res.kms_key_arn
    sha = hashlib.sha256(data).hexdigest()
    assert obj["Metadata"] | {"sha256": sha} == {
        "session-uuid": session,
        "recording-uuid": rec,
        "sequence-number": "2",
        "duration": "12",
        "start-time": "2026-11-20T10:25:10.000Z",
        "end-time": "2026-11-20T10:25:40.000Z",
        "format": "wav",
        "sha256": sha,
    }
    item = stack.item(session, 2)
    assert item["ArchiveStatus"] == {"S": "ARCHIVED"}
    assert item["ArchiveKey"] == {"S": key}
    assert item["ArchiveSha256"] == {"S": sha}
    assert item["ArchiveSize"] == {"N": str(len(data))}
    assert item["ArchiveVersionId"]["S"] == obj["VersionId"]
    assert "ArchiveQueue" not in item  # out of the pending index
    assert stack.no_incomplete_uploads()


def test_same_record_twice_makes_one_object_one_version(stack: Any, media: MediaServer) -> None:
    params = _completed(media, wav_body(0.5))
    assert stack.post(params) == 200
    stack.archive_env()
    records = stack.matching_records()
    assert stack.run_archiver(records + records) == {"batchItemFailures": []}
    assert stack.run_archiver(records) == {"batchItemFailures": []}
    versions = stack.s3().list_object_versions(Bucket=stack.res.bucket_name)["Versions"]
    assert len(versions) == 1
    # Only the first run downloaded: later ones saw ARCHIVED in the index.
    assert len(media.requests) == 1


def test_large_recording_goes_through_multipart(stack: Any, media: MediaServer) -> None:
    body = GeneratedBody(12 * MiB, seed=3)
    params = _completed(media, body, ext="mp3")
    assert stack.post(params) == 200
    stack.archive_env(PART_SIZE_MIB="5")
    assert stack.run_archiver(stack.matching_records()) == {"batchItemFailures": []}
    item = stack.item(params["SessionUUID"], 2)
    assert item["ArchiveSha256"] == {"S": body.sha256_hex}
    assert item["ArchiveSize"] == {"N": str(12 * MiB)}
    tags = stack.s3().get_object_tagging(Bucket=stack.res.bucket_name, Key=item["ArchiveKey"]["S"])
    assert {"Key": "sha256", "Value": body.sha256_hex} in tags["TagSet"]
    assert stack.no_incomplete_uploads()


def test_unavailable_media_fails_the_record_then_the_sweeper_archives_it(
    stack: Any, media: MediaServer
) -> None:
    audio = wav_body(0.5)
    params = _completed(media, audio)
    path = params["RecordingURL"].split(str(media.port), 1)[1]
    media.add(path, audio, content_type="audio/wav", faults=[Status(404, times=None)])
    assert stack.post(params) == 200
    stack.archive_env()
    records = stack.matching_records()
    result = stack.run_archiver(records)
    assert result == {
        "batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
    }
    item = stack.item(params["SessionUUID"], 2)
    assert item["ArchiveStatus"] == {"S": "PENDING"}
    assert item["ArchiveAttempts"] == {"N": "1"}
    assert "MediaUnavailableError" in item["ArchiveLastError"]["S"]
    assert stack.no_incomplete_uploads()

    media.add(path, audio, content_type="audio/wav")  # the source recovers
    stack.sweeper_env()
    counts = sweeper.sweep(*sweeper._defaults(), now=10**10)
    assert counts == {"archived": 1}
    assert stack.item(params["SessionUUID"], 2)["ArchiveStatus"] == {"S": "ARCHIVED"}


def test_sweeper_marks_failed_after_max_attempts(stack: Any, media: MediaServer) -> None:
    params = _completed(media, wav_body(0.2))
    path = params["RecordingURL"].split(str(media.port), 1)[1]
    media.add(path, b"", faults=[Status(500, times=None)])
    assert stack.post(params) == 200
    stack.sweeper_env(SWEEP_MAX_ATTEMPTS="2")
    assert sweeper.sweep(*sweeper._defaults(), now=10**10) == {"retry_later": 1}
    assert sweeper.sweep(*sweeper._defaults(), now=10**11) == {"failed": 1}
    item = stack.item(params["SessionUUID"], 2)
    assert item["ArchiveStatus"] == {"S": "FAILED"}
    assert item["ArchiveQueue"] == {"S": "FAILED"}
    assert item["ArchiveAttempts"] == {"N": "2"}
    # A FAILED item is not swept again.
    assert sweeper.sweep(*sweeper._defaults(), now=10**12) == {}


def test_refused_url_is_failed_at_once_without_any_request(
    stack: Any, media: MediaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    params = recording_event(
        "SessionRecordingCompleted", sequence=5, recording_url="https://169.254.169.254/latest.mp3"
    )
    assert stack.post(params) == 200
    stack.archive_env()
    assert stack.run_archiver(stack.matching_records()) == {"batchItemFailures": []}
    item = stack.item(params["SessionUUID"], 5)
    assert item["ArchiveStatus"] == {"S": "FAILED"}
    assert "MediaRefusedError" in item["ArchiveLastError"]["S"]
    metrics_out = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line
    ]
    assert any(
        m.get("RecordingsFailed") == [1.0] or m.get("RecordingsFailed") == 1.0 for m in metrics_out
    )


def test_existing_different_object_is_a_conflict_never_overwritten(
    stack: Any, media: MediaServer
) -> None:
    params = _completed(media, wav_body(0.5))
    key = f"recordings/2026/11/20/{params['SessionUUID']}/{params['RecordingUUID']}.wav"
    stack.s3().put_object(Bucket=stack.res.bucket_name, Key=key, Body=b"something else")
    assert stack.post(params) == 200
    stack.archive_env()
    assert stack.run_archiver(stack.matching_records()) == {"batchItemFailures": []}
    assert stack.item(params["SessionUUID"], 2)["ArchiveStatus"] == {"S": "FAILED"}
    obj = stack.s3().get_object(Bucket=stack.res.bucket_name, Key=key)
    assert obj["Body"].read() == b"something else"
    assert len(stack.s3().list_object_versions(Bucket=stack.res.bucket_name)["Versions"]) == 1


def test_basic_auth_from_the_secret(stack: Any, media: MediaServer) -> None:
    set_secret(stack.res, {"auth_id": AUTH_ID, "auth_tokens": [TOKEN]})
    rec = str(uuid.uuid4())
    path = f"/v1/Account/{AUTH_ID}/Recording/{rec}.mp3"
    media.add(path, b"ID3-mp3-bytes", basic_auth=(AUTH_ID, TOKEN))
    params = recording_event(
        "SessionRecordingCompleted", recording_uuid=rec, recording_url=media.url(path)
    )
    assert stack.post(params) == 200
    stack.archive_env(MEDIA_AUTH="true")
    assert stack.run_archiver(stack.matching_records()) == {"batchItemFailures": []}
    [req] = media.requests_for(path)
    expected = base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()
    assert req.authorization == f"Basic {expected}"


def test_non_matching_records_are_skipped_by_the_handler_too(stack: Any) -> None:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

    initiated = recording_event("SessionRecordingInitiated")
    assert stack.post(initiated) == 200
    [record] = stream_records(stack.res.endpoint_url, stack.res.stream_arn)
    assert not event_matches_filters(record, stream_filter_patterns("ArchiveFunction"))
    assert archive_stream.archive_record(DynamoDBRecord(record)) == "skipped"
    modify = dict(record, eventName="MODIFY")
    assert archive_stream.archive_record(DynamoDBRecord(modify)) == "skipped"
