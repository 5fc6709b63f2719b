"""boto3 clients, created once per execution environment and reused (never at import time).

Every client has explicit timeouts and an explicit number of attempts (`ClientBudget`), and a
deadline guard: inside `call_deadlines({...})` no attempt of a call starts unless it can end, its
timeouts exhausted, by the deadline given for its service, and no retry sleeps past it
(`DeadlineExceededError` instead). The callback and the drain set deadlines from the time their
invocation has left (`recording_archive.time_budgets`), so a stalled AWS endpoint makes them give
their answer, never die at the Lambda timeout, however many calls their path makes.
tests/infra/test_time_budgets.py checks the figures against each function's `Timeout`.

What bounds one attempt (botocore 1.44, urllib3 2.x):
- connect timeout: the TCP connect, and separately the TLS handshake and each blocking send of
  the request body (urllib3 keeps the connect timeout on the socket until the request is sent);
  an attempt can thus spend up to twice the connect timeout before its request is out;
- read timeout: each wait for the answer's bytes (a stall; an endpoint that trickles bytes within
  the timeout is not bounded by any client setting, and AWS endpoints do not);
- attempts: `total_max_attempts` (the Config key `max_attempts` would mean *retries*, one more
  attempt than it says), in botocore's standard retry mode, which retries timeouts, connection
  errors, throttling and 5xx. Before attempt n (n >= 2) it sleeps at most min(2^(n-2), 20) s
  (throttling scale 1 s, MAX_BACKOFF 20 s), plus up to 5 s more when the answer carries
  `x-amz-retry-after`: botocore/retries/standard.py, ExponentialBackoff.delay_amount.
- Not bounded here: DNS resolution (the resolver's own timeout) and client creation (tens of ms,
  bench/README.md); each function's margin covers them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

# botocore/retries/standard.py, ExponentialBackoff: base 2, scale 1 s for throttling errors
# (the largest), capped at 20 s; an `x-amz-retry-after` answer adds at most 5 s.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 20.0
RETRY_AFTER_EXTRA_SECONDS = 5.0
# botocore's standard mode without an explicit count (retries/standard.py).
_DEFAULT_ATTEMPTS = {"dynamodb": 4, "dynamodb-streams": 4}
_DEFAULT_ATTEMPTS_OTHER = 3

# Keys of `call_deadlines`: botocore's hyphenated service ids.
DYNAMODB = "dynamodb"
SQS = "sqs"
SECRETS_MANAGER = "secrets-manager"
KMS = "kms"


class DeadlineExceededError(BotoCoreError):
    """No time is left for another attempt of this call before its deadline. A BotoCoreError
    (and not an HTTPClientError, which botocore would retry): callers treat it as the service
    being unavailable, as they treat a timeout."""

    fmt = "no time left for an attempt of {operation} before the deadline"


@dataclass(frozen=True)
class ClientBudget:
    """Timeouts (seconds) and total attempts of one client."""

    connect_timeout: float
    read_timeout: float
    total_attempts: int

    def config(self) -> Config:
        from botocore.config import Config

        return Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            # total_max_attempts counts the first attempt; "standard" bounds the backoff.
            retries={"mode": "standard", "total_max_attempts": self.total_attempts},
            tcp_keepalive=True,
        )

    def attempt_seconds(self) -> float:
        """The longest one attempt can take when the endpoint stalls."""
        return 2 * self.connect_timeout + self.read_timeout

    @staticmethod
    def backoff_before(attempt: int) -> float:
        """The longest botocore sleeps before attempt number `attempt` (2, 3, ...)."""
        scaled = BACKOFF_BASE_SECONDS * (1 << (attempt - 2))
        return min(scaled, BACKOFF_CAP_SECONDS) + RETRY_AFTER_EXTRA_SECONDS

    def worst_case_seconds(self) -> float:
        """The longest one call can take, without a deadline, when the endpoint stalls,
        throttles or fails."""
        backoff = sum(self.backoff_before(n) for n in range(2, self.total_attempts + 1))
        return self.total_attempts * self.attempt_seconds() + backoff


def budget_of(client: Any) -> ClientBudget:
    """The budget a live client really has (its resolved config, defaults included)."""
    cfg = client.meta.config
    retries = dict(cfg.retries or {})
    mode = retries.get("mode", "standard")
    if mode != "standard":  # legacy has no backoff cap; adaptive adds rate-limiter waits
        raise ValueError(f"retry mode {mode!r} has no bounded worst case")
    service = client.meta.service_model.service_id.hyphenize()
    attempts = retries.get(
        "total_max_attempts", _DEFAULT_ATTEMPTS.get(service, _DEFAULT_ATTEMPTS_OTHER)
    )
    return ClientBudget(float(cfg.connect_timeout), float(cfg.read_timeout), int(attempts))


# DynamoDB answers a PutItem/UpdateItem/GetItem in single-digit milliseconds
# (https://aws.amazon.com/dynamodb/): 1 s of read timeout is a stall, not a slow answer. In-region
# TCP and TLS take milliseconds; 0.5 s allows for a CPU-starved cold start. Three attempts,
# botocore's standard count: a write applied whose answer was lost is retried and meets its own
# item (a duplicate); under a deadline the guard drops the retries there is no time for.
TABLE = ClientBudget(connect_timeout=0.5, read_timeout=1.0, total_attempts=3)
# The callback's fallback queue: SendMessage answers in tens of milliseconds.
QUEUE = ClientBudget(connect_timeout=0.5, read_timeout=1.0, total_attempts=3)
# GetSecretValue (Secrets Manager decrypts with KMS) answers in well under a second; the read
# happens once per SECRET_MAX_AGE_SECONDS per environment, not per callback. Two attempts: both
# fit in the callback's 20 s with a table attempt after them (10 s at worst, 6 s of it a
# throttled retry's backoff); a third would not.
SECRET = ClientBudget(connect_timeout=0.5, read_timeout=1.0, total_attempts=2)
# KMS GenerateMac of the session index's number entries (dal/session_index.py): a symmetric
# operation that KMS answers in milliseconds. The event is already stored when it is called, and
# a failure only leaves entries for `index rebuild`: two attempts, under the callback's deadline.
NUMBER_KEY = ClientBudget(connect_timeout=0.5, read_timeout=1.0, total_attempts=2)
# S3, archive functions only (900 s, no deadline). The connect timeout is also the limit on each
# blocking send of a part's body (up to 512 MiB parts): 3 s. After the last byte, S3 answers an
# UploadPart or CompleteMultipartUpload within seconds: 20 s of read timeout, 3 attempts.
OBJECTS = ClientBudget(connect_timeout=3.0, read_timeout=20.0, total_attempts=3)
# EventBridge PutEvents of one lifecycle event (dal/lifecycle_events.py), from the archive
# functions (900 s, no deadline) and the operator CLI. It answers in tens of milliseconds, but
# a publish that fails costs the archive attempt (retried later with one more download: at least
# once, logic/archive_recording.py), so the timeouts are generous rather than tight: 2 s connect,
# 5 s read. Three attempts (botocore's standard count; it retries throttling and 5xx of the whole
# call, not a failed entry). Worst case 3 x 9 s + 6 s + 7 s of backoff = 40 s.
EVENTS = ClientBudget(connect_timeout=2.0, read_timeout=5.0, total_attempts=3)

_deadlines: ContextVar[Mapping[str, float]] = ContextVar(
    "aws_call_deadlines", default=MappingProxyType({})
)


@contextmanager
def call_deadlines(deadlines: Mapping[str, float]) -> Iterator[None]:
    """Within the block, calls to each service in `deadlines` (time.monotonic() values) end by
    its deadline: an attempt that could not finish before it is not made."""
    token = _deadlines.set(MappingProxyType(dict(deadlines)))
    try:
        yield
    finally:
        _deadlines.reset(token)


def _guard(client: Any, budget: ClientBudget) -> Any:
    """Register the deadline guard on `client` (see the module docstring); return the client."""
    from botocore.retries.standard import RetryEventAdapter, StandardRetryConditions

    service = client.meta.service_model.service_id.hyphenize()
    retryable = StandardRetryConditions(max_attempts=budget.total_attempts)
    adapter = RetryEventAdapter()

    def before_send(**kwargs: Any) -> None:
        deadline = _deadlines.get().get(service)
        if deadline is not None and time.monotonic() + budget.attempt_seconds() > deadline:
            # Raised in before-send, botocore hands it to its retry check, which does not
            # retry it (not transient), and the call raises it.
            raise DeadlineExceededError(operation=f"{service} (first attempt)")

    def needs_retry(attempts: int, **kwargs: Any) -> None:
        deadline = _deadlines.get().get(service)
        if deadline is None:
            return
        if not retryable.is_retryable(adapter.create_retry_context(attempts=attempts, **kwargs)):
            return  # botocore will not retry either: its answer or error stands
        nxt = attempts + 1
        if time.monotonic() + budget.backoff_before(nxt) + budget.attempt_seconds() > deadline:
            raise DeadlineExceededError(operation=f"{service} (attempt {nxt})")

    client.meta.events.register(f"before-send.{service}", before_send)
    client.meta.events.register(f"needs-retry.{service}", needs_retry)
    return client


@cache
def _session() -> Any:
    import boto3

    return boto3.session.Session()


@cache
def dynamodb_client() -> DynamoDBClient:
    client: DynamoDBClient = _guard(_session().client("dynamodb", config=TABLE.config()), TABLE)
    return client


@cache
def sqs_client() -> SQSClient:
    client: SQSClient = _guard(_session().client("sqs", config=QUEUE.config()), QUEUE)
    return client


@cache
def kms_client() -> KMSClient:
    """Created on the first number to blind, never at import (cold start)."""
    client: KMSClient = _guard(_session().client("kms", config=NUMBER_KEY.config()), NUMBER_KEY)
    return client


@cache
def s3_client() -> S3Client:
    client: S3Client = _session().client("s3", config=OBJECTS.config())
    return client


@cache
def events_client() -> EventBridgeClient:
    client: EventBridgeClient = _session().client("events", config=EVENTS.config())
    return client


@cache
def secrets_provider() -> SecretsProvider:
    """Powertools' Secrets Manager provider (with its value cache), on the shared session.

    Powertools' default provider opens a boto3 session of its own, which loads botocore's
    endpoint data a second time: about 60 ms of every cold start (bench/README.md). Its client
    would also keep botocore's defaults (60 s connect, 60 s read, 3 attempts: minutes, against
    the callback's 20 s); it gets the SECRET budget and the deadline guard instead.
    """
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    client = _session().client("secretsmanager", config=SECRET.config())
    return SecretsProvider(boto3_client=_guard(client, SECRET))


def reset_clients() -> None:
    """Forget every cached client and provider (tests that switch endpoints)."""
    for fn in (
        _session,
        dynamodb_client,
        sqs_client,
        kms_client,
        s3_client,
        events_client,
        secrets_provider,
    ):
        fn.cache_clear()
