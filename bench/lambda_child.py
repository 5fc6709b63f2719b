"""One measured child process of bench/run.py: what a Lambda execution environment does.

Runs under the runtime's Python with `-I -B` (isolated: no PYTHONPATH, no user site; no bytecode
written, as on Lambda's read-only file system) and only the built function directory on sys.path.
Only the standard library is imported before the clock starts (Lambda's own bootstrap has those
loaded too). Writes one JSON object to the file given by --out; stdout/stderr carry the function's
log lines and EMF metrics, as on Lambda.

Modes:
- cold-callback / cold-archive: import the handler, serve one invocation (the event file holds
  one event).
- floor-callback: import boto3, create a DynamoDB client, one put_item.
- floor-archive: import boto3, create an S3 client, GET the recording, one put_object.
- floor-callback-required: the work the callback is required to do, with the libraries it is
  required to use and none of the project's code: import boto3, pydantic and Powertools' Logger
  and Metrics; read the auth secret (Secrets Manager), verify the V3 signature, validate the
  key fields with a pydantic model, the same conditional put_item of the handler's own item,
  one GenerateMac per phone number and one BatchWriteItem of the session index's entries
  (issue 15 puts the index on the callback's path), one log line and the metrics flush. The
  handler against this floor is what the project's own code costs; this floor against the plain
  one is what the required libraries and calls cost (bench/README.md).
- floor-archive-required: the same for the archiver: import boto3, urllib3 and Powertools'
  batch, Logger and Metrics; through Powertools' BatchProcessor, for the stream record: claim
  the item (conditional UpdateItem), GET the recording, one create-only, SHA-256-checksummed,
  SSE-KMS put_object, publish RecordingArchived (EventBridge PutEvents), mark the item ARCHIVED
  (conditional UpdateItem), one log line and the metrics flush.
- warm-callback: import the handler, then serve every event of the file (a JSON list); the first
  `--warmup` are not timed.
- warm-floor: the same events through `floor_handler`: parse_qs + one HMAC + one put_item.
- warm-floor-required: warm-floor-item plus the session index's entries of the event (built by
  the project's code in the parent, "benchIndex") in one BatchWriteItem, as the handler writes
  them on its path (issue 15).
- warm-floor-item: the same, but the put_item writes the handler's own item (every attribute,
  the parsed fields, the raw body), conditionally, as the handler does.
- warm-archive: import the handler, serve the first batch of the file (a JSON list of batches)
  untimed, then each of the others, timed (the archiver's duration once warm: the cost model).

Every mode reports the process's peak RSS (VmHWM). `--count-calls` records every AWS API call
the handler makes (service, operation; for DynamoDB writes, the table and the typed items of a
PutItem or BatchWriteItem) in "calls", for the cost model (bench/cost.py); timed runs never
count.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from typing import Any
from urllib.parse import parse_qs


class Context:
    """The attributes of Lambda's context object that Powertools reads."""

    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def __init__(self, remaining_ms: int) -> None:
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _count_calls(calls: list[dict[str, Any]]) -> None:
    """Record every AWS API call made through botocore (its one entry point for operations)."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call

    def recording(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        call: dict[str, Any] = {
            "service": self.meta.service_model.service_id.hyphenize(),
            "operation": operation_name,
        }
        if "TableName" in api_params:
            call["table"] = api_params["TableName"]
        if operation_name == "PutItem":
            call["item"] = api_params.get("Item")
        if operation_name == "BatchWriteItem":
            call["items"] = [
                request["PutRequest"]["Item"]
                for requests in api_params.get("RequestItems", {}).values()
                for request in requests
                if "PutRequest" in request
            ]
            call["deletes"] = sum(
                1
                for requests in api_params.get("RequestItems", {}).values()
                for request in requests
                if "DeleteRequest" in request
            )
        calls.append(call)
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = recording  # type: ignore[method-assign]


def _check(mode: str, result: Any) -> None:
    """Fail the run unless the invocation did what it is measured for."""
    if mode.endswith("callback"):
        if result.get("statusCode") != 200 or '"stored"' not in result.get("body", ""):
            raise SystemExit(f"{mode}: callback not stored: {result}")
    elif mode in ("cold-archive", "warm-archive") and result.get("batchItemFailures"):
        raise SystemExit(f"{mode}: archive failed: {result}")


def floor_handler(
    event: dict[str, Any],
    token: bytes,
    url: str,
    table: str,
    client: Any,
    *,
    same_item: bool = False,
) -> dict[str, Any]:
    """The least a verified, durable callback costs: parse, one HMAC, one put_item.

    With same_item, the put_item writes the item the handler writes (built and serialized by the
    parent, in the event's "benchItem") with the handler's condition: the floor then differs from
    the handler only by what runs in the handler's own code and libraries.
    """
    body = event["body"]
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    params = parse_qs(body, keep_blank_values=True)
    headers = event["headers"]
    # Signature V3 of a form POST: URL + "?" + keys sorted, each followed by its sorted values.
    signed = "".join(k + "".join(sorted(v)) for k, v in sorted(params.items()))
    message = f"{url}?{signed}.{headers['x-plivo-signature-v3-nonce']}"
    digest = base64.b64encode(hmac.new(token, message.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(digest.decode(), headers["x-plivo-signature-v3"]):
        return {"statusCode": 403}
    if same_item:
        client.put_item(
            TableName=table,
            Item=event["benchItem"],
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": "SessionUUID"},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return {"statusCode": 200, "body": '"stored"'}
    client.put_item(
        TableName=table,
        Item={
            "SessionUUID": {"S": params["SessionUUID"][0]},
            "SequenceNumber": {"N": params["SequenceNumber"][0]},
            "EventName": {"S": params["EventName"][0]},
            "RawBody": {"S": body},
        },
    )
    return {"statusCode": 200, "body": '"stored"'}


def _required_callback(
    event: dict[str, Any], args: argparse.Namespace, boto3: Any, *libs: Any
) -> None:
    """floor-callback-required (module docstring): what any implementation must do."""
    import os

    logger_class, metrics_class, base_model, field = libs
    logger = logger_class(service="bench")
    metrics = metrics_class(namespace="Bench", service="bench")

    class Keys(base_model):  # type: ignore[misc, valid-type]
        SessionUUID: str = field(min_length=36, max_length=36)
        SequenceNumber: int = field(ge=0)
        EventName: str = field(min_length=1)

    secret = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["AUTH_SECRET_ID"])[
            "SecretString"
        ]
    )
    token = str(secret.get("auth_tokens", [secret.get("auth_token", "")])[0]).encode()
    ddb = boto3.client("dynamodb")
    result = floor_handler(event, token, args.url, args.table, ddb, same_item=True)
    if result["statusCode"] != 200:
        raise SystemExit(f"floor-callback-required: signature refused ({secret.keys()})")
    params = {k: v[0] for k, v in parse_qs(base64.b64decode(event["body"]).decode()).items()}
    Keys.model_validate(params)
    kms = boto3.client("kms")
    macs = [
        kms.generate_mac(
            KeyId=os.environ["NUMBER_INDEX_KEY_ID"],
            MacAlgorithm="HMAC_SHA_256",
            Message=params[name].lstrip("+").encode(),
        )["Mac"].hex()
        for name in ("From", "To", "VirtualNumber")
    ]
    entries = [f"DAY#{params['SessionUUID']}", *(f"NUM#{mac}" for mac in macs)]
    ddb.batch_write_item(
        RequestItems={
            os.environ["INDEX_TABLE_NAME"]: [
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": pk},
                            "sk": {"S": params["SessionUUID"]},
                        }
                    }
                }
                for pk in entries
            ]
        }
    )
    logger.info("callback stored", extra={"session": params["SessionUUID"]})
    metrics.add_metric(name="CallbackAccepted", unit="Count", value=1)
    metrics.flush_metrics()


def _required_archive(event: dict[str, Any], boto3: Any, urllib3: Any, *libs: Any) -> None:
    """floor-archive-required (module docstring): what any implementation must do."""
    import os
    import uuid

    logger_class, metrics_class, processor_class, event_type, process = libs
    logger = logger_class(service="bench")
    metrics = metrics_class(namespace="Bench", service="bench")
    ddb, s3, bus = boto3.client("dynamodb"), boto3.client("s3"), boto3.client("events")
    table, bucket = os.environ["EVENTS_TABLE_NAME"], os.environ["ARCHIVE_BUCKET_NAME"]

    def archive(record: Any) -> None:
        image = record.dynamodb.new_image
        key = {"SessionUUID": {"S": image["SessionUUID"]}, "SequenceNumber": {"N": "1"}}
        key["SequenceNumber"]["N"] = str(image["SequenceNumber"])
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET ArchiveClaimToken = :t ADD ArchiveAttempts :one",
            ConditionExpression="ArchiveStatus = :pending",
            ExpressionAttributeValues={
                ":t": {"S": str(uuid.uuid4())},
                ":one": {"N": "1"},
                ":pending": {"S": "PENDING"},
            },
        )
        data = urllib3.request("GET", image["RecordingURL"]).data
        object_key = f"recordings/{image['SessionUUID']}.mp3"
        s3.put_object(
            Bucket=bucket,
            Key=object_key,
            Body=data,
            IfNoneMatch="*",
            ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=os.environ["ARCHIVE_KMS_KEY_ID"],
        )
        bus.put_events(
            Entries=[
                {
                    "Source": "bench",
                    "DetailType": "RecordingArchived",
                    "Detail": json.dumps({"key": object_key, "size": len(data)}),
                    "EventBusName": os.environ["EVENT_BUS_NAME"],
                }
            ]
        )
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET ArchiveStatus = :done REMOVE ArchiveQueue",
            ConditionExpression="ArchiveStatus = :pending",
            ExpressionAttributeValues={":done": {"S": "ARCHIVED"}, ":pending": {"S": "PENDING"}},
        )
        logger.info("archived", extra={"key": object_key})
        metrics.add_metric(name="RecordingsArchived", unit="Count", value=1)

    processor = processor_class(event_type=event_type.DynamoDBStreams)
    result = process(event=event, record_handler=archive, processor=processor)
    if result.get("batchItemFailures"):
        raise SystemExit(f"floor-archive-required failed: {processor.exceptions}")
    metrics.flush_metrics()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--event", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--table", default="")
    parser.add_argument("--index-table", default="", help="warm-floor-required: the index")
    parser.add_argument("--token", default="")
    parser.add_argument("--bucket", default="")
    parser.add_argument("--url", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--remaining-ms", type=int, default=30_000, help="the function's Timeout (run.py passes it)"
    )
    parser.add_argument("--profile", default="", help="write cProfile stats of the run here")
    parser.add_argument("--count-calls", action="store_true", help="record the AWS API calls")
    args = parser.parse_args()
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(run, args)
        profiler.dump_stats(args.profile)
    else:
        run(args)


def run(args: argparse.Namespace) -> None:
    with open(args.event, encoding="utf-8") as fh:
        event = json.load(fh)
    sys.path.insert(0, args.build_dir)
    mode = args.mode
    out: dict[str, Any] = {"python": sys.version.split()[0]}
    calls: list[dict[str, Any]] = []
    if args.count_calls:
        _count_calls(calls)

    started = time.perf_counter()
    if mode == "cold-callback":
        from recording_archive.handlers.recording_callback import lambda_handler

        imported = time.perf_counter()
        _check(mode, lambda_handler(event, Context(args.remaining_ms)))
    elif mode == "cold-archive":
        from recording_archive.handlers.archive_stream import lambda_handler

        imported = time.perf_counter()
        _check(mode, lambda_handler(event, Context(args.remaining_ms)))
    elif mode == "warm-archive":
        from recording_archive.handlers.archive_stream import lambda_handler

        imported = time.perf_counter()
        _check(mode, lambda_handler(event[0], Context(args.remaining_ms)))
        durations = []
        for batch in event[1:]:
            t0 = time.perf_counter()
            _check(mode, lambda_handler(batch, Context(args.remaining_ms)))
            durations.append((time.perf_counter() - t0) * 1000)
        out["durations_ms"] = durations
    elif mode == "floor-callback":
        import boto3

        imported = time.perf_counter()
        boto3.client("dynamodb").put_item(
            TableName=args.table,
            Item={"SessionUUID": {"S": args.key}, "SequenceNumber": {"N": "1"}},
        )
    elif mode == "floor-archive":
        import boto3
        import urllib3

        imported = time.perf_counter()
        s3 = boto3.client("s3")
        data = urllib3.request("GET", args.url).data
        s3.put_object(Bucket=args.bucket, Key=args.key, Body=data)
    elif mode in ("warm-callback", "warm-floor", "warm-floor-item", "warm-floor-required"):
        if mode == "warm-callback":
            from recording_archive.handlers.recording_callback import lambda_handler

            def handle(e: dict[str, Any]) -> Any:
                return lambda_handler(e, Context(args.remaining_ms))
        else:
            import boto3

            client = boto3.client("dynamodb")
            token = args.token.encode()
            same_item = mode in ("warm-floor-item", "warm-floor-required")
            index_table = args.index_table if mode == "warm-floor-required" else ""

            def handle(e: dict[str, Any]) -> Any:
                result = floor_handler(e, token, args.url, args.table, client, same_item=same_item)
                if index_table:
                    client.batch_write_item(
                        RequestItems={
                            index_table: [{"PutRequest": {"Item": i}} for i in e["benchIndex"]]
                        }
                    )
                return result

        imported = time.perf_counter()
        for e in event[: args.warmup]:
            _check(mode, handle(e))
        timed = event[args.warmup :]
        t0 = time.perf_counter()
        for e in timed:
            _check(mode, handle(e))
        out["mean_ms"] = (time.perf_counter() - t0) * 1000 / len(timed)
        out["count"] = len(timed)
    elif mode == "floor-callback-required":
        import boto3
        from aws_lambda_powertools import Logger, Metrics
        from pydantic import BaseModel, Field

        imported = time.perf_counter()
        _required_callback(event, args, boto3, Logger, Metrics, BaseModel, Field)
    elif mode == "floor-archive-required":
        import boto3
        import urllib3
        from aws_lambda_powertools import Logger, Metrics
        from aws_lambda_powertools.utilities.batch import (
            BatchProcessor,
            EventType,
            process_partial_response,
        )

        imported = time.perf_counter()
        _required_archive(
            event,
            boto3,
            urllib3,
            Logger,
            Metrics,
            BatchProcessor,
            EventType,
            process_partial_response,
        )
    else:
        raise SystemExit(f"unknown mode {mode}")
    finished = time.perf_counter()
    out |= {
        "import_ms": (imported - started) * 1000,
        "invoke_ms": (finished - imported) * 1000,
        "total_ms": (finished - started) * 1000,
        "peak_rss_mib": _peak_rss_mib(),
    }
    if args.count_calls:
        out["calls"] = calls
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
