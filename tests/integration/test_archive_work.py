"""The sweeper's work queue against moto (real DynamoDB, SQS, S3, EventBridge): the real sweeper
handler pages through a backlog larger than the old sweep batch and enqueues every key once
(overlapping sweeps included), the real ArchiveWorkFunction handler archives them through the
claim and create-only put, acknowledges what needs nothing and reports failures, and every path
that archives emits ArchiveLagSeconds."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from recording_archive.handlers import archive_stream, archive_work, sweeper, wiring
from recording_archive.handlers.recording_callback import lambda_handler as callback_handler
from recording_archive_cli.local.filters import event_matches_filters, stream_filter_patterns
from recording_archive_cli.local.resources import LocalResources
from tests.support.archive_work import receive_all, sqs_event_record
from tests.support.callback_flow import signed_form_event
from tests.support.emf import emf_values
from tests.support.lambda_context import FakeLambdaContext
from tests.support.media_server import MediaServer, Status, wav_body
from tests.support.moto_resources import TOKEN
from tests.support.plivo import AUTH_ID, recording_event
from tests.support.streams import stream_records

FAST = {"MEDIA_RETRY_BUDGET_SECONDS": "0.5", "MEDIA_ALLOW_LOOPBACK": "true"}
BACKLOG = 120  # more than the old sweep's fixed batch of 50


class Harness:
    def __init__(self, res: LocalResources, function_env: Any, media: MediaServer) -> None:
        self.res = res
        self.media = media
        self.ddb = boto3.client("dynamodb", endpoint_url=res.endpoint_url)
        self.sqs = boto3.client("sqs", endpoint_url=res.endpoint_url)
        function_env("CallbackFunction", MEDIA_ALLOW_LOOPBACK="true")
        for fn in ("SweeperFunction", "ArchiveWorkFunction"):
            function_env(fn, **(FAST | {"SWEEP_GRACE_SECONDS": "0"}))
        function_env("ArchiveFunction", **FAST)
        self.audio = wav_body(0.1)

    def completed(self, *, fail: bool = False) -> tuple[str, int]:
        """A SessionRecordingCompleted stored by the real callback handler, left PENDING (no
        stream archiver runs): its key."""
        rec = str(uuid.uuid4())
        path = f"/v1/Account/{AUTH_ID}/Recording/{rec}.wav"
        if fail:
            self.media.add(path, b"", faults=[Status(500, times=None)])
        else:
            self.media.add(path, self.audio, content_type="audio/wav")
        params = recording_event(
            "SessionRecordingCompleted",
            sequence=2,
            recording_uuid=rec,
            recording_url=self.media.url(path),
            fmt=".wav",
        )
        answer = callback_handler(signed_form_event(params, TOKEN), FakeLambdaContext())
        assert answer["statusCode"] == 200
        return params["SessionUUID"], 2

    def item(self, key: tuple[str, int]) -> dict[str, Any]:
        got = self.ddb.get_item(
            TableName=self.res.table_name,
            Key={"SessionUUID": {"S": key[0]}, "SequenceNumber": {"N": str(key[1])}},
            ConsistentRead=True,
        )
        item: dict[str, Any] = got["Item"]
        return item

    def sweep(self) -> dict[str, int]:
        result: dict[str, int] = sweeper.lambda_handler({}, FakeLambdaContext())  # type: ignore[arg-type]
        return result

    def sweep_until_settled(self, tries: int = 5) -> tuple[dict[str, int], int]:
        """Sweeps until one is not interrupted (the moto server under a loaded CI can stall a
        page read past the table client's three 1 s attempts; the sweep then stops, sends what
        it marked and leaves the rest to the next sweep: that is the behaviour checked
        here, not hidden): the counts summed, and how many sweeps it took."""
        total: dict[str, int] = {}
        for n in range(1, tries + 1):
            result = self.sweep()
            for name, count in result.items():
                total[name] = total.get(name, 0) + count
            if "interrupted" not in result:
                return total, n
        raise AssertionError(f"{tries} sweeps in a row were interrupted: {total}")

    def queue_arn(self) -> str:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.res.archive_work_queue_url, AttributeNames=["QueueArn"]
        )
        return str(attrs["Attributes"]["QueueArn"])

    def consume(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """ArchiveWorkFunction's handler on one SQS event of these messages."""
        arn = self.queue_arn()
        event = {"Records": [sqs_event_record(m, arn) for m in messages]}
        result: dict[str, Any] = archive_work.lambda_handler(event, FakeLambdaContext())  # type: ignore[arg-type]
        return result


