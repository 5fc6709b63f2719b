"""Retention on moto: the local bucket gets the template's ExpireRecordings rule exactly when
ArchiveRetentionDays > 0, the callback writes the ExpiresAt of logic/retention.py, and nothing a
function does later gives a held item (LegalHold, no ExpiresAt) its ExpiresAt back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from recording_archive.handlers import archive_stream, wiring
from recording_archive.handlers.recording_callback import lambda_handler as callback_handler
from recording_archive.logic.retention import expires_at
from recording_archive_cli.local.filters import event_matches_filters, stream_filter_patterns
from recording_archive_cli.local.resources import LocalResources, create_local_resources
from tests.support.callback_flow import signed_form_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.media_server import MediaServer, wav_body
from tests.support.moto_resources import TOKEN
from tests.support.plivo import AUTH_ID, recording_event
from tests.support.streams import stream_records


def _rules(resources: LocalResources) -> dict[str, Any]:
    s3 = boto3.client("s3", endpoint_url=resources.endpoint_url)
    config = s3.get_bucket_lifecycle_configuration(Bucket=resources.bucket_name)
    return {r["ID"]: r for r in config["Rules"]}


def test_the_local_bucket_keeps_recordings_for_ever_by_default(resources: LocalResources) -> None:
    rules = _rules(resources)
    assert "ExpireRecordings" not in rules
    assert set(rules) == {
        "AbortIncompleteMultipartUploads",
        "ColderStorageForRecordings",
        "ExpireNoncurrentVersions",
    }


def test_the_local_bucket_expires_recordings_with_a_retention(aws: str) -> None:
    resources = create_local_resources(
        aws, auth_tokens=[TOKEN], parameters={"ArchiveRetentionDays": "400"}
    )
    rule = _rules(resources)["ExpireRecordings"]
    assert rule["Status"] == "Enabled"
    assert rule["Expiration"] == {"Days": 400}
    assert rule["Filter"] == {"Prefix": "recordings/"}


@pytest.fixture
def stored(function_env: Any, resources: LocalResources, media: MediaServer) -> Any:
    """Post callbacks with EventRetentionDays 30 and ArchiveRetentionDays 90."""

    def post(params: dict[str, str]) -> int:
        function_env(
            "CallbackFunction",
            MEDIA_ALLOW_LOOPBACK="true",
            RETENTION_DAYS="30",
            ARCHIVE_RETENTION_DAYS="90",
        )
        answer = callback_handler(signed_form_event(params, TOKEN), FakeLambdaContext())
        return int(answer["statusCode"])

    yield post
    wiring.reset()


def _item(resources: LocalResources, session: str, seq: int) -> dict[str, Any]:
    ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
    key = {"SessionUUID": {"S": session}, "SequenceNumber": {"N": str(seq)}}
    return ddb.get_item(TableName=resources.table_name, Key=key, ConsistentRead=True)["Item"]


def test_the_callback_stores_the_retention_expiry(stored: Any, resources: LocalResources) -> None:
    params = recording_event("SessionRecordingInitiated", sequence=1)
    before = datetime.now(UTC)
    assert stored(params) == 200
    after = datetime.now(UTC)
    got = int(_item(resources, params["SessionUUID"], 1)["ExpiresAt"]["N"])
    low = expires_at(before, event_days=30, archive_days=90)
    high = expires_at(after, event_days=30, archive_days=90)
    assert low is not None and high is not None and low <= got <= high  # 91 days, not 30


def test_nothing_gives_a_held_item_its_expiry_back(
    stored: Any, resources: LocalResources, media: MediaServer, function_env: Any
) -> None:
    rec = str(uuid.uuid4())
    path = f"/v1/Account/{AUTH_ID}/Recording/{rec}.wav"
    media.add(path, wav_body(0.3), content_type="audio/wav")
    params = recording_event(
        "SessionRecordingCompleted",
        sequence=2,
        recording_uuid=rec,
        recording_url=media.url(path),
        fmt=".wav",
    )
    assert stored(params) == 200
    session = params["SessionUUID"]
    assert "ExpiresAt" in _item(resources, session, 2)
    # A legal hold as `recording-archive hold set` writes it: the marker on, the TTL off.
    ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
    ddb.update_item(
        TableName=resources.table_name,
        Key={"SessionUUID": {"S": session}, "SequenceNumber": {"N": "2"}},
        UpdateExpression="SET LegalHold = :h REMOVE ExpiresAt",
        ExpressionAttributeValues={
            ":h": {"M": {"Reason": {"S": "dispute"}, "SetAt": {"S": "2026-12-03T00:00:00Z"}}}
        },
    )
    # The archive (claim, index update), a repeat of the callback, a conflicting payload.
    function_env("ArchiveFunction", MEDIA_ALLOW_LOOPBACK="true")
    patterns = stream_filter_patterns("ArchiveFunction")
    records = [
        r
        for r in stream_records(resources.endpoint_url, resources.stream_arn)
        if event_matches_filters(r, patterns)
    ]
    ctx = FakeLambdaContext()
    assert archive_stream.lambda_handler({"Records": records}, ctx) == {"batchItemFailures": []}
    assert stored(params) == 200
    assert stored(params | {"RecordingDuration": "13"}) == 200
    item = _item(resources, session, 2)
    assert item["ArchiveStatus"] == {"S": "ARCHIVED"}
    assert "ConflictingPayloads" in item  # the conflict was recorded on this very item
    assert "ExpiresAt" not in item
    assert item["LegalHold"]["M"]["Reason"] == {"S": "dispute"}
