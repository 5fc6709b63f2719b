"""What the console shows, read through the operator layer (`Ops`, `operator.archive`): the same
queries as `sessions show`, `sessions list|find` and `recordings pending|failed|retry|get`,
never copies of them. Sessions by day and by phone number come from the session index
(`Ops.session_index`, dal/session_index.py: blinded number entries, never a number); a session
or recording UUID is looked up in the events table itself.

Phone numbers in what is shown are masked (`observability.masked_fields`, as in the logs)
unless the console runs with `--show-numbers`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from recording_archive.models import item as f
from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.archive import completed_items, public_item
from recording_archive_cli.operator.context import Ops

PAGE_SIZE = 50
QUEUE_LIMIT = 200
HEALTH_QUEUE_LIMIT = 1000
STATUSES = tuple(s.value for s in f.ArchiveStatus)
EVENTS = tuple(sorted(f.KNOWN_EVENTS))
# Search: a phone number is digits with the usual separators and an optional leading +; a Plivo
# id (UUID) has letters or hyphens between hex groups.
_NUMBER = re.compile(r"^\+?[\d\s().-]{6,32}$")


def is_plivo_id(text: str) -> bool:
    """A session or recording UUID, as the CLI's arguments take it (`options.identifier`)."""
    from argparse import ArgumentTypeError

    from recording_archive_cli.commands.options import identifier

    try:
        identifier(text)
    except ArgumentTypeError:
        return False
    return True


class SearchError(ValueError):
    """The search text is neither a Plivo id nor a phone number."""


@dataclass
class SessionRow:
    session_uuid: str
    first_received_at: str
    last_received_at: str
    events: int
    event_names: Counter[str] = field(default_factory=Counter)
    recordings: list[tuple[str, str]] = field(default_factory=list)  # (RecordingUUID, status)
    items: list[dict[str, Any]] = field(default_factory=list, repr=False)  # the events read


@dataclass
class Recording:
    session_uuid: str
    sequence_number: int
    recording_uuid: str
    status: str
    attempts: int
    last_error: str
    size: int | None
    duration: str
    sha256: str
    key: str
    archived_at: str
    held: bool


@dataclass
class Health:
    day: str
    callbacks_by_event: dict[str, int]
    archived: int
    pending_today: int
    failed_today: int
    failed_total: int
    failed_truncated: bool
    pending_total: int
    oldest_pending_age_seconds: int | None
    sessions_read: int
    truncated: bool


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


@contextmanager
def index_errors(ops: Ops) -> Iterator[None]:
    """The session index's failures (its table or key unavailable) as CLIErrors."""
    from recording_archive.models.errors import RecordingArchiveError

    try:
        with ops.aws_errors("session index"):
            yield
    except RecordingArchiveError as exc:
        raise CLIError(f"session index: {exc or type(exc).__name__}") from None


