"""The audit log of the operator CLI: every hold, release, erase, download and presigned URL.

Table `AuditTable` (template.yaml): key AuditDay ("YYYY-MM-DD", UTC) / AuditId ("<ISO-8601 UTC
time with microseconds>#<uuid4 hex>"), so a window is one Query per day, in time order. Records
are written with a create-only PutItem (never an overwrite) by the operator's own credentials;
the table's resource policy denies deleting or changing them to everyone, and no function role
has any grant on it.

A record: Action, Actor (the STS caller ARN), At, Targets (UUIDs, the masked number), Counts,
Reason. Never a phone number in clear: `write` refuses a target that names a phone field, and a
digit run that looks like a number in the reason is masked as the logs mask it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

ACTIONS = frozenset(
    {
        "hold.set",
        "hold.clear",
        "erase.start",
        "erase.done",
        "recording.download",
        "recording.url",
        "recording.retry",
        "console.play",
    }
)
DAY = "AuditDay"
ID = "AuditId"
# Target keys that could carry a number in clear: refused (pass the masked form as "number").
_PHONE_KEYS = frozenset({"from", "to", "virtualnumber", "firstparty", "secondparty", "phone"})
# Eight digits or more, possibly with the separators people type (+1 415-555-0123, (415) ...).
_NUMBER_RUN = re.compile(r"\+?\d(?:[\s().-]*\d){7,}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # a date (2026-12-03) is no number


def _id_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def mask_numbers(text: str) -> str:
    """Digit runs that could be phone numbers, masked like the logs mask them (`***0123`)."""
    from recording_archive.observability import mask_phone

    def mask(match: re.Match[str]) -> str:
        run = match.group(0)
        return run if _DATE.fullmatch(run) else mask_phone(run)

    return _NUMBER_RUN.sub(mask, text)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class AuditLog:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    @property
    def table_name(self) -> str:
        return self._table

    def write(
        self,
        action: str,
        *,
        actor: str,
        targets: Mapping[str, Any],
        counts: Mapping[str, int] | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Append one record (create-only); the record as stored."""
        from recording_archive.dal.events_table import serialize_item

        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        phone_keys = sorted(k for k in targets if k.lower() in _PHONE_KEYS)
        if phone_keys:
            raise ValueError(f"audit targets may not carry phone fields: {', '.join(phone_keys)}")
        now = datetime.now(UTC)
        record: dict[str, Any] = {
            DAY: now.strftime("%Y-%m-%d"),
            ID: f"{_id_time(now)}#{uuid.uuid4().hex}",
            "Action": action,
            "Actor": actor,
            "At": _id_time(now),
            "Targets": dict(targets),
        }
        if counts:
            record["Counts"] = {k: int(v) for k, v in counts.items()}
        if reason is not None:
            record["Reason"] = mask_numbers(reason)
        self._client.put_item(
            TableName=self._table,
            Item=serialize_item(record),
            # Create-only: a record is never replaced (the id is unique anyway).
            ConditionExpression="attribute_not_exists(#id)",
            ExpressionAttributeNames={"#id": ID},
        )
        return record

    def records(self, since: datetime, until: datetime | None = None) -> list[dict[str, Any]]:
        """Records written in [since, until] (until defaults to now), oldest first."""
        end = until or datetime.now(UTC)
        if end < since:
            return []
        low, high = _id_time(since), _id_time(end) + "#~"  # "~" sorts after every hex digit
        out: list[dict[str, Any]] = []
        day = since.astimezone(UTC).date()
        while day <= end.astimezone(UTC).date():
            out.extend(self._day(day.isoformat(), low, high))
            day += timedelta(days=1)
        return out

    def _day(self, day: str, low: str, high: str) -> Iterator[dict[str, Any]]:
        from recording_archive.dal.events_table import deserialize_item

        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#d = :d AND #id BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#d": DAY, "#id": ID},
            "ExpressionAttributeValues": {
                ":d": {"S": day},
                ":low": {"S": low},
                ":high": {"S": high},
            },
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**kwargs)
            for typed in page.get("Items", []):
                yield _plain(deserialize_item(typed))
            if not page.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
