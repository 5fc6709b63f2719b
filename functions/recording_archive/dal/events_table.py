"""RecordingEventStore: the events table, and the only code that writes it.

Writes are conditional so that every path is idempotent:
- `put_new` creates an event only if its key is free. The same payload again is a duplicate
  (nothing written); a different payload on an existing key keeps the first and appends the
  second to the item's ConflictingPayloads, once per distinct payload (nothing lost).
- archive-state updates never regress an ARCHIVED item.
ClientErrors become domain errors here; botocore's standard retry mode has already retried
throttling and 5xx answers by the time an error reaches this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from recording_archive.models import item as f
from recording_archive.models.errors import EventStoreUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class PutOutcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


def serialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Python values -> DynamoDB's typed JSON (numbers must be int or Decimal, never float)."""
    return {k: _serializer.serialize(v) for k, v in item.items()}


def deserialize_item(typed: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in typed.items()}


def _is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class RecordingEventStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    @property
    def table_name(self) -> str:
        return self._table

    # --- events ---------------------------------------------------------------------------
    def put_new(self, item: Mapping[str, Any]) -> PutOutcome:
        """Store an event once. Raises EventStoreUnavailableError when the table cannot."""
        typed = serialize_item(item)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=typed,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": f.SESSION_UUID},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise EventStoreUnavailableError("events table write failed") from exc
            old: Any = exc.response.get("Item")
            if old is None:  # not returned: read it (consistent) to compare
                old = self._get_typed(typed[f.SESSION_UUID], typed[f.SEQUENCE_NUMBER])
            if old is not None and old.get(f.PAYLOAD_SHA256) == typed[f.PAYLOAD_SHA256]:
                return PutOutcome.DUPLICATE
            return self._add_conflict(typed)
        except BotoCoreError as exc:  # connection errors, timeouts, after the SDK's retries
            raise EventStoreUnavailableError("events table unreachable") from exc
        return PutOutcome.STORED

    def _add_conflict(self, typed: dict[str, Any]) -> PutOutcome:
        """Keep a second, different payload for an existing key on that item, once per payload."""
        conflict = {
            k: typed[k]
            for k in (f.PAYLOAD, f.RAW_BODY, f.PAYLOAD_SHA256, f.RECEIVED_AT, f.SOURCE)
            if k in typed
        }
        kept = self._update(
            Key={
                f.SESSION_UUID: typed[f.SESSION_UUID],
                f.SEQUENCE_NUMBER: typed[f.SEQUENCE_NUMBER],
            },
            UpdateExpression=(
                "SET #cp = list_append(if_not_exists(#cp, :empty), :one) ADD #ch :hashes"
            ),
            ConditionExpression="attribute_exists(#pk) AND NOT contains(#ch, :hash)",
            ExpressionAttributeNames={
                "#cp": f.CONFLICTING_PAYLOADS,
                "#ch": f.CONFLICT_HASHES,
                "#pk": f.SESSION_UUID,
            },
            ExpressionAttributeValues={
                ":empty": {"L": []},
                ":one": {"L": [{"M": conflict}]},
                ":hashes": {"SS": [typed[f.PAYLOAD_SHA256]["S"]]},
                ":hash": typed[f.PAYLOAD_SHA256],
            },
        )
        if kept is None:  # this conflicting payload is already kept
            return PutOutcome.DUPLICATE
        return PutOutcome.CONFLICT

    def _get_typed(self, pk: Any, sk: Any) -> dict[str, Any] | None:
        try:
            resp = self._client.get_item(
                TableName=self._table,
                Key={f.SESSION_UUID: pk, f.SEQUENCE_NUMBER: sk},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise EventStoreUnavailableError("events table read failed") from exc
        found: dict[str, Any] | None = resp.get("Item")
        return found

    def get(self, session_uuid: str, sequence_number: int) -> dict[str, Any] | None:
        typed = self._get_typed({"S": session_uuid}, {"N": str(sequence_number)})
        return None if typed is None else deserialize_item(typed)

    # --- archive state ----------------------------------------------------------------------
    def _key(self, session_uuid: str, sequence_number: int) -> dict[str, Any]:
        return {
            f.SESSION_UUID: {"S": session_uuid},
            f.SEQUENCE_NUMBER: {"N": str(sequence_number)},
        }

    def _update(self, **kwargs: Any) -> dict[str, Any] | None:
        """An update under a condition: the answer, or None when the condition did not hold."""
        try:
            resp: dict[str, Any] = self._client.update_item(TableName=self._table, **kwargs)  # type: ignore[assignment]
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return None
            raise EventStoreUnavailableError("events table update failed") from exc
        except BotoCoreError as exc:
            raise EventStoreUnavailableError("events table unreachable") from exc
        return resp

    def mark_archived(
        self,
        session_uuid: str,
        sequence_number: int,
        *,
        bucket: str,
        key: str,
        version_id: str | None,
        size: int,
        sha256_hex: str,
        archived_at: str,
    ) -> bool:
        """Index the archived object. False if the item was already ARCHIVED (never regressed)
        or no longer exists."""
        values: dict[str, Any] = {
            ":archived": {"S": f.ArchiveStatus.ARCHIVED.value},
            ":bucket": {"S": bucket},
            ":key": {"S": key},
            ":size": {"N": str(size)},
            ":sha": {"S": sha256_hex},
            ":at": {"S": archived_at},
        }
        sets = "#st = :archived, #b = :bucket, #k = :key, #sz = :size, #sha = :sha, #at = :at"
        names = {
            "#pk": f.SESSION_UUID,
            "#st": f.ARCHIVE_STATUS,
            "#b": f.ARCHIVE_BUCKET,
            "#k": f.ARCHIVE_KEY,
            "#sz": f.ARCHIVE_SIZE,
            "#sha": f.ARCHIVE_SHA256,
            "#at": f.ARCHIVED_AT,
            "#q": f.ARCHIVE_QUEUE,
            "#due": f.ARCHIVE_DUE_AT,
        }
        if version_id:
            sets += ", #v = :version"
            names["#v"] = f.ARCHIVE_VERSION_ID
            values[":version"] = {"S": version_id}
        return None is not self._update(
            Key=self._key(session_uuid, sequence_number),
            UpdateExpression=f"SET {sets} REMOVE #q, #due",
            ConditionExpression="attribute_exists(#pk) AND #st <> :archived",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def record_failure(
        self,
        session_uuid: str,
        sequence_number: int,
        *,
        error: str,
        next_due_at: int,
        failed: bool,
    ) -> int | None:
        """Count one failed attempt. `failed` moves the item to the FAILED queue (it stays out of
        the sweeper's way until retried). Returns the attempt count, None if already ARCHIVED."""
        state = f.ArchiveStatus.FAILED if failed else f.ArchiveStatus.PENDING
        resp = self._update(
            Key=self._key(session_uuid, sequence_number),
            UpdateExpression=(
                "SET #st = :state, #q = :state, #due = :due, #err = :err ADD #n :one"
            ),
            ConditionExpression="attribute_exists(#pk) AND #st <> :archived",
            ExpressionAttributeNames={
                "#pk": f.SESSION_UUID,
                "#st": f.ARCHIVE_STATUS,
                "#q": f.ARCHIVE_QUEUE,
                "#due": f.ARCHIVE_DUE_AT,
                "#err": f.ARCHIVE_LAST_ERROR,
                "#n": f.ARCHIVE_ATTEMPTS,
            },
            ExpressionAttributeValues={
                ":state": {"S": state.value},
                ":archived": {"S": f.ArchiveStatus.ARCHIVED.value},
                ":due": {"N": str(next_due_at)},
                ":err": {"S": error[:500]},
                ":one": {"N": "1"},
            },
            ReturnValues="UPDATED_NEW",
        )
        if resp is None:
            return None
        return int(resp["Attributes"][f.ARCHIVE_ATTEMPTS]["N"])

    def requeue(self, session_uuid: str, sequence_number: int, *, due_at: int) -> bool:
        """Put a FAILED (or PENDING) recording back in the PENDING queue, due now."""
        return None is not self._update(
            Key=self._key(session_uuid, sequence_number),
            UpdateExpression="SET #st = :pending, #q = :pending, #due = :due",
            ConditionExpression="attribute_exists(#pk) AND #st <> :archived",
            ExpressionAttributeNames={
                "#pk": f.SESSION_UUID,
                "#st": f.ARCHIVE_STATUS,
                "#q": f.ARCHIVE_QUEUE,
                "#due": f.ARCHIVE_DUE_AT,
            },
            ExpressionAttributeValues={
                ":pending": {"S": f.ArchiveStatus.PENDING.value},
                ":archived": {"S": f.ArchiveStatus.ARCHIVED.value},
                ":due": {"N": str(due_at)},
            },
        )

    def archive_queue(
        self, state: f.ArchiveStatus, *, due_before: int | None = None, limit: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Items waiting in the PENDING or FAILED queue (ArchiveQueueIndex), oldest due first."""
        cond = "#q = :state"
        values: dict[str, Any] = {":state": {"S": state.value}}
        if due_before is not None:
            cond += " AND #due <= :due"
            values[":due"] = {"N": str(due_before)}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": f.ARCHIVE_QUEUE_INDEX,
            "KeyConditionExpression": cond,
            "ExpressionAttributeNames": {
                "#q": f.ARCHIVE_QUEUE,
                **({"#due": f.ARCHIVE_DUE_AT} if due_before is not None else {}),
            },
            "ExpressionAttributeValues": values,
            "Limit": min(limit, 100),
        }
        seen = 0
        while True:
            try:
                resp = self._client.query(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise EventStoreUnavailableError("events table query failed") from exc
            for typed in resp.get("Items", []):
                yield deserialize_item(typed)
                seen += 1
                if seen >= limit:
                    return
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last
