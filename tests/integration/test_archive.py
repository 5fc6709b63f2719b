"""Callback -> table -> stream -> the real ArchiveFunction handler -> S3, and the sweeper.

Everything runs for real: the callback handler writes the table in moto, the stream records come
from moto's DynamoDB Streams, filtered by the template's own FilterCriteria, and the media comes
over HTTP from a scripted server on loopback.

One module (over 500 lines): the cases share one harness (resources, stream records, handlers).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
import uuid
from typing import Any

import boto3
import pytest

from recording_archive.dal import aws as aws_clients
from recording_archive.dal.events_table import (
    ARCHIVE_CLAIM_TOKEN,
    ARCHIVE_LEASE_UNTIL,
    RecordingEventStore,
)
from recording_archive.handlers import archive_stream, sweeper, wiring
from recording_archive.handlers.recording_callback import lambda_handler as callback_handler
from recording_archive.logic.archive_recording import ABANDONED_ERROR
from recording_archive.logic.dispatch import oldest_pending_age
from recording_archive.models.archive import Claim, ClaimRefusal, ClaimRefused
from recording_archive_cli.local.filters import event_matches_filters, stream_filter_patterns
from recording_archive_cli.local.resources import LocalResources
from tests.support.archive_work import drain_work_queue, sweep_and_archive
from tests.support.callback_flow import signed_form_event
from tests.support.emf import emf_values
from tests.support.media_server import Drip, GeneratedBody, MediaServer, Status, wav_body
from tests.support.moto_resources import TOKEN, set_secret
from tests.support.plivo import AUTH_ID, recording_event
from tests.support.streams import stream_records

MiB = 1024 * 1024
FAST = {"MEDIA_RETRY_BUDGET_SECONDS": "0.5", "MEDIA_ALLOW_LOOPBACK": "true"}


@pytest.fixture
def stack(function_env: Any, resources: LocalResources) -> Any:
    class Stack:
        res = resources

        def post(self, params: dict[str, str]) -> int:
            function_env("CallbackFunction", MEDIA_ALLOW_LOOPBACK="true")
            return int(callback_handler(signed_form_event(params, TOKEN), _ctx())["statusCode"])

        def archive_env(self, **overrides: str) -> None:
            function_env("ArchiveFunction", **(FAST | overrides))
            wiring.reset()

        def sweeper_env(self, **overrides: str) -> None:
            """The sweeper's and the work queue consumer's environments (the sweep archives
            through ArchiveWorkFunction: tests/support/archive_work.py)."""
            for fn in ("SweeperFunction", "ArchiveWorkFunction"):
                function_env(fn, **(FAST | {"SWEEP_GRACE_SECONDS": "0"} | overrides))
            wiring.reset()

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
    wiring.reset()


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
    counts = sweep_and_archive(now=10**10)
    assert counts == {"archived": 1}
    assert stack.item(params["SessionUUID"], 2)["ArchiveStatus"] == {"S": "ARCHIVED"}


def test_sweeper_marks_failed_after_max_attempts(stack: Any, media: MediaServer) -> None:
    params = _completed(media, wav_body(0.2))
    path = params["RecordingURL"].split(str(media.port), 1)[1]
    media.add(path, b"", faults=[Status(500, times=None)])
    assert stack.post(params) == 200
    stack.sweeper_env(SWEEP_MAX_ATTEMPTS="2")
    assert sweep_and_archive(now=10**10) == {"retry_later": 1}
    assert sweep_and_archive(now=10**11) == {"failed": 1}
    item = stack.item(params["SessionUUID"], 2)
    assert item["ArchiveStatus"] == {"S": "FAILED"}
    assert item["ArchiveQueue"] == {"S": "FAILED"}
    assert item["ArchiveAttempts"] == {"N": "2"}
    # A FAILED item is not swept again.
    assert sweep_and_archive(now=10**12) == {}


def _hold(stack: Any, session: str, seq: int) -> None:
    """The marker `recording-archive hold set` puts on an item (operator/compliance.py)."""
    boto3.client("dynamodb", endpoint_url=stack.res.endpoint_url).update_item(
        TableName=stack.res.table_name,
        Key={"SessionUUID": {"S": session}, "SequenceNumber": {"N": str(seq)}},
        UpdateExpression="SET LegalHold = :h REMOVE ExpiresAt",
        ExpressionAttributeValues={
            ":h": {"M": {"Reason": {"S": "dispute"}, "SetAt": {"S": "2026-12-03T10:00:00Z"}}}
        },
    )


def _legal_hold_status(stack: Any, item: dict[str, Any]) -> str | None:
    try:
        answer = stack.s3().get_object_legal_hold(
            Bucket=stack.res.bucket_name,
            Key=item["ArchiveKey"]["S"],
            VersionId=item["ArchiveVersionId"]["S"],
        )
    except stack.s3().exceptions.ClientError as exc:  # S3: no hold was ever set on the version
        if "NoSuchObjectLockConfiguration" not in str(exc):
            raise
        return None
    status = answer.get("LegalHold", {}).get("Status")  # moto: no Status for no hold
    return None if status is None else str(status)


@pytest.mark.parametrize("size", [256 * 1024, 12 * MiB], ids=["single-put", "multipart"])
def test_a_recording_held_before_it_was_archived_is_written_under_legal_hold(
    stack: Any, media: MediaServer, size: int
) -> None:
    held = _completed(media, GeneratedBody(size, seed=3))
    free = _completed(media, wav_body(0.2), seq=4)
    assert stack.post(held) == 200
    assert stack.post(free) == 200
    _hold(stack, held["SessionUUID"], 2)
    stack.archive_env(PART_SIZE_MIB="5")
    assert stack.run_archiver(stack.matching_records()) == {"batchItemFailures": []}
    item = stack.item(held["SessionUUID"], 2)
    assert item["ArchiveStatus"] == {"S": "ARCHIVED"}
    assert "LegalHold" in item
    assert _legal_hold_status(stack, item) == "ON"
    other = stack.item(free["SessionUUID"], 4)
    assert other["ArchiveStatus"] == {"S": "ARCHIVED"}
    assert _legal_hold_status(stack, other) is None


def test_a_held_recording_already_in_the_bucket_gets_the_hold_on_the_412_path(
    stack: Any, media: MediaServer
) -> None:
    """An earlier attempt wrote the object (and died) before the hold was set: the next attempt
    meets it (412), verifies it and puts the legal hold on that version."""
    from recording_archive.dal.events_table import deserialize_item
    from recording_archive.dal.recording_store import RecordingStore
    from recording_archive.logic.archive_recording import ArchiveJob

    audio = wav_body(0.3)
    params = _completed(media, audio)
    assert stack.post(params) == 200
    stack.archive_env()
    archiver = wiring.archiver()
    job = ArchiveJob.from_item(deserialize_item(stack.item(params["SessionUUID"], 2)))
    earlier = RecordingStore(stack.s3()).put_stream(
        archiver.spec(job), io.BytesIO(audio.data).read, audio.size
    )
    assert not earlier.already_existed
    _hold(stack, params["SessionUUID"], 2)
    assert stack.run_archiver(stack.matching_records()) == {"batchItemFailures": []}
    item = stack.item(params["SessionUUID"], 2)
    assert item["ArchiveStatus"] == {"S": "ARCHIVED"}
    assert item["ArchiveVersionId"] == {"S": earlier.version_id}  # the same version, verified
    assert _legal_hold_status(stack, item) == "ON"


def test_the_sweeper_measures_the_age_of_the_oldest_pending_recording(
    stack: Any, media: MediaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """OldestPendingAgeSeconds (the dashboard's archive lag): time since the PENDING item longest
    due was received; 0 once nothing is pending."""
    params = _completed(media, wav_body(0.2))
    path = params["RecordingURL"].split(str(media.port), 1)[1]
    media.add(path, b"", faults=[Status(500, times=None)])
    stack.sweeper_env(SWEEP_MAX_ATTEMPTS="1")
    store = wiring.sweeper_collaborators().items
    assert oldest_pending_age(store, time.time()) == 0.0  # nothing pending yet
    assert stack.post(params) == 200
    age = oldest_pending_age(store, time.time() + 3600)
    assert 3600 <= age < 3600 + 60, age
    capsys.readouterr()
    sweeper.lambda_handler({}, _ctx())  # measured first, then the item is enqueued
    metrics_out = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    emitted = [m["OldestPendingAgeSeconds"] for m in metrics_out if "OldestPendingAgeSeconds" in m]
    assert len(emitted) == 1, metrics_out
    [seconds] = emitted[0] if isinstance(emitted[0], list) else [emitted[0]]
    assert 0 <= seconds < 60, metrics_out
    assert drain_work_queue() == {"failed": 1}  # the one attempt allowed fails
    # FAILED now, so nothing is pending any more.
    assert stack.item(params["SessionUUID"], 2)["ArchiveStatus"] == {"S": "FAILED"}
    assert oldest_pending_age(store, time.time() + 3600) == 0.0


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


# --- claims: bounded, counted attempts ----------------------------------------------------------
def _store(stack: Any) -> RecordingEventStore:
    ddb = boto3.client("dynamodb", endpoint_url=stack.res.endpoint_url)
    return RecordingEventStore(ddb, stack.res.table_name)


def _stored_completed(stack: Any, media: MediaServer, body: Any = None) -> tuple[str, int]:
    params = _completed(media, body or wav_body(0.2))
    assert stack.post(params) == 200
    return params["SessionUUID"], 2


def _emf(out: str, name: str) -> float:
    """The sum of one metric over the EMF documents printed on stdout."""
    return sum(emf_values(out, name))


def test_of_concurrent_claims_exactly_one_wins(stack: Any, media: MediaServer) -> None:
    session, seq = _stored_completed(stack, media)
    store = _store(stack)
    now = int(time.time())
    # One after another: moto does not serialize concurrent conditional updates of one item
    # (two threads were both granted the claim once), while DynamoDB does. What moto can show is
    # the condition itself: once one claim holds the item, every other is refused HELD.
    results = [
        store.claim(session, seq, token=f"t{n}", now=now, lease_until=now + 900) for n in range(6)
    ]
    won = [r for r in results if isinstance(r, Claim)]
    assert len(won) == 1
    assert [r.reason for r in results if isinstance(r, ClaimRefused)] == [ClaimRefusal.HELD] * 5
    item = stack.item(session, seq)
    assert item["ArchiveAttempts"] == {"N": "1"}
    assert item[ARCHIVE_CLAIM_TOKEN] == {"S": won[0].token}
    assert item[ARCHIVE_LEASE_UNTIL] == item["ArchiveDueAt"] == {"N": str(now + 900)}


def test_claim_conditions_against_the_table(stack: Any, media: MediaServer) -> None:
    session, seq = _stored_completed(stack, media)
    store = _store(stack)
    t = int(time.time())
    assert store.claim("no-such-session", 1, token="x", now=t, lease_until=t + 9) == (
        ClaimRefused(ClaimRefusal.GONE)
    )
    first = store.claim(session, seq, token="a", now=t, lease_until=t + 10)
    assert first == Claim("a", 1, t + 10, abandoned_lease=False)
    held = store.claim(session, seq, token="b", now=t + 9, lease_until=t + 20)
    assert isinstance(held, ClaimRefused) and held.reason is ClaimRefusal.HELD
    # The lease ran out without a report: claimable, counted on, the abandonment visible.
    second = store.claim(session, seq, token="b", now=t + 10, lease_until=t + 20)
    assert second == Claim("b", 2, t + 20, abandoned_lease=True)
    exhausted = store.claim(session, seq, token="c", now=t + 30, lease_until=t + 40, max_attempts=2)
    assert exhausted == ClaimRefused(ClaimRefusal.EXHAUSTED, 2, "", abandoned_lease=True)
    # The first holder's late report is not written over its successor's claim...
    assert (
        store.record_failure(
            session, seq, error="late", next_due_at=t + 99, failed=False, claim_token="a"
        )
        is None
    )
    # ...the holder's is, without counting the attempt twice, and releases the item.
    assert (
        store.record_failure(
            session, seq, error="E: x", next_due_at=t + 99, failed=False, claim_token="b"
        )
        == 2
    )
    item = stack.item(session, seq)
    assert ARCHIVE_LEASE_UNTIL not in item and ARCHIVE_CLAIM_TOKEN not in item
    assert item["ArchiveDueAt"] == {"N": str(t + 99)}
    not_due = store.claim(session, seq, token="d", now=t + 50, lease_until=t + 60, due_by=t + 50)
    assert isinstance(not_due, ClaimRefused) and not_due.reason is ClaimRefusal.NOT_DUE
    third = store.claim(session, seq, token="d", now=t + 99, lease_until=t + 120, due_by=t + 99)
    assert third == Claim("d", 3, t + 120, abandoned_lease=False)
    archived = store.mark_archived(
        session,
        seq,
        bucket="b",
        key="k",
        version_id=None,
        size=1,
        sha256_hex="0" * 64,
        archived_at="2026-01-01T00:00:00.000Z",
    )
    assert archived
    mark = {"bucket": "b", "key": "k", "version_id": None, "size": 1, "sha256_hex": "0" * 64}
    # Another attempt's mark is refused: the recording counts once...
    assert not store.mark_archived(session, seq, **mark, archived_at="2026-01-01T00:00:09.000Z")
    # ...but the same update again (botocore's retry of one whose answer was lost) is its own.
    assert store.mark_archived(session, seq, **mark, archived_at="2026-01-01T00:00:00.000Z")
    item = stack.item(session, seq)
    assert ARCHIVE_LEASE_UNTIL not in item and "ArchiveDueAt" not in item
    refused = store.claim(session, seq, token="e", now=t + 999, lease_until=t + 1999)
    assert isinstance(refused, ClaimRefused) and refused.reason is ClaimRefusal.ARCHIVED
    # Exhausted attempts are FAILED only while no lease is held.
    assert (
        store.record_failure(session, seq, error="x", next_due_at=t, failed=True, lease_free_at=t)
        is None
    )  # ARCHIVED: never regressed


def test_a_recording_held_by_another_attempt_is_not_a_failed_record(
    stack: Any, media: MediaServer
) -> None:
    session, seq = _stored_completed(stack, media)
    now = int(time.time())
    assert isinstance(
        _store(stack).claim(session, seq, token="other", now=now, lease_until=now + 900), Claim
    )
    stack.archive_env()
    assert stack.run_archiver(stack.matching_records()) == {"batchItemFailures": []}
    assert media.requests == []  # nothing downloaded
    item = stack.item(session, seq)
    assert item["ArchiveStatus"] == {"S": "PENDING"}
    assert item[ARCHIVE_CLAIM_TOKEN] == {"S": "other"}


def test_a_stream_retry_after_the_last_allowed_attempt_makes_the_recording_failed(
    stack: Any, media: MediaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stream's claims count towards SWEEP_MAX_ATTEMPTS with the work queue's: a stream
    record retried after the last allowed attempt (the work queue's came between, once a lease
    ran out) downloads nothing and makes the recording FAILED, as the work queue would. The
    stream's retries used to claim without a limit and push the count past it."""
    session, seq = _stored_completed(stack, media)
    store = _store(stack)
    t = int(time.time()) - 120
    for n in (1, 2):  # two attempts that never reported (their leases ran out)
        claim = store.claim(session, seq, token=f"dead{n}", now=t + 60 * n, lease_until=t + 60 * n)
        assert isinstance(claim, Claim)
    stack.archive_env(SWEEP_MAX_ATTEMPTS="2")
    capsys.readouterr()
    assert stack.run_archiver(stack.matching_records()) == {"batchItemFailures": []}
    assert media.requests == []
    assert _emf(capsys.readouterr().out, "RecordingsFailed") == 1
    item = stack.item(session, seq)
    assert item["ArchiveStatus"] == {"S": "FAILED"}
    assert item["ArchiveAttempts"] == {"N": "2"}
    assert item["ArchiveLastError"] == {"S": ABANDONED_ERROR}
    # Below the limit the same retry archives (the default, 8).
    session, seq = _stored_completed(stack, media)
    assert isinstance(store.claim(session, seq, token="dead", now=t, lease_until=t), Claim)
    stack.archive_env()
    records = [r for r in stack.matching_records() if _record_key(r) == (session, seq)]
    assert stack.run_archiver(records) == {"batchItemFailures": []}
    assert stack.item(session, seq)["ArchiveAttempts"] == {"N": "2"}
    assert stack.item(session, seq)["ArchiveStatus"] == {"S": "ARCHIVED"}


def _record_key(record: dict[str, Any]) -> tuple[str, int]:
    keys = record["dynamodb"]["Keys"]
    return keys["SessionUUID"]["S"], int(keys["SequenceNumber"]["N"])


def test_the_transfer_stops_before_the_invocation_ends_and_aborts_its_upload(
    stack: Any, media: MediaServer
) -> None:
    # 16 MiB at about 5 MiB/s: the first 5 MiB part is read and the multipart upload created
    # after about 1 s; the invocation has 3 s and stops its transfer with 1 s left, mid-body.
    body = GeneratedBody(16 * MiB, seed=5)
    params = _completed(media, body, ext="mp3")
    path = params["RecordingURL"].split(str(media.port), 1)[1]
    media.add(path, body, faults=[Drip(every=0.1, chunk=512 * 1024, times=None)])
    assert stack.post(params) == 200
    stack.archive_env(PART_SIZE_MIB="5", ARCHIVE_STOP_MARGIN_SECONDS="1")
    records = stack.matching_records()
    calls: list[str] = []
    aws_clients.s3_client().meta.events.register(
        "after-call.s3", lambda model, **_: calls.append(model.name)
    )
    started = time.monotonic()
    result = archive_stream.lambda_handler({"Records": records}, _deadline_context(3.0))
    assert time.monotonic() - started < 3.0  # stopped by itself, before the timeout
    # Reported as a failed record (Lambda retries it), as any retryable failure is.
    assert result == {
        "batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
    }
    item = stack.item(params["SessionUUID"], 2)
    assert item["ArchiveStatus"] == {"S": "PENDING"}
    assert item["ArchiveAttempts"] == {"N": "1"}
    assert item["ArchiveLastError"]["S"].startswith("TransferDeadlineError: ")
    assert ARCHIVE_LEASE_UNTIL not in item  # released: due again after the backoff
    assert int(item["ArchiveDueAt"]["N"]) > time.time()
    # The multipart upload was under way, and was aborted.
    assert calls[0] == "CreateMultipartUpload" and calls[-1] == "AbortMultipartUpload", calls
    assert "CompleteMultipartUpload" not in calls
    assert stack.no_incomplete_uploads()
    assert "Contents" not in stack.s3().list_objects_v2(Bucket=stack.res.bucket_name)


def test_abandoned_attempts_count_and_end_failed_with_the_alarm_metric(
    stack: Any, media: MediaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two workers died holding the claim (claims never released stand in for them; the local
    stack's own kills are in tests/e2e/test_archive_timeouts.py): each counted when it claimed,
    and at SWEEP_MAX_ATTEMPTS the sweeper makes the item FAILED without another download."""
    session, seq = _stored_completed(stack, media)
    store = _store(stack)
    t = int(time.time())
    assert isinstance(store.claim(session, seq, token="dead1", now=t, lease_until=t + 60), Claim)
    stack.sweeper_env(SWEEP_MAX_ATTEMPTS="2")
    # While the lease runs the item is not due: the sweeper leaves it alone.
    assert _sweep_at(t + 59) == {}
    second = store.claim(session, seq, token="dead2", now=t + 60, lease_until=t + 120)
    assert second == Claim("dead2", 2, t + 120, abandoned_lease=True)
    capsys.readouterr()
    assert _sweep_at(t + 120) == {"failed": 1}
    out = capsys.readouterr().out
    assert _emf(out, "RecordingsFailed") == 1
    item = stack.item(session, seq)
    assert item["ArchiveStatus"] == item["ArchiveQueue"] == {"S": "FAILED"}
    assert item["ArchiveAttempts"] == {"N": "2"}
    assert item["ArchiveLastError"] == {"S": ABANDONED_ERROR}
    assert ARCHIVE_LEASE_UNTIL not in item
    assert media.requests == []
    assert _sweep_at(t + 10**6) == {}  # FAILED: not swept again


def _sweep_at(now: float) -> dict[str, int]:
    """One sweep and the work it enqueued (metrics flushed), the clocks at `now`."""
    return sweep_and_archive(now=now)


def _deadline_context(seconds: float) -> Any:
    """Lambda's context with a real deadline (the local stack's own context class)."""
    from recording_archive_cli.local.lambda_worker import LambdaContext

    return LambdaContext(
        function_name="local-ArchiveFunction",
        function_version="$LATEST",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:local-ArchiveFunction",
        memory_limit_in_mb=256,
        aws_request_id=str(uuid.uuid4()),
        log_group_name="/aws/lambda/local-ArchiveFunction",
        log_stream_name="local",
        deadline_ms=int((time.time() + seconds) * 1000),
    )


def test_a_sweep_stops_enqueueing_when_its_invocation_runs_low_on_time(
    stack: Any, media: MediaServer
) -> None:
    """With less than half of a short invocation left (or 30 s), the sweep stops: what it
    reached is enqueued, the rest stays PENDING, unmarked, for the next sweep."""
    first = _stored_completed(stack, media)
    second = _stored_completed(stack, media)
    stack.sweeper_env()
    readings = iter([4_000, 4_000])  # at the start, and before the first item

    def time_left() -> int:
        return next(readings, 1_900)  # then below half of the 4 s the sweep started with

    counts = sweeper.sweep(wiring.sweeper_collaborators(), time_left_ms=time_left)
    assert counts == {"enqueued": 1, "deferred": 1}
    marked = ["ArchiveEnqueuedUntil" in stack.item(*key) for key in (first, second)]
    assert sorted(marked) == [False, True]
    assert sweep_and_archive() == {"archived": 2}  # the next sweep goes on


def test_a_refusal_the_item_no_longer_explains_leaves_it_to_the_other_attempt(
    stack: Any, media: MediaServer
) -> None:
    """The item changed between the refused update and the read that explains it (another
    attempt claimed, then released it): nothing is done, as for a held item."""
    session, seq = _stored_completed(stack, media)
    t = int(time.time())
    _store(stack).claim(session, seq, token="other", now=t, lease_until=t + 600)

    class ReleasedMeanwhile(RecordingEventStore):
        def get(self, session_uuid: str, sequence_number: int) -> dict[str, Any] | None:
            return {"ArchiveStatus": "PENDING", "ArchiveAttempts": 1, "ArchiveDueAt": t}

    ddb = boto3.client("dynamodb", endpoint_url=stack.res.endpoint_url)
    store = ReleasedMeanwhile(ddb, stack.res.table_name)
    refused = store.claim(session, seq, token="me", now=t + 1, lease_until=t + 9, max_attempts=5)
    assert refused == ClaimRefused(ClaimRefusal.HELD, 1, "", abandoned_lease=False)
