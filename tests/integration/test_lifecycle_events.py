"""Lifecycle events: the real archive and sweeper handlers publish RecordingArchived and
RecordingFailed to EventBridge (moto), and the local rule forwards them to the queue
`local-LifecycleEvents`, where these tests read exactly what a subscriber would get.

A publish that fails (EventBridge unreachable, or a 200 answer with a failed entry) fails the
attempt: the item is not ARCHIVED, and the retry, meeting the object already stored, publishes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import boto3
import pytest

from recording_archive.handlers import archive_stream, wiring
from recording_archive.handlers.recording_callback import lambda_handler as callback_handler
from recording_archive_cli.local.filters import event_matches_filters, stream_filter_patterns
from recording_archive_cli.local.resources import LocalResources
from tests.support.archive_work import sweep_and_archive
from tests.support.callback_flow import signed_form_event
from tests.support.fake_eventbridge import FailingEventBridge
from tests.support.lambda_context import FakeLambdaContext
from tests.support.lifecycle_queue import receive_lifecycle_events
from tests.support.media_server import MediaServer, Status, wav_body
from tests.support.moto_resources import TOKEN
from tests.support.net import free_port
from tests.support.plivo import AUTH_ID, recording_event
from tests.support.streams import stream_records

FAST = {"MEDIA_RETRY_BUDGET_SECONDS": "0.5", "MEDIA_ALLOW_LOOPBACK": "true"}
PHONE_DIGITS = ("14155550101", "919876543210", "14155550199")  # From, To, VirtualNumber


class Harness:
    def __init__(self, function_env: Any, resources: LocalResources, media: MediaServer) -> None:
        self.env = function_env
        self.res = resources
        self.media = media
        self.ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
        self.s3 = boto3.client("s3", endpoint_url=resources.endpoint_url)

    def completed(self, **faults: Any) -> dict[str, str]:
        rec = str(uuid.uuid4())
        path = f"/v1/Account/{AUTH_ID}/Recording/{rec}.wav"
        self.audio = wav_body(seconds=0.5)
        self.media.add(path, self.audio, content_type="audio/wav", **faults)
        params = recording_event(
            "SessionRecordingCompleted",
            sequence=2,
            recording_uuid=rec,
            recording_url=self.media.url(path),
            fmt=".wav",
        )
        self.env("CallbackFunction", MEDIA_ALLOW_LOOPBACK="true")
        answer = callback_handler(signed_form_event(params, TOKEN), FakeLambdaContext())
        assert answer["statusCode"] == 200
        return params

    def records(self) -> list[dict[str, Any]]:
        patterns = stream_filter_patterns("ArchiveFunction")
        return [
            r
            for r in stream_records(self.res.endpoint_url, self.res.stream_arn)
            if event_matches_filters(r, patterns)
        ]

    def archive(self, **env: str) -> dict[str, Any]:
        self.env("ArchiveFunction", **(FAST | env))
        return archive_stream.lambda_handler({"Records": self.records()}, FakeLambdaContext())

    def sweep(self, now: int, **env: str) -> dict[str, int]:
        for fn in ("SweeperFunction", "ArchiveWorkFunction"):
            self.env(fn, **(FAST | {"SWEEP_GRACE_SECONDS": "0"} | env))
        return sweep_and_archive(now=now)

    def item(self, params: dict[str, str]) -> dict[str, Any]:
        key = {"SessionUUID": {"S": params["SessionUUID"]}, "SequenceNumber": {"N": "2"}}
        return self.ddb.get_item(TableName=self.res.table_name, Key=key, ConsistentRead=True)[
            "Item"
        ]

    def events(self, count: int | None = None, timeout: float = 2.0) -> list[dict[str, Any]]:
        return receive_lifecycle_events(
            self.res.endpoint_url, self.res.lifecycle_events_queue_url, count=count, timeout=timeout
        )


@pytest.fixture
def h(function_env: Any, resources: LocalResources, media: MediaServer) -> Any:
    yield Harness(function_env, resources, media)
    wiring.reset()


def _assert_no_number(event: dict[str, Any]) -> None:
    text = json.dumps(event)
    assert not any(digits in text for digits in PHONE_DIGITS), text


def _archived_detail(h: Harness, params: dict[str, str]) -> dict[str, Any]:
    item = h.item(params)
    key = f"recordings/2026/11/20/{params['SessionUUID']}/{params['RecordingUUID']}.wav"
    return {
        "SessionUUID": params["SessionUUID"],
        "SequenceNumber": 2,
        "RecordingUUID": params["RecordingUUID"],
        "Bucket": h.res.bucket_name,
        "Key": key,
        "VersionId": item["ArchiveVersionId"]["S"],
        "Size": len(h.audio.data),
        "Sha256": hashlib.sha256(h.audio.data).hexdigest(),
        "DurationSeconds": 12,
    }


def test_the_local_rule_routes_the_archive_source_only(h: Harness) -> None:
    """The emulated subscription: the rule forwards the archive's source and nothing else."""
    events = boto3.client("events", endpoint_url=h.res.endpoint_url)
    rule = events.describe_rule(Name="local-lifecycle-events", EventBusName="default")
    assert json.loads(rule["EventPattern"]) == {"source": ["plivo-recording-archive"]}
    [target] = events.list_targets_by_rule(Rule="local-lifecycle-events")["Targets"]
    assert target["Arn"].endswith(":local-LifecycleEvents")
    events.put_events(Entries=[{"Source": "someone-else", "DetailType": "X", "Detail": "{}"}])
    assert h.events(timeout=0.5) == []


