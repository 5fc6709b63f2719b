"""Signed fuzzing, part 4: the target (the real handler in this process, against moto over
HTTP), one case checked, and a whole run with its figures."""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from hypothesis import HealthCheck, example, given, settings

from tests.support.lambda_context import FakeLambdaContext
from tests.support.net import free_port
from tests.support.signed_fuzz.cases import Built, build, signed_event
from tests.support.signed_fuzz.checks import emf_documents, item_problems, metric_counts
from tests.support.signed_fuzz.spec import SEED_SPECS, Spec, specs

__all__ = [
    "Figures",
    "HandlerTarget",
    "Sent",
    "check_case",
    "reproducible",
    "run",
]


@dataclass
class Figures:
    inputs: int = 0
    answers: Counter[int] = field(default_factory=Counter)
    expected: Counter[str] = field(default_factory=Counter)
    stored_in_table: int = 0
    stored_via_queue: int = 0
    replays: int = 0
    lost: int = 0
    raw_mismatches: int = 0
    unexpected_answers: int = 0
    refusals_not_counted: int = 0
    failures: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs_tried": self.inputs,
            "answers": {str(k): v for k, v in sorted(self.answers.items())},
            "answers_5xx": sum(v for k, v in self.answers.items() if k >= 500),
            "expected_outcomes": dict(sorted(self.expected.items())),
            "stored_in_table": self.stored_in_table,
            "stored_via_fallback_queue": self.stored_via_queue,
            "replays": self.replays,
            "lost": self.lost,
            "raw_value_mismatches": self.raw_mismatches,
            "unexpected_answers": self.unexpected_answers,
            "refusals_not_counted": self.refusals_not_counted,
            "failures": self.failures[:20],
            "error": self.error,
        }


class HandlerTarget:
    """The CallbackFunction handler with its environment already applied (the template's, on
    moto); `table_down()` swaps in a table client that cannot connect, as in an outage."""

    def __init__(self, endpoint_url: str, table_name: str, queue_url: str, token: str) -> None:
        kw: dict[str, Any] = {"endpoint_url": endpoint_url, "region_name": "us-east-1"}
        self.token = token
        self.signatures: set[str] = set()  # every signature sent, for the log scan
        self.table_name = table_name
        self.queue_url = queue_url
        self._ddb = boto3.client("dynamodb", **kw)
        self._sqs = boto3.client("sqs", **kw)
        self._dead = boto3.client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{free_port()}",
            region_name="us-east-1",
            config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"max_attempts": 1}),
        )

    def invoke(self, event: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        """(status, JSON answer, what the invocation printed: its EMF documents)."""
        from recording_archive.handlers.recording_callback import lambda_handler

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            answer = lambda_handler(event, FakeLambdaContext())  # type: ignore[arg-type]
        body = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8")
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        return int(answer["statusCode"]), data if isinstance(data, dict) else {}, printed.getvalue()

    @contextlib.contextmanager
    def table_down(self, down: bool) -> Iterator[None]:
        from recording_archive.dal.events_table import RecordingEventStore
        from recording_archive.handlers import wiring

        if not down:
            yield
            return
        live = wiring.callback_dependencies()
        wiring.set_callback_dependencies(
            wiring.CallbackDependencies(
                settings=live.settings,
                store=RecordingEventStore(self._dead, self.table_name),
                fallback=live.fallback,
                credentials=live.credentials,
            )
        )
        try:
            yield
        finally:
            wiring.set_callback_dependencies(None)

    def items(self, session: uuid.UUID) -> list[dict[str, Any]]:
        from recording_archive.dal.events_table import deserialize_item

        found = self._ddb.query(
            TableName=self.table_name,
            KeyConditionExpression="SessionUUID = :s",
            ExpressionAttributeValues={":s": {"S": str(session)}},
            ConsistentRead=True,
        )["Items"]
        return [deserialize_item(item) for item in found]

    def take_queued(self) -> list[dict[str, Any]]:
        """Every message of the fallback queue, decoded, and deleted."""
        from recording_archive.dal.fallback_queue import decode_message

        out: list[dict[str, Any]] = []
        while True:
            got = self._sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30
            ).get("Messages", [])
            if not got:
                return out
            for message in got:
                out.append(decode_message(message["Body"]))
                self._sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


