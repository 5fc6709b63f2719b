"""Integration fixtures: the stack's resources created in moto from template.yaml itself."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from recording_archive import config
from recording_archive.dal import aws as aws_clients
from recording_archive_cli.local_resources import (
    LocalResources,
    create_local_resources,
    function_environment,
)
from tests.support.lambda_context import FakeLambdaContext

TOKEN = "test-auth-token-0123456789abcdef"
SECOND_TOKEN = "subaccount-token-fedcba9876543210"


def clear_caches() -> None:
    aws_clients.reset_clients()
    for fn in (
        config.callback_settings,
        config.table_settings,
        config.archive_settings,
        config.sweeper_settings,
    ):
        fn.cache_clear()
    from aws_lambda_powertools.utilities import parameters

    from recording_archive.handlers import fallback_drain, recording_callback

    parameters.clear_caches()
    recording_callback.default_dependencies.cache_clear()
    recording_callback._deps = None
    fallback_drain.default_store.cache_clear()


@pytest.fixture
def resources(aws: str) -> LocalResources:
    return create_local_resources(aws, auth_tokens=[TOKEN, SECOND_TOKEN])


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
        clear_caches()
        return env

    clear_caches()
    yield apply
    clear_caches()


def set_secret(resources: LocalResources, value: dict[str, object]) -> None:
    sm = boto3.client("secretsmanager", endpoint_url=resources.endpoint_url)
    sm.put_secret_value(SecretId=resources.secret_arn, SecretString=json.dumps(value))
    clear_caches()


def scan_items(resources: LocalResources) -> list[dict[str, object]]:
    ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
    return ddb.scan(TableName=resources.table_name, ConsistentRead=True)["Items"]
