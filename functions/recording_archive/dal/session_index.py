"""The session index (IndexTable): sessions by receive day, and by blinded phone number.

Key `pk` (S) / `sk` (S); every entry of one stored event has the same sort key
`<ReceivedAt>#<SessionUUID>#<SequenceNumber>` (ReceivedAt is ISO-8601 UTC with milliseconds and a
`Z`, so the text order is the time order):
- a day entry, pk `DAY#<YYYY-MM-DD>` (the UTC date of ReceivedAt): SessionUUID, SequenceNumber,
  EventName, ReceivedAt;
- a number entry per phone field value of the payload (observability.PHONE_FIELDS: From, To,
  VirtualNumber, FirstParty, SecondParty), pk `NUM#<hex HMAC-SHA256 of the normalised number>`:
  SessionUUID, SequenceNumber, ReceivedAt, Field.
Both copy the event's ExpiresAt (TTL), if it has one. The number is never stored, nor any unkeyed
hash of it: phone numbers are so few that a plain SHA-256 is reversed by trying them all. The HMAC
is computed by KMS with an HMAC_256 key (GenerateMac, HMAC_SHA_256): the key never leaves KMS, so
whoever reads the table cannot test a number without the right to call GenerateMac
(https://docs.aws.amazon.com/kms/latest/developerguide/hmac.html).

Writes are plain puts of fixed content (BatchWriteItem PutRequests): writing an event's entries
again is harmless (the callback, the drain and `index rebuild` may all write the same event).
Reads are Queries of one partition at a time, never a Scan.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from recording_archive.models import item as f
from recording_archive.models.errors import (
    NumberKeyUnavailableError,
    SessionIndexUnavailableError,
)
from recording_archive.models.phone import normalise_number
from recording_archive.observability import PHONE_FIELDS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient

PK = "pk"
SK = "sk"
FIELD = "Field"
DAY_PREFIX = "DAY#"
NUMBER_PREFIX = "NUM#"
MAC_ALGORITHM: Final = "HMAC_SHA_256"
# BatchWriteItem takes at most 25 requests
# (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html);
# what it leaves unprocessed (throttling) is sent again with a backoff, this many times.
_BATCH = 25
_BATCH_ROUNDS = 8
_BATCH_BACKOFF_CAP_SECONDS = 5.0
# A new event's entries (at most 1 + len(PHONE_FIELDS) <= 25) on the callback's path: at most
# 0.15 s of backoff, then IndexWriteFailed (the event is stored; `index rebuild` repairs).
_EVENT_ROUNDS = 3
# A sort key above every key of a moment: "~" sorts after the digits, letters and "#" of a key.
_AFTER = "~"


def iso(moment: datetime) -> str:
    """ReceivedAt's form (logic/store_callback.iso): UTC, milliseconds, `Z`."""
    if moment.tzinfo is None:
        raise ValueError("a time of the session index must be timezone-aware")
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True)
class SessionSummary:
    """One session of a listing: its newest and oldest event found, and how many were found."""

    session_uuid: str
    last_received_at: str
    first_received_at: str
    events: int


class NumberBlinder:
    """The keyed HMAC-SHA256 of a normalised number, computed by KMS (GenerateMac), as hex.

    `kms_client` is a KMS client or a function that returns one: the callback passes the factory,
    so that a callback without a phone field never creates a KMS client (cold start). The MACs of
    the last `cache_size` numbers are kept in memory (the same parties call again and again);
    nothing is kept on disk.
    """

    def __init__(self, kms_client: Any, key_id: str, *, cache_size: int = 4096) -> None:
        if not key_id:
            raise ValueError("NumberBlinder needs the HMAC key's id, ARN or alias")
        self._kms = kms_client
        self._key_id = key_id
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size

    def _client(self) -> KMSClient:
        client: KMSClient = self._kms() if callable(self._kms) else self._kms
        return client

    def mac(self, normalised: str) -> str:
        """Hex HMAC-SHA256 of `normalised` (a normalise_number result) under the index key.
        Raises NumberKeyUnavailableError when KMS cannot compute it."""
        if not normalised or normalise_number(normalised) != normalised:
            raise ValueError("mac() takes a normalised number (normalise_number)")
        found = self._cache.get(normalised)
        if found is not None:
            self._cache.move_to_end(normalised)
            return found
        answer = _aws(
            NumberKeyUnavailableError,
            "KMS GenerateMac",
            self._client().generate_mac,
            KeyId=self._key_id,
            MacAlgorithm=MAC_ALGORITHM,
            Message=normalised.encode("ascii"),
        )
        digest: str = bytes(answer["Mac"]).hex()
        self._cache[normalised] = digest
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return digest


