"""Each function's time budget, from its live clients' config, fits its Timeout in template.yaml.

The figures come from `recording_archive.time_budgets` (each function's path and deadlines) and
`recording_archive.dal.aws` (each client's timeouts and attempts, and the arithmetic). The
backoff constants are checked against botocore's own ExponentialBackoff, so a botocore upgrade
that changes them fails here too. The deadline guard itself is exercised against stalled
endpoints in tests/integration/test_callback_stalls.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries.standard import (
    ExponentialBackoff,
    RetryContext,
    RetryEventAdapter,
    ThrottlingErrorDetector,
)

from recording_archive import time_budgets
from recording_archive.dal import aws
from recording_archive.dal.aws import ClientBudget, budget_of
from recording_archive.time_budgets import PATHS, DeadlinePath, StaticPath
from recording_archive_cli.local.functions import function_setting
from recording_archive_cli.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
FUNCTIONS = sorted(
    name
    for name, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
)
DEADLINE_FUNCTIONS = sorted(k for k, v in PATHS.items() if isinstance(v, DeadlinePath))
STATIC_FUNCTIONS = sorted(k for k, v in PATHS.items() if isinstance(v, StaticPath))


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    """Clients are only built here (no request is sent); each test builds its own."""
    aws.reset_clients()
    yield
    aws.reset_clients()


def timeout_of(logical_id: str) -> int:
    return function_setting(TEMPLATE, logical_id, "Timeout", 3)


def deadline_path(logical_id: str) -> DeadlinePath:
    path = PATHS[logical_id]
    assert isinstance(path, DeadlinePath)
    return path


def static_path(logical_id: str) -> StaticPath:
    path = PATHS[logical_id]
    assert isinstance(path, StaticPath)
    return path


def test_every_function_has_a_path() -> None:
    assert sorted(PATHS) == FUNCTIONS
    assert DEADLINE_FUNCTIONS == ["CallbackFunction", "FallbackDrainFunction"]


@pytest.mark.parametrize("logical_id", DEADLINE_FUNCTIONS)
def test_deadline_leaves_room_for_the_path(logical_id: str) -> None:
    path = deadline_path(logical_id)
    window = path.window_seconds(timeout_of(logical_id))
    needed = path.needed_seconds()
    detail = "; ".join(f"{s.call}: {s.needed_seconds():.1f} s" for s in path.needed)
    assert needed <= window, (
        f"{logical_id}: the calls that must fit before the deadline need {needed:.1f} s, the "
        f"deadline leaves {window:.1f} s of Timeout {timeout_of(logical_id)} s: {detail}"
    )


@pytest.mark.parametrize("logical_id", STATIC_FUNCTIONS)
def test_static_worst_case_fits_the_timeout(logical_id: str) -> None:
    path = static_path(logical_id)
    worst = path.worst_case_seconds()
    detail = "; ".join(f"{s.call}: {s.budget().worst_case_seconds():.1f} s" for s in path.steps)
    assert worst <= timeout_of(logical_id), (
        f"{logical_id}: worst case {worst:.1f} s exceeds Timeout {timeout_of(logical_id)} s: "
        f"{detail}"
    )


def test_sweeper_and_reconcile_stop_margin_holds_the_calls_of_one_item() -> None:
    from recording_archive.handlers import reconcile
    from recording_archive.logic import dispatch

    for stop_ms, logical_id in (
        (dispatch.STOP_MARGIN_MS, "SweeperFunction"),
        (reconcile._STOP_WHEN_REMAINING_MS, "ReconcileFunction"),
    ):
        assert static_path(logical_id).worst_case_seconds() <= stop_ms / 1000, logical_id
    # And the margin leaves the sweep most of its Timeout.
    assert timeout_of("SweeperFunction") / 2 >= dispatch.STOP_MARGIN_MS / 1000


def test_callback_figures() -> None:
    """The arithmetic written out once: a change to a budget must update this on purpose."""
    path = deadline_path("CallbackFunction")
    # 20 s - 1 s margin - one queue attempt (2 x 0.5 + 1.0)
    assert path.window_seconds(timeout_of("CallbackFunction")) == pytest.approx(17.0)
    # secret: 2 x (2 x 0.5 + 1.0) + min(2^0, 20) + 5 = 10; then one put attempt: 2
    assert path.needed_seconds() == pytest.approx(12.0)


def test_callback_deadlines_follow_the_time_left() -> None:
    import time

    before = time.monotonic()
    deadlines = time_budgets.callback_deadlines(20_000)
    after = time.monotonic()
    answer_by = deadlines[aws.SQS]
    assert before + 19.0 <= answer_by <= after + 19.0
    assert deadlines[aws.DYNAMODB] == deadlines[aws.SECRETS_MANAGER] == answer_by - 2.0
    # The session index's KMS calls come after the stored event, under the table's deadline.
    assert deadlines[aws.KMS] == deadlines[aws.DYNAMODB]
    drain = time_budgets.drain_deadlines(30_000)
    drain_by = drain[aws.DYNAMODB]
    assert drain[aws.KMS] == drain_by and set(drain) == {aws.DYNAMODB, aws.KMS}
    assert before + 29.0 <= drain_by <= time.monotonic() + 29.0


def test_live_clients_have_the_budgets() -> None:
    assert budget_of(aws.dynamodb_client()) == aws.TABLE
    assert budget_of(aws.sqs_client()) == aws.QUEUE
    assert budget_of(aws.s3_client()) == aws.OBJECTS
    assert budget_of(aws.secrets_provider().client) == aws.SECRET
    assert budget_of(aws.events_client()) == aws.EVENTS
    assert budget_of(aws.kms_client()) == aws.NUMBER_KEY


def test_a_raised_budget_fails_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's defaults (the secret's client before it had a budget: 60 s connect, 60 s read,
    3 attempts), or one more secret attempt, leave the callback no room."""
    import boto3

    callback = deadline_path("CallbackFunction")
    window = callback.window_seconds(timeout_of("CallbackFunction"))
    default = boto3.session.Session().client("secretsmanager")
    assert budget_of(default) == ClientBudget(60.0, 60.0, 3)
    for secret in (budget_of(default), ClientBudget(0.5, 1.0, 3)):
        monkeypatch.setattr(aws, "SECRET", secret)
        aws.reset_clients()
        assert callback.needed_seconds() > window, secret
    monkeypatch.setattr(aws, "OBJECTS", ClientBudget(60.0, 60.0, 5))
    aws.reset_clients()
    assert static_path("ArchiveWorkFunction").worst_case_seconds() > timeout_of(
        "ArchiveWorkFunction"
    )


