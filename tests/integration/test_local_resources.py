"""The template's resources created in moto from template.yaml, and the template's stream filter.

Real boto3 calls against the moto server (fixture `aws`); the expectations are read from the
template itself wherever the point is "the local resource is what the template says".

One module (over 500 lines): resources, environment resolution and filters share the template
helpers (`write_template`, `write_function`) and fixtures above.
"""

from __future__ import annotations

import json
import socket
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from recording_archive_cli.local.filters import event_matches_filters, stream_filter_patterns
from recording_archive_cli.local.functions import function_environment, function_handler
from recording_archive_cli.local.intrinsics import LocalResourceError
from recording_archive_cli.local.resources import LocalResources, create_local_resources
from recording_archive_cli.local.template import TemplateError, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
TOKENS = ["token-one", "token-two"]
COMPLETED = "SessionRecordingCompleted"


def client(service: str, resources: LocalResources) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service, endpoint_url=resources.endpoint_url, region_name=resources.region
    )


def template_props(logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = TEMPLATE["Resources"][logical_id]["Properties"]
    return props


@pytest.fixture
def local(aws: str) -> LocalResources:
    return create_local_resources(aws, auth_tokens=TOKENS, auth_id="MAXXXXXXXXXXXXXXXXX1")


@pytest.fixture
def described() -> LocalResources:
    """Resources as create_local_resources describes them, for resolution-only tests."""
    arn = "arn:aws:{}:us-east-1:123456789012:{}"
    return LocalResources(
        endpoint_url="http://127.0.0.1:4566",
        region="us-east-1",
        account_id="123456789012",
        table_name="local-EventsTable",
        stream_arn=arn.format("dynamodb", "table/local-EventsTable/stream/2026-01-01T00:00:00"),
        bucket_name="local-archivebucket",
        kms_key_arn=arn.format("kms", "key/0f6b7f4e-1111-4222-8333-944445555666"),
        fallback_queue_url="http://127.0.0.1:4566/123456789012/local-FallbackQueue",
        fallback_dlq_url="http://127.0.0.1:4566/123456789012/local-FallbackDeadLetterQueue",
        archive_failure_queue_url="http://127.0.0.1:4566/123456789012/local-ArchiveFailureQueue",
        secret_arn=arn.format("secretsmanager", "secret:local-AuthSecret-AbCdEf"),
    )


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------


def test_table_is_created_from_the_template(local: LocalResources) -> None:
    ddb = client("dynamodb", local)
    table = ddb.describe_table(TableName=local.table_name)["Table"]
    expected = template_props("EventsTable")
    assert table["KeySchema"] == expected["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        expected["AttributeDefinitions"], key=lambda a: a["AttributeName"]
    )
    assert table["BillingModeSummary"]["BillingMode"] == expected["BillingMode"]
    created = {g["IndexName"]: g for g in table["GlobalSecondaryIndexes"]}
    assert set(created) == {"ArchiveQueueIndex", "RecordingIndex"}
    for expected_gsi in expected["GlobalSecondaryIndexes"]:
        gsi = created[expected_gsi["IndexName"]]
        assert gsi["KeySchema"] == expected_gsi["KeySchema"]
        assert gsi["Projection"] == expected_gsi["Projection"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert table["LatestStreamArn"] == local.stream_arn
    assert table["SSEDescription"]["SSEType"] == "KMS"
    # moto reports the key id where AWS reports the ARN.
    assert table["SSEDescription"]["KMSMasterKeyArn"].endswith(local.kms_key_id)
    assert table["TableArn"] == local.table_arn
    ttl = ddb.describe_time_to_live(TableName=local.table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ExpiresAt"}
    backups = ddb.describe_continuous_backups(TableName=local.table_name)
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"


def test_bucket_is_created_from_the_template(local: LocalResources) -> None:
    s3 = client("s3", local)
    assert s3.get_bucket_versioning(Bucket=local.bucket_name)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket=local.bucket_name)[
        "ServerSideEncryptionConfiguration"
    ]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": local.kms_key_arn,
    }
    assert rule["BucketKeyEnabled"] is True
    block = s3.get_public_access_block(Bucket=local.bucket_name)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    ownership = s3.get_bucket_ownership_controls(Bucket=local.bucket_name)
    assert ownership["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    rules = {
        r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=local.bucket_name)["Rules"]
    }
    assert rules["AbortIncompleteMultipartUploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    assert rules["ColderStorageForRecordings"]["Filter"] == {"Prefix": "recordings/"}
    assert rules["ColderStorageForRecordings"]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"},
        {"Days": 180, "StorageClass": "GLACIER_IR"},
    ]
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": 30
    }
    # Object Lock is always on (legal holds), with no default retention by default
    # (ObjectLockRetentionDays 0).
    lock = s3.get_object_lock_configuration(Bucket=local.bucket_name)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert "Rule" not in lock
    # An upload the way the archiver makes it is accepted and encrypted with the key.
    put = s3.put_object(
        Bucket=local.bucket_name,
        Key="recordings/2026/01/01/s/r.mp3",
        Body=b"ID3",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=local.kms_key_arn,
        IfNoneMatch="*",
    )
    assert put["ServerSideEncryption"] == "aws:kms"
    assert put["VersionId"]


