"""Regression tests for what `make reliability` found (see reliability/ and the README)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config

from recording_archive.dal.aws import dynamodb_client
from recording_archive.dal.events_table import RecordingEventStore
from recording_archive.handlers import (
    archive_stream,
    fallback_drain,
    recording_callback,
    sweeper,
    wiring,
)
from recording_archive.handlers.wiring import CallbackDependencies
from recording_archive.models.item import PutOutcome
from recording_archive_cli.local.resources import LocalResources
from tests.support.callback_flow import signed_form_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.media_server import MediaServer, wav_body
from tests.support.moto_resources import TOKEN, scan_items
from tests.support.plivo import AUTH_ID, recording_event
from tests.support.streams import stream_records
from tests.support.tcp_proxy import FaultProxy

PUT_ITEM = b"DynamoDB_20120810.PutItem"  # the X-Amz-Target header of a PutItem request


def test_sweeper_failing_an_unarchivable_item_emits_the_alarmed_metric(
    function_env: Any, resources: LocalResources, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Completed item that cannot be archived (no RecordingURL: e.g. written by a repair or a
    reconcile with partial data) used to become FAILED silently: no RecordingsFailed, so the
    RecordingsFailedAlarm never told anyone a recording will not be archived."""
    function_env("SweeperFunction", SWEEP_GRACE_SECONDS="0")
    session = str(uuid.uuid4())
    ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
    ddb.put_item(
        TableName=resources.table_name,
        Item={
            "SessionUUID": {"S": session},
            "SequenceNumber": {"N": "2"},
            "EventName": {"S": "SessionRecordingCompleted"},
            "RecordingUUID": {"S": "r1"},
            "ReceivedAt": {"S": "2026-11-20T10:25:40.000Z"},
            "ArchiveStatus": {"S": "PENDING"},
            "ArchiveQueue": {"S": "PENDING"},
            "ArchiveDueAt": {"N": "1"},
            "ArchiveAttempts": {"N": "0"},
        },
    )
    capsys.readouterr()
    assert sweeper.lambda_handler({}, FakeLambdaContext()) == {"failed": 1}  # type: ignore[arg-type]
    item = ddb.get_item(
        TableName=resources.table_name,
        Key={"SessionUUID": {"S": session}, "SequenceNumber": {"N": "2"}},
        ConsistentRead=True,
    )["Item"]
    assert item["ArchiveStatus"] == {"S": "FAILED"}
    out = capsys.readouterr().out.splitlines()
    metrics_out = [json.loads(line) for line in out if line.startswith('{"_aws"')]
    assert any(m.get("RecordingsFailed") in (1.0, [1.0]) for m in metrics_out), metrics_out


def _signed_callback(params: dict[str, str]) -> dict[str, Any]:
    return signed_form_event(params, TOKEN, nonce="27182818284590452353")


