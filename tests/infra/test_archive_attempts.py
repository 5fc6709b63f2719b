"""The archive attempts' time bounds against the template's Timeouts.

An attempt's lease is the invocation's remaining time plus a slack, taken from the Lambda context
at run time; an attempt made without a context (the CLI) gets Lambda's longest timeout. So the
template cannot make a lease too short; these tests keep the other constants in line with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recording_archive.config import ArchiveSettings
from recording_archive.handlers import reconcile
from recording_archive.logic.archive_recording import (
    DEFAULT_LEASE_SLACK_SECONDS,
    DEFAULT_STOP_MARGIN_SECONDS,
    LAMBDA_MAX_TIMEOUT_SECONDS,
)
from recording_archive_cli.local.functions import function_setting
from recording_archive_cli.local.template import load_template

TEMPLATE = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
ARCHIVING = ("ArchiveFunction", "ArchiveWorkFunction", "ReconcileFunction")


@pytest.mark.parametrize("logical_id", ARCHIVING)
def test_no_archiving_function_outlives_the_attempt_time_of_the_cli(logical_id: str) -> None:
    timeout = function_setting(TEMPLATE, logical_id, "Timeout", 3)
    # Lambda refuses more than 900 s; the CLI's attempts are bounded by the same figure.
    assert timeout <= LAMBDA_MAX_TIMEOUT_SECONDS
    # Room to transfer something before the stop margin: at least ten times the margin.
    assert timeout >= 10 * DEFAULT_STOP_MARGIN_SECONDS


def test_settings_defaults_are_the_logics() -> None:
    fields = ArchiveSettings.model_fields
    assert fields["archive_stop_margin_seconds"].default == DEFAULT_STOP_MARGIN_SECONDS
    assert fields["archive_lease_slack_seconds"].default == DEFAULT_LEASE_SLACK_SECONDS


@pytest.mark.parametrize("module", [reconcile])
def test_runs_stop_starting_attempts_before_an_attempt_would_be_cut_short(module: object) -> None:
    """The scheduled runs start no attempt with less than 5 minutes left, well above the
    margin at which a transfer stops."""
    stop_ms: int = module._STOP_WHEN_REMAINING_MS  # type: ignore[attr-defined]
    assert stop_ms / 1000 >= 5 * DEFAULT_STOP_MARGIN_SECONDS