def _aws(
    error: type[SessionIndexUnavailableError],
    what: str,
    operation: Callable[..., Any],
    **kwargs: Any,
) -> Any:
    """One AWS call; its failure (after botocore's retries) as `error`, naming the error code,
    never a value of the request (a number)."""
    try:
        return operation(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise error(f"{what} failed ({code})") from exc
    except BotoCoreError as exc:  # connection errors, timeouts, the deadline guard
        raise error(f"{what} failed ({type(exc).__name__})") from exc


def _phone_values(value: Any) -> Iterator[str]:
    """The texts of a stored payload value: a string, a number, or a repeated attribute."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, list):
        for element in value:
            yield from _phone_values(element)
    elif isinstance(value, str | int | Decimal):  # a JSON body's number is stored as a number
        yield str(value)


def event_numbers(item: Mapping[str, Any]) -> dict[str, str]:
    """{normalised number: the payload field(s) it was in, comma-separated} of a stored event."""
    payload = item.get(f.PAYLOAD)
    found: dict[str, list[str]] = {}
    if isinstance(payload, Mapping):
        for name in sorted(PHONE_FIELDS):
            for text in _phone_values(payload.get(name)):
                number = normalise_number(text)
                if number is not None and name not in found.setdefault(number, []):
                    found[number].append(name)
    return {number: ",".join(names) for number, names in found.items()}


def _event_key(item: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(day, sort key, SessionUUID, SequenceNumber) of a stored event."""
    received = str(item.get(f.RECEIVED_AT) or "")
    session = str(item.get(f.SESSION_UUID) or "")
    seq = item.get(f.SEQUENCE_NUMBER)
    if len(received) < 10 or not session or seq is None:
        raise ValueError("an indexed event needs ReceivedAt, SessionUUID and SequenceNumber")
    sequence = str(int(seq))
    return received[:10], f"{received}#{session}#{sequence}", session, sequence


def _encode_cursor(state: Mapping[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        raise ValueError("not a cursor of this listing") from None
    if not (
        isinstance(state, dict)
        and isinstance(state.get("d"), str)
        and isinstance(state.get("k"), str)
        and isinstance(state.get("s"), list)
        and all(isinstance(s, str) for s in state["s"])
    ):
        raise ValueError("not a cursor of this listing")
    return state


class SessionIndex:
    def __init__(self, client: DynamoDBClient, table: str, blinder: NumberBlinder | None) -> None:
        self._client = client
        self._table = table
        self._blinder = blinder

    @property
    def table_name(self) -> str:
        return self._table

    # --- entries ---------------------------------------------------------------------------
    def _number_pk(self, number: str) -> str:
        if self._blinder is None:
            raise NumberKeyUnavailableError("no number index key is configured")
        return NUMBER_PREFIX + self._blinder.mac(number)

    def entries(self, item: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every index entry of one stored event (plain Python values)."""
        day, sort_key, session, sequence = _event_key(item)
        common: dict[str, Any] = {
            SK: sort_key,
            f.SESSION_UUID: session,
            f.SEQUENCE_NUMBER: int(sequence),
            f.RECEIVED_AT: str(item[f.RECEIVED_AT]),
        }
        expires = item.get(f.EXPIRES_AT)
        if expires is not None:
            common[f.EXPIRES_AT] = int(expires)
        out = [{PK: DAY_PREFIX + day, **common, f.EVENT_NAME: str(item.get(f.EVENT_NAME) or "")}]
        for number, fields in event_numbers(item).items():
            out.append({PK: self._number_pk(number), **common, FIELD: fields})
        return out

    def entry_keys(self, events: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
        """The {pk, sk} of every entry the events' index entries would have (whether they were
        written or not), each once."""
        keys: dict[tuple[str, str], None] = {}
        for item in events:
            for entry in self.entries(item):
                keys[(entry[PK], entry[SK])] = None
        return [{PK: pk, SK: sk} for pk, sk in keys]

    def add_event(self, item: Mapping[str, Any]) -> None:
        """Write the day and number entries of one stored event (idempotent puts), in one
        BatchWriteItem: one round trip on the callback's path instead of one PutItem per entry
        (measured against moto: 4 sequential puts added ~40 ms to a warm callback).
        Raises SessionIndexUnavailableError (NumberKeyUnavailableError for KMS)."""
        requests = [{"PutRequest": {"Item": entry}} for entry in self.typed_entries(item)]
        self._write_chunk(requests, rounds=_EVENT_ROUNDS)

    def typed_entries(self, item: Mapping[str, Any]) -> list[dict[str, Any]]:
        """`entries` in DynamoDB's typed JSON: the items `add_event` writes (the bench's floor
        writes the same ones)."""
        return [_typed(entry) for entry in self.entries(item)]

    def add_events(self, items: Iterable[Mapping[str, Any]]) -> int:
        """Write the entries of many events in batches (`index rebuild`); the number written."""
        requests = (
            {"PutRequest": {"Item": _typed(entry)}}
            for item in items
            for entry in self.entries(item)
        )
        return self._batch_write(requests)

    def delete_entries(self, keys: Iterable[Mapping[str, str]]) -> int:
        """Delete entries by key; a missing entry is fine. Returns the number of keys deleted
        (each key once)."""
        unique = {(str(k[PK]), str(k[SK])) for k in keys}
        requests = (
            {"DeleteRequest": {"Key": {PK: {"S": pk}, SK: {"S": sk}}}} for pk, sk in sorted(unique)
        )
        return self._batch_write(requests)

    def _batch_write(self, requests: Iterable[dict[str, Any]]) -> int:
        done = 0
        chunk: list[dict[str, Any]] = []
        for request in requests:
            chunk.append(request)
            if len(chunk) == _BATCH:
                done += self._write_chunk(chunk)
                chunk = []
        if chunk:
            done += self._write_chunk(chunk)
        return done

    def _write_chunk(self, chunk: list[dict[str, Any]], *, rounds: int = _BATCH_ROUNDS) -> int:
        pending = chunk
        for attempt in range(rounds):
            answer = self._call(
                "batch write", self._client.batch_write_item, RequestItems={self._table: pending}
            )
            pending = list((answer.get("UnprocessedItems") or {}).get(self._table) or [])
            if not pending:
                return len(chunk)
            # Unprocessed items mean throttling: back off before sending them again (AWS's
            # advice for BatchWriteItem, link above).
            if attempt + 1 < rounds:
                time.sleep(min(0.05 * (2**attempt), _BATCH_BACKOFF_CAP_SECONDS))
        raise SessionIndexUnavailableError(
            f"session index: {len(pending)} entries still unprocessed after {rounds} batch writes"
        )

    def _call(self, what: str, operation: Callable[..., Any], **kwargs: Any) -> Any:
        return _aws(SessionIndexUnavailableError, f"session index {what}", operation, **kwargs)

    # --- reads -----------------------------------------------------------------------------
    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The entries of one Query, newest first, page after page."""
        start: dict[str, Any] | None = kwargs.pop("ExclusiveStartKey", None)
        while True:
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            answer = self._call(
                "read", self._client.query, TableName=self._table, ScanIndexForward=False, **kwargs
            )
            for typed in answer.get("Items", []):
                yield {k: next(iter(v.values())) for k, v in typed.items()}
            start = answer.get("LastEvaluatedKey")
            if not start:
                return

    def sessions(
        self,
        since: datetime,
        until: datetime,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[SessionSummary], str | None]:
        """Sessions with events received in [since, until], by their newest event in the window,
        newest first, at most `limit`; and the cursor of the next page (None after the last).

        Reads the day partitions from `until`'s date back to `since`'s, one Query at a time.
        A summary counts the session's events read up to the end of its page; the cursor
        remembers the page's sessions, so the next page does not list them again (a session
        whose events interleave with more than `limit` other sessions could appear twice).
        Raises ValueError for a bad window, limit or cursor, SessionIndexUnavailableError when
        the table cannot be read.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        low, high = iso(since), iso(until)
        if low > high:
            raise ValueError("since is after until")
        day = until.astimezone(UTC).date()
        first_day = since.astimezone(UTC).date()
        start_key: str | None = None
        skip: set[str] = set()
        if cursor is not None:
            state = _decode_cursor(cursor)
            try:
                day = datetime.strptime(state["d"], "%Y-%m-%d").replace(tzinfo=UTC).date()
            except ValueError:
                raise ValueError("not a cursor of this listing") from None
            start_key, skip = state["k"], set(state["s"])
        found: dict[str, list[str]] = {}  # session -> [newest, oldest, count]
        counts: dict[str, int] = {}
        last = ("", "")  # (day, sk) of the last entry taken
        while day >= first_day:
            pk = f"{DAY_PREFIX}{day.isoformat()}"
            query: dict[str, Any] = {
                "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
                "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
                "ExpressionAttributeValues": {
                    ":pk": {"S": pk},
                    ":lo": {"S": low},
                    ":hi": {"S": high + _AFTER},
                },
            }
            if start_key is not None:
                query["ExclusiveStartKey"] = {PK: {"S": pk}, SK: {"S": start_key}}
                start_key = None
            for entry in self._query(**query):
                session = str(entry.get(f.SESSION_UUID, ""))
                received = str(entry.get(f.RECEIVED_AT, ""))
                if session in skip:
                    continue
                if session not in found:
                    if len(found) == limit:
                        summaries = _summaries(found, counts)
                        state = {"d": last[0], "k": last[1], "s": sorted(found)}
                        return summaries, _encode_cursor(state)
                    found[session] = [received, received]
                    counts[session] = 0
                found[session][1] = received
                counts[session] += 1
                last = (day.isoformat(), str(entry[SK]))
            day -= timedelta(days=1)
        return _summaries(found, counts), None

    def sessions_for_number(
        self, number: str, *, since: datetime | None = None
    ) -> list[SessionSummary]:
        """The sessions in which `number` (any form: "+1 415-555-0123") was a phone field,
        newest first. Raises ValueError when it has no digit, NumberKeyUnavailableError or
        SessionIndexUnavailableError when KMS or the table fail."""
        normalised = normalise_number(number)
        if normalised is None:
            raise ValueError("not a phone number (no digit, or too many)")
        pk = self._number_pk(normalised)
        names = {"#pk": PK}
        values: dict[str, Any] = {":pk": {"S": pk}}
        condition = "#pk = :pk"
        if since is not None:
            names["#sk"] = SK
            values[":lo"] = {"S": iso(since)}
            condition += " AND #sk >= :lo"
        found: dict[str, list[str]] = {}
        counts: dict[str, int] = {}
        for entry in self._query(
            KeyConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        ):
            session = str(entry.get(f.SESSION_UUID, ""))
            received = str(entry.get(f.RECEIVED_AT, ""))
            span = found.setdefault(session, [received, received])
            span[1] = received
            counts[session] = counts.get(session, 0) + 1
        return _summaries(found, counts)


def _summaries(found: Mapping[str, list[str]], counts: Mapping[str, int]) -> list[SessionSummary]:
    return [
        SessionSummary(session, span[0], span[1], counts[session])
        for session, span in found.items()
    ]


def _typed(entry: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in entry.items():
        out[name] = {"N": str(value)} if isinstance(value, int) else {"S": str(value)}
    return out
