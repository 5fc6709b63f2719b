"""FallbackDrainFunction: writes events that the callback could not store into the table.

Trigger: the encrypted SQS fallback queue (ReportBatchItemFailures). Settings: EVENTS_TABLE_NAME,
INDEX_TABLE_NAME and NUMBER_INDEX_KEY_ID (the session index).
Permissions: dynamodb:PutItem/UpdateItem on the events table; sqs receive/delete on the queue;
dynamodb:BatchWriteItem on the index table and kms:GenerateMac on its number key (a stored
event's index entries; their failure is logged and counted in IndexWriteFailed, never fails the
message).
Semantics: the same idempotent `put_new` as the callback, so a message delivered twice, or an
event that did reach the table before the callback gave up on it, is stored once. A message that
fails (table still down, or no time left in the invocation for its write: time_budgets.py) is
returned as a batch item failure and retried by SQS; after maxReceiveCount it lands in the
dead-letter queue, which alarms. Nothing is dropped.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from recording_archive.dal.aws import call_deadlines
from recording_archive.dal.fallback_queue import decode_message
from recording_archive.handlers import wiring
from recording_archive.logic.ports import EventStore
from recording_archive.models import item as f
from recording_archive.models.item import PutOutcome
from recording_archive.observability import logger, metrics
from recording_archive.time_budgets import drain_deadlines

# Report failures item by item even when all fail (Powertools would raise for a whole-batch
# failure; the answer is the same for SQS, but the partial response is clearer in tests).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def drain_record(record: SQSRecord, store: EventStore | None = None) -> PutOutcome:
    item = decode_message(record.body)
    item[f.SOURCE] = f.Source.FALLBACK.value
    outcome = (store or wiring.table_store()).put_new(item)
    metrics.add_metric(name="FallbackDrained", unit=MetricUnit.Count, value=1)
    logger.info(
        "fallback event %s",
        outcome.value,
        extra={
            "session_uuid": item.get(f.SESSION_UUID),
            "sequence_number": str(item.get(f.SEQUENCE_NUMBER)),
            "event_name": item.get(f.EVENT_NAME),
        },
    )
    return outcome


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Messages there is no time left for fail fast (DeadlineExceededError) and are redelivered.
    with call_deadlines(drain_deadlines(context.get_remaining_time_in_millis())):
        return dict(
            process_partial_response(
                event=event, record_handler=drain_record, processor=processor, context=context
            )
        )