@pytest.fixture
def h(resources: LocalResources, function_env: Any, media: MediaServer) -> Iterator[Harness]:
    yield Harness(resources, function_env, media)
    wiring.reset()


def _message(key: tuple[str, int] | None, body: str | None = None) -> dict[str, Any]:
    from recording_archive.dal.work_queue import encode_key
    from recording_archive.models.archive import WorkKey

    text = body if body is not None else encode_key(WorkKey(*key))  # type: ignore[misc]
    return {"MessageId": str(uuid.uuid4()), "ReceiptHandle": "rh", "Body": text}


def test_a_backlog_larger_than_the_old_batch_drains_through_the_work_queue_once(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = [h.completed() for _ in range(BACKLOG)]
    capsys.readouterr()
    counts, sweeps = h.sweep_until_settled()
    assert counts.get("enqueued") == BACKLOG and counts.keys() <= {"enqueued", "interrupted"}
    out = capsys.readouterr().out
    assert sum(emf_values(out, "RecordingsEnqueued")) == BACKLOG
    assert emf_values(out, "ArchiveWorkSendFailed") == [0] * sweeps
    ages = emf_values(out, "OldestPendingAgeSeconds")
    assert ages and all(0 <= age < 120 for age in ages)
    # A second sweep while the keys wait (an overlapping or the next scheduled one): the marked
    # items are not sent again.
    again, _ = h.sweep_until_settled()
    assert "enqueued" not in again
    messages = receive_all(h.res.archive_work_queue_url)
    assert len(messages) == BACKLOG
    bodies = [m["Body"] for m in messages]
    assert sorted(bodies) == sorted(set(bodies))  # one message per item
    assert not [b for b in bodies if "+1" in b or "+91" in b or "http" in b]  # keys only
    # The consumer, ten messages an invocation (partial batch responses), archives them all.
    for start in range(0, len(messages), 10):
        assert h.consume(messages[start : start + 10]) == {"batchItemFailures": []}
    assert {h.item(k)["ArchiveStatus"]["S"] for k in keys} == {"ARCHIVED"}
    assert all("ArchiveEnqueuedUntil" not in h.item(k) for k in keys)
    listed = boto3.client("s3", endpoint_url=h.res.endpoint_url).list_objects_v2(
        Bucket=h.res.bucket_name
    )
    assert listed["KeyCount"] == BACKLOG
    out = capsys.readouterr().out
    lags = emf_values(out, "ArchiveLagSeconds")
    assert len(lags) == BACKLOG and all(0 <= lag < 300 for lag in lags)
    # A duplicate delivery of an archived item does nothing (no download, no second object).
    before = len(h.media.requests)
    assert h.consume(messages[:3]) == {"batchItemFailures": []}
    assert len(h.media.requests) == before
    assert h.sweep() == {}
    [age] = emf_values(capsys.readouterr().out, "OldestPendingAgeSeconds")
    assert age == 0.0


def test_the_consumer_acknowledges_what_needs_nothing_and_reports_failures(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    good = h.completed()
    failing = h.completed(fail=True)
    failed_already = h.completed()
    h.ddb.update_item(
        TableName=h.res.table_name,
        Key={"SessionUUID": {"S": failed_already[0]}, "SequenceNumber": {"N": "2"}},
        UpdateExpression="SET ArchiveStatus = :f, ArchiveQueue = :f",
        ExpressionAttributeValues={":f": {"S": "FAILED"}},
    )
    gone = (str(uuid.uuid4()), 2)
    messages = [
        _message(good),
        _message(failing),
        _message(gone),
        _message(failed_already),
        _message(None, body='{"SessionUUID": "x"}'),
    ]
    result = h.consume(messages)
    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": messages[1]["MessageId"]},  # attempt failed: SQS redelivers
            {"itemIdentifier": messages[4]["MessageId"]},  # not ours: to the DLQ in the end
        ]
    }
    assert h.item(good)["ArchiveStatus"] == {"S": "ARCHIVED"}
    item = h.item(failing)
    assert item["ArchiveStatus"] == {"S": "PENDING"}
    assert item["ArchiveAttempts"] == {"N": "1"}
    assert "MediaUnavailableError" in item["ArchiveLastError"]["S"]
    assert h.item(failed_already)["ArchiveStatus"] == {"S": "FAILED"}  # left to operators
    assert h.item(failed_already)["ArchiveAttempts"] == {"N": "0"}  # no attempt made
    # Redelivered before its backoff ran out: acknowledged, no attempt.
    assert h.consume([messages[1]]) == {"batchItemFailures": []}
    assert h.item(failing)["ArchiveAttempts"] == {"N": "1"}


