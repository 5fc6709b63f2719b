"""Time budgets: the deadlines the callback and the drain set on their AWS calls, and the
figures tests/infra/test_time_budgets.py checks against each function's `Timeout`.

CallbackFunction (Timeout 20 s; API Gateway's integration limit is 30 s) reads the secret, then
writes the table (a conditional put, and after a failed condition a consistent read and a
conflict update, up to three times when the item vanishes), then, if the table failed, sends to
the fallback queue. The secret and the table must end early enough for one full attempt of the
queue send and the margin: `callback_deadlines`. A stall anywhere thus ends in the documented
answer: 200 "queued" when only the table failed, 503 when the secret or both stores did.

FallbackDrainFunction (Timeout 30 s, a batch of messages) writes each message with the same
put; the messages there is no time for are reported as failures and redelivered by SQS:
`drain_deadlines`.

ArchiveFunction, ArchiveWorkFunction, ReconcileFunction (900 s) set no deadline: the calls around
one transfer (secret, table, one S3 call, the lifecycle event) have a static worst case far
below it. The transfer itself lasts as long as the recording is large (media and part timeouts
bound each read and send, not the total). SweeperFunction (900 s) starts no item of its sweep
without the worst case of one batch's calls left (`_ONE_SWEEP_BATCH`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recording_archive.dal import aws
from recording_archive.dal.aws import ClientBudget, budget_of

# Room for the answer: work that is no AWS call (client creation, parsing, the signature, logs
# and metrics, DNS), measured in tens of milliseconds (bench/README.md).
CALLBACK_MARGIN_SECONDS = 1.0
DRAIN_MARGIN_SECONDS = 1.0


def callback_deadlines(remaining_ms: int) -> dict[str, float]:
    """Deadlines (time.monotonic()) for the callback's calls, from the invocation's time left."""
    answer_by = time.monotonic() + remaining_ms / 1000 - CALLBACK_MARGIN_SECONDS
    # One full attempt of the queue send stays possible after the secret and the table.
    stores_by = answer_by - aws.QUEUE.attempt_seconds()
    # The session index's entries (KMS GenerateMac, DynamoDB PutItem) come after the event is
    # stored: the same deadline as the table; the guard drops the calls there is no time for.
    return {
        aws.SECRETS_MANAGER: stores_by,
        aws.DYNAMODB: stores_by,
        aws.KMS: stores_by,
        aws.SQS: answer_by,
    }


def drain_deadlines(remaining_ms: int) -> dict[str, float]:
    answer_by = time.monotonic() + remaining_ms / 1000 - DRAIN_MARGIN_SECONDS
    return {aws.DYNAMODB: answer_by, aws.KMS: answer_by}


# --- the figures the infrastructure test checks ---------------------------------------------


def _secret_client() -> Any:
    return aws.secrets_provider().client


@dataclass(frozen=True)
class Step:
    call: str
    client: Callable[[], Any]  # the factory the handler takes the client from
    # Under a deadline: True if every attempt must fit, False if the first one must.
    every_attempt: bool = False

    def budget(self) -> ClientBudget:
        return budget_of(self.client())

    def needed_seconds(self) -> float:
        budget = self.budget()
        return budget.worst_case_seconds() if self.every_attempt else budget.attempt_seconds()


@dataclass(frozen=True)
class DeadlinePath:
    """A path under deadlines. The guard makes it end in time whatever the budgets; what can go
    wrong is a budget so large that the deadline leaves no room for the path's attempts (every
    request would then be refused for lack of time). `needed` must fit in the window the
    deadline leaves, and one attempt of each `reserved` step after it, with the margin, inside
    `Timeout`."""

    needed: tuple[Step, ...]
    reserved: tuple[Step, ...]
    margin_seconds: float

    def window_seconds(self, timeout: float) -> float:
        return timeout - self.margin_seconds - self.reserved_seconds()

    def reserved_seconds(self) -> float:
        return sum(step.budget().attempt_seconds() for step in self.reserved)

    def needed_seconds(self) -> float:
        return sum(step.needed_seconds() for step in self.needed)


@dataclass(frozen=True)
class StaticPath:
    """A path without a deadline: every call at its worst, one after the other."""

    steps: tuple[Step, ...]
    margin_seconds: float

    def worst_case_seconds(self) -> float:
        return sum(step.budget().worst_case_seconds() for step in self.steps) + self.margin_seconds


_AROUND_ONE_TRANSFER = (
    Step("secretsmanager GetSecretValue (media auth)", _secret_client),
    Step("dynamodb GetItem / Query", aws.dynamodb_client),
    Step("s3 one call (PutObject, UploadPart, CompleteMultipartUpload, tagging)", aws.s3_client),
    Step("events PutEvents (RecordingArchived / RecordingFailed)", aws.events_client),
    Step("dynamodb UpdateItem (archived or failed attempt)", aws.dynamodb_client),
)

# One batch of a sweep (logic/dispatch.py): the page read, a mark per key (or, for an event that
# cannot be archived, its RecordingFailed and FAILED), one SendMessageBatch tried SEND_TRIES
# times, and a mark given back when it never went out (each only with the margin still left).
# The sweep starts no item or release with less than this left (dispatch.STOP_MARGIN_MS).
_ONE_SWEEP_BATCH = (
    Step("dynamodb Query (a page of ArchiveQueueIndex)", aws.dynamodb_client),
    *(Step(f"dynamodb UpdateItem (mark {n + 1})", aws.dynamodb_client) for n in range(10)),
    Step("events PutEvents (RecordingFailed of a not archivable event)", aws.events_client),
    *(Step(f"sqs SendMessageBatch (try {n + 1})", aws.sqs_client) for n in range(3)),
    Step(
        "dynamodb UpdateItem (a mark given back; each one only with the margin left)",
        aws.dynamodb_client,
    ),
)

PATHS: dict[str, DeadlinePath | StaticPath] = {
    "CallbackFunction": DeadlinePath(
        needed=(
            # Every attempt of the secret read (without it the answer is a 503, which Plivo
            # does not retry), and then still one attempt of the put.
            Step("secretsmanager GetSecretValue (cache miss)", _secret_client, every_attempt=True),
            Step("dynamodb PutItem (conditional), first attempt", aws.dynamodb_client),
        ),
        reserved=(Step("sqs SendMessage (the table failed)", aws.sqs_client),),
        margin_seconds=CALLBACK_MARGIN_SECONDS,
    ),
    "FallbackDrainFunction": DeadlinePath(
        needed=(Step("dynamodb PutItem (conditional), first attempt", aws.dynamodb_client),),
        reserved=(),
        margin_seconds=DRAIN_MARGIN_SECONDS,
    ),
    "ArchiveFunction": StaticPath(steps=_AROUND_ONE_TRANSFER, margin_seconds=1.0),
    "ArchiveWorkFunction": StaticPath(steps=_AROUND_ONE_TRANSFER, margin_seconds=1.0),
    "SweeperFunction": StaticPath(steps=_ONE_SWEEP_BATCH, margin_seconds=1.0),
    "ReconcileFunction": StaticPath(steps=_AROUND_ONE_TRANSFER, margin_seconds=1.0),
}