def test_key_queues_and_secret(local: LocalResources) -> None:
    kms = client("kms", local)
    key = kms.describe_key(KeyId=local.kms_key_arn)["KeyMetadata"]
    assert key["Arn"] == local.kms_key_arn
    assert kms.get_key_rotation_status(KeyId=local.kms_key_arn)["KeyRotationEnabled"] is True
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    assert aliases["alias/local-data"] == local.kms_key_id
    policy = json.loads(kms.get_key_policy(KeyId=local.kms_key_arn, PolicyName="default")["Policy"])
    root = policy["Statement"][0]["Principal"]["AWS"]
    assert root == f"arn:aws:iam::{local.account_id}:root"  # Sub resolved

    sqs = client("sqs", local)
    fallback = sqs.get_queue_attributes(QueueUrl=local.fallback_queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    dlq = sqs.get_queue_attributes(QueueUrl=local.fallback_dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]
    assert json.loads(fallback["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq["QueueArn"],
        "maxReceiveCount": 5,
    }
    assert fallback["VisibilityTimeout"] == str(
        template_props("FallbackQueue")["VisibilityTimeout"]
    )
    assert fallback["KmsMasterKeyId"] == local.kms_key_id
    failure = sqs.get_queue_attributes(
        QueueUrl=local.archive_failure_queue_url, AttributeNames=["KmsMasterKeyId"]
    )["Attributes"]
    assert failure["KmsMasterKeyId"] == local.kms_key_id

    secrets = client("secretsmanager", local)
    secret = secrets.get_secret_value(SecretId=local.secret_arn)
    assert json.loads(secret["SecretString"]) == {
        "auth_id": "MAXXXXXXXXXXXXXXXXX1",
        "auth_tokens": TOKENS,
    }
    assert secrets.describe_secret(SecretId=local.secret_arn)["KmsKeyId"] == local.kms_key_id
    assert local.account_id == "123456789012"


def test_parameters_drive_the_conditions(aws: str) -> None:
    local = create_local_resources(
        aws,
        auth_tokens=[],
        stack_name="locked",
        parameters={"ObjectLockRetentionDays": "7", "ArchiveTransitionToGlacierDays": "0"},
    )
    s3 = client("s3", local)
    lock = s3.get_object_lock_configuration(Bucket=local.bucket_name)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"]["Mode"] == "GOVERNANCE"
    assert lock["Rule"]["DefaultRetention"]["Days"] == 7
    rules = {
        r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=local.bucket_name)["Rules"]
    }
    assert rules["ColderStorageForRecordings"]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"}
    ]
    assert local.parameters == (
        ("ArchiveTransitionToGlacierDays", "0"),
        ("ObjectLockRetentionDays", "7"),
    )
    # No token: the secret fails closed, exactly as a fresh deployment.
    secret = client("secretsmanager", local).get_secret_value(SecretId=local.secret_arn)
    assert json.loads(secret["SecretString"])["auth_tokens"] == []


