"""Fixtures shared by every test: safe AWS defaults, one moto server on loopback, and the
recorder of the AWS calls the functions make (tests/infra/test_permissions.py checks them
against the roles after every other test has run)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from recording_archive_cli.local import aws_call_log
from tests.support.moto_server import reset_moto, running_moto_server

# No test may ever reach a real AWS account: dummy credentials, a fixed region, and no profile.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "PlivoRecordingArchive",
        "POWERTOOLS_DEV": "false",
    }
)
os.environ.pop("AWS_PROFILE", None)

# Every AWS call a handler makes, in this process and in `recording-archive local`'s workers
# (they inherit the variable), goes to one JSON-lines file per session. Installed at import, before
# any test module creates a boto3 session. A file named by the caller is kept; ours is removed.
_OWN_CALL_LOG: str | None = None
if not aws_call_log.enabled_path():
    _fd, _OWN_CALL_LOG = tempfile.mkstemp(prefix="aws-calls-", suffix=".jsonl")
    os.close(_fd)
    os.environ[aws_call_log.CALL_LOG_ENV] = _OWN_CALL_LOG
aws_call_log.install()

PERMISSION_TEST_FILE = "tests/infra/test_permissions.py"
RECORDED_CALLS_TEST_PREFIX = "test_recorded_calls"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The check of the recorded calls runs after every test that records calls."""
    last = [
        item
        for item in items
        if item.nodeid.startswith(PERMISSION_TEST_FILE)
        and item.name.startswith(RECORDED_CALLS_TEST_PREFIX)
    ]
    if last:
        items[:] = [item for item in items if item not in last] + last


def pytest_sessionfinish() -> None:
    if _OWN_CALL_LOG:
        Path(_OWN_CALL_LOG).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server for the whole run; each test that uses `aws` starts from a reset state."""
    with running_moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 (through AWS_ENDPOINT_URL) at a freshly reset moto server."""
    reset_moto(moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint
