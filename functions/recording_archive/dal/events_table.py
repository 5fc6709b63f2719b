"""RecordingEventStore: the events table, and the only code that writes it.

Writes are conditional so that every path is idempotent:
- `put_new` creates an event only if its key is free. The same payload again is a duplicate
  (nothing written); a different payload on an existing key keeps the first and appends the
  second to the item's ConflictingPayloads, once per distinct payload (nothing lost); an item
  deleted between these steps is put again.
- archive-state updates never regress an ARCHIVED item.
- an archive attempt first *claims* the item (`claim`): one conditional update counts the
  attempt and takes a lease, so two workers never archive one recording at once, and an attempt
  whose worker dies (killed, timed out) is counted even though it never reports.
ClientErrors become domain errors here; botocore's standard retry mode has already retried
throttling and 5xx answers by the time an error reaches this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from recording_archive.models import item as f
from recording_archive.models.archive import Claim, ClaimRefusal, ClaimRefused
from recording_archive.models.errors import EventStoreUnavailableError
from recording_archive.models.item import PutOutcome

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def serialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Python values -> DynamoDB's typed JSON (numbers must be int or Decimal, never float)."""
    return {k: _serializer.serialize(v) for k, v in item.items()}


def deserialize_item(typed: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in typed.items()}


# Conditional puts of one event before it is reported as unstorable, when the item that took its
# key is deleted (TTL expiry, an erase) between the put and the comparison each time.
_PUT_ATTEMPTS = 3


def _is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


# --- archive claims ------------------------------------------------------------------------------
# The claim's attributes (models/item.py), also importable from here.
ARCHIVE_LEASE_UNTIL = f.ARCHIVE_LEASE_UNTIL
ARCHIVE_CLAIM_TOKEN = f.ARCHIVE_CLAIM_TOKEN


class RecordingEventStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    @property
    def table_name(self) -> str:
        return self._table

    # --- events ---------------------------------------------------------------------------
    def put_new(self, item: Mapping[str, Any]) -> PutOutcome:
        """Store an event once: STORED, DUPLICATE (this payload is already on the item) or
        CONFLICT (a different payload, now kept on the item).

        The same request applied twice (an SDK retry after an answer lost on the way back) meets
        its own item: same PayloadSha256, so DUPLICATE. Only the payload's hash is compared,
        never the receive time or anything else that two deliveries of one event may differ in.
        An item deleted between the calls below (TTL expiry, an erase) is put again, at most
        `_PUT_ATTEMPTS` times. Raises EventStoreUnavailableError when the table cannot store the
        event, or when the item vanished every time (the caller keeps the event elsewhere).
        """
        typed = serialize_item(item)
        for _ in range(_PUT_ATTEMPTS):
            outcome = self._put_once(typed)
            if outcome is not None:
                return outcome
        raise EventStoreUnavailableError("events table item vanished at every attempt")

    def _put_once(self, typed: dict[str, Any]) -> PutOutcome | None:
        """One conditional put, then the comparison if the key is taken; None when the item
        that took the key was gone by the time it was compared or appended to."""
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
                if old is None:  # deleted since the put failed: put again
                    return None
            if old.get(f.PAYLOAD_SHA256) == typed[f.PAYLOAD_SHA256]:
                return PutOutcome.DUPLICATE
            return self._add_conflict(typed)
        except BotoCoreError as exc:  # connection errors, timeouts, after the SDK's retries
            raise EventStoreUnavailableError("events table unreachable") from exc
        return PutOutcome.STORED

    def _add_conflict(self, typed: dict[str, Any]) -> PutOutcome | None:
        """Keep a second, different payload for an existing key on that item, once per payload:
        CONFLICT when appended, DUPLICATE when this payload was already kept, None when the item
        is gone (the caller puts again: appending to nothing would drop the payload)."""
        conflict = {
            k: typed[k]
            for k in (f.PAYLOAD, f.RAW_BODY, f.PAYLOAD_SHA256, f.RECEIVED_AT, f.SOURCE)
            if k in typed
        }
        try:
            self._client.update_item(
                TableName=self._table,
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
                # The item as it was when the condition failed, absent if there was none:
                # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise EventStoreUnavailableError("events table update failed") from exc
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            kept = (old or {}).get(f.CONFLICT_HASHES, {}).get("SS", [])
            if typed[f.PAYLOAD_SHA256]["S"] in kept:
                return PutOutcome.DUPLICATE
            return None  # no item (or one replaced meanwhile): put again
        except BotoCoreError as exc:
            raise EventStoreUnavailableError("events table unreachable") from exc
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
        """Index the archived object and release any claim. False if the item was already
        ARCHIVED (never regressed) or no longer exists. Not conditional on holding the claim:
        the object is in the bucket, verified, whichever attempt wrote it.

        True as well when the item holds this very update: it was applied, its answer lost,
        and botocore's retry met the ARCHIVED it had just written (the same `archived_at`, to
        the millisecond, and key): the attempt that archived the recording counts it."""
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
            "#lease": ARCHIVE_LEASE_UNTIL,
            "#tok": ARCHIVE_CLAIM_TOKEN,
            "#enq": f.ARCHIVE_ENQUEUED_UNTIL,
        }
        if version_id:
            sets += ", #v = :version"
            names["#v"] = f.ARCHIVE_VERSION_ID
            values[":version"] = {"S": version_id}
        applied = self._update(
            Key=self._key(session_uuid, sequence_number),
            UpdateExpression=f"SET {sets} REMOVE #q, #due, #lease, #tok, #enq",
            ConditionExpression="attribute_exists(#pk) AND #st <> :archived",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        if applied is not None:
            return True
        current = self.get(session_uuid, sequence_number) or {}
        return (current.get(f.ARCHIVED_AT), current.get(f.ARCHIVE_KEY)) == (archived_at, key)

    def claim(
        self,
        session_uuid: str,
        sequence_number: int,
        *,
        token: str,
        now: int,
        lease_until: int,
        max_attempts: int | None = None,
        due_by: int | None = None,
    ) -> Claim | ClaimRefused:
        """Count one attempt and hold the item until `lease_until`, in one conditional update.

        Granted only if the item exists, is not ARCHIVED, and no other attempt holds an
        unexpired lease (absent, or `<= now`); with `max_attempts`, only while fewer attempts
        were made; with `due_by`, only if the item is due by then. ArchiveDueAt moves to the
        lease's end, so the sweeper leaves a held item alone and finds one whose holder died
        once the lease has run out. A FAILED item keeps its state (reconcile and operators
        archive those too). DynamoDB evaluates the condition and the update atomically, so of
        two concurrent claims exactly one is granted:
        https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
        """
        names = {
            "#pk": f.SESSION_UUID,
            "#st": f.ARCHIVE_STATUS,
            "#due": f.ARCHIVE_DUE_AT,
            "#n": f.ARCHIVE_ATTEMPTS,
            "#lease": ARCHIVE_LEASE_UNTIL,
            "#tok": ARCHIVE_CLAIM_TOKEN,
            "#enq": f.ARCHIVE_ENQUEUED_UNTIL,
        }
        values: dict[str, Any] = {
            ":archived": {"S": f.ArchiveStatus.ARCHIVED.value},
            ":now": {"N": str(now)},
            ":lease": {"N": str(lease_until)},
            ":tok": {"S": token},
            ":one": {"N": "1"},
        }
        conditions = [
            "attribute_exists(#pk)",
            "#st <> :archived",
            "(attribute_not_exists(#lease) OR #lease <= :now)",
        ]
        if max_attempts is not None:
            conditions.append("(attribute_not_exists(#n) OR #n < :max)")
            values[":max"] = {"N": str(max_attempts)}
        if due_by is not None:
            conditions.append("(attribute_not_exists(#due) OR #due <= :due_by)")
            values[":due_by"] = {"N": str(due_by)}
        resp = self._update(
            Key=self._key(session_uuid, sequence_number),
            # The sweep's enqueue mark has served (its message was taken): from here the lease
            # keeps the item from the sweeper, and once it runs out (the worker died) the next
            # sweep enqueues the item again.
            UpdateExpression=(
                "SET #lease = :lease, #tok = :tok, #due = :lease REMOVE #enq ADD #n :one"
            ),
            ConditionExpression=" AND ".join(conditions),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            # The item as it was: the attempt count, any lease left behind, and a legal hold
            # set on it before the recording was archived (read in the same atomic update, so
            # a hold set before this claim is never missed).
            ReturnValues="ALL_OLD",
        )
        if resp is not None:
            old = resp.get("Attributes") or {}
            return Claim(
                token=token,
                attempts=int(old.get(f.ARCHIVE_ATTEMPTS, {}).get("N", "0")) + 1,
                lease_until=lease_until,
                abandoned_lease=ARCHIVE_LEASE_UNTIL in old,
                legal_hold=f.LEGAL_HOLD in old,
            )
        # Read back (consistently): why the claim was refused, or that it was not. The item may
        # hold this very claim: its update was applied, the answer was lost (a reset or a read
        # timeout) and botocore sent it again, and the retry met the lease it had just set. The
        # token (new for each attempt) tells: the claim is granted, counted once. It was once
        # read as another attempt's lease, and the recording waited for that lease to run out
        # and for a sweep, with an attempt counted for nothing.
        current = self.get(session_uuid, sequence_number)
        if current is not None and current.get(ARCHIVE_CLAIM_TOKEN) == token:
            return Claim(
                token=token,
                attempts=int(current.get(f.ARCHIVE_ATTEMPTS) or 0),
                lease_until=lease_until,
                # What the lost answer held (a lease left behind) is not known any more.
                abandoned_lease=False,
                legal_hold=f.LEGAL_HOLD in current,
            )
        return self._why_refused(current, now=now, max_attempts=max_attempts, due_by=due_by)

    @staticmethod
    def _why_refused(
        current: dict[str, Any] | None,
        *,
        now: int,
        max_attempts: int | None,
        due_by: int | None,
    ) -> ClaimRefused:
        """Which condition of a refused claim failed, from the item as read back."""
        if current is None:
            return ClaimRefused(ClaimRefusal.GONE)
        attempts = int(current.get(f.ARCHIVE_ATTEMPTS) or 0)
        last_error = str(current.get(f.ARCHIVE_LAST_ERROR) or "")
        lease = current.get(ARCHIVE_LEASE_UNTIL)

        def refused(reason: ClaimRefusal) -> ClaimRefused:
            return ClaimRefused(reason, attempts, last_error, lease is not None)

        if current.get(f.ARCHIVE_STATUS) == f.ArchiveStatus.ARCHIVED:
            return refused(ClaimRefusal.ARCHIVED)
        if lease is not None and int(lease) > now:
            return refused(ClaimRefusal.HELD)
        if max_attempts is not None and attempts >= max_attempts:
            return refused(ClaimRefusal.EXHAUSTED)
        due = current.get(f.ARCHIVE_DUE_AT)
        if due_by is not None and due is not None and int(due) > due_by:
            return refused(ClaimRefusal.NOT_DUE)
        # The item changed between the update and this read (another attempt claimed and
        # released it): leave it to that attempt.
        return refused(ClaimRefusal.HELD)

    def record_failure(
        self,
        session_uuid: str,
        sequence_number: int,
        *,
        error: str,
        next_due_at: int,
        failed: bool,
        claim_token: str | None = None,
        lease_free_at: int | None = None,
    ) -> int | None:
        """Record a failed attempt and release its claim. `failed` moves the item to the FAILED
        queue (it stays out of the sweeper's way until retried).

        - `claim_token`: the failure of a claimed attempt, already counted by `claim`; written
          only while this token still holds the item (an attempt that outlived its lease must
          not overwrite its successor's).
        - `lease_free_at`: no attempt was made (the attempts are exhausted); written only if no
          lease is held at that time.
        - neither: an attempt that was never claimed (an item that cannot be archived at all),
          counted here.
        Returns the attempt count, None if the condition did not hold (already ARCHIVED, gone,
        or the claim lost)."""
        state = f.ArchiveStatus.FAILED if failed else f.ArchiveStatus.PENDING
        names = {
            "#pk": f.SESSION_UUID,
            "#st": f.ARCHIVE_STATUS,
            "#q": f.ARCHIVE_QUEUE,
            "#due": f.ARCHIVE_DUE_AT,
            "#err": f.ARCHIVE_LAST_ERROR,
            "#enq": f.ARCHIVE_ENQUEUED_UNTIL,
        }
        values: dict[str, Any] = {
            ":state": {"S": state.value},
            ":archived": {"S": f.ArchiveStatus.ARCHIVED.value},
            ":due": {"N": str(next_due_at)},
            ":err": {"S": error[:500]},
        }
        # The outcome is reported: a sweep's enqueue mark goes too, so the next enqueue follows
        # the item's backoff (`next_due_at`), not the mark's hold.
        update = "SET #st = :state, #q = :state, #due = :due, #err = :err"
        condition = "attribute_exists(#pk) AND #st <> :archived"
        if claim_token is None and lease_free_at is None:
            update += " REMOVE #enq ADD #n :one"
            names["#n"] = f.ARCHIVE_ATTEMPTS
            values[":one"] = {"N": "1"}
        else:
            update += " REMOVE #enq, #lease, #tok"
            names |= {"#lease": ARCHIVE_LEASE_UNTIL, "#tok": ARCHIVE_CLAIM_TOKEN}
            if claim_token is not None:
                condition += " AND #tok = :tok"
                values[":tok"] = {"S": claim_token}
            if lease_free_at is not None:
                condition += " AND (attribute_not_exists(#lease) OR #lease <= :free)"
                values[":free"] = {"N": str(lease_free_at)}
        resp = self._update(
            Key=self._key(session_uuid, sequence_number),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        if resp is None:
            return None
        return int(resp["Attributes"].get(f.ARCHIVE_ATTEMPTS, {}).get("N", "0"))

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
        self,
        state: f.ArchiveStatus,
        *,
        due_before: int | None = None,
        limit: int | None = 100,
        not_enqueued_at: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Items waiting in the PENDING or FAILED queue (ArchiveQueueIndex), oldest due first,
        page after page (`limit` None: the whole queue). `not_enqueued_at` (epoch seconds) leaves
        out the items a sweep's message still stands for then (`mark_enqueued`)."""
        cond = "#q = :state"
        names = {"#q": f.ARCHIVE_QUEUE}
        values: dict[str, Any] = {":state": {"S": state.value}}
        if due_before is not None:
            cond += " AND #due <= :due"
            names["#due"] = f.ARCHIVE_DUE_AT
            values[":due"] = {"N": str(due_before)}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": f.ARCHIVE_QUEUE_INDEX,
            "KeyConditionExpression": cond,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "Limit": 100 if limit is None else min(limit, 100),
        }
        if not_enqueued_at is not None:
            # A filter, applied after the read: it saves the sweep a refused conditional write
            # per item already on the work queue, not the read (the index projects every
            # attribute, so the mark is there to filter on).
            kwargs["FilterExpression"] = "attribute_not_exists(#enq) OR #enq <= :enq_now"
            names["#enq"] = f.ARCHIVE_ENQUEUED_UNTIL
            values[":enq_now"] = {"N": str(not_enqueued_at)}
        seen = 0
        while True:
            try:
                resp = self._client.query(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise EventStoreUnavailableError("events table query failed") from exc
            for typed in resp.get("Items", []):
                yield deserialize_item(typed)
                seen += 1
                if limit is not None and seen >= limit:
                    return
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    # --- the archive work queue -------------------------------------------------------------
    def mark_enqueued(
        self, session_uuid: str, sequence_number: int, *, now: int, until: int, due_before: int
    ) -> bool:
        """Take the right to put the item on the archive work queue until `until`: granted only
        if it is still PENDING, due by `due_before`, and no other sweep's mark holds it (absent,
        or `<= now`). DynamoDB evaluates the condition and the update atomically, so of two
        overlapping sweeps one enqueues the item:
        https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
        """
        return None is not self._update(
            Key=self._key(session_uuid, sequence_number),
            UpdateExpression="SET #enq = :until",
            ConditionExpression=(
                "#q = :pending AND #due <= :due_before "
                "AND (attribute_not_exists(#enq) OR #enq <= :now)"
            ),
            ExpressionAttributeNames={
                "#q": f.ARCHIVE_QUEUE,
                "#due": f.ARCHIVE_DUE_AT,
                "#enq": f.ARCHIVE_ENQUEUED_UNTIL,
            },
            ExpressionAttributeValues={
                ":pending": {"S": f.ArchiveStatus.PENDING.value},
                ":due_before": {"N": str(due_before)},
                ":now": {"N": str(now)},
                ":until": {"N": str(until)},
            },
        )

    def release_enqueued(self, session_uuid: str, sequence_number: int, *, until: int) -> bool:
        """Give back a mark whose message could not be sent (only the mark this sweep wrote):
        the next sweep enqueues the item again."""
        return None is not self._update(
            Key=self._key(session_uuid, sequence_number),
            UpdateExpression="REMOVE #enq",
            ConditionExpression="#enq = :until",
            ExpressionAttributeNames={"#enq": f.ARCHIVE_ENQUEUED_UNTIL},
            ExpressionAttributeValues={":until": {"N": str(until)}},
        )
