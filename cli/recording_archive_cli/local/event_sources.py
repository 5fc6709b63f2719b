"""What Lambda's event source mappings and EventBridge do in AWS, against the local endpoint.

moto keeps the table's stream and the queues but invokes nothing, so this module does:

- `StreamPoller`: the DynamoDB stream -> ArchiveFunction mapping. Reads every shard with boto3
  `dynamodbstreams` (describe_stream, get_shard_iterator at the template's StartingPosition,
  get_records about 4 times a second, as Lambda polls), turns each record into the shape Lambda
  delivers (`lambda_stream_record`), drops records the template's FilterCriteria reject, and
  invokes the function with batches of the template's BatchSize. `process_stream_records` holds
  the retry rules, apart from any I/O so that they are unit-tested:
  * `batchItemFailures` (ReportBatchItemFailures): the records before the first failed one are
    done (checkpointed); the batch is retried from the failed record. An item identifier that is
    not in the batch, or empty, fails the whole batch, as in Lambda;
  * a function error (the handler raised, crashed or timed out): with
    BisectBatchOnFunctionError, the batch is split in two and each half retried (a split does
    not count as a retry); a single record, or without bisecting, is retried as is;
  * after MaximumRetryAttempts retries (-1: for ever), or once a record is older than
    MaximumRecordAgeInSeconds, the rest of the batch is given up and a message shaped like
    Lambda's on-failure record (`DDBStreamBatchInfo`: shard, first and last sequence numbers,
    batch size) is sent to the mapping's on-failure destination (the archive failure queue);
  * retries wait 0.5, 1, 2, 4... seconds (at most 8 s), interrupted by shutdown.
- `QueuePoller`: the fallback queue -> FallbackDrainFunction mapping: receives up to BatchSize
  messages (at most 10, SQS's limit), invokes with Lambda's SQS record shape, deletes the
  messages that did not fail (ReportBatchItemFailures); failed ones become visible again after
  the queue's visibility timeout and, after maxReceiveCount, move to the dead-letter queue
  (moto applies the queue's redrive policy).
- `SchedulePoller`: SweeperFunction on a short interval (`--sweep-interval`) with an
  EventBridge "Scheduled Event", instead of the template's SweepSchedule.

Concurrency, as Lambda scales a mapping:
- ParallelizationFactor (the template's, or the stack's override): "the number of batches to
  process from each shard concurrently", 1 to 10, with records of one key always processed in
  order (https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html, "Concurrent reading of a
  shard"). `process_shard_records` filters a read of the shard, splits it by partition key (the
  table's HASH key, SessionUUID: stricter than the item-level order AWS documents for DynamoDB,
  so nothing may rely on more) into up to that many lanes (a key always falls in the same
  lane), and runs the lanes concurrently, each lane's batches one after another with the retry
  rules above, so a failing batch holds back only the keys of its own lane. The shard's next
  read waits until every lane of the previous one has finished: the shard's checkpoint is its
  lowest unfinished record (Lambda keeps reading ahead meanwhile; locally the next read waits).
- SQS MaximumConcurrency (ScalingConfig, https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html):
  `QueuePoller(max_concurrency=N)` runs up to N receive-invoke-delete loops at once.
- The invocations go to a `LambdaWorkerPool` (see `lambda_worker`) of that many execution
  environments, each a process with the function's own environment.

What is not emulated: parallel shards of one mapping (one shard at a time),
MaximumBatchingWindowInSeconds, tumbling windows, SQS batching windows.

Over 500 lines on purpose: the three mappings, their record shapes and the stream's retry rules
are one contract (Lambda's event source mapping semantics) and read best side by side. Template
settings come from `functions` (`function_event`, `template_int`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from recording_archive_cli.local.filters import event_matches_filters
from recording_archive_cli.local.functions import function_event, template_int
from recording_archive_cli.local.lambda_worker import FunctionError, WorkerError
from recording_archive_cli.local.template import TemplateError

POLL_SECONDS = 0.25
SHARD_REFRESH_SECONDS = 10.0
RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 8.0
SQS_MAX_BATCH = 10
# Lambda's defaults when the template does not say (AWS::Lambda::EventSourceMapping).
DEFAULT_STREAM_BATCH = 100
DEFAULT_SQS_BATCH = 10
# ParallelizationFactor's range (AWS::Lambda::EventSourceMapping: 1-10, default 1).
MAX_PARALLELIZATION_FACTOR = 10


# ------------------------------------------------------------------------------------------
# Template: the mapping's settings
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamMapping:
    batch_size: int = DEFAULT_STREAM_BATCH
    max_retry_attempts: int = -1
    bisect_on_error: bool = False
    starting_position: str = "TRIM_HORIZON"
    max_record_age_seconds: int = -1
    report_batch_item_failures: bool = False
    filters: tuple[Mapping[str, Any], ...] = ()
    parallelization_factor: int = 1
    # The attribute records are split by across concurrent batches (the table's HASH key).
    partition_key: str = ""


def template_number(template: Mapping[str, Any], value: Any, what: str) -> int:
    """A plain number, or `{"Ref": Parameter}` read as that parameter's Default."""
    if isinstance(value, Mapping) and set(value) == {"Ref"}:
        spec = (template.get("Parameters") or {}).get(value["Ref"])
        if not isinstance(spec, Mapping) or "Default" not in spec:
            raise TemplateError(f"{what}: Ref {value['Ref']!r} is not a parameter with a Default")
        value = spec["Default"]
    return template_int(value, what)


