"""Use case: the sweep. Find every PENDING item due and hand its key to the archive work queue.

The sweeper archives nothing itself: ArchiveWorkFunction does, through the same claim and
create-only put as the stream (logic/archive_recording.py), with bounded concurrency (the SQS
event source's MaximumConcurrency). The sweep pages through the whole of ArchiveQueueIndex,
oldest due first, and stops cleanly when its invocation runs low on time: the items it did not
reach are still PENDING and due, so the next sweep continues with them.

Overlapping sweeps, and the re-enqueueing of an item whose message is still waiting. A duplicate
message is harmless (the consumer's claim makes archiving exactly-once), but not free: a sweep
every 15 minutes over a backlog that takes hours to drain would send each waiting item again at
every sweep, and the duplicates would take the consumer's bounded concurrency from real work.
So before sending an item's key, the sweep *marks* it (dal/events_table.py `mark_enqueued`: one
conditional UpdateItem, ArchiveEnqueuedUntil = now + hold), only if it is still PENDING and due
and no unexpired mark is there. Of two overlapping sweeps exactly one wins each item; the index
read filters out the items marked already. The mark covers the message's wait in the queue
only: the attempt's claim removes it (the claim's lease keeps the item from the sweeper while
the attempt runs, and once a lease runs out, its worker dead, the next sweep enqueues the item
again), and so does every reported outcome, so a failed attempt is retried at its own backoff.
A message lost before its claim (sent to the dead-letter queue, a sweep that died between mark
and send) delays its item by the hold at most (default one hour, ArchiveLagAlarm's default
threshold). A key whose message could not be sent has its mark given back at once.

An item that can never be archived (NotArchivableError) is FAILED here, RecordingFailed first,
as before: no message for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime

from recording_archive.logic.archive_recording import (
    ArchiveJob,
    LifecycleNotices,
    NotArchivableError,
)
from recording_archive.logic.ports import DueItems, WorkQueue
from recording_archive.models import item as f
from recording_archive.models.archive import WorkKey
from recording_archive.models.errors import (
    EventStoreUnavailableError,
    LifecycleEventsUnavailableError,
)
from recording_archive.observability import logger

# Keys marked before they are sent together: one SendMessageBatch (at most 10 entries).
SEND_BATCH = 10
# The sweep starts no item (nor gives back a mark) with less than this left of its invocation:
# the worst case of one batch's calls, each at its client's worst (10 conditional writes, the
# page read, a lifecycle event, SendMessageBatch tried 3 times, a release: time_budgets.py,
# checked by tests/infra/test_time_budgets.py). A short Timeout keeps half of its time instead.
# Typically a batch takes tens of milliseconds: the margin is for a throttled or stalled AWS.
STOP_MARGIN_MS = 330_000


def dispatch_due(
    items: DueItems,
    queue: WorkQueue,
    notices: LifecycleNotices,
    *,
    grace_seconds: int,
    hold_seconds: int,
    now: float,
    time_left_ms: Callable[[], int] | None = None,
) -> Counter[str]:
    """Enqueue the keys of the PENDING items due by `now - grace_seconds`. Counts: `enqueued`,
    `already_enqueued` (another sweep's mark won), `send_failed` (never sent: the next sweep
    tries again), `failed` (not archivable: FAILED), `retry_later` (its RecordingFailed could
    not be published, or its mark not written), `deferred` (out of time: the next sweep
    continues), `interrupted` (the index read failed: the keys marked were still sent)."""
    at = int(now)
    due_before = at - grace_seconds
    until = at + hold_seconds
    stop_below = 0 if time_left_ms is None else min(STOP_MARGIN_MS, time_left_ms() // 2)
    counts: Counter[str] = Counter()
    batch: list[WorkKey] = []

    def low_on_time() -> bool:
        return time_left_ms is not None and time_left_ms() < stop_below

    def flush() -> None:
        if not batch:
            return
        unsent = queue.send(batch)
        counts["enqueued"] += len(batch) - len(unsent)
        for key in unsent:
            counts["send_failed"] += 1
            if low_on_time():
                continue  # the mark runs out after the hold
            with suppress(EventStoreUnavailableError):  # the same
                items.release_enqueued(key.session_uuid, key.sequence_number, until=until)
        if unsent:
            logger.error("archive work messages not sent", extra={"unsent": len(unsent)})
        batch.clear()

    # A table that fails mid-sweep (a page read after the SDK's retries) ends the sweep, but
    # not before the keys already marked are sent: a mark without its message would hold its
    # item back for the whole hold. What was not reached waits for the next sweep.
    try:
        for item in items.archive_queue(
            f.ArchiveStatus.PENDING, due_before=due_before, limit=None, not_enqueued_at=at
        ):
            if low_on_time():
                counts["deferred"] += 1
                break
            try:
                job = ArchiveJob.from_item(item)
            except NotArchivableError as exc:
                try:
                    notices.fail_not_archivable(item, str(exc), now=at)
                except LifecycleEventsUnavailableError:
                    counts["retry_later"] += 1  # its RecordingFailed first: the next sweep
                    continue
                counts["failed"] += 1
                continue
            key = WorkKey(job.session_uuid, job.sequence_number)
            try:
                marked = items.mark_enqueued(
                    key.session_uuid,
                    key.sequence_number,
                    now=at,
                    until=until,
                    due_before=due_before,
                )
            except EventStoreUnavailableError:
                # Not marked, or marked with its answer lost (then it waits for the hold): never
                # sent by this sweep.
                counts["retry_later"] += 1
                continue
            if not marked:
                counts["already_enqueued"] += 1
                continue
            batch.append(key)
            if len(batch) >= SEND_BATCH:
                flush()
    except EventStoreUnavailableError:
        counts["interrupted"] += 1
        logger.error("sweep ended early: the pending index could not be read")
    flush()
    return +counts  # without the zero counts


def oldest_pending_age(items: DueItems, now: float) -> float:
    """Seconds since the PENDING item first in the queue (the longest due) was received; 0 when
    nothing is pending. The dashboard's archive lag: it grows while nothing archives."""
    first = next(items.archive_queue(f.ArchiveStatus.PENDING, limit=1), None)
    if first is None:
        return 0.0
    received = first.get(f.RECEIVED_AT)
    try:
        since = datetime.fromisoformat(received).timestamp() if received else None
    except ValueError:
        since = None
    if since is None:  # not expected (every stored event has ReceivedAt): its due time then
        since = float(first.get(f.ARCHIVE_DUE_AT, now))
    return max(0.0, now - since)
