"""The real CallbackFunction and FallbackDrainFunction handlers, with their real clients, when an
AWS endpoint stalls.

A stalled endpoint accepts the connection and never answers (tests/support/tcp_proxy.py in
"stall" mode, put in front of one service through its AWS_ENDPOINT_URL_<SERVICE> variable). The
handler is invoked as Lambda starts it, with its Timeout from template.yaml as the time left, and
must give its documented answer before that time is up:
- the table stalls, the queue takes the event: 200 (queued), the event in the fallback queue;
- the table and the queue stall: 503, nothing stored;
- the secret stalls: 503 (fail closed: nothing verified, nothing stored).
With less time left, the deadlines (recording_archive.time_budgets) drop the attempts that could
not finish: fewer connections reach the stalled endpoint, and the answer still comes in time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from recording_archive.dal import aws
from recording_archive.handlers import fallback_drain
from recording_archive.time_budgets import CALLBACK_MARGIN_SECONDS, DRAIN_MARGIN_SECONDS
from recording_archive_cli.local.event_sources import lambda_sqs_record
from recording_archive_cli.local.functions import function_setting
from recording_archive_cli.local.resources import LocalResources
from recording_archive_cli.local.template import load_template
from tests.support.callback_flow import post_signed_callback
from tests.support.lambda_context import FakeLambdaContext
from tests.support.logs import captured_log_lines
from tests.support.moto_resources import TOKEN, scan_items
from tests.support.plivo import recording_event
from tests.support.tcp_proxy import FaultProxy

TEMPLATE = load_template()
CALLBACK_TIMEOUT = function_setting(TEMPLATE, "CallbackFunction", "Timeout", 3)
DRAIN_TIMEOUT = function_setting(TEMPLATE, "FallbackDrainFunction", "Timeout", 3)

# botocore's service-specific endpoint variables (service id, upper case, "_" for spaces).
ENDPOINT_VARIABLES = {
    "dynamodb": "AWS_ENDPOINT_URL_DYNAMODB",
    "sqs": "AWS_ENDPOINT_URL_SQS",
    "secretsmanager": "AWS_ENDPOINT_URL_SECRETS_MANAGER",
}


@pytest.fixture
def stalled(
    resources: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., FaultProxy]]:
    """`stalled("dynamodb", ...)`: those services' endpoints accept and never answer. Call it
    after `function_env` (which would forget the clients made for the stalled endpoint)."""
    proxy = FaultProxy(target_port=urlsplit(resources.endpoint_url).port or 0).start()
    proxy.set_mode("stall")

    def apply(*services: str) -> FaultProxy:
        for service in services:
            monkeypatch.setenv(ENDPOINT_VARIABLES[service], proxy.url)
        aws.reset_clients()  # clients are made again, at the handler's first call
        return proxy

    yield apply
    proxy.stop()


@pytest.fixture
def callback_env(function_env: Any) -> None:
    function_env("CallbackFunction")


def callback(params: dict[str, str], *, seconds_left: float) -> tuple[int, float, str]:
    """Status, seconds taken and log lines of one signed callback, invoked with `seconds_left`."""
    context = FakeLambdaContext(remaining_ms=int(seconds_left * 1000))
    with captured_log_lines() as logs:
        started = time.monotonic()
        status = post_signed_callback(params, TOKEN, context)
        elapsed = time.monotonic() - started
    return status, elapsed, logs.getvalue()


def warm_secret() -> None:
    """Read the secret into Powertools' cache, as an earlier invocation of this environment
    would have (the tests with little time left are about the table and the queue)."""
    from recording_archive.handlers import wiring

    assert wiring.callback_dependencies().credentials().auth_tokens


def answered_in_time(elapsed: float, seconds_left: float) -> bool:
    return elapsed <= seconds_left - CALLBACK_MARGIN_SECONDS


def queued_messages(resources: LocalResources) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", endpoint_url=resources.endpoint_url)
    answer = sqs.receive_message(
        QueueUrl=resources.fallback_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )
    return list(answer.get("Messages", []))


@pytest.mark.usefixtures("callback_env")
def test_stalled_table_answers_200_queued(
    stalled: Callable[..., FaultProxy], resources: LocalResources
) -> None:
    proxy = stalled("dynamodb")
    params = recording_event("SessionRecordingCompleted", sequence=3)
    status, elapsed, logs = callback(params, seconds_left=CALLBACK_TIMEOUT)

    assert status == 200
    assert "event sent to the fallback queue" in logs
    [message] = queued_messages(resources)
    assert params["SessionUUID"] in message["Body"]
    assert scan_items(resources) == []
    # Time enough: every attempt of the put met the stall, each for its read timeout.
    assert proxy.connections["stall"] == aws.TABLE.total_attempts
    assert aws.TABLE.total_attempts * aws.TABLE.read_timeout <= elapsed
    assert answered_in_time(elapsed, CALLBACK_TIMEOUT)


# Time left: the function's Timeout (every attempt is made), or time for one stalled attempt of
# the put and of the send but not for a retry of either (its backoff could last 6 s).
ONE_ATTEMPT_EACH = (
    CALLBACK_MARGIN_SECONDS + aws.QUEUE.attempt_seconds() + aws.TABLE.attempt_seconds() + 1.0
)


@pytest.mark.usefixtures("callback_env")
@pytest.mark.parametrize(
    ("seconds_left", "stalled_attempts"),
    [
        (CALLBACK_TIMEOUT, aws.TABLE.total_attempts + aws.QUEUE.total_attempts),
        (ONE_ATTEMPT_EACH, 2),
    ],
)
def test_stalled_table_and_queue_answer_503(
    stalled: Callable[..., FaultProxy],
    resources: LocalResources,
    seconds_left: float,
    stalled_attempts: int,
) -> None:
    proxy = stalled("dynamodb", "sqs")
    warm_secret()
    params = recording_event("SessionRecordingCompleted", sequence=4)
    status, elapsed, logs = callback(params, seconds_left=seconds_left)

    assert status == 503
    assert "table and fallback queue both failed" in logs
    assert scan_items(resources) == []
    assert proxy.connections["stall"] == stalled_attempts
    assert answered_in_time(elapsed, seconds_left)


@pytest.mark.usefixtures("callback_env")
def test_stalled_secret_answers_503_and_stores_nothing(
    stalled: Callable[..., FaultProxy], resources: LocalResources
) -> None:
    proxy = stalled("secretsmanager")
    status, elapsed, logs = callback(
        recording_event("SessionRecordingCompleted", sequence=5), seconds_left=CALLBACK_TIMEOUT
    )

    assert status == 503
    assert "callback cannot be verified" in logs
    assert scan_items(resources) == []
    assert queued_messages(resources) == []
    assert proxy.connections["stall"] == aws.SECRET.total_attempts
    assert aws.SECRET.total_attempts * aws.SECRET.read_timeout <= elapsed
    assert answered_in_time(elapsed, CALLBACK_TIMEOUT)


@pytest.mark.usefixtures("callback_env")
def test_no_time_for_a_table_attempt_goes_straight_to_the_queue(
    stalled: Callable[..., FaultProxy], resources: LocalResources
) -> None:
    """Time left for the margin, the queue's attempt and less than one table attempt: the put
    is not attempted at all (it could not finish), the event is queued at once."""
    proxy = stalled("dynamodb")
    warm_secret()
    seconds_left = (
        CALLBACK_MARGIN_SECONDS + aws.QUEUE.attempt_seconds() + aws.TABLE.attempt_seconds() / 2
    )
    status, elapsed, logs = callback(
        recording_event("SessionRecordingCompleted", sequence=6), seconds_left=seconds_left
    )

    assert status == 200
    assert "event sent to the fallback queue" in logs
    assert len(queued_messages(resources)) == 1
    assert proxy.connections["stall"] == 0
    assert answered_in_time(elapsed, seconds_left)


def test_drain_reports_the_messages_it_has_no_time_for(
    function_env: Any,
    stalled: Callable[..., FaultProxy],
    resources: LocalResources,
) -> None:
    """A stalled table and a batch of five: each message is tried while a full attempt still
    fits; the others fail at once; all five are reported for redelivery, in time."""
    function_env("FallbackDrainFunction")
    sqs = boto3.client("sqs", endpoint_url=resources.endpoint_url)
    for sequence in range(5):
        item_message = _fallback_message(resources, sequence)
        sqs.send_message(QueueUrl=resources.fallback_queue_url, MessageBody=item_message)
    messages = queued_messages(resources)
    assert len(messages) == 5
    proxy = stalled("dynamodb")
    seconds_left = DRAIN_MARGIN_SECONDS + 2 * aws.TABLE.attempt_seconds()
    queue_arn = f"arn:aws:sqs:{resources.region}:{resources.account_id}:fallback"
    event = {
        "Records": [
            lambda_sqs_record(m, queue_arn=queue_arn, region=resources.region) for m in messages
        ]
    }
    started = time.monotonic()
    answer = fallback_drain.lambda_handler(
        event, FakeLambdaContext(remaining_ms=int(seconds_left * 1000))
    )
    elapsed = time.monotonic() - started

    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == sorted(
        m["MessageId"] for m in messages
    )
    # Each stalled attempt lasts a read timeout (1 s) of the 2 s it may take: 2 to 3 of them
    # start before the deadline, none after it.
    assert 1 <= proxy.connections["stall"] < 5
    assert elapsed <= seconds_left - DRAIN_MARGIN_SECONDS


def _fallback_message(resources: LocalResources, sequence: int) -> str:
    """A fallback-queue message as the callback writes it."""
    from recording_archive.dal.fallback_queue import encode_message

    return encode_message(
        {
            "SessionUUID": "3f1c2a5e-8a4b-4c1d-9e2f-0a1b2c3d4e5f",
            "SequenceNumber": sequence,
            "EventName": "SessionRecordingInitiated",
            "Payload": {"EventName": "SessionRecordingInitiated"},
            "PayloadSha256": f"{sequence:064x}",
            "ReceivedAt": "2026-12-03T14:00:00.000Z",
            "Source": "callback",
        }
    )