def test_budget_of_refuses_modes_without_a_bound() -> None:
    import boto3
    from botocore.config import Config

    for mode in ("legacy", "adaptive"):
        client = boto3.session.Session().client("sqs", config=Config(retries={"mode": mode}))
        with pytest.raises(ValueError, match="no bounded worst case"):
            budget_of(client)


def test_max_attempts_key_means_retries() -> None:
    """Config's `max_attempts` counts retries: 3 means 4 attempts (what the old budgets used)."""
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 3})
    )
    assert budget_of(client).total_attempts == 4
    default = boto3.session.Session().client("dynamodb")
    assert budget_of(default).total_attempts == 4  # botocore's DynamoDB default


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 6, 9])
def test_backoff_bound_is_botocores(attempt: int) -> None:
    """The longest botocore's standard mode sleeps after attempt `attempt`: a throttling answer
    (scale 1 s) asking for a very long x-amz-retry-after, with the random factor at 1."""
    backoff = ExponentialBackoff(
        random=lambda: 1.0,
        service_name="dynamodb",
        throttling_detector=ThrottlingErrorDetector(RetryEventAdapter()),
    )
    response: Any = AWSResponse(
        "https://dynamodb.us-east-1.amazonaws.com/",
        400,
        {"x-amz-retry-after": str(3_600_000)},
        None,
    )
    context = RetryContext(
        attempt_number=attempt,
        parsed_response={"Error": {"Code": "ThrottlingException"}},
        http_response=response,
    )
    assert backoff.delay_amount(context) == pytest.approx(ClientBudget.backoff_before(attempt + 1))
    assert ClientBudget.backoff_before(attempt + 1) == pytest.approx(
        min(2 ** (attempt - 1), 20) + 5
    )
    one_more = ClientBudget(1.0, 1.0, attempt + 1).worst_case_seconds()
    assert one_more - ClientBudget(1.0, 1.0, attempt).worst_case_seconds() == pytest.approx(
        3.0 + ClientBudget.backoff_before(attempt + 1)
    )
