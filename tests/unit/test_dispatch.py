"""The sweep as a dispatcher (logic/dispatch.py) over in-memory fakes of its ports: it pages
through the whole pending index, marks before it sends, gives marks back when a send fails, and
two overlapping sweeps enqueue each item once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from recording_archive.logic.archive_recording import LifecycleNotices
from recording_archive.logic.dispatch import STOP_MARGIN_MS, dispatch_due, oldest_pending_age
from recording_archive.models import item as f
from recording_archive.models.archive import WorkKey
from recording_archive.models.errors import (
    EventStoreUnavailableError,
    LifecycleEventsUnavailableError,
)

NOW = 2_000_000_000
GRACE = 600
HOLD = 3600
SESSION = "0b6f3e4c-5d7a-4c1e-9b2a-2f0d8c6e1a9b"


def _completed(seq: int, due: int = NOW - 3600, **extra: Any) -> dict[str, Any]:
    return {
        f.SESSION_UUID: SESSION,
        f.SEQUENCE_NUMBER: seq,
        f.EVENT_NAME: f.EVENT_COMPLETED,
        f.RECORDING_UUID: f"rec-{seq}",
        f.RECORDING_URL: f"https://media.plivo.com/{seq}.mp3",
        f.RECEIVED_AT: "2033-05-18T03:33:20.000Z",
        f.ARCHIVE_STATUS: "PENDING",
        f.ARCHIVE_QUEUE: "PENDING",
        f.ARCHIVE_DUE_AT: due,
        f.ARCHIVE_ATTEMPTS: 0,
        **extra,
    }


class Table:
    """The items, ArchiveQueueIndex read page by page (as the Query's Limit does), and the
    conditional mark as dal/events_table.py writes it."""

    page_size = 100

    def __init__(self, items: Sequence[dict[str, Any]]) -> None:
        self.items = {(i[f.SESSION_UUID], i[f.SEQUENCE_NUMBER]): dict(i) for i in items}
        self.pages_read = 0
        self.failures: list[tuple[str, int, str]] = []

    def archive_queue(
        self,
        state: f.ArchiveStatus,
        *,
        due_before: int | None = None,
        limit: int | None = 100,
        not_enqueued_at: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        rows = sorted(
            (i for i in self.items.values() if i.get(f.ARCHIVE_QUEUE) == state.value),
            key=lambda i: i[f.ARCHIVE_DUE_AT],
        )
        rows = [r for r in rows if due_before is None or r[f.ARCHIVE_DUE_AT] <= due_before]
        if not_enqueued_at is not None:
            rows = [r for r in rows if r.get(f.ARCHIVE_ENQUEUED_UNTIL, 0) <= not_enqueued_at]
        rows = rows if limit is None else rows[:limit]
        for start in range(0, len(rows), self.page_size):
            self.pages_read += 1
            yield from (dict(r) for r in rows[start : start + self.page_size])

    def mark_enqueued(
        self, session_uuid: str, sequence_number: int, *, now: int, until: int, due_before: int
    ) -> bool:
        item = self.items.get((session_uuid, sequence_number))
        if (
            item is None
            or item.get(f.ARCHIVE_QUEUE) != "PENDING"
            or item[f.ARCHIVE_DUE_AT] > due_before
            or item.get(f.ARCHIVE_ENQUEUED_UNTIL, 0) > now
        ):
            return False
        item[f.ARCHIVE_ENQUEUED_UNTIL] = until
        return True

    def release_enqueued(self, session_uuid: str, sequence_number: int, *, until: int) -> bool:
        item = self.items[(session_uuid, sequence_number)]
        if item.get(f.ARCHIVE_ENQUEUED_UNTIL) != until:
            return False
        del item[f.ARCHIVE_ENQUEUED_UNTIL]
        return True

    def record_failure(self, session_uuid: str, sequence_number: int, **kw: Any) -> int | None:
        item = self.items[(session_uuid, sequence_number)]
        item[f.ARCHIVE_STATUS] = item[f.ARCHIVE_QUEUE] = "FAILED" if kw["failed"] else "PENDING"
        self.failures.append((session_uuid, sequence_number, kw["error"]))
        return 1


class Queue:
    """SendMessageBatch's contract: at most 10 keys a call; `refuse` keys are never sent."""

    def __init__(self, refuse: Sequence[int] = ()) -> None:
        self.sent: list[WorkKey] = []
        self.calls = 0
        self.refuse = set(refuse)

    def send(self, keys: Sequence[WorkKey]) -> list[WorkKey]:
        assert len(keys) <= 10
        self.calls += 1
        unsent = [k for k in keys if k.sequence_number in self.refuse]
        self.sent += [k for k in keys if k not in unsent]
        return unsent


class Bus:
    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: Any, *, time: Any = None) -> None:
        if self.down:
            raise LifecycleEventsUnavailableError("bus down")
        self.published.append((detail_type, dict(detail)))


