"""ArchiveIndex: the events table read the way reconciliation and operators need it.

A `RecordingEventStore` (every write stays there, conditional and idempotent) plus reads:
- `session_events(session)`: one session's events, in SequenceNumber order (a Query);
- `find_recording(recording_uuid)`: the events that carry a RecordingUUID, through the GSI
  `RecordingIndex` (hash RecordingUUID, keys only) when the table has it, else a filtered Scan
  (acceptable for an operator at this scale, and the local stack before the index exists);
- `archived_items(after=, before=)`: ARCHIVED items by ArchivedAt (a filtered Scan: ARCHIVED
  items have left the sparse ArchiveQueueIndex);
- `mark_source_deleted`: records when the recording was deleted from Plivo (purge-source).

Permissions: dynamodb:Query (table and RecordingIndex), dynamodb:Scan (operators only).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from recording_archive.dal.events_table import RecordingEventStore, deserialize_item
from recording_archive.models import item as f
from recording_archive.models.errors import EventStoreUnavailableError

RECORDING_INDEX = f.RECORDING_INDEX  # attribute names: models/item.py
SOURCE_DELETED_AT = f.SOURCE_DELETED_AT


class ArchiveIndex(RecordingEventStore):
    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        call = getattr(self._client, operation)
        while True:
            try:
                resp = call(TableName=self._table, **kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise EventStoreUnavailableError(f"events table {operation} failed") from exc
            for typed in resp.get("Items", []):
                yield deserialize_item(typed)
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def session_events(self, session_uuid: str) -> list[dict[str, Any]]:
        """Every event of the session, SequenceNumber ascending (reconciled ones are negative)."""
        return list(
            self._pages(
                "query",
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": f.SESSION_UUID},
                ExpressionAttributeValues={":pk": {"S": session_uuid}},
                ConsistentRead=True,
            )
        )

    def find_recording(self, recording_uuid: str) -> list[dict[str, Any]]:
        """Full items of every event that carries this RecordingUUID, in key order."""
        try:
            keys = list(
                self._pages(
                    "query",
                    IndexName=RECORDING_INDEX,
                    KeyConditionExpression="#r = :r",
                    ExpressionAttributeNames={"#r": f.RECORDING_UUID},
                    ExpressionAttributeValues={":r": {"S": recording_uuid}},
                )
            )
        except EventStoreUnavailableError as exc:
            cause = exc.__cause__
            code = (
                cause.response.get("Error", {}).get("Code")
                if isinstance(cause, ClientError)
                else None
            )
            if code not in ("ValidationException", "ResourceNotFoundException"):
                raise
            # No RecordingIndex on this table: scan.
            items = list(
                self._pages(
                    "scan",
                    FilterExpression="#r = :r",
                    ExpressionAttributeNames={"#r": f.RECORDING_UUID},
                    ExpressionAttributeValues={":r": {"S": recording_uuid}},
                    ConsistentRead=True,
                )
            )
        else:
            items = []
            for key in keys:
                found = self.get(str(key[f.SESSION_UUID]), int(key[f.SEQUENCE_NUMBER]))
                if found is not None:
                    items.append(found)
        return sorted(items, key=lambda i: (str(i[f.SESSION_UUID]), int(i[f.SEQUENCE_NUMBER])))

    def archived_items(
        self, *, after: str | None = None, before: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """ARCHIVED items whose ArchivedAt (ISO UTC, ends in Z) is >= after and < before."""
        cond = "#st = :archived"
        names = {"#st": f.ARCHIVE_STATUS}
        values: dict[str, Any] = {":archived": {"S": f.ArchiveStatus.ARCHIVED.value}}
        if after is not None or before is not None:
            names["#at"] = f.ARCHIVED_AT
        if after is not None:
            cond += " AND #at >= :after"
            values[":after"] = {"S": after}
        if before is not None:
            cond += " AND #at < :before"
            values[":before"] = {"S": before}
        yield from self._pages(
            "scan",
            FilterExpression=cond,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        )

    def mark_source_deleted(self, session_uuid: str, sequence_number: int, *, at: str) -> bool:
        """Note on an ARCHIVED item that Plivo's copy was deleted (False if not ARCHIVED)."""
        answer = self._update(
            Key=self._key(session_uuid, sequence_number),
            UpdateExpression="SET #d = if_not_exists(#d, :at)",
            ConditionExpression="attribute_exists(#pk) AND #st = :archived",
            ExpressionAttributeNames={
                "#pk": f.SESSION_UUID,
                "#st": f.ARCHIVE_STATUS,
                "#d": SOURCE_DELETED_AT,
            },
            ExpressionAttributeValues={
                ":at": {"S": at},
                ":archived": {"S": f.ArchiveStatus.ARCHIVED.value},
            },
        )
        return answer is not None
