"""The moto resources of integration tests (created from template.yaml): tokens, secret, items.

`set_secret` resets the composition root (recording_archive.handlers.wiring.reset), so that the
next handler call reads the new secret.
"""

from __future__ import annotations

import json

import boto3

from recording_archive.handlers import wiring
from recording_archive_cli.local.resources import LocalResources

TOKEN = "test-auth-token-0123456789abcdef"
SECOND_TOKEN = "subaccount-token-fedcba9876543210"


def set_secret(resources: LocalResources, value: dict[str, object]) -> None:
    sm = boto3.client("secretsmanager", endpoint_url=resources.endpoint_url)
    sm.put_secret_value(SecretId=resources.secret_arn, SecretString=json.dumps(value))
    wiring.reset()


def scan_items(resources: LocalResources) -> list[dict[str, object]]:
    ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)
    return ddb.scan(TableName=resources.table_name, ConsistentRead=True)["Items"]