def test_other_region(aws: str) -> None:
    local = create_local_resources(aws, auth_tokens=TOKENS, region="eu-west-1")
    s3 = client("s3", local)
    assert s3.get_bucket_location(Bucket=local.bucket_name)["LocationConstraint"] == "eu-west-1"
    assert ":eu-west-1:" in local.stream_arn


# --------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------


def test_creating_twice_on_the_same_endpoint_fails_clearly(local: LocalResources) -> None:
    with pytest.raises(LocalResourceError, match=r"^DataKeyAlias: AlreadyExistsException: "):
        create_local_resources(local.endpoint_url, auth_tokens=TOKENS)


def test_unknown_parameter_is_refused(aws: str) -> None:
    with pytest.raises(LocalResourceError, match="unknown template parameter 'Nope'"):
        create_local_resources(aws, auth_tokens=TOKENS, parameters={"Nope": "1"})


@pytest.mark.parametrize("tokens", ["token", ["ok", ""], [1]])
def test_bad_tokens_are_refused(aws: str, tokens: Any) -> None:
    with pytest.raises(LocalResourceError, match="auth_tokens must be a sequence"):
        create_local_resources(aws, auth_tokens=tokens)


def test_existing_secret_parameter_leaves_no_local_secret(aws: str) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:elsewhere-AbCdEf"
    with pytest.raises(LocalResourceError, match=r"^AuthSecret: not created"):
        create_local_resources(aws, auth_tokens=TOKENS, parameters={"AuthSecretArn": arn})


def test_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        with pytest.raises(LocalResourceError, match="unreachable"):
            create_local_resources(f"http://127.0.0.1:{port}", auth_tokens=TOKENS)


