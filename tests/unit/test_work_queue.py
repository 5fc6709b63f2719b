"""dal/work_queue.py against a stubbed SQS client (botocore's Stubber): the message is the key
and nothing else, 10 entries a SendMessageBatch, the failed entries sent again, SenderFault
entries and entries still failing after SEND_TRIES returned as never sent."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from recording_archive.dal.work_queue import SEND_TRIES, ArchiveWorkQueue, decode_key, encode_key
from recording_archive.models.archive import WorkKey

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/archive-ArchiveWorkQueue"
SESSION = "0b6f3e4c-5d7a-4c1e-9b2a-2f0d8c6e1a9b"


def _keys(n: int) -> list[WorkKey]:
    return [WorkKey(SESSION, seq) for seq in range(n)]


def _entries(keys: list[WorkKey]) -> list[dict[str, Any]]:
    return [{"Id": str(i), "MessageBody": encode_key(k)} for i, k in enumerate(keys)]


def _ok(ids: list[int]) -> list[dict[str, Any]]:
    return [{"Id": str(i), "MessageId": f"m{i}", "MD5OfMessageBody": "0" * 32} for i in ids]


def _failed(i: int, *, sender: bool = False) -> dict[str, Any]:
    code = "InvalidParameterValue" if sender else "InternalError"
    return {"Id": str(i), "SenderFault": sender, "Code": code, "Message": "x"}


@pytest.fixture
def sqs() -> Any:
    return boto3.client("sqs", region_name="us-east-1")


def test_the_message_is_the_key_and_nothing_else() -> None:
    key = WorkKey(SESSION, 7)
    body = encode_key(key)
    assert json.loads(body) == {"SessionUUID": SESSION, "SequenceNumber": 7}
    assert decode_key(body) == key
    for bad in (
        "[]",
        '{"SessionUUID": "s"}',
        '{"SessionUUID": "s", "SequenceNumber": 1, "From": "+14155550101"}',
        '{"SessionUUID": "", "SequenceNumber": 1}',
        '{"SessionUUID": "s", "SequenceNumber": "1"}',
        '{"SessionUUID": "s", "SequenceNumber": -1}',
        '{"SessionUUID": "s", "SequenceNumber": true}',
        "not json",
    ):
        with pytest.raises(ValueError, match=r"archive work message|Expecting value"):
            decode_key(bad)


def test_keys_go_ten_per_batch(sqs: Any) -> None:
    keys = _keys(23)
    stub = Stubber(sqs)
    for chunk in (keys[:10], keys[10:20], keys[20:]):
        stub.add_response(
            "send_message_batch",
            {"Successful": _ok(list(range(len(chunk)))), "Failed": []},
            {"QueueUrl": URL, "Entries": _entries(chunk)},
        )
    with stub:
        assert ArchiveWorkQueue(lambda: sqs, URL).send(keys) == []
    stub.assert_no_pending_responses()


def test_failed_entries_are_sent_again_and_sender_faults_are_not(sqs: Any) -> None:
    keys = _keys(4)
    stub = Stubber(sqs)
    stub.add_response(
        "send_message_batch",
        {"Successful": _ok([0]), "Failed": [_failed(1), _failed(2, sender=True), _failed(3)]},
        {"QueueUrl": URL, "Entries": _entries(keys)},
    )
    # Only the two retryable ones, numbered afresh.
    stub.add_response(
        "send_message_batch",
        {"Successful": _ok([1]), "Failed": [_failed(0)]},
        {"QueueUrl": URL, "Entries": _entries([keys[1], keys[3]])},
    )
    stub.add_response(
        "send_message_batch",
        {"Successful": _ok([0]), "Failed": []},
        {"QueueUrl": URL, "Entries": _entries([keys[1]])},
    )
    pauses: list[float] = []
    with stub:
        unsent = ArchiveWorkQueue(lambda: sqs, URL, sleep=pauses.append).send(keys)
    assert unsent == [keys[2]]
    assert len(pauses) == 2
    stub.assert_no_pending_responses()


def test_a_batch_still_failing_after_its_tries_is_returned(sqs: Any) -> None:
    keys = _keys(3)
    stub = Stubber(sqs)
    for _ in range(SEND_TRIES):
        stub.add_client_error("send_message_batch", "ServiceUnavailable", http_status_code=503)
    with stub:
        unsent = ArchiveWorkQueue(lambda: sqs, URL, sleep=lambda _s: None).send(keys)
    assert unsent == keys
    stub.assert_no_pending_responses()
