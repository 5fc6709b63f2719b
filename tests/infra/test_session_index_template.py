"""The session index in template.yaml (issue 15): its table, its HMAC key, who may write it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recording_archive_cli.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
WRITERS = ("CallbackFunctionRole", "FallbackDrainFunctionRole")
# Reconciled events carry no phone field: the table, not the key.
DAY_WRITERS = ("ReconcileFunctionRole",)


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    res: dict[str, Any] = load_template(ROOT / "template.yaml")["Resources"]
    return res


def test_index_table_is_kept_encrypted_and_expires_with_its_events(
    resources: dict[str, Any],
) -> None:
    table = resources["IndexTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ExpiresAt", "Enabled": True}
    assert props["SSESpecification"]["KMSMasterKeyId"] == {"Ref": "DataKey"}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["DeletionProtectionEnabled"] is True
    assert "StreamSpecification" not in props and "GlobalSecondaryIndexes" not in props


def test_number_key_is_an_hmac_key_with_its_alias(resources: dict[str, Any]) -> None:
    key = resources["NumberIndexKey"]
    assert key["DeletionPolicy"] == "Retain"
    assert key["Properties"]["KeySpec"] == "HMAC_256"
    assert key["Properties"]["KeyUsage"] == "GENERATE_VERIFY_MAC"
    alias = resources["NumberIndexKeyAlias"]["Properties"]
    assert alias == {
        "AliasName": {"Fn::Sub": "alias/${AWS::StackName}-number-index"},
        "TargetKeyId": {"Ref": "NumberIndexKey"},
    }


def _statements(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [
        s
        for policy in resources[role]["Properties"]["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
    ]


def _mentions(statement: dict[str, Any], logical_id: str) -> bool:
    return logical_id in repr(statement.get("Resource"))


def test_only_the_functions_that_store_events_write_the_index(resources: dict[str, Any]) -> None:
    roles = [k for k, v in resources.items() if v["Type"] == "AWS::IAM::Role"]
    for role in roles:
        on_index = [s for s in _statements(resources, role) if _mentions(s, "IndexTable")]
        on_key = [s for s in _statements(resources, role) if _mentions(s, "NumberIndexKey")]
        if role in WRITERS or role in DAY_WRITERS:
            assert [(s["Action"], s["Resource"]) for s in on_index] == [
                ("dynamodb:BatchWriteItem", {"Fn::GetAtt": ["IndexTable", "Arn"]})
            ]
            expected = [("kms:GenerateMac", {"Fn::GetAtt": ["NumberIndexKey", "Arn"]})]
            assert [(s["Action"], s["Resource"]) for s in on_key] == (
                expected if role in WRITERS else []
            )
        else:
            assert on_index == on_key == [], role


def test_outputs_name_the_index_and_its_key() -> None:
    outputs = load_template(ROOT / "template.yaml")["Outputs"]
    assert outputs["IndexTableName"]["Value"] == {"Ref": "IndexTable"}
    assert outputs["NumberIndexKeyArn"]["Value"] == {"Fn::GetAtt": ["NumberIndexKey", "Arn"]}
