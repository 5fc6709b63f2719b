"""Assertions on template.yaml: what the code relies on and what security requires of it.

The template is read with the project's own CloudFormation loader (short tags in long form). What
each role grants is checked against the calls the code really makes in test_permissions.py; here,
the roles' shape: each function has its own role, no managed policy, and every resource is one of
the stack's own.

One module (over 500 lines): every assertion reads the same loaded template; the permission
checks proper are in test_permissions.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from recording_archive import config, observability
from recording_archive.logic.archive_recording import LAMBDA_MAX_TIMEOUT_SECONDS
from recording_archive_cli.local.filters import stream_filter_patterns
from recording_archive_cli.local.intrinsics import references
from recording_archive_cli.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

FUNCTIONS = (
    "CallbackFunction",
    "FallbackDrainFunction",
    "ArchiveFunction",
    "SweeperFunction",
    "ArchiveWorkFunction",
    "ReconcileFunction",
)
HANDLERS = {
    "CallbackFunction": "recording_archive.handlers.recording_callback.lambda_handler",
    "FallbackDrainFunction": "recording_archive.handlers.fallback_drain.lambda_handler",
    "ArchiveFunction": "recording_archive.handlers.archive_stream.lambda_handler",
    "SweeperFunction": "recording_archive.handlers.sweeper.lambda_handler",
    "ArchiveWorkFunction": "recording_archive.handlers.archive_work.lambda_handler",
    "ReconcileFunction": "recording_archive.handlers.reconcile.lambda_handler",
}
SETTINGS = {
    "CallbackFunction": config.CallbackSettings,
    "FallbackDrainFunction": config.TableSettings,
    "ArchiveFunction": config.ArchiveSettings,
    "SweeperFunction": config.SweeperSettings,
    "ArchiveWorkFunction": config.ArchiveWorkSettings,
    "ReconcileFunction": config.ReconcileSettings,
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = template["Resources"]
    return res


def props(resources: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    p: dict[str, Any] = resources[logical_id]["Properties"]
    return p


def canonical(value: Any) -> str:
    """A readable, comparable form of a policy Resource value."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        (fn, arg), *_ = value.items()
        if fn == "Ref":
            return str(arg)
        if fn == "Fn::GetAtt":
            return ".".join(arg)
        if fn == "Fn::Sub" and isinstance(arg, str):
            return arg
        if fn == "Fn::If":
            return f"If({arg[0]}, {canonical(arg[1])}, {canonical(arg[2])})"
    raise AssertionError(f"unexpected policy resource {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(resources: Mapping[str, Any], function: str) -> Iterator[dict[str, Any]]:
    role_id = props(resources, function)["Role"]["Fn::GetAtt"][0]
    role = resources[role_id]
    assert role["Type"] == "AWS::IAM::Role"
    attached = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"]["Roles"]
    ]
    for policy in [*role["Properties"]["Policies"], *attached]:
        for statement in policy["PolicyDocument"]["Statement"]:
            # No !If inside a policy: checkov skips its IAM checks for such a role. A grant a
            # parameter decides is an AWS::IAM::Policy resource with a Condition.
            assert "Fn::If" not in statement, statement
            yield statement


# --------------------------------------------------------------------------------------------
# Event store
# --------------------------------------------------------------------------------------------


def test_events_table_key_schema_and_types(resources: dict[str, Any]) -> None:
    table = props(resources, "EventsTable")
    assert table["KeySchema"] == [
        {"AttributeName": "SessionUUID", "KeyType": "HASH"},
        {"AttributeName": "SequenceNumber", "KeyType": "RANGE"},
    ]
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    # SequenceNumber is a number so that 10 sorts after 9.
    assert types == {
        "SessionUUID": "S",
        "SequenceNumber": "N",
        "ArchiveQueue": "S",
        "ArchiveDueAt": "N",
        "RecordingUUID": "S",
    }
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["DeletionProtectionEnabled"] is True
    assert resources["EventsTable"]["DeletionPolicy"] == "Retain"
    assert resources["EventsTable"]["UpdateReplacePolicy"] == "Retain"


def test_events_table_stream_pitr_sse_ttl(resources: dict[str, Any]) -> None:
    table = props(resources, "EventsTable")
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Ref": "DataKey"},
    }
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ExpiresAt", "Enabled": True}