def test_the_consumer_leaves_a_held_item_to_its_holder_and_fails_an_unarchivable_one(
    h: Harness,
) -> None:
    from recording_archive.dal.events_table import RecordingEventStore

    held = h.completed()
    t = int(time.time())
    store = RecordingEventStore(h.ddb, h.res.table_name)
    store.claim(held[0], held[1], token="other", now=t, lease_until=t + 600)
    # A Completed event without a RecordingURL (the callback refuses one; a stored item may
    # still lack it, e.g. restored from a backup): it can never be archived.
    broken = (str(uuid.uuid4()), 2)
    h.ddb.put_item(
        TableName=h.res.table_name,
        Item={
            "SessionUUID": {"S": broken[0]},
            "SequenceNumber": {"N": "2"},
            "EventName": {"S": "SessionRecordingCompleted"},
            "RecordingUUID": {"S": str(uuid.uuid4())},
            "ReceivedAt": {"S": "2026-11-20T10:25:40.000Z"},
            "ArchiveStatus": {"S": "PENDING"},
            "ArchiveQueue": {"S": "PENDING"},
            "ArchiveDueAt": {"N": "1"},
            "ArchiveAttempts": {"N": "0"},
        },
    )
    before = len(h.media.requests)
    assert h.consume([_message(held), _message(broken)]) == {"batchItemFailures": []}
    assert len(h.media.requests) == before  # nothing downloaded
    item = h.item(held)
    assert (item["ArchiveStatus"], item["ArchiveAttempts"]) == ({"S": "PENDING"}, {"N": "1"})
    assert item["ArchiveClaimToken"] == {"S": "other"}  # the holder's claim, untouched
    failed = h.item(broken)
    assert failed["ArchiveStatus"] == failed["ArchiveQueue"] == {"S": "FAILED"}
    assert failed["ArchiveLastError"]["S"].startswith("NotArchivable")


def test_keys_that_cannot_be_sent_are_reported_and_swept_again(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = [h.completed() for _ in range(3)]
    h.sqs.delete_queue(QueueUrl=h.res.archive_work_queue_url)  # SQS refuses every send
    capsys.readouterr()
    assert h.sweep() == {"send_failed": 3}
    assert emf_values(capsys.readouterr().out, "ArchiveWorkSendFailed") == [3]
    assert all("ArchiveEnqueuedUntil" not in h.item(k) for k in keys)  # marks given back
    h.sqs.create_queue(QueueName=h.res.archive_work_queue_url.rsplit("/", 1)[-1])
    assert h.sweep() == {"enqueued": 3}


def test_the_stream_path_emits_the_archive_lag_too(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h.completed()
    patterns = stream_filter_patterns("ArchiveFunction")
    records = [
        r
        for r in stream_records(h.res.endpoint_url, h.res.stream_arn)
        if event_matches_filters(r, patterns)
    ]
    capsys.readouterr()
    started = time.time()
    assert archive_stream.lambda_handler({"Records": records}, FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    [lag] = emf_values(capsys.readouterr().out, "ArchiveLagSeconds")
    assert 0 <= lag <= time.time() - started + 60