def _send(target: HandlerTarget, built: Built, event: dict[str, Any], figures: Figures) -> Sent:
    with target.table_down(built.spec.table_down):
        status, answer, printed = target.invoke(event)
        figures.inputs += 1
        figures.answers[status] += 1
        replayed = None
        # A replay while the table is down is queued again (the drain's idempotent put makes
        # it one event): replays are sent only while the table is up.
        if built.spec.replay and not built.spec.table_down and status == 200:
            replayed = target.invoke(event)[:2]
            figures.inputs += 1
            figures.replays += 1
            figures.answers[replayed[0]] += 1
    return Sent(status, answer, metric_counts(emf_documents(printed)), replayed)


@dataclass
class Sent:
    status: int
    answer: dict[str, Any]
    metrics: Counter[tuple[str, str]]
    replayed: tuple[int, dict[str, Any]] | None


def _answer_problems(built: Built, sent: Sent, figures: Figures) -> list[str]:
    want_status, want_reason = built.expected
    problems: list[str] = []
    if sent.status >= 500:
        problems.append(f"HTTP {sent.status} for a signed request")
    # The answer names the error code; a 422's finer reason is the metric's dimension.
    want_error = "invalid_callback" if want_status == 422 else want_reason
    got_error = sent.answer.get("error", "")
    if (sent.status, got_error) != (want_status, want_error):
        figures.unexpected_answers += 1
        problems.append(f"HTTP {sent.status} {got_error!r}, expected {want_status} {want_error!r}")
    counted = sent.metrics[("CallbackRejected", want_reason)]
    if want_status != 200 and sent.status == want_status and counted != 1:
        figures.refusals_not_counted += 1
        problems.append(f"refusal not counted once as CallbackRejected/{want_reason}")
    return problems


def _storage_problems(
    target: HandlerTarget, built: Built, sent: Sent, figures: Figures
) -> list[str]:
    items = target.items(built.session)
    queued = target.take_queued()
    if sent.status != 200:
        return (
            [f"HTTP {sent.status} but {len(items) + len(queued)} written"]
            if items or queued
            else []
        )
    problems: list[str] = []
    down = built.spec.table_down
    where = "queued" if down else "stored"
    if sent.answer.get("status") != where:
        problems.append(f"answered {sent.answer.get('status')!r}, expected {where!r}")
    kept, other = (queued, items) if down else (items, queued)
    if len(kept) != 1 or other:
        figures.lost += 1
        return [*problems, f"200 but stored {len(kept)} times ({len(other)} elsewhere)"]
    if down:
        figures.stored_via_queue += 1
    else:
        figures.stored_in_table += 1
    item_issues = item_problems(built, kept[0])
    if item_issues:
        figures.raw_mismatches += 1
    problems += item_issues
    if sent.replayed is not None and (sent.replayed[0], sent.replayed[1].get("status")) != (
        200,
        "duplicate",
    ):
        problems.append(f"replay answered {sent.replayed[0]} {sent.replayed[1].get('status')!r}")
    return problems


def check_case(target: HandlerTarget, built: Built, figures: Figures, nonce: str) -> list[str]:
    """Send one case (twice if it is a replay) and return what does not hold."""
    event = signed_event(built, target.token, nonce)
    target.signatures.add(event["headers"]["x-plivo-signature-v3"])
    want_status, want_reason = built.expected
    figures.expected[f"{want_status} {want_reason}".strip()] += 1
    sent = _send(target, built, event, figures)
    return _answer_problems(built, sent, figures) + _storage_problems(target, built, sent, figures)


def reproducible(max_examples: int) -> settings:
    """Derandomised, no example database, no deadline (shared machine), no health checks (a
    handler invocation is slower than hypothesis expects of a test)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def run(target: HandlerTarget, *, max_examples: int) -> Figures:
    """Run the signed fuzzing; every problem is recorded, and the first one shrunk by
    hypothesis becomes `figures.error`."""
    figures = Figures()
    nonces = iter(range(10**12))

    def check(spec: Spec) -> None:
        built = build(copy.deepcopy(spec))
        problems = check_case(target, built, figures, f"{next(nonces):020d}")
        if problems:
            figures.failures.append(
                f"{built.spec.kind} {built.expected}: {'; '.join(problems)}"[:600]
            )
        assert not problems, problems

    for seed in reversed(SEED_SPECS):
        check = example(spec=seed)(check)
    try:
        reproducible(max_examples)(given(spec=specs())(check))()
    except Exception as exc:  # the shrunk failure, reported as a figure
        figures.error = f"{type(exc).__name__}: {str(exc)[:800]}"
    return figures