def _sweep(table: Table, queue: Queue, bus: Bus | None = None, **kw: Any) -> dict[str, int]:
    notices = LifecycleNotices(table, bus or Bus())
    options: dict[str, Any] = {"grace_seconds": GRACE, "hold_seconds": HOLD, "now": NOW} | kw
    return dict(dispatch_due(table, queue, notices, **options))


def test_a_backlog_larger_than_the_old_batch_is_paged_through_and_sent_ten_at_a_time() -> None:
    """120 due items (the old sweep stopped at 50): every one is enqueued, over two index
    pages, in 12 SendMessageBatch calls; the not yet due one is left to the stream."""
    table = Table([_completed(n) for n in range(120)] + [_completed(500, due=NOW - 10)])
    queue = Queue()
    assert _sweep(table, queue) == {"enqueued": 120}
    assert table.pages_read == 2
    assert queue.calls == 12
    assert sorted(k.sequence_number for k in queue.sent) == list(range(120))
    # Every one carries the mark; the item in its grace period does not.
    assert all(
        table.items[(SESSION, n)][f.ARCHIVE_ENQUEUED_UNTIL] == NOW + HOLD for n in range(120)
    )
    assert f.ARCHIVE_ENQUEUED_UNTIL not in table.items[(SESSION, 500)]


def test_overlapping_sweeps_enqueue_each_item_once() -> None:
    """The second sweep starts while the first is between its index read and its marks: the
    conditional mark lets one of them enqueue each item; a later sweep (within the hold) reads
    none of them; once the hold ran out, the items still PENDING are enqueued again."""
    table = Table([_completed(n) for n in range(25)])
    first, second = Queue(), Queue()
    read_by_first = list(table.archive_queue(f.ArchiveStatus.PENDING, limit=None))
    assert len(read_by_first) == 25

    # The first sweep's stale page, served to it after the second sweep ran.
    stale = Table([])
    stale.items = table.items
    stale.archive_queue = lambda *a, **k: iter(read_by_first)  # type: ignore[method-assign]
    assert _sweep(table, second) == {"enqueued": 25}
    assert _sweep(stale, first) == {"already_enqueued": 25}
    assert first.sent == [] and len(second.sent) == 25
    assert _sweep(table, Queue(), now=NOW + 60) == {}  # marked: not even read
    again = Queue()
    assert _sweep(table, again, now=NOW + HOLD) == {"enqueued": 25}  # the hold ran out


def test_keys_never_sent_are_counted_and_their_marks_given_back() -> None:
    table = Table([_completed(n) for n in range(12)])
    queue = Queue(refuse=[3, 11])
    assert _sweep(table, queue) == {"enqueued": 10, "send_failed": 2}
    for n in (3, 11):
        assert f.ARCHIVE_ENQUEUED_UNTIL not in table.items[(SESSION, n)]
    assert table.items[(SESSION, 4)][f.ARCHIVE_ENQUEUED_UNTIL] == NOW + HOLD
    # The next sweep sends exactly those.
    retry = Queue()
    assert _sweep(table, retry, now=NOW + 1) == {"enqueued": 2}
    assert sorted(k.sequence_number for k in retry.sent) == [3, 11]


def test_a_release_that_fails_leaves_the_mark_to_run_out() -> None:
    table = Table([_completed(1)])

    def unavailable(*_a: Any, **_k: Any) -> bool:
        raise EventStoreUnavailableError("table down")

    table.release_enqueued = unavailable  # type: ignore[method-assign]
    assert _sweep(table, Queue(refuse=[1])) == {"send_failed": 1}
    assert table.items[(SESSION, 1)][f.ARCHIVE_ENQUEUED_UNTIL] == NOW + HOLD