def test_events_table_indexes(resources: dict[str, Any]) -> None:
    gsi, by_recording = props(resources, "EventsTable")["GlobalSecondaryIndexes"]
    assert by_recording == {
        "IndexName": "RecordingIndex",
        "KeySchema": [{"AttributeName": "RecordingUUID", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    assert gsi == {
        "IndexName": "ArchiveQueueIndex",
        "KeySchema": [
            {"AttributeName": "ArchiveQueue", "KeyType": "HASH"},
            {"AttributeName": "ArchiveDueAt", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


def test_data_key_rotation_and_policy(resources: dict[str, Any]) -> None:
    key = props(resources, "DataKey")
    assert key["EnableKeyRotation"] is True
    assert resources["DataKey"]["DeletionPolicy"] == "Retain"
    statements = {s["Sid"]: s for s in key["KeyPolicy"]["Statement"]}
    assert statements["AccountAdministration"]["Principal"] == {
        "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    }
    logs = statements["CloudWatchLogsOfThisAccount"]
    assert logs["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
    assert "kms:EncryptionContext:aws:logs:arn" in logs["Condition"]["ArnLike"]
    alarms = statements["CloudWatchAlarmsToEncryptedTopic"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    # Only alarms of this account and region may use the key (confused deputy).
    alarm_arns = "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"
    assert alarms["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnLike": {"aws:SourceArn": {"Fn::Sub": alarm_arns}},
    }
    for sid, statement in statements.items():
        # Every service principal's grant is conditioned on this stack's account or resources.
        if "Service" in statement["Principal"]:
            assert statement.get("Condition"), sid
        assert statement["Effect"] == "Allow", sid
        assert statement["Principal"] != "*", sid
    assert props(resources, "DataKeyAlias")["TargetKeyId"] == {"Ref": "DataKey"}


def test_auth_secret_fails_closed_and_is_conditional(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    secret = resources["AuthSecret"]
    assert secret["Condition"] == "CreateAuthSecret"
    assert template["Conditions"]["CreateAuthSecret"] == {
        "Fn::Equals": [{"Ref": "AuthSecretArn"}, ""]
    }
    assert secret["Properties"]["KmsKeyId"] == {"Ref": "DataKey"}
    assert json.loads(secret["Properties"]["SecretString"]) == {"auth_id": "", "auth_tokens": []}


# --------------------------------------------------------------------------------------------
# Queues
# --------------------------------------------------------------------------------------------


def test_every_queue_and_topic_is_kms_encrypted(resources: dict[str, Any]) -> None:
    queues = [k for k, v in resources.items() if v["Type"] == "AWS::SQS::Queue"]
    assert sorted(queues) == [
        "ArchiveFailureQueue",
        "ArchiveWorkDeadLetterQueue",
        "ArchiveWorkQueue",
        "FallbackDeadLetterQueue",
        "FallbackQueue",
    ]
    for logical_id in queues:
        assert props(resources, logical_id)["KmsMasterKeyId"] == {"Ref": "DataKey"}
        assert props(resources, logical_id)["MessageRetentionPeriod"] == 1209600
    assert props(resources, "AlarmTopic")["KmsMasterKeyId"] == {"Ref": "DataKey"}


def test_fallback_queue_redrive_and_visibility(resources: dict[str, Any]) -> None:
    queue = props(resources, "FallbackQueue")
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["FallbackDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    drain = props(resources, "FallbackDrainFunction")
    timeout = drain.get("Timeout", 30)
    assert queue["VisibilityTimeout"] >= 6 * timeout
    (event,) = drain["Events"].values()
    assert event == {
        "Type": "SQS",
        "Properties": {
            "Queue": {"Fn::GetAtt": ["FallbackQueue", "Arn"]},
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    }


# --------------------------------------------------------------------------------------------
# Archive bucket
# --------------------------------------------------------------------------------------------


def test_archive_bucket_is_private_versioned_and_kms_encrypted(resources: dict[str, Any]) -> None:
    bucket = props(resources, "ArchiveBucket")
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert bucket["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {
                "ServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]},
                },
                "BucketKeyEnabled": True,
            }
        ]
    }
    assert resources["ArchiveBucket"]["DeletionPolicy"] == "Retain"
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": "ArchiveAccessLogBucket"
    }


def test_access_log_bucket_uses_sse_s3_and_accepts_only_the_archive_bucket_logs(
    resources: dict[str, Any],
) -> None:
    bucket = props(resources, "ArchiveAccessLogBucket")
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    # S3 server access logging cannot deliver to an SSE-KMS bucket.
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    statements = {
        s["Sid"]: s
        for s in props(resources, "ArchiveAccessLogBucketPolicy")["PolicyDocument"]["Statement"]
    }
    logging = statements["S3ServerAccessLogsFromArchiveBucket"]
    assert logging["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert logging["Condition"]["ArnLike"] == {
        "aws:SourceArn": {"Fn::GetAtt": ["ArchiveBucket", "Arn"]}
    }
    assert statements["DenyInsecureTransport"]["Effect"] == "Deny"


def test_archive_bucket_lifecycle(template: dict[str, Any], resources: dict[str, Any]) -> None:
    rules = {
        r["Id"]: r
        for r in props(resources, "ArchiveBucket")["LifecycleConfiguration"]["Rules"]
        if "Fn::If" not in r  # ExpireRecordings: test_recordings_expire_only_with_a_retention
    }
    assert rules["AbortIncompleteMultipartUploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    colder = rules["ColderStorageForRecordings"]
    assert colder["Prefix"] == "recordings/"
    condition, with_cold, without_cold = colder["Transitions"]["Fn::If"]
    assert condition == "HasColdTransition"
    ia = {"StorageClass": "STANDARD_IA", "TransitionInDays": {"Ref": "ArchiveTransitionToIaDays"}}
    assert with_cold == [
        ia,
        {
            "StorageClass": {"Ref": "ArchiveColdStorageClass"},
            "TransitionInDays": {"Ref": "ArchiveTransitionToGlacierDays"},
        },
    ]
    assert without_cold == [ia]
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": {"Ref": "NoncurrentVersionExpirationDays"}
    }
    assert all(r["Status"] == "Enabled" for r in rules.values())
    params = template["Parameters"]
    assert params["ArchiveTransitionToIaDays"]["MinValue"] == 30  # S3's minimum for IA
    assert params["ArchiveColdStorageClass"]["AllowedValues"] == [
        "GLACIER_IR",
        "GLACIER",
        "DEEP_ARCHIVE",
    ]


def _resolved_lifecycle_rules(template: dict[str, Any], **parameters: str) -> dict[str, Any]:
    from recording_archive_cli.local.intrinsics import Resolver

    resolver = Resolver(
        template,
        region="us-east-1",
        account_id="123456789012",
        stack_name="archive",
        parameters=parameters,
    )
    rules = props(template["Resources"], "ArchiveBucket")["LifecycleConfiguration"]["Rules"]
    return {r["Id"]: r for r in resolver.resolve(rules)}


def test_recordings_expire_only_with_a_retention(template: dict[str, Any]) -> None:
    """ArchiveRetentionDays > 0: current versions under recordings/ expire after that many
    days; 0 (the default): no such rule at all, recordings are kept for ever."""
    rule = {
        "Id": "ExpireRecordings",
        "Status": "Enabled",
        "Prefix": "recordings/",
        "ExpirationInDays": {"Ref": "ArchiveRetentionDays"},
    }
    [conditional] = [
        r
        for r in props(template["Resources"], "ArchiveBucket")["LifecycleConfiguration"]["Rules"]
        if "Fn::If" in r
    ]
    assert conditional == {"Fn::If": ["ExpireRecordings", rule, {"Ref": "AWS::NoValue"}]}
    assert template["Conditions"]["ExpireRecordings"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ArchiveRetentionDays"}, "0"]}]
    }
    kept = _resolved_lifecycle_rules(template)
    assert "ExpireRecordings" not in kept
    assert set(kept) == {
        "AbortIncompleteMultipartUploads",
        "ColderStorageForRecordings",
        "ExpireNoncurrentVersions",
    }
    expiring = _resolved_lifecycle_rules(template, ArchiveRetentionDays="365")
    assert expiring["ExpireRecordings"] == rule | {"ExpirationInDays": "365"}
    assert set(expiring) - set(kept) == {"ExpireRecordings"}
    parameter = template["Parameters"]["ArchiveRetentionDays"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 0, 0)


def test_archive_bucket_object_lock_always_on_retention_optional_governance(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    bucket = props(resources, "ArchiveBucket")
    # Always on: legal holds (`recording-archive hold`) need Object Lock on the bucket.
    assert bucket["ObjectLockEnabled"] is True
    condition, config_, otherwise = bucket["ObjectLockConfiguration"]["Fn::If"]
    assert condition == "UseObjectLock"
    assert config_["ObjectLockEnabled"] == "Enabled"
    assert config_["Rule"]["DefaultRetention"] == {
        "Mode": "GOVERNANCE",
        "Days": {"Ref": "ObjectLockRetentionDays"},
    }
    # No default retention unless ObjectLockRetentionDays > 0.
    assert otherwise == {"ObjectLockEnabled": "Enabled"}
    assert template["Conditions"]["UseObjectLock"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ObjectLockRetentionDays"}, "0"]}]
    }


def test_archive_bucket_policy_denies_plain_http_and_foreign_encryption(
    resources: dict[str, Any],
) -> None:
    policy = props(resources, "ArchiveBucketPolicy")
    assert policy["Bucket"] == {"Ref": "ArchiveBucket"}
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert all(s["Effect"] == "Deny" and s["Principal"] == "*" for s in statements.values())
    tls = statements["DenyInsecureTransport"]
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert tls["Resource"] == [
        {"Fn::GetAtt": ["ArchiveBucket", "Arn"]},
        {"Fn::Sub": "${ArchiveBucket.Arn}/*"},
    ]
    # "Header present and wrong": a missing header (UploadPart, CompleteMultipartUpload) passes
    # and the object gets the bucket's default encryption, which is the same key.
    sse = statements["DenyEncryptionOtherThanKms"]
    assert sse["Action"] == "s3:PutObject"
    assert sse["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption": "false"},
        "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
    }
    key = statements["DenyKmsKeyOtherThanDataKey"]
    assert key["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
        "StringNotEquals": {
            "s3:x-amz-server-side-encryption-aws-kms-key-id": {"Fn::GetAtt": ["DataKey", "Arn"]}
        },
    }
    assert statements["DenyCustomerProvidedKeys"]["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}
    }
    # No IfExists operator in a Deny: a missing key would make it deny every multipart part.
    assert "IfExists" not in json.dumps(policy)


# --------------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------------


def test_functions_share_the_code_root_runtime_and_architecture(template: dict[str, Any]) -> None:
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == ["arm64"]
    assert globals_["CodeUri"] == "functions/"
    assert "Tracing" not in globals_
    assert (ROOT / globals_["CodeUri"] / "recording_archive" / "__init__.py").is_file()
    functions = {
        k for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"
    }
    assert functions == set(FUNCTIONS)
    for name in FUNCTIONS:
        own = props(template["Resources"], name)
        assert own.get("Runtime", globals_["Runtime"]) == "python3.13", name
        assert own.get("Architectures", globals_["Architectures"]) == ["arm64"], name
        assert own.get("CodeUri", globals_["CodeUri"]) == "functions/", name
        assert "Layers" not in own, name


@pytest.mark.parametrize("function", FUNCTIONS)
def test_handler_paths(resources: dict[str, Any], function: str) -> None:
    handler = props(resources, function)["Handler"]
    assert handler == HANDLERS[function]
    assert re.fullmatch(r"recording_archive\.handlers\.[a-z_]+\.lambda_handler", handler)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_environment_matches_the_settings_class(template: dict[str, Any], function: str) -> None:
    """Every variable is a field of the function's settings; every required field is set."""
    env = props(template["Resources"], function)["Environment"]["Variables"]
    fields = SETTINGS[function].model_fields
    names = {name.upper() for name in fields}
    assert set(env) <= names, set(env) - names
    required = {name.upper() for name, field in fields.items() if field.is_required()}
    assert required <= set(env), required - set(env)
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert globals_env == {
        "POWERTOOLS_SERVICE_NAME": observability.SERVICE,
        "POWERTOOLS_METRICS_NAMESPACE": observability.NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def test_environment_values(resources: dict[str, Any]) -> None:
    callback = props(resources, "CallbackFunction")["Environment"]["Variables"]
    assert callback == {
        "EVENTS_TABLE_NAME": {"Ref": "EventsTable"},
        "RETENTION_DAYS": {"Ref": "EventRetentionDays"},
        "AUTH_SECRET_ID": {
            "Fn::If": ["CreateAuthSecret", {"Ref": "AuthSecret"}, {"Ref": "AuthSecretArn"}]
        },
        "FALLBACK_QUEUE_URL": {"Ref": "FallbackQueue"},
        "PUBLIC_CALLBACK_URL": {"Ref": "PublicCallbackUrl"},
        "ARCHIVE_RETENTION_DAYS": {"Ref": "ArchiveRetentionDays"},
        "INDEX_TABLE_NAME": {"Ref": "IndexTable"},
        "NUMBER_INDEX_KEY_ID": {"Fn::GetAtt": ["NumberIndexKey", "Arn"]},
    }
    # Whatever stores new events writes their session index entries (issue 15).
    drain = props(resources, "FallbackDrainFunction")["Environment"]["Variables"]
    for name in ("INDEX_TABLE_NAME", "NUMBER_INDEX_KEY_ID"):
        assert drain[name] == callback[name]
    archive = props(resources, "ArchiveFunction")["Environment"]["Variables"]
    assert archive["ARCHIVE_KMS_KEY_ID"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert archive["ARCHIVE_BUCKET_OWNER"] == {"Ref": "AWS::AccountId"}
    assert archive["ARCHIVE_BUCKET_NAME"] == {"Ref": "ArchiveBucket"}
    # One limit for every automatic attempt: the stream's retries count towards it too.
    assert archive["SWEEP_MAX_ATTEMPTS"] == {"Ref": "SweepMaxAttempts"}
    work = props(resources, "ArchiveWorkFunction")["Environment"]["Variables"]
    assert {k: v for k, v in work.items() if k != "SWEEP_GRACE_SECONDS"} == archive
    assert work["SWEEP_GRACE_SECONDS"] == {"Ref": "SweepGraceSeconds"}
    # The sweeper archives nothing: the table, its queue, its grace and hold, the bus.
    sweeper = props(resources, "SweeperFunction")["Environment"]["Variables"]
    assert sweeper == {
        "EVENTS_TABLE_NAME": {"Ref": "EventsTable"},
        "ARCHIVE_WORK_QUEUE_URL": {"Ref": "ArchiveWorkQueue"},
        "SWEEP_GRACE_SECONDS": {"Ref": "SweepGraceSeconds"},
        "SWEEP_ENQUEUE_HOLD_SECONDS": {"Ref": "SweepEnqueueHoldSeconds"},
        "EVENT_BUS_NAME": {"Ref": "EventBusName"},
    }


# The account's bus named by EventBusName: the one resource of a role that is not the stack's own.
EVENT_BUS_ARN = (
    "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
)
PUBLISHERS = ("ArchiveFunction", "SweeperFunction", "ArchiveWorkFunction", "ReconcileFunction")


def test_lifecycle_events_bus_and_grants(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """The functions that archive (and so publish RecordingArchived / RecordingFailed) get the
    bus name and events:PutEvents on that bus only; no other function gets either."""
    parameter = template["Parameters"]["EventBusName"]
    assert (parameter["Type"], parameter["Default"]) == ("String", "default")
    assert re.fullmatch(parameter["AllowedPattern"], "default")
    assert not re.fullmatch(parameter["AllowedPattern"], "arn:aws:events:x:1:event-bus/b")
    assert template["Outputs"]["EventBusName"]["Value"] == {"Ref": "EventBusName"}
    for function in FUNCTIONS:
        env = props(resources, function)["Environment"]["Variables"]
        grants = [
            st
            for st in role_statements(resources, function)
            if "events:PutEvents" in as_list(st["Action"])
        ]
        if function in PUBLISHERS:
            assert env["EVENT_BUS_NAME"] == {"Ref": "EventBusName"}, function
            assert [(g["Sid"], g["Action"], g["Resource"]) for g in grants] == [
                ("LifecycleEventsPut", "events:PutEvents", {"Fn::Sub": EVENT_BUS_ARN})
            ], function
        else:
            assert "EVENT_BUS_NAME" not in env and not grants, function


def test_retention_reaches_every_function_that_sets_expires_at(resources: dict[str, Any]) -> None:
    """ExpiresAt is computed where new events are built: the callback and reconcile."""
    for function in FUNCTIONS:
        env = props(resources, function)["Environment"]["Variables"]
        if function in ("CallbackFunction", "ReconcileFunction"):
            assert env["ARCHIVE_RETENTION_DAYS"] == {"Ref": "ArchiveRetentionDays"}, function
            assert env["RETENTION_DAYS"] == {"Ref": "EventRetentionDays"}, function
        else:
            assert "ARCHIVE_RETENTION_DAYS" not in env, function


def test_callback_routes_and_api(resources: dict[str, Any]) -> None:
    function = props(resources, "CallbackFunction")
    routes = {
        (e["Properties"]["Method"], e["Properties"]["Path"])
        for e in function["Events"].values()
        if e["Type"] == "HttpApi"
    }
    assert routes == {
        ("POST", "/callbacks/recording"),
        ("GET", "/callbacks/recording"),
        ("ANY", "/callbacks/recording"),  # answered 405 by the function
    }
    for event in function["Events"].values():
        assert event["Properties"]["ApiId"] == {"Ref": "CallbackApi"}
        assert event["Properties"]["PayloadFormatVersion"] == "2.0"
    assert function["Timeout"] < 30  # API Gateway's integration limit
    api = props(resources, "CallbackApi")
    assert api["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
    }
    assert "CorsConfiguration" not in api
    access_logs = api["AccessLogSettings"]
    assert access_logs["DestinationArn"] == {"Fn::GetAtt": ["CallbackApiAccessLogGroup", "Arn"]}
    log_format = json.loads(access_logs["Format"])
    # A GET callback carries phone numbers in its query string: never in the access log.
    assert not any("querystring" in v.lower() or "header" in v.lower() for v in log_format.values())
    assert "PublicCallbackUrl" not in json.dumps(api)  # the API does not depend on the function


def test_archive_stream_event_source(resources: dict[str, Any]) -> None:
    events = props(resources, "ArchiveFunction")["Events"]
    (event,) = events.values()
    assert event["Type"] == "DynamoDB"
    p = event["Properties"]
    assert p["Stream"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert p["StartingPosition"] == "TRIM_HORIZON"
    assert p["BatchSize"] == 10
    assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert p["BisectBatchOnFunctionError"] is True
    assert p["MaximumRetryAttempts"] == 3
    assert p["MaximumRecordAgeInSeconds"] == 3600
    assert p["DestinationConfig"] == {
        "OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["ArchiveFailureQueue", "Arn"]}}
    }
    (only,) = p["FilterCriteria"]["Filters"]
    assert json.loads(only["Pattern"]) == {
        "eventName": ["INSERT"],
        "dynamodb": {"NewImage": {"EventName": {"S": ["SessionRecordingCompleted"]}}},
    }
    assert stream_filter_patterns("ArchiveFunction", TEMPLATE_PATH) == [json.loads(only["Pattern"])]
    archive = props(resources, "ArchiveFunction")
    assert archive["Timeout"] == 900
    assert archive["MemorySize"] == 256


def test_sweeper_schedule(resources: dict[str, Any], template: dict[str, Any]) -> None:
    sweeper = props(resources, "SweeperFunction")
    (event,) = sweeper["Events"].values()
    assert event["Type"] in {"Schedule", "ScheduleV2"}
    key = "Schedule" if event["Type"] == "Schedule" else "ScheduleExpression"
    assert event["Properties"][key] == {"Ref": "SweepSchedule"}
    assert template["Parameters"]["SweepSchedule"]["Default"] == "rate(15 minutes)"
    assert sweeper["Timeout"] == 900


def test_reconcile_schedule_is_disabled_unless_enabled(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    reconcile = props(resources, "ReconcileFunction")
    (event,) = reconcile["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Ref": "ReconcileSchedule"}
    assert "Enabled" not in event["Properties"]
    assert event["Properties"]["State"] == {"Fn::If": ["ReconcileOn", "ENABLED", "DISABLED"]}
    assert template["Conditions"]["ReconcileOn"] == {
        "Fn::Equals": [{"Ref": "ReconcileEnabled"}, "true"]
    }
    assert template["Parameters"]["ReconcileEnabled"]["AllowedValues"] == ["true", "false"]
    assert reconcile["Timeout"] == 900
    env = reconcile["Environment"]["Variables"]
    archive = props(resources, "ArchiveFunction")["Environment"]["Variables"]
    # Reconcile archives FAILED recordings on purpose: no attempt limit (config.py).
    assert "SWEEP_MAX_ATTEMPTS" not in env
    archive = {k: v for k, v in archive.items() if k != "SWEEP_MAX_ATTEMPTS"}
    assert {k: v for k, v in env.items() if k in archive} == archive
    assert env["RECONCILE_WINDOW_HOURS"] == {"Ref": "ReconcileWindowHours"}
    assert env["RETENTION_DAYS"] == {"Ref": "EventRetentionDays"}
    assert (
        template["Parameters"]["ReconcileWindowHours"]["Default"]
        == config.ReconcileSettings.model_fields["reconcile_window_hours"].default
    )


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_log_group_has_retention_and_kms(resources: dict[str, Any], function: str) -> None:
    log_group_id = props(resources, function)["LoggingConfig"]["LogGroup"]["Ref"]
    group = props(resources, log_group_id)
    assert resources[log_group_id]["Type"] == "AWS::Logs::LogGroup"
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert group["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{function}"}


def test_every_log_group_is_encrypted_with_retention(resources: dict[str, Any]) -> None:
    groups = [k for k, v in resources.items() if v["Type"] == "AWS::Logs::LogGroup"]
    assert len(groups) == len(FUNCTIONS) + 1  # + the API's access logs
    for logical_id in groups:
        assert props(resources, logical_id)["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
        assert props(resources, logical_id)["RetentionInDays"] == {"Ref": "LogRetentionDays"}


# --------------------------------------------------------------------------------------------
# Least privilege
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_role_statements_are_plain_allows(resources: dict[str, Any], function: str) -> None:
    for statement in role_statements(resources, function):
        assert statement["Effect"] == "Allow"
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}
        for action in as_list(statement["Action"]):
            assert "*" not in action, action


def test_the_secret_read_of_the_downloaders_depends_on_media_auth(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Conditions"]["MediaAuthOn"] == {"Fn::Equals": [{"Ref": "MediaAuth"}, "true"]}
    policy = resources["MediaAuthSecretReadPolicy"]
    assert policy["Condition"] == "MediaAuthOn"
    assert policy["Properties"]["Roles"] == [
        {"Ref": "ArchiveFunctionRole"},
        {"Ref": "ArchiveWorkFunctionRole"},
    ]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    for role in ("ArchiveFunctionRole", "ArchiveWorkFunctionRole", "SweeperFunctionRole"):
        (inline,) = props(resources, role)["Policies"]
        actions = {a for s in inline["PolicyDocument"]["Statement"] for a in as_list(s["Action"])}
        assert "secretsmanager:GetSecretValue" not in actions, role


@pytest.mark.parametrize("function", FUNCTIONS)
def test_role_is_the_functions_own(resources: dict[str, Any], function: str) -> None:
    function_props = props(resources, function)
    assert "Policies" not in function_props  # SAM would add managed policies to its own role
    role_id = function_props["Role"]["Fn::GetAtt"][0]
    assert role_id == f"{function}Role"
    role = props(resources, role_id)
    assert "ManagedPolicyArns" not in role
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust == {
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }


def test_no_wildcard_resources_and_no_managed_policies_anywhere(
    resources: dict[str, Any],
) -> None:
    roles = [k for k, v in resources.items() if v["Type"] == "AWS::IAM::Role"]
    assert sorted(roles) == sorted(f"{f}Role" for f in FUNCTIONS)
    assert not [
        k
        for k, v in resources.items()
        if v["Type"] in {"AWS::IAM::ManagedPolicy", "AWS::IAM::User"}
    ]
    # Attached policies only to the functions' own roles, only where a parameter decides a grant.
    for k, v in resources.items():
        if v["Type"] == "AWS::IAM::Policy":
            assert v.get("Condition"), k
            assert set(v["Properties"]) == {"PolicyName", "Roles", "PolicyDocument"}, k
            assert all(r["Ref"] in roles for r in v["Properties"]["Roles"]), k
    function_ids = set(FUNCTIONS)
    for function in FUNCTIONS:
        own_others = function_ids - {function}
        for statement in role_statements(resources, function):
            for resource in as_list(statement["Resource"]):
                text = canonical(resource)
                if text == "*":
                    # Only an action that supports no resource type may name "*".
                    assert as_list(statement["Action"]) == ["dynamodb:ListStreams"], statement
                    continue
                # A string resource must start from one of the stack's own resources.
                if resource == {"Fn::Sub": EVENT_BUS_ARN}:
                    continue  # the account's bus (test_lifecycle_events_bus_and_grants)
                if isinstance(resource, Mapping) and "Fn::Sub" in resource:
                    assert text.startswith("${") and not text.startswith("${AWS::"), text
                assert not references(resource) & own_others


# --------------------------------------------------------------------------------------------
# Alarms, outputs, parameters, scanners
# --------------------------------------------------------------------------------------------


def test_alarms(resources: dict[str, Any]) -> None:
    alarms = {
        k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"
    }
    for name, alarm in alarms.items():
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
    custom = {
        a["MetricName"]: a for a in alarms.values() if a["Namespace"] == observability.NAMESPACE
    }
    assert set(custom) == {
        "RecordingsFailed",
        "SessionRecordingFailedReceived",
        "ArchiveConflicts",
        "OldestPendingAgeSeconds",
    }
    lag = custom.pop("OldestPendingAgeSeconds")  # a duration past a parameter, not a count
    assert lag["Threshold"] == {"Ref": "ArchiveLagAlarmSeconds"}
    assert (lag["ComparisonOperator"], lag["Statistic"]) == ("GreaterThanThreshold", "Maximum")
    assert lag["Dimensions"] == [{"Name": "service", "Value": observability.SERVICE}]
    for alarm in custom.values():
        assert alarm["Dimensions"] == [{"Name": "service", "Value": observability.SERVICE}]
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["Threshold"] == 1
    queues = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in alarms.values()
        if a["Namespace"] == "AWS/SQS"
    }
    assert queues == {
        "ArchiveFailureQueue",
        "FallbackDeadLetterQueue",
        "ArchiveWorkDeadLetterQueue",
    }
    errors = {
        a["Dimensions"][0]["Value"]["Ref"]
        for a in alarms.values()
        if a["Namespace"] == "AWS/Lambda" and a["MetricName"] == "Errors"
    }
    assert errors == set(FUNCTIONS)
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    for name in (
        "CallbackUrl",
        "EventsTableName",
        "ArchiveBucketName",
        "AuthSecretArn",
        "FallbackQueueUrl",
        "ArchiveFailureQueueUrl",
        "DataKeyArn",
    ):
        assert name in outputs, name
    assert outputs["CallbackUrl"]["Value"] == {
        "Fn::Sub": (
            "https://${CallbackApi}.execute-api.${AWS::Region}.amazonaws.com"
            f"{config.CALLBACK_PATH}"
        )
    }
    assert outputs["EventsTableName"]["Value"] == {"Ref": "EventsTable"}
    assert outputs["ArchiveBucketName"]["Value"] == {"Ref": "ArchiveBucket"}


def test_parameter_defaults(template: dict[str, Any]) -> None:
    defaults = {k: v.get("Default") for k, v in template["Parameters"].items()}
    assert defaults == {
        "AuthSecretArn": "",
        "PublicCallbackUrl": "",
        "ThrottlingBurstLimit": 200,
        "ThrottlingRateLimit": 100,
        "EventRetentionDays": 0,
        "MediaAllowedHosts": ",".join(config.DEFAULT_MEDIA_HOSTS),
        "MediaAuth": "false",
        "SweepSchedule": "rate(15 minutes)",
        "SweepGraceSeconds": 600,
        "SweepMaxAttempts": 8,
        "SweepEnqueueHoldSeconds": 3600,
        "ArchiveParallelizationFactor": 4,
        "ArchiveWorkConcurrency": 10,
        "ReconcileEnabled": "false",
        "ReconcileSchedule": "rate(6 hours)",
        "ReconcileWindowHours": 48,
        "ArchiveTransitionToIaDays": 30,
        "ArchiveTransitionToGlacierDays": 180,
        "ArchiveColdStorageClass": "GLACIER_IR",
        "NoncurrentVersionExpirationDays": 30,
        "ObjectLockRetentionDays": 0,
        "ArchiveRetentionDays": 0,
        "EventBusName": "default",
        "LogRetentionDays": 90,
        "AlarmEmail": "",
        "ArchiveLagAlarmSeconds": 3600,
        "DashboardEnabled": "true",
        "SnapStart": "false",
    }
    # The defaults agree with the code's own defaults.
    assert (
        defaults["SweepGraceSeconds"]
        == config.SweeperSettings.model_fields["sweep_grace_seconds"].default
    )
    assert (
        defaults["SweepMaxAttempts"]
        == config.ArchiveSettings.model_fields["sweep_max_attempts"].default
    )
    assert (
        defaults["SweepEnqueueHoldSeconds"]
        == config.SweeperSettings.model_fields["sweep_enqueue_hold_seconds"].default
    )


def test_every_checkov_skip_has_a_written_reason(resources: dict[str, Any]) -> None:
    skips = [
        (logical_id, skip["id"], skip.get("comment", ""))
        for logical_id, resource in resources.items()
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", [])
    ]
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    skips += [
        ("comment", m.group(1), m.group(2) or "")
        for m in re.finditer(r"checkov:skip=\s*([A-Za-z_0-9]+)(?::([^\n]*))?", text)
    ]
    assert len(skips) >= 14, "expected the documented skips (concurrency, DLQ, VPC, log bucket)"
    for where, check_id, reason in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", check_id), (where, check_id)
        assert len(reason.split()) >= 8, (where, check_id)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_functions_share_one_sam_build(resources: dict[str, Any], function: str) -> None:
    """SAM builds a shared CodeUri once only if the functions' Metadata are equal (none)."""
    assert "Metadata" not in resources[function]


def test_every_reference_resolves(template: dict[str, Any]) -> None:
    """Every Ref/GetAtt/Sub names a parameter, a resource, or a pseudo parameter."""
    known = set(template["Parameters"]) | set(template["Resources"])
    known |= {"AWS::Region", "AWS::AccountId", "AWS::StackName", "AWS::Partition", "AWS::NoValue"}
    referenced = references(template["Resources"]) | references(template["Outputs"])
    assert referenced <= known, referenced - known


def test_snapstart_is_a_parameter_of_the_latency_functions(template: dict[str, Any]) -> None:
    """SnapStart (default off) on the published version behind the alias the events invoke."""
    assert template["Parameters"]["SnapStart"]["AllowedValues"] == ["false", "true"]
    assert template["Conditions"]["SnapStartOn"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "true"]}
    resources = template["Resources"]
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        if name in ("CallbackFunction", "ArchiveFunction"):
            assert props["AutoPublishAlias"] == "live", name
            assert props["SnapStart"] == {
                "ApplyOn": {"Fn::If": ["SnapStartOn", "PublishedVersions", "None"]}
            }, name
        else:
            # Scheduled or queue-driven: a cold start costs nothing anyone waits for.
            assert "SnapStart" not in props and "AutoPublishAlias" not in props, name


# --- the archive's scaling (issue 18): stream parallelization, the sweeper's work queue -------
def _actions(resources: dict[str, Any], function: str) -> dict[str, list[Any]]:
    """Each granted action with the resources it is granted on."""
    out: dict[str, list[Any]] = {}
    for statement in role_statements(resources, function):
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            out.setdefault(action, []).extend(as_list(statement["Resource"]))
    return out


def test_the_scaling_parameters_and_their_lambda_bounds(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    pf = params["ArchiveParallelizationFactor"]
    # Lambda's ParallelizationFactor is 1-10 (DynamoDB and Kinesis event sources).
    assert (pf["Type"], pf["Default"], pf["MinValue"], pf["MaxValue"]) == ("Number", 4, 1, 10)
    mc = params["ArchiveWorkConcurrency"]
    # An SQS event source's MaximumConcurrency is 2-1000.
    assert (mc["Type"], mc["Default"], mc["MinValue"], mc["MaxValue"]) == ("Number", 10, 2, 1000)
    assert params["SweepEnqueueHoldSeconds"]["MinValue"] >= 60


def test_the_stream_mapping_runs_parallel_batches(resources: dict[str, Any]) -> None:
    (event,) = props(resources, "ArchiveFunction")["Events"].values()
    mapping = event["Properties"]
    assert mapping["ParallelizationFactor"] == {"Ref": "ArchiveParallelizationFactor"}
    assert mapping["BatchSize"] == 10
    assert mapping["MaximumBatchingWindowInSeconds"] == 0
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_work_queue_is_encrypted_redriven_and_outlasts_the_consumer(
    resources: dict[str, Any],
) -> None:
    queue = props(resources, "ArchiveWorkQueue")
    dlq = props(resources, "ArchiveWorkDeadLetterQueue")
    assert queue["KmsMasterKeyId"] == dlq["KmsMasterKeyId"] == {"Ref": "DataKey"}
    timeout = props(resources, "ArchiveWorkFunction")["Timeout"]
    assert timeout == LAMBDA_MAX_TIMEOUT_SECONDS
    # Lambda's guidance for SQS event sources: at least six times the function's timeout.
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["VisibilityTimeout"] <= 12 * 3600  # SQS's maximum
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["ArchiveWorkDeadLetterQueue", "Arn"]}
    assert 1 < redrive["maxReceiveCount"] <= 10


def test_the_consumer_is_bounded_and_reports_partial_failures(resources: dict[str, Any]) -> None:
    work = props(resources, "ArchiveWorkFunction")
    archive = props(resources, "ArchiveFunction")
    assert work["Handler"] == "recording_archive.handlers.archive_work.lambda_handler"
    assert work["MemorySize"] == archive["MemorySize"]
    assert "CodeUri" not in work and "Runtime" not in work  # the Globals' (as ArchiveFunction)
    (event,) = work["Events"].values()
    assert event["Type"] == "SQS"
    sqs = event["Properties"]
    assert sqs["Queue"] == {"Fn::GetAtt": ["ArchiveWorkQueue", "Arn"]}
    assert sqs["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "ArchiveWorkConcurrency"}}
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["BatchSize"] == 1
    log_group = props(resources, "ArchiveWorkLogGroup")
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert log_group["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert work["LoggingConfig"] == {"LogGroup": {"Ref": "ArchiveWorkLogGroup"}}


def test_the_sweeper_role_no_longer_archives(resources: dict[str, Any]) -> None:
    granted = _actions(resources, "SweeperFunction")
    assert not [a for a in granted if a.startswith(("s3:", "secretsmanager:"))]
    assert "dynamodb:GetItem" not in granted
    assert set(granted) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
        "events:PutEvents",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
    assert granted["sqs:SendMessage"] == [{"Fn::GetAtt": ["ArchiveWorkQueue", "Arn"]}]
    assert granted["dynamodb:Query"] == [{"Fn::Sub": "${EventsTable.Arn}/index/ArchiveQueueIndex"}]


def test_the_consumer_role_archives_and_polls_its_queue_only(resources: dict[str, Any]) -> None:
    granted = _actions(resources, "ArchiveWorkFunction")
    archive = _actions(resources, "ArchiveFunction")
    # ArchiveFunction's archive grants, without the stream and its on-failure queue.
    stream_only = {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "sqs:SendMessage",
    }
    poll = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    assert set(granted) == (set(archive) - stream_only) | poll
    for action in poll:
        assert granted[action] == [{"Fn::GetAtt": ["ArchiveWorkQueue", "Arn"]}]


def test_the_dead_letter_queue_is_alarmed_and_the_work_is_on_the_dashboard(
    resources: dict[str, Any],
) -> None:
    alarm = props(resources, "ArchiveWorkDeadLetterQueueNotEmptyAlarm")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["ArchiveWorkDeadLetterQueue", "QueueName"]}}
    ]
    assert (alarm["MetricName"], alarm["Threshold"]) == ("ApproximateNumberOfMessagesVisible", 0)
    body = props(resources, "OperationsDashboard")["DashboardBody"]["Fn::Sub"]
    for stat in ("p50", "p99", "Maximum"):
        assert (
            f'"ArchiveLagSeconds", "service", "plivo-recording-archive", {{"stat": "{stat}"}}'
            in body
        )
    assert '"ApproximateAgeOfOldestMessage", "QueueName", "${ArchiveWorkQueue.QueueName}"' in body
    assert (
        '"ApproximateNumberOfMessagesVisible", "QueueName", "${ArchiveWorkQueue.QueueName}"' in body
    )
    lag = props(resources, "ArchiveLagAlarm")
    assert (lag["MetricName"], lag["Threshold"]) == (
        "OldestPendingAgeSeconds",
        {"Ref": "ArchiveLagAlarmSeconds"},
    )