def test_archiving_publishes_exactly_the_recording_archived_detail(h: Harness) -> None:
    params = h.completed()
    assert h.archive() == {"batchItemFailures": []}
    assert h.item(params)["ArchiveStatus"] == {"S": "ARCHIVED"}
    [event] = h.events(count=1)
    assert event["source"] == "plivo-recording-archive"
    assert event["detail-type"] == "RecordingArchived"
    assert event["detail"] == _archived_detail(h, params)
    _assert_no_number(event)
    # The version in the event is the one stored, with the SHA-256 the event states.
    head = h.s3.head_object(
        Bucket=h.res.bucket_name, Key=event["detail"]["Key"], VersionId=event["detail"]["VersionId"]
    )
    assert head["ContentLength"] == event["detail"]["Size"]
    assert h.events(timeout=0.3) == []  # exactly one


def test_a_refused_recording_publishes_recording_failed(h: Harness) -> None:
    params = recording_event(
        "SessionRecordingCompleted", sequence=2, recording_url="https://169.254.169.254/x.mp3"
    )
    h.env("CallbackFunction", MEDIA_ALLOW_LOOPBACK="true")
    assert (
        callback_handler(signed_form_event(params, TOKEN), FakeLambdaContext())["statusCode"] == 200
    )
    assert h.archive() == {"batchItemFailures": []}
    item = h.item(params)
    assert item["ArchiveStatus"] == {"S": "FAILED"}, item
    [event] = h.events(count=1)
    assert (event["source"], event["detail-type"]) == ("plivo-recording-archive", "RecordingFailed")
    assert event["detail"] == {
        "SessionUUID": params["SessionUUID"],
        "SequenceNumber": 2,
        "RecordingUUID": params["RecordingUUID"],
        "Reason": "MediaRefusedError",
        "Attempts": 1,
    }
    _assert_no_number(event)


def test_the_sweeper_publishes_recording_failed_when_attempts_run_out(h: Harness) -> None:
    params = h.completed(faults=[Status(500, times=None)])
    assert h.sweep(10**10, SWEEP_MAX_ATTEMPTS="2") == {"retry_later": 1}
    assert h.events(timeout=0.3) == []  # a retryable failure announces nothing
    assert h.sweep(10**11, SWEEP_MAX_ATTEMPTS="2") == {"failed": 1}
    [event] = h.events(count=1)
    assert event["detail-type"] == "RecordingFailed"
    assert event["detail"]["Reason"] == "MediaUnavailableError"
    assert event["detail"]["Attempts"] == 2
    assert h.item(params)["ArchiveStatus"] == {"S": "FAILED"}


