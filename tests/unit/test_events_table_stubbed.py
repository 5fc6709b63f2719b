"""RecordingEventStore.put_new on races moto cannot produce: the item that took an event's key is
deleted (TTL expiry, an erase) between the failed conditional put and the read or the append of
a conflicting payload. botocore's Stubber checks each call's exact parameters and their order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from recording_archive.dal.events_table import RecordingEventStore, serialize_item
from recording_archive.models.errors import EventStoreUnavailableError
from recording_archive.models.item import PutOutcome

TABLE = "events"
ITEM: dict[str, Any] = {
    "SessionUUID": "2d7a8e1c-8a4e-4a53-9c51-1f0c6f1f0a11",
    "SequenceNumber": 2,
    "EventName": "SessionRecordingCompleted",
    "Payload": {"SessionUUID": "2d7a8e1c-8a4e-4a53-9c51-1f0c6f1f0a11", "SequenceNumber": "2"},
    "RawBody": "SessionUUID=2d7a8e1c-8a4e-4a53-9c51-1f0c6f1f0a11&SequenceNumber=2",
    "PayloadSha256": "b" * 64,
    "ReceivedAt": "2026-12-03T10:00:00.000Z",
    "Source": "callback",
}
TYPED = serialize_item(ITEM)
KEY = {"SessionUUID": TYPED["SessionUUID"], "SequenceNumber": TYPED["SequenceNumber"]}
PUT = {
    "TableName": TABLE,
    "Item": TYPED,
    "ConditionExpression": "attribute_not_exists(#pk)",
    "ExpressionAttributeNames": {"#pk": "SessionUUID"},
    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
}
GET = {"TableName": TABLE, "Key": KEY, "ConsistentRead": True}
CONFLICT = {k: TYPED[k] for k in ("Payload", "RawBody", "PayloadSha256", "ReceivedAt", "Source")}
APPEND = {
    "TableName": TABLE,
    "Key": KEY,
    "UpdateExpression": "SET #cp = list_append(if_not_exists(#cp, :empty), :one) ADD #ch :hashes",
    "ConditionExpression": "attribute_exists(#pk) AND NOT contains(#ch, :hash)",
    "ExpressionAttributeNames": {
        "#cp": "ConflictingPayloads",
        "#ch": "ConflictHashes",
        "#pk": "SessionUUID",
    },
    "ExpressionAttributeValues": {
        ":empty": {"L": []},
        ":one": {"L": [{"M": CONFLICT}]},
        ":hashes": {"SS": ["b" * 64]},
        ":hash": {"S": "b" * 64},
    },
    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
}
OTHER = {**TYPED, "PayloadSha256": {"S": "a" * 64}}  # the first payload of this key


@pytest.fixture
def stub() -> Iterator[tuple[RecordingEventStore, Stubber]]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield RecordingEventStore(client, TABLE), stubber
        stubber.assert_no_pending_responses()


def condition_fails(
    stubber: Stubber, operation: str, params: dict[str, Any], old: dict[str, Any] | None
) -> None:
    """The conditional write fails; `old` is the item DynamoDB returns (None: none returned)."""
    stubber.add_client_error(
        operation,
        service_error_code="ConditionalCheckFailedException",
        http_status_code=400,
        modeled_fields={"Item": old} if old is not None else None,
        expected_params=params,
    )


def key_taken(stubber: Stubber, old: dict[str, Any] | None) -> None:
    condition_fails(stubber, "put_item", PUT, old)


def append_fails(stubber: Stubber, old: dict[str, Any] | None) -> None:
    condition_fails(stubber, "update_item", APPEND, old)


def test_item_gone_before_the_read_is_put_again_and_stored(
    stub: tuple[RecordingEventStore, Stubber],
) -> None:
    """It used to be reported as a duplicate and dropped."""
    store, stubber = stub
    key_taken(stubber, None)
    stubber.add_response("get_item", {}, GET)  # deleted meanwhile
    stubber.add_response("put_item", {}, PUT)
    assert store.put_new(ITEM) is PutOutcome.STORED


def test_item_gone_before_the_conflict_append_is_put_again_and_stored(
    stub: tuple[RecordingEventStore, Stubber],
) -> None:
    """A different payload whose key's item is deleted before it is appended to it: it used to be
    reported as a duplicate (the append's condition failed) and dropped."""
    store, stubber = stub
    key_taken(stubber, OTHER)
    append_fails(stubber, None)  # no item any more
    stubber.add_response("put_item", {}, PUT)
    assert store.put_new(ITEM) is PutOutcome.STORED


def test_item_replaced_before_the_append_is_compared_again(
    stub: tuple[RecordingEventStore, Stubber],
) -> None:
    """Deleted and written again by another payload between the put and the append: the append's
    condition fails on an item that does not hold this payload; compared again, it is kept."""
    store, stubber = stub
    key_taken(stubber, OTHER)
    append_fails(stubber, {**OTHER, "ReceivedAt": {"S": "2026-12-03T10:00:01.000Z"}})
    key_taken(stubber, OTHER)
    stubber.add_response("update_item", {}, APPEND)
    assert store.put_new(ITEM) is PutOutcome.CONFLICT


def test_a_conflicting_payload_already_kept_is_a_duplicate(
    stub: tuple[RecordingEventStore, Stubber],
) -> None:
    store, stubber = stub
    key_taken(stubber, OTHER)
    append_fails(stubber, {**OTHER, "ConflictHashes": {"SS": ["c" * 64, "b" * 64]}})
    assert store.put_new(ITEM) is PutOutcome.DUPLICATE


def test_identical_retry_meets_its_own_item_and_is_a_duplicate_without_a_write(
    stub: tuple[RecordingEventStore, Stubber],
) -> None:
    """The SDK's retry of a put that was applied but whose answer was lost: the same item, only
    archive state changed since (a worker claimed it): a duplicate, nothing appended."""
    store, stubber = stub
    key_taken(stubber, {**TYPED, "ArchiveStatus": {"S": "PENDING"}, "ArchiveAttempts": {"N": "1"}})
    assert store.put_new(ITEM) is PutOutcome.DUPLICATE


def test_the_same_payload_received_later_is_a_duplicate(
    stub: tuple[RecordingEventStore, Stubber],
) -> None:
    """Only the payload's hash is compared: a redelivery received at another time (another
    ReceivedAt, Source, RawBody order) is not a conflict."""
    store, stubber = stub
    old = {**TYPED, "ReceivedAt": {"S": "2026-12-03T09:59:00.000Z"}, "Source": {"S": "fallback"}}
    key_taken(stubber, None)
    stubber.add_response("get_item", {"Item": old}, GET)
    assert store.put_new(ITEM) is PutOutcome.DUPLICATE


def test_item_vanishing_at_every_attempt_is_reported_unavailable_not_dropped(
    stub: tuple[RecordingEventStore, Stubber],
) -> None:
    """Bounded: three puts, then EventStoreUnavailableError, on which the callback path keeps the
    event in the fallback queue (a 200 "queued"), never a silent duplicate."""
    store, stubber = stub
    for _ in range(3):
        key_taken(stubber, None)
        stubber.add_response("get_item", {}, GET)
    with pytest.raises(EventStoreUnavailableError, match="vanished at every attempt"):
        store.put_new(ITEM)


@pytest.mark.parametrize("operation", ["put_item", "update_item", "get_item"])
def test_other_errors_on_each_step_are_unavailable(
    stub: tuple[RecordingEventStore, Stubber], operation: str
) -> None:
    store, stubber = stub
    if operation == "put_item":
        stubber.add_client_error("put_item", "InternalServerError", http_status_code=500)
    elif operation == "update_item":
        key_taken(stubber, OTHER)
        stubber.add_client_error("update_item", "AccessDeniedException", http_status_code=400)
    else:
        key_taken(stubber, None)
        stubber.add_client_error("get_item", "AccessDeniedException", http_status_code=400)
    with pytest.raises(EventStoreUnavailableError):
        store.put_new(ITEM)
