"""boto3 clients, created once per execution environment and reused (never at import time).

Timeouts and retries are set for a callback path that must answer Plivo well within its own
timeouts (connect 2 s, read up to 40 s): a stalled table write gives up after a few seconds and
the event goes to the fallback queue instead.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@cache
def _session() -> Any:
    import boto3

    return boto3.session.Session()


def _config(connect: float, read: float, attempts: int) -> Any:
    from botocore.config import Config

    return Config(
        connect_timeout=connect,
        read_timeout=read,
        retries={"mode": "standard", "max_attempts": attempts},
        tcp_keepalive=True,
    )


@cache
def dynamodb_client() -> DynamoDBClient:
    client: DynamoDBClient = _session().client("dynamodb", config=_config(1.0, 3.0, 3))
    return client


@cache
def sqs_client() -> SQSClient:
    client: SQSClient = _session().client("sqs", config=_config(1.0, 3.0, 3))
    return client


@cache
def s3_client() -> S3Client:
    client: S3Client = _session().client("s3", config=_config(3.0, 60.0, 5))
    return client


@cache
def secrets_provider() -> SecretsProvider:
    """Powertools' Secrets Manager provider (with its value cache), on the shared session.

    Powertools' default provider opens a boto3 session of its own, which loads botocore's
    endpoint data a second time: about 60 ms of every cold start (bench/README.md). The client
    keeps botocore's default timeouts and retries, as the default provider has.
    """
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=_session().client("secretsmanager"))


def reset_clients() -> None:
    """Forget every cached client and provider (tests that switch endpoints)."""
    for fn in (_session, dynamodb_client, sqs_client, s3_client, secrets_provider):
        fn.cache_clear()