def _answer(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = recording_callback.lambda_handler(event, FakeLambdaContext())
    body = resp["body"]
    if resp.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return resp["statusCode"], json.loads(body)


def _metrics(out: str) -> set[str]:
    names: set[str] = set()
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            doc = json.loads(line)
            for block in doc["_aws"]["CloudWatchMetrics"]:
                names |= {m["Name"] for m in block["Metrics"]}
    return names


@pytest.fixture
def table_proxy(aws: str) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the moto server, for the callback function's DynamoDB only."""
    proxy = FaultProxy(int(urlsplit(aws).port or 0)).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_write_applied_its_answer_lost_and_retried_by_the_sdk_is_answered_200_duplicate(
    function_env: Any,
    resources: LocalResources,
    table_proxy: FaultProxy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The put reaches the table and is applied; its answer never comes back (the connection is
    reset). botocore's retry of the same request meets its own item: a duplicate, never a
    conflict, never a 5xx, one item without conflicting payloads. The store's client retries
    here (as the operator CLI's clients do, and any function client configured to retry)."""
    function_env("CallbackFunction", AWS_ENDPOINT_URL_DYNAMODB=table_proxy.url)
    live = wiring.callback_dependencies()
    retrying = boto3.client(
        "dynamodb",
        endpoint_url=table_proxy.url,
        config=Config(
            connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2}
        ),
    )
    wiring.set_callback_dependencies(
        CallbackDependencies(
            settings=live.settings,
            store=RecordingEventStore(retrying, resources.table_name),
            fallback=live.fallback,
            credentials=live.credentials,
        )
    )
    params = recording_event("SessionRecordingCompleted", sequence=7)
    table_proxy.lose_answers(PUT_ITEM, 1)
    capsys.readouterr()
    status, body = _answer(_signed_callback(params))
    assert (status, body["status"]) == (200, "duplicate"), body
    assert table_proxy.answers_lost == 1  # the fault happened: the first answer was lost
    metrics = _metrics(capsys.readouterr().out)
    assert "CallbackDuplicate" in metrics and "CallbackConflict" not in metrics, metrics
    [item] = scan_items(resources)
    assert item["SessionUUID"] == {"S": params["SessionUUID"]}
    assert "ConflictingPayloads" not in item and "ConflictHashes" not in item
    assert item["Source"] == {"S": "callback"}


def test_write_applied_every_answer_lost_is_queued_and_the_drain_finds_a_duplicate(
    function_env: Any, resources: LocalResources, table_proxy: FaultProxy
) -> None:
    """The function's own client (dal/aws.py): each of its attempts applied, none answered. The
    event is answered 200 "queued" (kept in the fallback queue); the drain's put meets the item:
    a duplicate, still one item, no conflict."""
    function_env("CallbackFunction", AWS_ENDPOINT_URL_DYNAMODB=table_proxy.url)
    params = recording_event("SessionRecordingInitiated", sequence=1)
    table_proxy.lose_answers(PUT_ITEM, 100)  # more than any client's attempts
    status, body = _answer(_signed_callback(params))
    assert (status, body["status"]) == (200, "queued"), body
    # Every attempt the client makes (botocore's total, the first included) lost its answer.
    attempts = dynamodb_client().meta.config.retries["total_max_attempts"]
    assert attempts >= 1 and table_proxy.answers_lost == attempts
    table_proxy.lose_answers(b"", 0)

    sqs = boto3.client("sqs", endpoint_url=resources.endpoint_url)
    [msg] = sqs.receive_message(QueueUrl=resources.fallback_queue_url)["Messages"]
    store = RecordingEventStore(
        boto3.client("dynamodb", endpoint_url=resources.endpoint_url), resources.table_name
    )
    # The drain's record handler, on the message as SQS delivers it; it marks the item's Source
    # "fallback", which is not part of the comparison.
    record = SQSRecord({"messageId": msg["MessageId"], "body": msg["Body"]})
    assert fallback_drain.drain_record(record, store) is PutOutcome.DUPLICATE
    [item] = scan_items(resources)
    assert item["Source"] == {"S": "callback"} and "ConflictingPayloads" not in item


def test_item_deleted_before_a_conflicting_payload_is_appended_keeps_that_payload(
    resources: LocalResources,
) -> None:
    """The item of a key is deleted (TTL expiry, an erase) between the failed conditional put of a
    second, different payload and the append of that payload to the item: the append's
    condition fails, which used to report the payload as a duplicate and drop it."""
    ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
    store = RecordingEventStore(ddb, resources.table_name)
    key = {"SessionUUID": str(uuid.uuid4()), "SequenceNumber": 3}
    first = {**key, "EventName": "SessionRecordingInitiated", "PayloadSha256": "a" * 64}
    second = {**first, "PayloadSha256": "b" * 64, "Source": "fallback"}
    assert store.put_new(first) is PutOutcome.STORED
    deleted: list[str] = []

    def delete_first(**_: Any) -> None:  # botocore's before-call event: the race, made certain
        if not deleted:
            other = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
            other.delete_item(
                TableName=resources.table_name,
                Key={"SessionUUID": {"S": key["SessionUUID"]}, "SequenceNumber": {"N": "3"}},
            )
            deleted.append("first")

    ddb.meta.events.register("before-call.dynamodb.UpdateItem", delete_first)
    assert store.put_new(second) is PutOutcome.STORED
    assert deleted == ["first"]
    [item] = scan_items(resources)
    assert item["PayloadSha256"] == {"S": "b" * 64} and item["Source"] == {"S": "fallback"}


# In the body of the claim (dal/events_table.py, RecordingEventStore.claim) and of the update
# that makes a recording ARCHIVED (RecordingEventStore.mark_archived).
CLAIM = b"SET #lease = :lease, #tok = :tok"
MARK_ARCHIVED = b"REMOVE #q, #due, #lease, #tok, #enq"


def _archive_losing_one_answer(
    function_env: Any,
    resources: LocalResources,
    proxy: FaultProxy,
    media: MediaServer,
    match: bytes,
) -> tuple[dict[str, Any], str]:
    """A Completed callback stored, then the real ArchiveFunction handler on its stream record,
    its table behind the proxy, which loses the answer of the first request containing `match`:
    the item afterwards, and the recording's media path."""
    function_env(
        "ArchiveFunction",
        AWS_ENDPOINT_URL_DYNAMODB=proxy.url,
        MEDIA_ALLOW_LOOPBACK="true",
        MEDIA_RETRY_BUDGET_SECONDS="0.5",
    )
    function_env("CallbackFunction", MEDIA_ALLOW_LOOPBACK="true")
    path = f"/v1/Account/{AUTH_ID}/Recording/{uuid.uuid4()}.wav"
    media.add(path, wav_body(0.1), content_type="audio/wav")
    params = recording_event(
        "SessionRecordingCompleted", sequence=2, recording_url=media.url(path), fmt=".wav"
    )
    assert _answer(_signed_callback(params))[0] == 200
    records = stream_records(resources.endpoint_url, resources.stream_arn)
    assert len(records) == 1
    proxy.lose_answers(match, 1)
    answer = archive_stream.lambda_handler({"Records": records}, FakeLambdaContext())
    assert answer == {"batchItemFailures": []}
    assert proxy.answers_lost == 1  # the fault happened: that answer was lost
    [item] = scan_items(resources)
    return item, path


def test_a_claim_applied_whose_answer_was_lost_is_granted_to_its_own_attempt(
    function_env: Any,
    resources: LocalResources,
    table_proxy: FaultProxy,
    media: MediaServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by CI (a moto server slowed by a loaded machine; a recording left un-archived): the
    archiver's claim reaches the table and is applied, its answer is lost, and botocore sends it
    again. The retry met the lease it had just set and read it back as another attempt's (HELD):
    nothing was downloaded, and the recording waited for that lease to run out (the function's
    900 s and more) and for a sweep, one attempt counted for nothing. The token tells the claim
    it is its own: this attempt archives the recording, counted once."""
    capsys.readouterr()
    item, path = _archive_losing_one_answer(function_env, resources, table_proxy, media, CLAIM)
    assert item["ArchiveStatus"] == {"S": "ARCHIVED"}
    assert item["ArchiveAttempts"] == {"N": "1"}  # the lost answer's retry counted nothing more
    assert "ArchiveLeaseUntil" not in item and "ArchiveClaimToken" not in item
    assert len([r for r in media.requests if r.path == path]) == 1  # downloaded once
    out = capsys.readouterr().out
    assert "RecordingsArchived" in _metrics(out)
    assert "another archive attempt holds the recording" not in out


def test_an_archived_mark_whose_answer_was_lost_still_counts_the_recording(
    function_env: Any,
    resources: LocalResources,
    table_proxy: FaultProxy,
    media: MediaServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same fault on the update that makes the recording ARCHIVED: the retry met the
    ARCHIVED it had just written and read it as another attempt's ("already indexed by another
    attempt"), so the recording was never counted (RecordingsArchived, ArchivedBytes,
    ArchiveLagSeconds). The update's own ArchivedAt and key, read back, tell it its own."""
    capsys.readouterr()
    item, _ = _archive_losing_one_answer(function_env, resources, table_proxy, media, MARK_ARCHIVED)
    assert item["ArchiveStatus"] == {"S": "ARCHIVED"}
    out = capsys.readouterr().out
    assert {"RecordingsArchived", "ArchiveLagSeconds"} <= _metrics(out)
    assert "already indexed by another attempt" not in out