def _assert_not_archived_but_stored(h: Harness, params: dict[str, str]) -> dict[str, Any]:
    item = h.item(params)
    assert item["ArchiveStatus"] == {"S": "PENDING"}
    assert item["ArchiveLastError"]["S"].startswith("LifecycleEventsUnavailableError")
    assert "ArchiveKey" not in item
    key = f"recordings/2026/11/20/{params['SessionUUID']}/{params['RecordingUUID']}.wav"
    versions = h.s3.list_object_versions(Bucket=h.res.bucket_name, Prefix=key)["Versions"]
    assert len(versions) == 1  # the object is stored; only its announcement failed
    assert h.events(timeout=0.3) == []
    return versions[0]


def test_unreachable_events_endpoint_fails_the_attempt_and_the_retry_publishes(
    h: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    params = h.completed()
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", dead)
    records = h.records()
    result = h.archive()
    assert result == {
        "batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
    }
    version = _assert_not_archived_but_stored(h, params)
    emitted = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"_aws"' in x]
    failed = [doc["LifecycleEventsFailed"] for doc in emitted if "LifecycleEventsFailed" in doc]
    assert failed == [[1.0]], emitted  # the metric of a failed publish, once

    monkeypatch.delenv("AWS_ENDPOINT_URL_EVENTBRIDGE")
    assert h.sweep(10**10) == {"archived": 1}  # the retry: 412, verified, then published
    assert h.item(params)["ArchiveStatus"] == {"S": "ARCHIVED"}
    [event] = h.events(count=1)
    assert event["detail"] == _archived_detail(h, params)
    assert event["detail"]["VersionId"] == version["VersionId"]


def test_a_failed_entry_in_a_200_answer_is_a_failed_publish(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = h.completed()
    with FailingEventBridge() as bus:
        monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", bus.url)
        result = h.archive()
        assert len(result["batchItemFailures"]) == 1
        [request] = bus.requests  # answered 200: botocore does not retry a failed entry
        assert request["target"] == "AWSEvents.PutEvents"
        [entry] = request["body"]["Entries"]
        assert (entry["Source"], entry["DetailType"]) == (
            "plivo-recording-archive",
            "RecordingArchived",
        )
        assert entry["EventBusName"] == "default"
    _assert_not_archived_but_stored(h, params)
    monkeypatch.delenv("AWS_ENDPOINT_URL_EVENTBRIDGE")
    assert h.sweep(10**10) == {"archived": 1}
    [event] = h.events(count=1)
    assert event["detail-type"] == "RecordingArchived"


def test_a_failed_recording_failed_publish_leaves_the_item_pending(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAILED only once RecordingFailed is out: until then the sweeper decides again."""
    params = h.completed(faults=[Status(500, times=None)])
    with FailingEventBridge() as bus:
        monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", bus.url)
        assert h.sweep(10**10, SWEEP_MAX_ATTEMPTS="1") == {"retry_later": 1}
        assert len(bus.requests) == 1
        assert h.item(params)["ArchiveStatus"] == {"S": "PENDING"}
        # Attempts exhausted: the next sweep's claim is refused, and the announcement is tried
        # again (no download), still failing: nothing changes.
        assert h.sweep(10**11, SWEEP_MAX_ATTEMPTS="1") == {"retry_later": 1}
        assert len(bus.requests) == 2
        assert h.item(params)["ArchiveStatus"] == {"S": "PENDING"}
    monkeypatch.delenv("AWS_ENDPOINT_URL_EVENTBRIDGE")
    assert h.sweep(10**12, SWEEP_MAX_ATTEMPTS="1") == {"failed": 1}
    assert h.item(params)["ArchiveStatus"] == {"S": "FAILED"}
    [event] = h.events(count=1)
    assert (event["detail-type"], event["detail"]["Attempts"]) == ("RecordingFailed", 1)


def test_a_refused_recording_is_not_failed_before_its_event_is_out(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A permanent failure (a refused URL) with the bus failing: recorded as a retryable
    failure, the stream record fails, and its retry makes it FAILED and announces it."""
    params = recording_event(
        "SessionRecordingCompleted", sequence=2, recording_url="https://169.254.169.254/x.mp3"
    )
    h.env("CallbackFunction", MEDIA_ALLOW_LOOPBACK="true")
    answer = callback_handler(signed_form_event(params, TOKEN), FakeLambdaContext())
    assert answer["statusCode"] == 200
    with FailingEventBridge() as bus:
        monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", bus.url)
        assert len(h.archive()["batchItemFailures"]) == 1
        assert [r["body"]["Entries"][0]["DetailType"] for r in bus.requests] == ["RecordingFailed"]
    item = h.item(params)
    assert item["ArchiveStatus"] == {"S": "PENDING"}
    assert item["ArchiveLastError"]["S"].startswith("MediaRefusedError")
    monkeypatch.delenv("AWS_ENDPOINT_URL_EVENTBRIDGE")
    assert h.archive() == {"batchItemFailures": []}  # the stream's retry of the record
    assert h.item(params)["ArchiveStatus"] == {"S": "FAILED"}
    [event] = h.events(count=1)
    assert event["detail"]["Reason"] == "MediaRefusedError"
    assert event["detail"]["Attempts"] == 2


def test_an_unarchivable_item_is_failed_by_the_sweeper_once_announced(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Completed item that can never be archived (here an unknown format, as a hand-made or
    older item may have): RecordingFailed (Reason NotArchivable) first, then FAILED."""
    session = str(uuid.uuid4())
    h.ddb.put_item(
        TableName=h.res.table_name,
        Item={
            "SessionUUID": {"S": session},
            "SequenceNumber": {"N": "2"},
            "EventName": {"S": "SessionRecordingCompleted"},
            "RecordingUUID": {"S": "r-1"},
            "RecordingURL": {"S": "https://media.plivo.com/r-1.ogg"},
            "RecordingExt": {"S": "ogg"},
            "ReceivedAt": {"S": "2026-11-20T10:25:40.000Z"},
            "ArchiveStatus": {"S": "PENDING"},
            "ArchiveQueue": {"S": "PENDING"},
            "ArchiveDueAt": {"N": "1"},
            "ArchiveAttempts": {"N": "0"},
        },
    )
    params = {"SessionUUID": session}
    with FailingEventBridge() as bus:
        monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", bus.url)
        assert h.sweep(10**10) == {"retry_later": 1}
        assert len(bus.requests) == 1
    assert h.item(params)["ArchiveStatus"] == {"S": "PENDING"}
    monkeypatch.delenv("AWS_ENDPOINT_URL_EVENTBRIDGE")
    assert h.sweep(10**10) == {"failed": 1}
    assert h.item(params)["ArchiveStatus"] == {"S": "FAILED"}
    [event] = h.events(count=1)
    assert event["detail"] == {
        "SessionUUID": session,
        "SequenceNumber": 2,
        "RecordingUUID": "r-1",
        "Reason": "NotArchivable",
        "Attempts": 0,
    }


def test_an_operators_retry_publishes_as_the_functions_do(stack: Any) -> None:
    """`recordings retry` archives through the same Archiver, with the CLI's own EventBridge
    client on the stack's bus (Ops.lifecycle_events)."""
    session_uuid, rec, body = stack.session()
    rc, retried = stack.cli_json("recordings", "retry", rec)
    assert rc == 0 and [r["outcome"] for r in retried] == ["archived"]
    [event] = receive_lifecycle_events(
        stack.res.endpoint_url, stack.res.lifecycle_events_queue_url, count=1
    )
    assert event["detail-type"] == "RecordingArchived"
    assert (event["detail"]["SessionUUID"], event["detail"]["RecordingUUID"]) == (session_uuid, rec)
    assert event["detail"]["Sha256"] == hashlib.sha256(body).hexdigest()