def parallelization_factor(value: int, what: str = "ParallelizationFactor") -> int:
    if not 1 <= value <= MAX_PARALLELIZATION_FACTOR:
        raise TemplateError(f"{what} must be 1 to {MAX_PARALLELIZATION_FACTOR}, got {value}")
    return value


def _stream_table_hash_key(template: Mapping[str, Any], stream: Any) -> str:
    """The HASH key attribute of the table whose stream `stream` (`!GetAtt T.StreamArn`) is."""
    getatt = stream.get("Fn::GetAtt") if isinstance(stream, Mapping) else None
    if not isinstance(getatt, list) or not getatt:
        return ""
    table = (template.get("Resources") or {}).get(getatt[0]) or {}
    for key in (table.get("Properties") or {}).get("KeySchema") or []:
        if isinstance(key, Mapping) and key.get("KeyType") == "HASH":
            return str(key.get("AttributeName", ""))
    return ""


def stream_mapping(
    template: Mapping[str, Any],
    logical_id: str,
    filters: Sequence[Mapping[str, Any]],
    *,
    parallelization: int | None = None,
) -> StreamMapping:
    """The mapping's settings; `parallelization` overrides the template's ParallelizationFactor."""
    props = function_event(template, logical_id, "DynamoDB")
    what = f"{logical_id} DynamoDB event"
    factor = parallelization
    if factor is None:
        factor = template_number(
            template, props.get("ParallelizationFactor", 1), f"{what} ParallelizationFactor"
        )
    position = props.get("StartingPosition", "LATEST")
    if position not in ("TRIM_HORIZON", "LATEST"):
        raise TemplateError(f"{what} StartingPosition {position!r} is not supported locally")
    return StreamMapping(
        batch_size=template_int(props.get("BatchSize", DEFAULT_STREAM_BATCH), f"{what} BatchSize"),
        max_retry_attempts=template_int(props.get("MaximumRetryAttempts", -1), f"{what} retries"),
        bisect_on_error=props.get("BisectBatchOnFunctionError") is True,
        starting_position=str(position),
        max_record_age_seconds=template_int(
            props.get("MaximumRecordAgeInSeconds", -1), f"{what} age"
        ),
        report_batch_item_failures="ReportBatchItemFailures"
        in (props.get("FunctionResponseTypes") or []),
        filters=tuple(filters),
        parallelization_factor=parallelization_factor(factor, f"{what} ParallelizationFactor"),
        partition_key=_stream_table_hash_key(template, props.get("Stream")),
    )


def sqs_batch_size(template: Mapping[str, Any], logical_id: str) -> int:
    props = function_event(template, logical_id, "SQS")
    return template_int(props.get("BatchSize", DEFAULT_SQS_BATCH), f"{logical_id} SQS BatchSize")


def sqs_maximum_concurrency(template: Mapping[str, Any], logical_id: str) -> int | None:
    """The SQS event's ScalingConfig MaximumConcurrency (a number or a parameter's Default);
    None without one (Lambda then scales up to the account's concurrency)."""
    props = function_event(template, logical_id, "SQS")
    value = (props.get("ScalingConfig") or {}).get("MaximumConcurrency")
    if value is None:
        return None
    return template_number(template, value, f"{logical_id} SQS MaximumConcurrency")


