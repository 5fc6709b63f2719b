"""Assertions on template.yaml for the compliance work: the audit table is append-only and out of
every function's reach (the bucket's Object Lock: test_template.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recording_archive_cli.local.template import load_template

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    res: dict[str, Any] = load_template(TEMPLATE_PATH)["Resources"]
    return res


def test_audit_table_shape(resources: dict[str, Any]) -> None:
    table = resources["AuditTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["KeySchema"] == [
        {"AttributeName": "AuditDay", "KeyType": "HASH"},
        {"AttributeName": "AuditId", "KeyType": "RANGE"},
    ]
    assert "TimeToLiveSpecification" not in props and "StreamSpecification" not in props
    assert props["SSESpecification"]["KMSMasterKeyId"] == {"Ref": "DataKey"}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["DeletionProtectionEnabled"] is True
    assert props["TableName"] == {"Fn::Sub": "${AWS::StackName}-AuditTable"}


def test_audit_table_denies_deletes_and_changes_to_everyone(resources: dict[str, Any]) -> None:
    policy = resources["AuditTable"]["Properties"]["ResourcePolicy"]["PolicyDocument"]
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert {"dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:DeleteTable"} <= set(
        statement["Action"]
    )
    # The table's own ARN (its fixed name), not some other table's.
    assert statement["Resource"]["Fn::Sub"].endswith(":table/${AWS::StackName}-AuditTable")


def test_no_function_role_reaches_the_audit_table(resources: dict[str, Any]) -> None:
    for logical_id, resource in resources.items():
        if resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            text = json.dumps(resource)
            assert "AuditTable" not in text, logical_id
        if resource["Type"] == "AWS::Serverless::Function":
            assert "AuditTable" not in json.dumps(resource), logical_id
