"""ArchiveWorkFunction: archives the recordings the sweeper put on the archive work queue.

Trigger: ArchiveWorkQueue (SQS event source, ScalingConfig MaximumConcurrency =
ArchiveWorkConcurrency: Plivo's media servers and the account's concurrency are protected however
large the backlog), BatchProcessor with partial batch failures (ReportBatchItemFailures).
Settings: those of ArchiveFunction plus SWEEP_GRACE_SECONDS and SWEEP_MAX_ATTEMPTS.
Permissions: ArchiveFunction's S3/KMS/secret/events actions, dynamodb:GetItem/UpdateItem on the
table, and sqs:ReceiveMessage/DeleteMessage/GetQueueAttributes on the queue (the event source
mapping polls with the function's role).
Semantics: a message is an item's key (dal/work_queue.py). The item is read (GetItem) and, if
still PENDING, archived through the same claim and create-only put as the stream
(logic/archive_recording.py): attempts counted, backed off, FAILED at SWEEP_MAX_ATTEMPTS,
lifecycle events published. An item gone, ARCHIVED or FAILED, not due (backing off since the key
was sent: a duplicate message), or held by another attempt is acknowledged: nothing to do, or
another attempt's to finish. A failed attempt (recorded on the item, backed off) and a table that
cannot be read are batch item failures: SQS delivers the message again after its visibility
timeout, and the claim's due check makes an early delivery a no-op; after maxReceiveCount
deliveries it goes to ArchiveWorkDeadLetterQueue (alarmed). A message that is not one of ours is
a failure too (it ends in the dead-letter queue, never silently dropped).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from recording_archive.dal.work_queue import decode_key
from recording_archive.handlers import wiring
from recording_archive.handlers.wiring import ArchiveWorkCollaborators
from recording_archive.logic.archive_recording import (
    ArchiveJob,
    NotArchivableError,
    seconds_left,
)
from recording_archive.models import item as f
from recording_archive.observability import logger, metrics

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def archive_message(
    record: SQSRecord,
    lambda_context: LambdaContext | None = None,
    collaborators: ArchiveWorkCollaborators | None = None,
    now: float | None = None,
) -> str:
    """One message (Powertools passes `lambda_context` to a handler that names it). `now`
    (epoch seconds) moves the attempt's clock, as the sweep's (tests)."""
    deps = collaborators or wiring.archive_work_collaborators()
    key = decode_key(record.body)  # ValueError: a batch item failure, then the DLQ
    logger.set_correlation_id(key.session_uuid)
    item = deps.items.get(key.session_uuid, key.sequence_number)
    if item is None:
        logger.warning("queued event no longer in the table", extra={"key": key.session_uuid})
        return "gone"
    if item.get(f.ARCHIVE_STATUS) != f.ArchiveStatus.PENDING:
        return "not_pending"  # ARCHIVED, or FAILED (operators and reconcile retry those)
    offset = 0.0 if now is None else now - time.time()

    def clock() -> float:
        return time.time() + offset

    due_by = int(clock()) - deps.settings.sweep_grace_seconds
    try:
        job = ArchiveJob.from_item(item)
    except NotArchivableError as exc:
        deps.archiver.fail_not_archivable(item, str(exc), now=int(clock()))
        return "failed"
    time_left = None
    if lambda_context is not None:
        time_left = seconds_left(lambda_context.get_remaining_time_in_millis)
    # ArchiveError (recorded and backed off, or the claim lost) propagates: a batch item failure.
    return deps.archiver.archive(job, time_left=time_left, clock=clock, due_by=due_by).value


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=archive_message, processor=processor, context=context
        )
    )
