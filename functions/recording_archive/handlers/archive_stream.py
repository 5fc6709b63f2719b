"""ArchiveFunction: archives each SessionRecordingCompleted recording as it is stored.

Trigger: the events table's DynamoDB stream (NEW_IMAGE), with FilterCriteria that pass only
INSERTs of SessionRecordingCompleted; BatchProcessor with partial batch failures.
Settings: EVENTS_TABLE_NAME, ARCHIVE_BUCKET_NAME, ARCHIVE_KMS_KEY_ID, ARCHIVE_BUCKET_OWNER,
AUTH_SECRET_ID, MEDIA_ALLOWED_HOSTS, MEDIA_AUTH, PART_SIZE_MIB, UPLOAD_CONCURRENCY,
SWEEP_MAX_ATTEMPTS.
Permissions: s3:PutObject/AbortMultipartUpload/GetObject/PutObjectTagging and the version
actions GetObjectVersion/PutObjectVersionTagging/GetObjectVersionTagging under recordings/
(tagging and re-reading the exact version written), kms on the stack's key,
dynamodb:GetItem/UpdateItem on the table, the stream's read actions, sqs:SendMessage to the
on-failure queue.
Failure semantics: a record whose download or upload fails is reported as a batch item failure;
Lambda retries it (bisecting the batch), then sends it to the on-failure queue (alarmed). The
item stays PENDING in ArchiveQueueIndex either way, so the sweeper archives it later. The same
holds for a transfer stopped because the invocation's time is nearly up (the attempt is counted,
the upload aborted). A record whose recording another attempt holds (its claim's lease: e.g. this
function's own invocation that timed out) is not a failure: the holder, or the sweeper once the
lease runs out, finishes it. ARCHIVED, gone or not-archivable records are skipped. Its claims
count towards SWEEP_MAX_ATTEMPTS with the work queue's: a retry that finds that many attempts
made (the work queue's attempts can come between the stream's, once a lease runs out) makes the
recording FAILED, with no download, as ArchiveWorkFunction would.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from recording_archive.handlers import wiring
from recording_archive.logic.archive_recording import (
    ArchiveJob,
    ArchiveOutcome,
    Archiver,
    NotArchivableError,
    seconds_left,
)
from recording_archive.models import item as f
from recording_archive.observability import logger, metrics

# With SnapStart on, clients and the secret are made again in each restored environment.
wiring.register_snapstart_hooks()

processor = BatchProcessor(
    event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False
)


def archive_record(
    record: DynamoDBRecord,
    lambda_context: LambdaContext | None = None,
    archiver: Archiver | None = None,
) -> str:
    """One stream record (Powertools passes `lambda_context` to a handler that names it)."""
    image = record.dynamodb.new_image if record.dynamodb else None
    # The event source mapping's filter already passes only these; checked again so that a
    # mapping without the filter cannot make this function archive something else.
    if record.event_name != DynamoDBRecordEventName.INSERT or not image:
        return "skipped"
    if image.get(f.EVENT_NAME) != f.EVENT_COMPLETED:
        return "skipped"
    try:
        job = ArchiveJob.from_item(image)
    except NotArchivableError as exc:
        logger.error("completed event cannot be archived", extra={"reason": str(exc)})
        return "skipped"
    logger.set_correlation_id(job.session_uuid)
    time_left = None
    if lambda_context is not None:
        time_left = seconds_left(lambda_context.get_remaining_time_in_millis)
    outcome: ArchiveOutcome = (archiver or wiring.archiver()).archive(job, time_left=time_left)
    return outcome.value


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=archive_record, processor=processor, context=context
        )
    )