class ConsoleData:
    def __init__(self, ops: Ops, *, show_numbers: bool = False) -> None:
        self.ops = ops
        self.show_numbers = show_numbers

    # --- shown values ------------------------------------------------------------------------
    def shown(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """An item as the console shows it: the raw body dropped, numbers masked unless asked."""
        if self.show_numbers:
            return {k: v for k, v in item.items() if k != f.RAW_BODY}
        return public_item(item)

    # --- sessions by day ------------------------------------------------------------------------
    def sessions(
        self,
        day: date,
        *,
        status: str | None = None,
        event: str | None = None,
        cursor: str | None = None,
    ) -> tuple[list[SessionRow], str | None]:
        """(rows newest first, next page's cursor)."""
        since, until = _day_bounds(day)
        with index_errors(self.ops):
            summaries, next_cursor = self.ops.session_index.sessions(
                since, until, limit=PAGE_SIZE, cursor=cursor
            )
        uuids = [s.session_uuid for s in summaries]
        rows = [row for row in (self.row(u) for u in uuids) if row is not None]
        rows = [r for r in rows if _matches(r, status=status, event=event)]
        rows.sort(key=lambda r: r.last_received_at, reverse=True)
        return rows, next_cursor

    def row(self, session_uuid: str) -> SessionRow | None:
        events = self.events(session_uuid)
        if not events:
            return None
        received = sorted(str(e.get(f.RECEIVED_AT) or "") for e in events)
        row = SessionRow(
            session_uuid=session_uuid,
            first_received_at=received[0],
            last_received_at=received[-1],
            events=len(events),
            event_names=Counter(str(e.get(f.EVENT_NAME) or "") for e in events),
            items=events,
        )
        for e in events:
            if e.get(f.EVENT_NAME) == f.EVENT_COMPLETED:
                row.recordings.append(
                    (str(e.get(f.RECORDING_UUID) or ""), str(e.get(f.ARCHIVE_STATUS) or ""))
                )
        return row

    # --- one session ----------------------------------------------------------------------------
    def events(self, session_uuid: str) -> list[dict[str, Any]]:
        """The session's events in SequenceNumber order (`sessions show`'s query)."""
        with self.ops.aws_errors("events table"):
            events: list[dict[str, Any]] = self.ops.index.session_events(session_uuid)
        return events

    def recordings(self, events: Iterable[Mapping[str, Any]]) -> list[Recording]:
        out = []
        for e in events:
            if e.get(f.EVENT_NAME) != f.EVENT_COMPLETED:
                continue
            size = e.get(f.ARCHIVE_SIZE)
            out.append(
                Recording(
                    session_uuid=str(e[f.SESSION_UUID]),
                    sequence_number=int(e[f.SEQUENCE_NUMBER]),
                    recording_uuid=str(e.get(f.RECORDING_UUID) or ""),
                    status=str(e.get(f.ARCHIVE_STATUS) or ""),
                    attempts=int(e.get(f.ARCHIVE_ATTEMPTS) or 0),
                    last_error=str(e.get(f.ARCHIVE_LAST_ERROR) or ""),
                    size=None if size is None else int(size),
                    duration=str(e.get(f.RECORDING_DURATION_SECONDS) or ""),
                    sha256=str(e.get(f.ARCHIVE_SHA256) or ""),
                    key=str(e.get(f.ARCHIVE_KEY) or ""),
                    archived_at=str(e.get(f.ARCHIVED_AT) or ""),
                    held=bool(e.get(f.LEGAL_HOLD)),
                )
            )
        return out

    def recording_item(self, session_uuid: str, recording_uuid: str) -> dict[str, Any] | None:
        """The session's Completed item of this recording (`recordings get`'s query)."""
        for item in completed_items(self.ops, recording_uuid):
            if str(item[f.SESSION_UUID]) == session_uuid:
                return item
        return None

    # --- search ---------------------------------------------------------------------------------
    def search(self, text: str) -> list[str]:
        """Session UUIDs the text finds: a session UUID, a recording UUID or a phone number."""
        query = text.strip()
        if not query:
            return []
        if _NUMBER.match(query):
            # No letters: a phone number (Plivo's ids are UUIDs, 36 characters with hex letters).
            return self._by_number(query)
        if not is_plivo_id(query):
            raise SearchError(
                "enter a session UUID, a recording UUID or a phone number (digits, +, spaces, "
                "dashes, parentheses)"
            )
        if self.events(query):
            return [query]
        # Every event that carries the recording id (Initiated ones too), as `recordings get`.
        with self.ops.aws_errors("events table"):
            found = self.ops.index.find_recording(query)
        return sorted({str(i[f.SESSION_UUID]) for i in found})

    def _by_number(self, text: str) -> list[str]:
        try:
            with index_errors(self.ops):
                summaries = self.ops.session_index.sessions_for_number(text)
        except ValueError as exc:  # the index's own refusal of the number (never echoes it)
            raise SearchError(str(exc)) from None
        seen: dict[str, str] = {}
        for s in summaries:
            seen[s.session_uuid] = max(seen.get(s.session_uuid, ""), s.last_received_at)
        return sorted(seen, key=seen.__getitem__, reverse=True)

    # --- queues ---------------------------------------------------------------------------------
    def queue(self, state: f.ArchiveStatus, limit: int = QUEUE_LIMIT) -> list[dict[str, Any]]:
        """`recordings pending|failed`'s query: the ArchiveQueueIndex, oldest due first."""
        with self.ops.aws_errors("events table"):
            return list(self.ops.index.archive_queue(state, limit=limit))

    # --- health ---------------------------------------------------------------------------------
    def health(self, day: date, now: datetime | None = None) -> Health:
        """Today's callbacks by event and their recordings' states (from the day's sessions, as
        listed), the FAILED queue's size and the oldest PENDING recording's age."""
        moment = now or datetime.now(UTC)
        rows, _cursor = self.sessions(day)
        prefix = day.isoformat()
        by_event: Counter[str] = Counter()
        states: Counter[str] = Counter()
        for row in rows:
            for e in row.items:
                if not str(e.get(f.RECEIVED_AT) or "").startswith(prefix):
                    continue
                by_event[str(e.get(f.EVENT_NAME) or "")] += 1
                if e.get(f.EVENT_NAME) == f.EVENT_COMPLETED:
                    states[str(e.get(f.ARCHIVE_STATUS) or "")] += 1
        failed = self.queue(f.ArchiveStatus.FAILED, limit=HEALTH_QUEUE_LIMIT)
        pending = self.queue(f.ArchiveStatus.PENDING, limit=HEALTH_QUEUE_LIMIT)
        received = [str(i.get(f.RECEIVED_AT) or "") for i in pending if i.get(f.RECEIVED_AT)]
        oldest: int | None = None
        if received:
            first = datetime.fromisoformat(min(received).replace("Z", "+00:00"))
            oldest = max(0, int((moment - first).total_seconds()))
        return Health(
            day=prefix,
            callbacks_by_event=dict(sorted(by_event.items())),
            archived=states[f.ArchiveStatus.ARCHIVED.value],
            pending_today=states[f.ArchiveStatus.PENDING.value],
            failed_today=states[f.ArchiveStatus.FAILED.value],
            failed_total=len(failed),
            failed_truncated=len(failed) >= HEALTH_QUEUE_LIMIT,
            pending_total=len(pending),
            oldest_pending_age_seconds=oldest,
            sessions_read=len(rows),
            truncated=len(rows) >= PAGE_SIZE,
        )


def _matches(row: SessionRow, *, status: str | None, event: str | None) -> bool:
    if status and status not in {s for _r, s in row.recordings}:
        return False
    return not (event and row.event_names.get(event, 0) == 0)