# ------------------------------------------------------------------------------------------
# Record shapes
# ------------------------------------------------------------------------------------------


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value or 0)


def lambda_stream_record(raw: Mapping[str, Any], *, region: str, stream_arn: str) -> dict[str, Any]:
    """A `dynamodbstreams.get_records` record in the shape Lambda passes to the function."""
    ddb = dict(raw.get("dynamodb") or {})
    if "ApproximateCreationDateTime" in ddb:
        ddb["ApproximateCreationDateTime"] = int(_epoch(ddb["ApproximateCreationDateTime"]))
    return {
        "eventID": raw.get("eventID") or uuid.uuid4().hex,
        "eventName": raw.get("eventName"),
        "eventVersion": raw.get("eventVersion") or "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": raw.get("awsRegion") or region,
        "dynamodb": ddb,
        "eventSourceARN": stream_arn,
    }


def lambda_sqs_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS `receive_message` message in the shape Lambda passes to the function."""
    attributes = {
        name: {
            "stringValue": attr.get("StringValue"),
            "binaryValue": attr.get("BinaryValue"),
            "stringListValues": attr.get("StringListValues", []),
            "binaryListValues": attr.get("BinaryListValues", []),
            "dataType": attr.get("DataType"),
        }
        for name, attr in (message.get("MessageAttributes") or {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def scheduled_event(*, account_id: str, region: str, rule_arn: str) -> dict[str, Any]:
    """An EventBridge "Scheduled Event", as a Schedule event source delivers it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def _sequence(record: Mapping[str, Any]) -> str:
    return str((record.get("dynamodb") or {}).get("SequenceNumber", ""))


def on_failure_message(
    batch: Sequence[Mapping[str, Any]],
    *,
    condition: str,
    invoke_count: int,
    function_arn: str,
    stream_arn: str,
    shard_id: str,
    function_error: str | None,
) -> dict[str, Any]:
    """Lambda's on-failure destination record for a stream batch that was given up."""

    def arrival(record: Mapping[str, Any]) -> str:
        epoch = _epoch((record.get("dynamodb") or {}).get("ApproximateCreationDateTime"))
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")

    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": _sequence(batch[0]),
            "endSequenceNumber": _sequence(batch[-1]),
            "approximateArrivalOfFirstRecord": arrival(batch[0]),
            "approximateArrivalOfLastRecord": arrival(batch[-1]),
            "batchSize": len(batch),
            "streamArn": stream_arn,
        },
    }


# ------------------------------------------------------------------------------------------
# Stream retry rules (no I/O)
# ------------------------------------------------------------------------------------------


@dataclass
class StreamReport:
    """What happened to the records of one `process_stream_records` call."""

    delivered: list[dict[str, Any]] = field(default_factory=list)  # processed successfully
    given_up: list[dict[str, Any]] = field(default_factory=list)  # sent to on-failure
    filtered_out: int = 0
    invocations: int = 0
    stopped: bool = False


@dataclass
class _Pending:
    records: list[dict[str, Any]]
    retries: int = 0
    invokes: int = 0


def _first_failed(batch: Sequence[Mapping[str, Any]], result: Any) -> int | None:
    """Index of the first record to retry from, None when the batch fully succeeded."""
    if not isinstance(result, Mapping):
        return None
    failures = result.get("batchItemFailures")
    if not failures:
        return None
    positions = {_sequence(r): i for i, r in enumerate(batch)}
    indexes: list[int] = []
    for failure in failures:
        ident = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not ident or str(ident) not in positions:
            return 0  # Lambda fails the whole batch on an unknown or empty identifier
        indexes.append(positions[str(ident)])
    return min(indexes)


