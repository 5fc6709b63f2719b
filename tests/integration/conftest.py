"""Integration fixtures: the stack's resources created in moto from template.yaml itself.

Helpers shared with other suites (tokens, `set_secret`, `scan_items`) live in
tests/support/moto_resources.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from recording_archive.handlers import wiring
from recording_archive_cli.local.functions import function_environment
from recording_archive_cli.local.resources import (
    DEFAULT_AUTH_ID,
    LocalResources,
    create_local_resources,
)
from tests.support.fake_plivo_api import FakePlivoApi
from tests.support.lambda_context import FakeLambdaContext
from tests.support.media_server import MediaServer
from tests.support.moto_resources import SECOND_TOKEN, TOKEN
from tests.support.operator_stack import Stack


@pytest.fixture
def resources(aws: str) -> LocalResources:
    return create_local_resources(aws, auth_tokens=[TOKEN, SECOND_TOKEN])


@pytest.fixture
def media() -> Iterator[MediaServer]:
    """A loopback media server (recordings the test adds), for one test."""
    with MediaServer() as server:
        yield server


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def function_env(resources: LocalResources, monkeypatch: pytest.MonkeyPatch) -> Iterator[callable]:  # type: ignore[valid-type]
    """Apply the template's environment of one function (plus overrides) to os.environ."""

    def apply(logical_id: str, **overrides: str) -> dict[str, str]:
        env = function_environment(logical_id, resources, overrides=overrides)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        wiring.reset()
        return env

    wiring.reset()
    yield apply
    wiring.reset()


@pytest.fixture
def plivo() -> Iterator[FakePlivoApi]:
    """A fake Plivo REST API on loopback (the operator commands' tests)."""
    with FakePlivoApi(auth_id=DEFAULT_AUTH_ID, auth_token=TOKEN) as server:
        yield server


@pytest.fixture
def stack(
    resources: LocalResources,
    function_env: Any,
    media: MediaServer,
    plivo: FakePlivoApi,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Stack]:
    """The operator commands' harness (tests/support/operator_stack.py)."""
    yield Stack(resources, function_env, media, plivo, capsys)
    wiring.reset()