def test_template_that_does_not_parse(aws: str, tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text("Resources:\n  T: !Nope x\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"template\.yaml:2:6: "):
        create_local_resources(aws, auth_tokens=TOKENS, template_path=broken)


def write_template(tmp_path: Path, resources: str, extra: str = "") -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(
        textwrap.dedent(extra) + "Resources:\n" + textwrap.indent(textwrap.dedent(resources), "  "),
        encoding="utf-8",
    )
    return path


def write_function(tmp_path: Path, variables: str, extra: str = "") -> Path:
    """A template whose one function F (handler a.b) has these environment `variables`."""
    function = (
        "F:\n  Type: AWS::Serverless::Function\n  Properties:\n    Handler: a.b\n"
        "    Environment:\n      Variables:\n"
    )
    return write_template(
        tmp_path, function + textwrap.indent(textwrap.dedent(variables), " " * 8), extra
    )


def write_queue(tmp_path: Path, properties: str) -> Path:
    """A template whose one resource is the queue Q with these properties (YAML flow style)."""
    return write_template(
        tmp_path, f"Q:\n  Type: AWS::SQS::Queue\n  Properties: {{{properties}}}\n"
    )


def test_unsupported_property_is_refused_not_ignored(aws: str, tmp_path: Path) -> None:
    path = write_queue(tmp_path, "SomethingNew: true")
    with pytest.raises(LocalResourceError, match="Q: properties SomethingNew are not supported"):
        create_local_resources(aws, auth_tokens=TOKENS, template_path=path)


def test_template_without_the_expected_resources(aws: str, tmp_path: Path) -> None:
    path = write_queue(tmp_path, "FifoQueue: true")
    with pytest.raises(LocalResourceError, match=r"^EventsTable: not created"):
        create_local_resources(aws, auth_tokens=TOKENS, template_path=path)
    urls = boto3.client("sqs", endpoint_url=aws).list_queues()["QueueUrls"]
    assert [u.rsplit("/", 1)[-1] for u in urls] == ["local-Q.fifo"]


# --------------------------------------------------------------------------------------------
# Function environment
# --------------------------------------------------------------------------------------------


def test_callback_function_environment(local: LocalResources) -> None:
    env = function_environment("CallbackFunction", local)
    assert env == {
        "POWERTOOLS_SERVICE_NAME": "plivo-recording-archive",
        "POWERTOOLS_METRICS_NAMESPACE": "PlivoRecordingArchive",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "EVENTS_TABLE_NAME": local.table_name,
        "RETENTION_DAYS": "0",
        "ARCHIVE_RETENTION_DAYS": "0",
        "AUTH_SECRET_ID": local.secret_arn,
        "FALLBACK_QUEUE_URL": local.fallback_queue_url,
        "PUBLIC_CALLBACK_URL": "",
        "INDEX_TABLE_NAME": "local-IndexTable",
        "NUMBER_INDEX_KEY_ID": local.number_index_key_arn,
    }
    overridden = function_environment(
        "CallbackFunction",
        local,
        overrides={"PUBLIC_CALLBACK_URL": "http://127.0.0.1:3000/callbacks/recording"},
        parameters={"EventRetentionDays": "30"},
    )
    assert overridden["PUBLIC_CALLBACK_URL"] == "http://127.0.0.1:3000/callbacks/recording"
    assert overridden["RETENTION_DAYS"] == "30"


def test_archive_and_sweeper_environment(local: LocalResources) -> None:
    archive = function_environment(
        "ArchiveFunction", local, overrides={"MEDIA_ALLOW_LOOPBACK": "true"}
    )
    assert archive["ARCHIVE_BUCKET_NAME"] == local.bucket_name
    assert archive["ARCHIVE_KMS_KEY_ID"] == local.kms_key_arn
    assert archive["ARCHIVE_BUCKET_OWNER"] == local.account_id
    assert archive["MEDIA_ALLOWED_HOSTS"] == "media.plivo.com,*.media.plivo.com"
    assert archive["MEDIA_AUTH"] == "false"
    assert archive["MEDIA_ALLOW_LOOPBACK"] == "true"
    sweeper = function_environment("SweeperFunction", local)
    assert sweeper["SWEEP_GRACE_SECONDS"] == "600"
    assert sweeper["ARCHIVE_WORK_QUEUE_URL"] == local.archive_work_queue_url
    # The sweeper archives nothing itself: no bucket, key, secret or media settings.
    assert not {"ARCHIVE_BUCKET_NAME", "AUTH_SECRET_ID", "MEDIA_ALLOWED_HOSTS"} & set(sweeper)
    work = function_environment("ArchiveWorkFunction", local)
    assert work["ARCHIVE_BUCKET_NAME"] == local.bucket_name
    assert work["SWEEP_GRACE_SECONDS"] == "600"
    assert work["SWEEP_MAX_ATTEMPTS"] == "8"
    assert local.archive_work_queue_url.endswith("/local-ArchiveWorkQueue")
    assert local.archive_work_dlq_url.endswith("/local-ArchiveWorkDeadLetterQueue")
    drain = function_environment("FallbackDrainFunction", local)
    assert drain["EVENTS_TABLE_NAME"] == local.table_name
    assert function_handler("ArchiveFunction") == (
        "recording_archive.handlers.archive_stream.lambda_handler"
    )


def test_environment_is_valid_for_the_settings(
    local: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resolved variables validate in the functions' own settings classes."""
    from recording_archive import config

    for logical_id, settings in (
        ("CallbackFunction", config.CallbackSettings),
        ("FallbackDrainFunction", config.TableSettings),
        ("ArchiveFunction", config.ArchiveSettings),
        ("SweeperFunction", config.SweeperSettings),
        ("ArchiveWorkFunction", config.ArchiveWorkSettings),
    ):
        for name, value in function_environment(logical_id, local).items():
            monkeypatch.setenv(name, value)
        parsed = settings.from_env()
        assert parsed.events_table_name == local.table_name


def test_environment_errors(described: LocalResources, tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="NoSuchFunction: no such AWS::Serverless::Function"):
        function_environment("NoSuchFunction", described)
    with pytest.raises(TemplateError, match="EventsTable: no such AWS::Serverless::Function"):
        function_environment("EventsTable", described)
    path = write_function(tmp_path, "API: !Ref Api")
    with pytest.raises(LocalResourceError, match=r"^F API: Ref 'Api': not a parameter"):
        function_environment("F", described, template_path=path)


def test_intrinsic_functions_are_resolved(described: LocalResources, tmp_path: Path) -> None:
    path = write_function(
        tmp_path,
        """\
        SUB: !Sub "${AWS::StackName}/${AWS::Region}/${EventsTable}/${!Literal}"
        SUB_ATTR: !Sub "${EventsTable.Arn}/index/*"
        SUB_LIST: !Sub ["${X}-${AWS::AccountId}", {X: !Ref Size}]
        JOIN: !Join [":", [a, !Ref Size, !GetAtt DataKey.KeyId]]
        SELECT: !Select [1, !Split [",", !Ref Hosts]]
        MAP: !FindInMap [Sizes, !Ref AWS::Region, Memory]
        AZ: !Select [0, !GetAZs ""]
        B64: !Base64 hi
        IF_AND: !If [Both, yes-both, not-both]
        IF_OR: !If [Either, yes-either, not-either]
        NUMBER: 42
        FLAG: true
        GONE: !If [Both, !Ref AWS::NoValue, kept]
        PARTITION: !Sub "${AWS::Partition}.${AWS::URLSuffix}"
        QUEUE_ARN: !GetAtt FallbackQueue.Arn
        STACK_ID: !Ref AWS::StackId
        """,
        extra="""\
        Parameters:
          Size: {Type: Number, Default: 7}
          Hosts: {Type: CommaDelimitedList, Default: "a.example,b.example"}
          Empty: {Type: String, Default: ""}
        Mappings:
          Sizes:
            us-east-1: {Memory: "512"}
        Conditions:
          IsEmpty: !Equals [!Ref Empty, ""]
          SizeSeven: !Equals [!Ref Size, 7]
          Both: !And [!Condition IsEmpty, !Condition SizeSeven]
          Either: !Or [!Not [!Condition IsEmpty], !Condition SizeSeven]
        """,
    )
    env = function_environment("F", described, template_path=path)
    assert env == {
        "SUB": f"local/us-east-1/{described.table_name}/${{Literal}}",
        "SUB_ATTR": f"{described.table_arn}/index/*",
        "SUB_LIST": f"7-{described.account_id}",
        "JOIN": f"a:7:{described.kms_key_id}",
        "SELECT": "b.example",
        "MAP": "512",
        "AZ": "us-east-1a",
        "B64": "aGk=",
        "IF_AND": "yes-both",
        "IF_OR": "yes-either",
        "NUMBER": "42",
        "FLAG": "true",
        "PARTITION": "aws.amazonaws.com",
        "QUEUE_ARN": f"arn:aws:sqs:us-east-1:{described.account_id}:local-FallbackQueue",
        "STACK_ID": f"arn:aws:cloudformation:us-east-1:{described.account_id}:stack/local/local",
    }
    env = function_environment("F", described, template_path=path, parameters={"Empty": "x"})
    assert env["IF_AND"] == "not-both"
    assert env["GONE"] == "kept"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ("X: !GetAtt EventsTable.Nope", "GetAtt EventsTable.Nope: unknown attribute"),
        ("X: !GetAtt CallbackApi.Arn", "GetAtt CallbackApi.Arn: CallbackApi is not created"),
        ("X: !If [Missing, a, b]", "unknown condition 'Missing'"),
        ("X: !FindInMap [M, a, b]", "FindInMap M/a/b: not found"),
        ("X: [a, b]", "expected a scalar, got list"),
    ],
)
def test_resolution_errors(
    described: LocalResources, tmp_path: Path, variables: str, message: str
) -> None:
    path = write_function(tmp_path, variables)
    with pytest.raises(LocalResourceError, match=message.replace("[", r"\[")):
        function_environment("F", described, template_path=path)


# --------------------------------------------------------------------------------------------
# Stream FilterCriteria, applied as the event source mapping would
# --------------------------------------------------------------------------------------------


def stream_record(event_name: str, name: str | None) -> dict[str, Any]:
    image: dict[str, Any] = {"SessionUUID": {"S": "s"}, "SequenceNumber": {"N": "1"}}
    if name is not None:
        image["EventName"] = {"S": name}
    record: dict[str, Any] = {
        "eventID": "1",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "dynamodb": {"Keys": {"SessionUUID": {"S": "s"}}, "StreamViewType": "NEW_IMAGE"},
    }
    if event_name != "REMOVE":
        record["dynamodb"]["NewImage"] = image
    return record


def test_template_filter_selects_only_completed_inserts() -> None:
    patterns = stream_filter_patterns()
    assert event_matches_filters(stream_record("INSERT", COMPLETED), patterns)
    assert not event_matches_filters(stream_record("MODIFY", COMPLETED), patterns)
    assert not event_matches_filters(stream_record("INSERT", "SessionRecordingInitiated"), patterns)
    assert not event_matches_filters(stream_record("INSERT", "SessionRecordingFailed"), patterns)
    assert not event_matches_filters(stream_record("INSERT", None), patterns)
    assert not event_matches_filters(stream_record("REMOVE", COMPLETED), patterns)
    # A prefix or a different case is not the same event name.
    assert not event_matches_filters(stream_record("INSERT", COMPLETED + "X"), patterns)
    assert not event_matches_filters(stream_record("INSERT", COMPLETED.lower()), patterns)


def test_template_filter_on_real_stream_records(local: LocalResources) -> None:
    """Records read from the moto stream: only the Completed INSERT passes the filter."""
    ddb = client("dynamodb", local)
    for seq, name in enumerate(("SessionRecordingInitiated", COMPLETED, "SessionRecordingFailed")):
        ddb.put_item(
            TableName=local.table_name,
            Item={
                "SessionUUID": {"S": "6a8c3a8e-0000-4000-8000-000000000001"},
                "SequenceNumber": {"N": str(seq)},
                "EventName": {"S": name},
            },
        )
    ddb.update_item(
        TableName=local.table_name,
        Key={
            "SessionUUID": {"S": "6a8c3a8e-0000-4000-8000-000000000001"},
            "SequenceNumber": {"N": "1"},
        },
        UpdateExpression="SET ArchiveStatus = :a",
        ExpressionAttributeValues={":a": {"S": "ARCHIVED"}},
    )
    streams = client("dynamodbstreams", local)
    shard = streams.describe_stream(StreamArn=local.stream_arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=local.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT", "INSERT", "MODIFY"]
    patterns = stream_filter_patterns("ArchiveFunction")
    passed = [r for r in records if event_matches_filters(r, patterns)]
    assert len(passed) == 1
    assert passed[0]["eventName"] == "INSERT"
    assert passed[0]["dynamodb"]["NewImage"]["EventName"] == {"S": COMPLETED}


def test_functions_without_a_stream_have_no_filter(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="CallbackFunction needs exactly one DynamoDB event"):
        stream_filter_patterns("CallbackFunction")
    path = write_template(
        tmp_path,
        """\
        F:
          Type: AWS::Serverless::Function
          Properties:
            Handler: a.b
            Events:
              S: {Type: DynamoDB, Properties: {Stream: x}}
        G:
          Type: AWS::Serverless::Function
          Properties:
            Handler: a.b
            Events:
              S:
                Type: DynamoDB
                Properties:
                  FilterCriteria: {Filters: [{Pattern: "{not json"}]}
        H:
          Type: AWS::Serverless::Function
          Properties:
            Handler: a.b
            Events:
              S:
                Type: DynamoDB
                Properties:
                  FilterCriteria: {Filters: [{Pattern: "[1]"}]}
        """,
    )
    assert stream_filter_patterns("F", path) == []
    assert event_matches_filters({"eventName": "REMOVE"}, [])  # no filter: everything passes
    with pytest.raises(TemplateError, match="G: FilterCriteria pattern is not JSON"):
        stream_filter_patterns("G", path)
    with pytest.raises(TemplateError, match="H: FilterCriteria pattern is not a JSON object"):
        stream_filter_patterns("H", path)


RECORD: Mapping[str, Any] = {
    "eventName": "INSERT",
    "awsRegion": "us-east-1",
    "dynamodb": {
        "NewImage": {
            "EventName": {"S": COMPLETED},
            "RecordingDurationSeconds": {"N": "42"},
            "Tags": {"L": [{"S": "a"}]},
        },
        "SizeBytes": 120,
    },
    "userIdentity": None,
    "list": ["x", "y"],
}


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ({"eventName": ["INSERT", "MODIFY"]}, True),
        ({"eventName": ["MODIFY"]}, False),
        ({"eventName": [{"prefix": "INS"}]}, True),
        ({"eventName": [{"prefix": "MOD"}]}, False),
        ({"eventName": [{"prefix": {"equals-ignore-case": "ins"}}]}, True),
        ({"eventName": [{"suffix": "ERT"}]}, True),
        ({"eventName": [{"equals-ignore-case": "insert"}]}, True),
        ({"eventName": [{"anything-but": ["REMOVE", "MODIFY"]}]}, True),
        ({"eventName": [{"anything-but": "INSERT"}]}, False),
        ({"eventName": [{"anything-but": {"prefix": "IN"}}]}, False),
        ({"eventName": [{"exists": True}]}, True),
        ({"eventName": [{"exists": False}]}, False),
        ({"missing": [{"exists": False}]}, True),
        ({"missing": [{"exists": True}]}, False),
        ({"missing": ["x"]}, False),
        ({"dynamodb": {"SizeBytes": [{"numeric": [">", 100, "<=", 120]}]}}, True),
        ({"dynamodb": {"SizeBytes": [{"numeric": ["<", 100]}]}}, False),
        ({"dynamodb": {"SizeBytes": [120]}}, True),
        ({"dynamodb": {"SizeBytes": [121]}}, False),
        ({"awsRegion": [{"numeric": ["=", 1]}]}, False),  # numeric never matches a string
        ({"userIdentity": [None]}, True),
        ({"awsRegion": [None]}, False),
        ({"list": ["y"]}, True),  # an array matches if any element matches
        ({"list": ["z"]}, False),
        ({"dynamodb": ["x"]}, False),  # a list of values never matches an object
        ({"eventName": {"nested": ["x"]}}, False),  # an object pattern never matches a string
        (
            {"dynamodb": {"NewImage": {"EventName": {"S": [COMPLETED]}}}, "eventName": ["INSERT"]},
            True,
        ),
        (
            {"dynamodb": {"NewImage": {"EventName": {"S": [COMPLETED]}}}, "eventName": ["MODIFY"]},
            False,
        ),
    ],
)
def test_filter_rules(pattern: dict[str, Any], matches: bool) -> None:
    assert event_matches_filters(RECORD, [pattern]) is matches


def test_any_pattern_may_match() -> None:
    assert event_matches_filters(RECORD, [{"eventName": ["MODIFY"]}, {"eventName": ["INSERT"]}])
    assert not event_matches_filters(RECORD, [{"eventName": ["MODIFY"]}, {"eventName": ["REMOVE"]}])


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({"eventName": "INSERT"}, "must be an object or a list"),
        ({"eventName": [{"cidr": "10.0.0.0/8"}]}, "unsupported filter operator 'cidr'"),
        ({"eventName": [{"prefix": "I", "suffix": "T"}]}, "must have one key"),
    ],
)
def test_invalid_patterns_fail_loudly(pattern: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        event_matches_filters(RECORD, [pattern])