def process_stream_records(
    records: Sequence[dict[str, Any]],
    mapping: StreamMapping,
    invoke: Callable[[dict[str, Any]], Any],
    give_up: Callable[[list[dict[str, Any]], str, int, str | None], None],
    *,
    wait: Callable[[float], bool] = lambda _s: False,
    clock: Callable[[], float] = time.time,
    log: Callable[[str], None] = lambda _m: None,
) -> StreamReport:
    """Deliver `records` (already in Lambda's shape, in shard order) as a mapping would.

    `invoke({"Records": batch})` returns the function's result or raises FunctionError /
    WorkerError; `give_up(batch, condition, invoke_count, function_error)` sends to the
    on-failure destination; `wait(seconds)` sleeps between retries and returns True to stop.
    """
    report = StreamReport()
    passing = [r for r in records if event_matches_filters(r, mapping.filters)]
    report.filtered_out = len(records) - len(passing)
    size = max(1, mapping.batch_size)
    queue = [_Pending(passing[i : i + size]) for i in range(0, len(passing), size)]
    while queue:
        pending = queue.pop(0)
        batch = pending.records
        if mapping.max_record_age_seconds >= 0:
            oldest = _epoch((batch[0].get("dynamodb") or {}).get("ApproximateCreationDateTime"))
            if oldest and clock() - oldest > mapping.max_record_age_seconds:
                give_up(batch, "RecordAgeExceeded", pending.invokes, None)
                report.given_up.extend(batch)
                continue
        pending.invokes += 1
        report.invocations += 1
        function_error: str | None = None
        try:
            result = invoke({"Records": batch})
        except (FunctionError, WorkerError) as exc:
            function_error = "Unhandled"
            log(f"archive function error, batch of {len(batch)} will be retried: {exc}")
            failed_from: int | None = 0
        else:
            failed_from = (
                _first_failed(batch, result) if mapping.report_batch_item_failures else None
            )
        if failed_from is None:
            report.delivered.extend(batch)
            continue
        report.delivered.extend(batch[:failed_from])
        rest = batch[failed_from:]
        if function_error and mapping.bisect_on_error and len(rest) > 1:
            half = len(rest) // 2
            queue[:0] = [
                _Pending(rest[:half], pending.retries, pending.invokes),
                _Pending(rest[half:], pending.retries, pending.invokes),
            ]
            continue
        if 0 <= mapping.max_retry_attempts <= pending.retries:
            give_up(rest, "RetryAttemptsExhausted", pending.invokes, function_error)
            report.given_up.extend(rest)
            continue
        retry = _Pending(rest, pending.retries + 1, pending.invokes)
        limit = "unlimited" if mapping.max_retry_attempts < 0 else mapping.max_retry_attempts
        log(
            f"archive retry {retry.retries}/{limit} from seq "
            f"{_sequence(rest[0])[-8:]} ({len(rest)} record(s))"
        )
        delay = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (retry.retries - 1))
        if wait(delay):
            report.stopped = True
            return report
        queue.insert(0, retry)
    return report


def partition_lanes(
    records: Sequence[dict[str, Any]], factor: int, key_name: str
) -> list[list[dict[str, Any]]]:
    """`records` split into at most `factor` lanes by the value of their partition key: a key
    always falls in the same lane, and each lane keeps the records' shard order."""
    if factor <= 1:
        return [list(records)] if records else []
    lanes: list[list[dict[str, Any]]] = [[] for _ in range(factor)]
    for record in records:
        keys = (record.get("dynamodb") or {}).get("Keys") or {}
        value = keys.get(key_name) if key_name else keys
        # A stable hash (not hash(): salted per process), as Lambda's batcher is per key.
        lane = zlib.crc32(json.dumps(value, sort_keys=True).encode()) % factor
        lanes[lane].append(record)
    return [lane for lane in lanes if lane]


def process_shard_records(
    records: Sequence[dict[str, Any]],
    mapping: StreamMapping,
    invoke: Callable[[dict[str, Any]], Any],
    give_up: Callable[[list[dict[str, Any]], str, int, str | None], None],
    **timing: Any,
) -> StreamReport:
    """One read of a shard delivered with the mapping's ParallelizationFactor.

    Filtered first (Lambda filters before batching), then split by partition key into up to
    `parallelization_factor` lanes that run concurrently, each through `process_stream_records`
    (its own batches, retries, bisection, age limit and on-failure records; `timing`: its
    `wait`, `clock` and `log`). Returns when every lane has finished (the shard's checkpoint:
    its lowest unfinished record).
    """
    passing = [r for r in records if event_matches_filters(r, mapping.filters)]
    lanes = partition_lanes(passing, mapping.parallelization_factor, mapping.partition_key)
    unfiltered = replace(mapping, filters=())
    report = StreamReport(filtered_out=len(records) - len(passing))

    def run(lane: list[dict[str, Any]]) -> StreamReport:
        return process_stream_records(lane, unfiltered, invoke, give_up, **timing)

    if len(lanes) <= 1:
        reports = [run(lane) for lane in lanes]
    else:
        with ThreadPoolExecutor(len(lanes), thread_name_prefix="stream-lane") as pool:
            reports = list(pool.map(run, lanes))
    for lane_report in reports:
        report.delivered.extend(lane_report.delivered)
        report.given_up.extend(lane_report.given_up)
        report.invocations += lane_report.invocations
        report.stopped = report.stopped or lane_report.stopped
    return report