def test_a_not_archivable_item_is_failed_with_its_event_and_never_enqueued() -> None:
    broken = _completed(7)
    del broken[f.RECORDING_URL]
    table = Table([broken, _completed(8)])
    bus, queue = Bus(), Queue()
    assert _sweep(table, queue, bus) == {"failed": 1, "enqueued": 1}
    assert [k.sequence_number for k in queue.sent] == [8]
    assert table.items[(SESSION, 7)][f.ARCHIVE_STATUS] == "FAILED"
    [(detail_type, detail)] = bus.published
    assert (detail_type, detail["Reason"], detail["SequenceNumber"]) == (
        "RecordingFailed",
        "NotArchivable",
        7,
    )
    # Bus down: nothing recorded, the next sweep decides again.
    again = Table([broken])
    assert _sweep(again, Queue(), Bus(down=True)) == {"retry_later": 1}
    assert again.items[(SESSION, 7)][f.ARCHIVE_STATUS] == "PENDING"


def test_the_sweep_stops_cleanly_when_its_invocation_runs_low() -> None:
    """Below the margin (or half of a short invocation) no item is started; what was marked
    is still sent; the rest is left unmarked for the next sweep."""
    table = Table([_completed(n) for n in range(30)])
    readings = iter([900_000, *([800_000] * 15)])  # the start, then 15 items in time

    def time_left() -> int:
        return next(readings, STOP_MARGIN_MS - 1)

    queue = Queue()
    assert _sweep(table, queue, time_left_ms=time_left) == {"enqueued": 15, "deferred": 1}
    assert len(queue.sent) == 15
    unmarked = [n for n in range(30) if f.ARCHIVE_ENQUEUED_UNTIL not in table.items[(SESSION, n)]]
    assert len(unmarked) == 15


def test_the_oldest_pending_age_is_that_of_the_first_due() -> None:
    table = Table([_completed(1, due=NOW - 50), _completed(2, due=NOW - 100)])
    age = oldest_pending_age(table, 2_000_000_000 + 3600)  # ReceivedAt is NOW in ISO
    assert age == pytest.approx(3600)
    assert oldest_pending_age(Table([]), NOW) == 0.0
    odd = _completed(3, due=NOW - 30)
    odd[f.RECEIVED_AT] = "not a time"
    assert oldest_pending_age(Table([odd]), NOW) == 30.0  # falls back to the due time


def test_a_table_failing_mid_sweep_still_sends_the_keys_it_marked() -> None:
    """The index read fails after 13 items (a page read timing out under load): the 13 marked
    keys are sent (10, then the 3 of the unfinished batch), the sweep ends counted as
    interrupted, and the next sweep enqueues the rest."""
    table = Table([_completed(n) for n in range(30)])
    reads = table.archive_queue

    def failing(*a: Any, **k: Any) -> Iterator[dict[str, Any]]:
        for n, item in enumerate(reads(*a, **k)):
            if n == 13:
                raise EventStoreUnavailableError("events table query failed")
            yield item

    table.archive_queue = failing  # type: ignore[method-assign]
    queue = Queue()
    assert _sweep(table, queue) == {"enqueued": 13, "interrupted": 1}
    assert sorted(k.sequence_number for k in queue.sent) == list(range(13))
    table.archive_queue = reads  # type: ignore[method-assign]
    rest = Queue()
    assert _sweep(table, rest, now=NOW + 1) == {"enqueued": 17}


def test_a_mark_that_cannot_be_written_is_left_for_the_next_sweep() -> None:
    table = Table([_completed(n) for n in range(3)])
    marks = table.mark_enqueued

    def flaky(session_uuid: str, sequence_number: int, **kw: Any) -> bool:
        if sequence_number == 1:
            raise EventStoreUnavailableError("events table write failed")
        return marks(session_uuid, sequence_number, **kw)

    table.mark_enqueued = flaky  # type: ignore[method-assign]
    queue = Queue()
    assert _sweep(table, queue) == {"enqueued": 2, "retry_later": 1}
    assert f.ARCHIVE_ENQUEUED_UNTIL not in table.items[(SESSION, 1)]
