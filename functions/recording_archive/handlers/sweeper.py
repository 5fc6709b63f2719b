"""SweeperFunction: archives whatever the stream-triggered archiver did not.

Trigger: a schedule (SweepSchedule, default every 15 minutes). Settings: those of ArchiveFunction
plus SWEEP_GRACE_SECONDS (an item is left to the stream for this long), SWEEP_MAX_ATTEMPTS and
SWEEP_BATCH_SIZE. Permissions: dynamodb:Query on ArchiveQueueIndex, GetItem/UpdateItem on the
table, the archiver's S3/KMS/secret actions, and events:PutEvents on the lifecycle bus
(EVENT_BUS_NAME).
Semantics: items PENDING and due for longer than the grace period are archived one by one; each
failure counts an attempt and pushes the next try back (exponential backoff with jitter); at
SWEEP_MAX_ATTEMPTS the item becomes FAILED (metric RecordingsFailed, alarmed). RecordingArchived
and RecordingFailed are published before the item is marked (logic/archive_recording.py: at
least once); a completed event that cannot be archived at all is FAILED here the same way.
Attempts are counted when claimed (logic/archive_recording.py), so an attempt whose worker was
killed or timed out counts too: once its lease runs out the item is due again, and once
SWEEP_MAX_ATTEMPTS attempts were made it is FAILED without another download. Items another
attempt holds, or that became not due since the index was read, are left alone. The sweep stops
early when the invocation is about to run out of time; the rest waits for the next sweep.
Each sweep first emits OldestPendingAgeSeconds: the age of the PENDING item longest due (the
dashboard's archive lag).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from recording_archive.config import SweeperSettings
from recording_archive.dal.events_table import RecordingEventStore
from recording_archive.handlers import wiring
from recording_archive.logic.archive_recording import (
    ArchiveJob,
    Archiver,
    NotArchivableError,
    seconds_left,
)
from recording_archive.models import item as f
from recording_archive.models.errors import ArchiveError, LifecycleEventsUnavailableError
from recording_archive.observability import logger, metrics

# No new item is started with less than this left: a large file can take minutes (an attempt
# that runs short stops cleanly, but it is counted). A function given a shorter Timeout keeps
# half of its time instead.
_STOP_WHEN_REMAINING_MS = 5 * 60 * 1000


def sweep(
    settings: SweeperSettings,
    store: RecordingEventStore,
    archiver: Archiver,
    *,
    now: float | None = None,
    time_left_ms: Callable[[], int] | None = None,
) -> dict[str, int]:
    """Archive the items due. `now` (epoch seconds) moves the sweep's clock, the claims' and
    the backoff's included (tests stand in for the minutes between sweeps this way)."""
    offset = 0.0 if now is None else now - time.time()
    now = time.time() + offset

    def clock() -> float:
        return time.time() + offset

    time_left = None if time_left_ms is None else seconds_left(time_left_ms)
    stop_below_ms = 0 if time_left_ms is None else min(_STOP_WHEN_REMAINING_MS, time_left_ms() // 2)
    due_before = int(now) - settings.sweep_grace_seconds
    _emit_oldest_pending_age(store, now)
    counts: Counter[str] = Counter()
    for item in store.archive_queue(
        f.ArchiveStatus.PENDING, due_before=due_before, limit=settings.sweep_batch_size
    ):
        if time_left_ms is not None and time_left_ms() < stop_below_ms:
            counts["deferred"] += 1
            break
        try:
            job = ArchiveJob.from_item(item)
        except NotArchivableError as exc:
            try:
                archiver.fail_not_archivable(item, str(exc), now=int(now))
            except LifecycleEventsUnavailableError:
                counts["retry_later"] += 1  # its RecordingFailed first: the next sweep
                continue
            counts["failed"] += 1
            continue
        try:
            outcome = archiver.archive(job, time_left=time_left, clock=clock, due_by=due_before)
            counts[outcome.value] += 1
        except ArchiveError:
            counts["retry_later"] += 1
    for name, value in counts.items():
        metrics.add_metric(name=f"Sweep_{name}", unit=MetricUnit.Count, value=value)
    logger.info("sweep done", extra={"counts": dict(counts)})
    return dict(counts)


def oldest_pending_age(store: RecordingEventStore, now: float) -> float:
    """Seconds since the PENDING item first in the queue (the longest due) was received; 0 when
    nothing is pending. The dashboard's archive lag: it grows while nothing archives."""
    first = next(store.archive_queue(f.ArchiveStatus.PENDING, limit=1), None)
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


def _emit_oldest_pending_age(store: RecordingEventStore, now: float) -> None:
    age = oldest_pending_age(store, now)
    metrics.add_metric(name="OldestPendingAgeSeconds", unit=MetricUnit.Seconds, value=age)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    settings, store, archiver = wiring.sweeper_collaborators()
    return sweep(settings, store, archiver, time_left_ms=context.get_remaining_time_in_millis)