# ------------------------------------------------------------------------------------------
# Pollers
# ------------------------------------------------------------------------------------------


class _Poller(threading.Thread):
    def __init__(self, name: str, stop: threading.Event, say: Callable[[str], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.stop_event = stop
        self.say = say
        self._last_problem = ""

    def problem(self, text: str) -> None:
        # Say each distinct problem once, not four times a second.
        if text != self._last_problem and not self.stop_event.is_set():
            self.say(text)
        self._last_problem = text

    def ok(self) -> None:
        self._last_problem = ""


class StreamPoller(_Poller):
    def __init__(
        self,
        *,
        session: Any,
        endpoint_url: str,
        stream_arn: str,
        region: str,
        mapping: StreamMapping,
        invoke: Callable[[dict[str, Any]], Any],
        failure_queue_url: str,
        function_arn: str,
        on_delivered: Callable[[list[dict[str, Any]]], None],
        stop: threading.Event,
        say: Callable[[str], None],
    ) -> None:
        super().__init__("stream-poller", stop, say)
        self.streams = session.client("dynamodbstreams", endpoint_url=endpoint_url)
        self.sqs = session.client("sqs", endpoint_url=endpoint_url)
        self.stream_arn = stream_arn
        self.region = region
        self.mapping = mapping
        self.invoke = invoke
        self.failure_queue_url = failure_queue_url
        self.function_arn = function_arn
        self.on_delivered = on_delivered
        self.iterators: dict[str, str | None] = {}
        # Set: the mapping is disabled (records wait in the stream, as with an event source
        # mapping's Enabled: false), e.g. while a benchmark writes its burst.
        self.held = threading.Event()

    def _refresh_shards(self) -> None:
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id in self.iterators:
                continue
            # A shard found after the first (a child of a closed one) is read from its start.
            position = self.mapping.starting_position if not self.iterators else "TRIM_HORIZON"
            response = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=position
            )
            self.iterators[shard_id] = response.get("ShardIterator")

    def _give_up(
        self, shard_id: str
    ) -> Callable[[list[dict[str, Any]], str, int, str | None], None]:
        def give_up(
            batch: list[dict[str, Any]], condition: str, invokes: int, error: str | None
        ) -> None:
            message = on_failure_message(
                batch,
                condition=condition,
                invoke_count=invokes,
                function_arn=self.function_arn,
                stream_arn=self.stream_arn,
                shard_id=shard_id,
                function_error=error,
            )
            self.sqs.send_message(QueueUrl=self.failure_queue_url, MessageBody=json.dumps(message))
            self.say(
                f"archive gave up on {len(batch)} record(s) ({condition}): sent to the "
                "on-failure queue; the sweeper retries them later"
            )

        return give_up

    def poll_once(self, *, refresh: bool = True) -> int:
        """Read each shard once and deliver what it holds; the number of records read."""
        from botocore.exceptions import BotoCoreError, ClientError

        read = 0
        try:
            if refresh or not self.iterators:
                self._refresh_shards()
            for shard_id, iterator in list(self.iterators.items()):
                if iterator is None or self.stop_event.is_set():
                    continue
                response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                self.iterators[shard_id] = response.get("NextShardIterator")
                raw = response.get("Records") or []
                read += len(raw)
                if not raw:
                    continue
                records = [
                    lambda_stream_record(r, region=self.region, stream_arn=self.stream_arn)
                    for r in raw
                ]
                report = process_shard_records(
                    records,
                    self.mapping,
                    self.invoke,
                    self._give_up(shard_id),
                    wait=self.stop_event.wait,
                    log=self.say,
                )
                if report.delivered:
                    self.on_delivered(report.delivered)
            self.ok()
        except (BotoCoreError, ClientError) as exc:
            self.problem(f"stream poller: {exc}")
        return read

    def run(self) -> None:
        next_refresh = 0.0
        while not self.stop_event.is_set():
            if self.held.is_set():
                self.stop_event.wait(POLL_SECONDS)
                continue
            refresh = time.monotonic() >= next_refresh
            if refresh:
                next_refresh = time.monotonic() + SHARD_REFRESH_SECONDS
            if self.poll_once(refresh=refresh) == 0:
                self.stop_event.wait(POLL_SECONDS)


class QueuePoller(_Poller):
    def __init__(
        self,
        *,
        session: Any,
        endpoint_url: str,
        queue_url: str,
        region: str,
        batch_size: int,
        invoke: Callable[[dict[str, Any]], Any],
        stop: threading.Event,
        say: Callable[[str], None],
        max_concurrency: int = 1,
        what: str = "fallback drain",
        done: str = "fallback drained {count} message(s) into the table",
    ) -> None:
        super().__init__("queue-poller", stop, say)
        self.sqs = session.client("sqs", endpoint_url=endpoint_url)
        self.queue_url = queue_url
        self.region = region
        self.batch_size = max(1, min(SQS_MAX_BATCH, batch_size))
        self.invoke = invoke
        self.queue_arn = ""
        # ScalingConfig MaximumConcurrency: this many batches in flight at once, each loop
        # receiving, invoking and deleting on its own (`invoke` should reach as many workers).
        self.max_concurrency = max(1, max_concurrency)
        self.what = what  # the log lines' words: which mapping, and what a success did
        self.done = done

    def poll_once(self, wait_seconds: int = 1) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if not self.queue_arn:
                attrs = self.sqs.get_queue_attributes(
                    QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
                )
                self.queue_arn = attrs["Attributes"]["QueueArn"]
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                WaitTimeSeconds=wait_seconds,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages") or []
            if not messages:
                self.ok()
                return 0
            records = [
                lambda_sqs_record(m, queue_arn=self.queue_arn, region=self.region) for m in messages
            ]
            try:
                result = self.invoke({"Records": records})
            except (FunctionError, WorkerError) as exc:
                self.say(f"{self.what} failed, {len(records)} message(s) stay queued: {exc}")
                return len(records)
            failed = set()
            if isinstance(result, Mapping):
                failed = {
                    str(f.get("itemIdentifier"))
                    for f in result.get("batchItemFailures") or []
                    if isinstance(f, Mapping)
                }
            done = [r for r in records if r["messageId"] not in failed]
            if done:
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": r["receiptHandle"]}
                        for i, r in enumerate(done)
                    ],
                )
            self.say(
                self.done.format(count=len(done))
                + (f", {len(failed)} failed (retried by SQS)" if failed else "")
            )
            self.ok()
            return len(records)
        except (BotoCoreError, ClientError) as exc:
            self.problem(f"queue poller: {exc}")
            self.stop_event.wait(1.0)
            return 0

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            self.poll_once()

    def run(self) -> None:
        others = [
            threading.Thread(target=self._loop, name=f"{self.name}-{i}", daemon=True)
            for i in range(1, self.max_concurrency)
        ]
        for thread in others:
            thread.start()
        self._loop()
        for thread in others:
            thread.join()


class SchedulePoller(_Poller):
    def __init__(
        self,
        *,
        interval: float,
        account_id: str,
        region: str,
        rule_arn: str,
        invoke: Callable[[dict[str, Any]], Any],
        stop: threading.Event,
        say: Callable[[str], None],
    ) -> None:
        super().__init__("sweep-schedule", stop, say)
        self.interval = interval
        self.account_id = account_id
        self.region = region
        self.rule_arn = rule_arn
        self.invoke = invoke

    def tick(self) -> Any:
        event = scheduled_event(
            account_id=self.account_id, region=self.region, rule_arn=self.rule_arn
        )
        try:
            result = self.invoke(event)
        except (FunctionError, WorkerError) as exc:
            self.problem(f"sweep failed: {exc}")
            return None
        self.ok()
        if isinstance(result, Mapping) and result:
            counts = " ".join(f"{k}={v}" for k, v in sorted(result.items()))
            self.say(f"sweep {counts}")
        return result

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.tick()
