"""Fixtures shared by every test: safe AWS defaults and one moto server on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

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
