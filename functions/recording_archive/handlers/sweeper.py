"""SweeperFunction: archives whatever the stream-triggered archiver did not.

Trigger: a schedule (SweepSchedule, default every 15 minutes). Settings: those of ArchiveFunction
plus SWEEP_GRACE_SECONDS (an item is left to the stream for this long), SWEEP_MAX_ATTEMPTS and
SWEEP_BATCH_SIZE. Permissions: dynamodb:Query on ArchiveQueueIndex, GetItem/UpdateItem on the
table, and the archiver's S3/KMS/secret actions.
Semantics: items PENDING and due for longer than the grace period are archived one by one; each
failure counts an attempt and pushes the next try back (exponential backoff with jitter); at
SWEEP_MAX_ATTEMPTS the item becomes FAILED (metric RecordingsFailed, alarmed). The sweep stops
early when the invocation is about to run out of time; the rest waits for the next sweep.
"""

from __future__ import annotations

import time
from collections import Counter
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from recording_archive.config import SweeperSettings, sweeper_settings
from recording_archive.dal.aws import dynamodb_client
from recording_archive.dal.events_table import RecordingEventStore
from recording_archive.logic.archive_recording import ArchiveJob, Archiver, NotArchivableError
from recording_archive.models import item as f
from recording_archive.models.errors import ArchiveError
from recording_archive.observability import logger, metrics
from recording_archive.wiring import build_archiver

# Leave enough time to finish the archive in progress: a large file can take minutes.
_STOP_WHEN_REMAINING_MS = 5 * 60 * 1000


@cache
def _defaults() -> tuple[SweeperSettings, RecordingEventStore, Archiver]:
    settings = sweeper_settings()
    store = RecordingEventStore(dynamodb_client(), settings.events_table_name)
    return settings, store, build_archiver(settings, max_attempts=settings.sweep_max_attempts)


def sweep(
    settings: SweeperSettings,
    store: RecordingEventStore,
    archiver: Archiver,
    *,
    now: float | None = None,
    time_left_ms: Any = None,
) -> dict[str, int]:
    now = time.time() if now is None else now
    due_before = int(now) - settings.sweep_grace_seconds
    counts: Counter[str] = Counter()
    for item in store.archive_queue(
        f.ArchiveStatus.PENDING, due_before=due_before, limit=settings.sweep_batch_size
    ):
        if time_left_ms is not None and time_left_ms() < _STOP_WHEN_REMAINING_MS:
            counts["deferred"] += 1
            break
        try:
            job = ArchiveJob.from_item(item)
        except NotArchivableError as exc:
            store.record_failure(
                str(item[f.SESSION_UUID]),
                int(item[f.SEQUENCE_NUMBER]),
                error=f"NotArchivable: {exc}",
                next_due_at=int(now),
                failed=True,
            )
            # FAILED for good: the same alarmed metric as every other FAILED recording.
            metrics.add_metric(name="RecordingsFailed", unit=MetricUnit.Count, value=1)
            logger.error("completed event cannot be archived: FAILED", extra={"reason": str(exc)})
            counts["failed"] += 1
            continue
        try:
            counts[archiver.archive(job).value] += 1
        except ArchiveError:
            counts["retry_later"] += 1
    for name, value in counts.items():
        metrics.add_metric(name=f"Sweep_{name}", unit=MetricUnit.Count, value=value)
    logger.info("sweep done", extra={"counts": dict(counts)})
    return dict(counts)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    settings, store, archiver = _defaults()
    return sweep(settings, store, archiver, time_left_ms=context.get_remaining_time_in_millis)
