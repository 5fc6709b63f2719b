"""SweeperFunction: hands every recording the stream-triggered archiver did not archive to the
archive work queue.

Trigger: a schedule (SweepSchedule, default every 15 minutes). Settings: EVENTS_TABLE_NAME,
SWEEP_GRACE_SECONDS (an item is left to the stream for this long), ARCHIVE_WORK_QUEUE_URL,
SWEEP_ENQUEUE_HOLD_SECONDS, EVENT_BUS_NAME. Permissions: dynamodb:Query on ArchiveQueueIndex,
dynamodb:UpdateItem on the table (the enqueue mark, FAILED of a not archivable event),
sqs:SendMessage on ArchiveWorkQueue (SendMessageBatch is authorised as SendMessage), kms on the
stack's key (the encrypted queue), events:PutEvents on the lifecycle bus. No S3, media or secret:
it archives nothing itself.
Semantics (logic/dispatch.py): pages through every PENDING item due (ArchiveQueueIndex, oldest
first) and sends each one's key (SessionUUID, SequenceNumber) to ArchiveWorkQueue, 10 per
SendMessageBatch, the failed entries sent again; ArchiveWorkFunction archives them. An item is
marked (conditional UpdateItem) before its key is sent, so overlapping sweeps enqueue it once. A
completed event that cannot be archived at all is FAILED here (RecordingFailed first, metric
RecordingsFailed). The sweep stops early when the invocation is about to run out of time; the
rest waits for the next sweep. Each sweep first emits OldestPendingAgeSeconds: the age of the
PENDING item longest due (the dashboard's archive lag, ArchiveLagAlarm). Metrics
RecordingsEnqueued and ArchiveWorkSendFailed (keys never sent: the next sweep tries again), the
other counts as Sweep_<count> (Sweep_failed, Sweep_already_enqueued, Sweep_deferred, ...). A
sweep that cannot read the oldest pending item fails (the function's errors alarm); a table
failure later in the sweep ends it early with what it marked sent (Sweep_interrupted); either
way the next sweep starts again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from recording_archive.handlers import wiring
from recording_archive.handlers.wiring import SweeperCollaborators
from recording_archive.logic.dispatch import dispatch_due, oldest_pending_age
from recording_archive.observability import logger, metrics


def sweep(
    collaborators: SweeperCollaborators,
    *,
    now: float | None = None,
    time_left_ms: Callable[[], int] | None = None,
) -> dict[str, int]:
    """One sweep. `now` (epoch seconds) moves the sweep's clock (tests stand in for the minutes
    between sweeps this way); `time_left_ms`: Lambda's get_remaining_time_in_millis."""
    at = time.time() if now is None else now
    settings = collaborators.settings
    age = oldest_pending_age(collaborators.items, at)
    metrics.add_metric(name="OldestPendingAgeSeconds", unit=MetricUnit.Seconds, value=age)
    counts = dispatch_due(
        collaborators.items,
        collaborators.queue,
        collaborators.notices,
        grace_seconds=settings.sweep_grace_seconds,
        hold_seconds=settings.sweep_enqueue_hold_seconds,
        now=at,
        time_left_ms=time_left_ms,
    )
    # Always emitted (zero too): the dashboard's sweep figures, and a datapoint per sweep.
    enqueued, unsent = counts.pop("enqueued", 0), counts.pop("send_failed", 0)
    metrics.add_metric(name="RecordingsEnqueued", unit=MetricUnit.Count, value=enqueued)
    metrics.add_metric(name="ArchiveWorkSendFailed", unit=MetricUnit.Count, value=unsent)
    for name, value in counts.items():
        metrics.add_metric(name=f"Sweep_{name}", unit=MetricUnit.Count, value=value)
    counts.update({"enqueued": enqueued, "send_failed": unsent})
    counts = +counts  # the zero counts out of the answer
    logger.info("sweep done", extra={"counts": dict(counts), "oldest_pending_age": age})
    return dict(counts)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return sweep(wiring.sweeper_collaborators(), time_left_ms=context.get_remaining_time_in_millis)
