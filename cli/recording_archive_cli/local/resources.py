"""The template's stateful resources, created in a local AWS endpoint (moto server).

Everything is read from `template.yaml` itself: the table's key schema, indexes and stream, the
bucket's versioning, encryption, public access block and lifecycle, the key's policy, the queues'
attributes and redrive policies, the secret's key. So the local stack, the integration tests and
the deployed stack cannot drift apart: a property this module does not know makes it fail loudly
rather than create something different from what CloudFormation would.

Two things of the template are deliberately not applied locally, because the local endpoint is
plain HTTP on loopback: the bucket policies (they deny every request without TLS) and S3 server
access logging (a logging concern of the deployed bucket only).

Over 500 lines on purpose: one creator per resource type, each with the allow-list of
properties it applies (anything else fails loudly); they share the resolver and the creation
order and read best as one contract. Imports `template`, `intrinsics` and, for the auth id
of the local secret, `plivo_sim`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from recording_archive_cli.local.intrinsics import (
    PARTITION,
    LocalResourceError,
    Physical,
    Resolver,
    references,
    scalar_text,
)
from recording_archive_cli.local.template import template_at
from recording_archive_cli.plivo_sim import DEFAULT_AUTH_ID  # the local secret's auth id

__all__ = [
    "ARCHIVE_FAILURE_QUEUE_ID",
    "BUCKET_ID",
    "DEFAULT_AUTH_ID",
    "FALLBACK_DLQ_ID",
    "FALLBACK_QUEUE_ID",
    "INDEX_TABLE_ID",
    "KEY_ID",
    "NUMBER_INDEX_KEY_ID",
    "SECRET_ID",
    "TABLE_ID",
    "LocalResourceError",
    "LocalResources",
    "create_local_resources",
]

# Logical ids of the template's resources that LocalResources names.
TABLE_ID = "EventsTable"
BUCKET_ID = "ArchiveBucket"
KEY_ID = "DataKey"
FALLBACK_QUEUE_ID = "FallbackQueue"
FALLBACK_DLQ_ID = "FallbackDeadLetterQueue"
ARCHIVE_FAILURE_QUEUE_ID = "ArchiveFailureQueue"
ARCHIVE_WORK_QUEUE_ID = "ArchiveWorkQueue"
ARCHIVE_WORK_DLQ_ID = "ArchiveWorkDeadLetterQueue"
SECRET_ID = "AuthSecret"  # noqa: S105 - a logical id, not a secret
INDEX_TABLE_ID = "IndexTable"
NUMBER_INDEX_KEY_ID = "NumberIndexKey"


@dataclass(frozen=True)
class LocalResources:
    endpoint_url: str
    region: str
    account_id: str
    table_name: str
    stream_arn: str
    bucket_name: str
    kms_key_arn: str
    fallback_queue_url: str
    fallback_dlq_url: str
    archive_failure_queue_url: str
    secret_arn: str
    stack_name: str = "local"
    # Template parameter overrides the resources were created with (name, value).
    parameters: tuple[tuple[str, str], ...] = ()
    # The session index's table and HMAC key (empty: a template without them).
    index_table_name: str = ""
    number_index_key_arn: str = ""
    # The queue `local-LifecycleEvents` that the rule `local-lifecycle-events` fills with every
    # lifecycle event on the bus (empty: a template without EventBusName).
    lifecycle_events_queue_url: str = ""
    # The sweeper's archive work queue and its dead-letter queue (empty: a template without).
    archive_work_queue_url: str = ""
    archive_work_dlq_url: str = ""

    @property
    def index_table_arn(self) -> str:
        table = self.index_table_name
        return f"arn:{PARTITION}:dynamodb:{self.region}:{self.account_id}:table/{table}"

    @property
    def table_arn(self) -> str:
        return f"arn:{PARTITION}:dynamodb:{self.region}:{self.account_id}:table/{self.table_name}"

    @property
    def kms_key_id(self) -> str:
        return self.kms_key_arn.rsplit("/", 1)[-1]


def _check_known(logical_id: str, properties: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(properties) - set(known))
    if unknown:
        raise LocalResourceError(
            f"{logical_id}: properties {', '.join(unknown)} are not supported by the local stack"
        )


def _physical_name(stack_name: str, logical_id: str, *, lower: bool = False) -> str:
    name = f"{stack_name}-{logical_id}"
    return (name.lower() if lower else name)[:63]


# --------------------------------------------------------------------------------------------
# Resource creation: CloudFormation properties -> API calls
# --------------------------------------------------------------------------------------------

_KEY_PROPS = {
    "Description",
    "EnableKeyRotation",
    "KeyPolicy",
    "KeySpec",
    "KeyUsage",
    "MultiRegion",
    "Enabled",
    "PendingWindowInDays",
    "Tags",
}
_ALIAS_PROPS = {"AliasName", "TargetKeyId"}
_QUEUE_ATTRIBUTES = {
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
}
_TABLE_PROPS = {
    "TableName",
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "ProvisionedThroughput",
    "StreamSpecification",
    "SSESpecification",
    "TimeToLiveSpecification",
    "PointInTimeRecoverySpecification",
    "DeletionProtectionEnabled",
    "TableClass",
    "ResourcePolicy",
    "Tags",
}
_BUCKET_PROPS = {
    "BucketName",
    "PublicAccessBlockConfiguration",
    "OwnershipControls",
    "VersioningConfiguration",
    "BucketEncryption",
    "LifecycleConfiguration",
    "LoggingConfiguration",
    "ObjectLockEnabled",
    "ObjectLockConfiguration",
    "Tags",
}
_SECRET_PROPS = {"Name", "Description", "KmsKeyId", "SecretString", "Tags"}


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class _Creator:
    def __init__(
        self,
        resolver: Resolver,
        *,
        endpoint_url: str,
        region: str,
        secret_string: str,
    ) -> None:
        self.resolver = resolver
        self.region = region
        self.secret_string = secret_string
        self.session = _session(region)
        self.endpoint_url = endpoint_url

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    # --- KMS -------------------------------------------------------------------------------
    def create_key(self, logical_id: str, props: Mapping[str, Any]) -> Physical:
        _check_known(logical_id, props, _KEY_PROPS)
        kms = self.client("kms")
        kwargs: dict[str, Any] = {}
        if "Description" in props:
            kwargs["Description"] = props["Description"]
        if "KeyPolicy" in props:
            policy = props["KeyPolicy"]
            kwargs["Policy"] = policy if isinstance(policy, str) else json.dumps(policy)
        if "KeySpec" in props:
            kwargs["KeySpec"] = props["KeySpec"]
        if "KeyUsage" in props:
            kwargs["KeyUsage"] = props["KeyUsage"]
        meta = kms.create_key(**kwargs)["KeyMetadata"]
        if _truthy(props.get("EnableKeyRotation", False)):
            kms.enable_key_rotation(KeyId=meta["KeyId"])
        return Physical(meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]})

    def create_alias(self, logical_id: str, props: Mapping[str, Any]) -> Physical:
        _check_known(logical_id, props, _ALIAS_PROPS)
        self.client("kms").create_alias(
            AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"]
        )
        return Physical(str(props["AliasName"]), {})

    # --- SQS -------------------------------------------------------------------------------
    def create_queue(self, logical_id: str, props: Mapping[str, Any]) -> Physical:
        _check_known(logical_id, props, _QUEUE_ATTRIBUTES | {"QueueName", "Tags"})
        name = str(props.get("QueueName") or _physical_name(self.resolver.stack_name, logical_id))
        if _truthy(props.get("FifoQueue", False)) and not name.endswith(".fifo"):
            name = name[:58] + ".fifo"
        attributes: dict[str, str] = {}
        for key in _QUEUE_ATTRIBUTES & set(props):
            value = props[key]
            attributes[key] = (
                json.dumps(value) if isinstance(value, Mapping) else scalar_text(value)
            )
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return Physical(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    # --- DynamoDB --------------------------------------------------------------------------
    def create_table(self, logical_id: str, props: Mapping[str, Any]) -> Physical:
        _check_known(logical_id, props, _TABLE_PROPS)
        name = str(props.get("TableName") or _physical_name(self.resolver.stack_name, logical_id))
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
            if key in props:
                kwargs[key] = props[key]
        if "TableClass" in props:
            kwargs["TableClass"] = props["TableClass"]
        if "StreamSpecification" in props:
            kwargs["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": props["StreamSpecification"]["StreamViewType"],
            }
        if "SSESpecification" in props:
            sse = props["SSESpecification"]
            spec: dict[str, Any] = {"Enabled": _truthy(sse.get("SSEEnabled", False))}
            if "SSEType" in sse:
                spec["SSEType"] = sse["SSEType"]
            if "KMSMasterKeyId" in sse:
                spec["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
            kwargs["SSESpecification"] = spec
        if "DeletionProtectionEnabled" in props:
            kwargs["DeletionProtectionEnabled"] = _truthy(props["DeletionProtectionEnabled"])
        ddb = self.client("dynamodb")
        table = ddb.create_table(**kwargs)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "Enabled": _truthy(ttl.get("Enabled", False)),
                    "AttributeName": ttl["AttributeName"],
                },
            )
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr:
            ddb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={
                    "PointInTimeRecoveryEnabled": _truthy(
                        pitr.get("PointInTimeRecoveryEnabled", False)
                    )
                },
            )
        policy = props.get("ResourcePolicy")
        if policy:
            # Applied as CloudFormation does (moto stores it; it does not enforce it).
            document = policy["PolicyDocument"]
            ddb.put_resource_policy(
                ResourceArn=table["TableArn"],
                Policy=document if isinstance(document, str) else json.dumps(document),
            )
        attributes = {"Arn": table["TableArn"]}
        if "LatestStreamArn" in table:
            attributes["StreamArn"] = table["LatestStreamArn"]
        return Physical(name, attributes)

    # --- S3 --------------------------------------------------------------------------------
    def create_bucket(self, logical_id: str, props: Mapping[str, Any]) -> Physical:
        _check_known(logical_id, props, _BUCKET_PROPS)
        name = str(
            props.get("BucketName")
            or _physical_name(self.resolver.stack_name, logical_id, lower=True)
        )
        s3 = self.client("s3")
        kwargs: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        if _truthy(props.get("ObjectLockEnabled", False)):
            kwargs["ObjectLockEnabledForBucket"] = True
        s3.create_bucket(**kwargs)
        if "OwnershipControls" in props:
            s3.put_bucket_ownership_controls(
                Bucket=name, OwnershipControls=props["OwnershipControls"]
            )
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration={
                    k: _truthy(v) for k, v in props["PublicAccessBlockConfiguration"].items()
                },
            )
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(
                Bucket=name,
                VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]},
            )
        if "BucketEncryption" in props:
            rules = [
                {
                    # CloudFormation's ServerSideEncryptionByDefault is the API's
                    # ApplyServerSideEncryptionByDefault.
                    **(
                        {"BucketKeyEnabled": _truthy(r["BucketKeyEnabled"])}
                        if "BucketKeyEnabled" in r
                        else {}
                    ),
                    "ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                }
                for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(
                Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules}
            )
        if "LifecycleConfiguration" in props:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name,
                LifecycleConfiguration={
                    "Rules": [_lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]
                },
            )
        lock = props.get("ObjectLockConfiguration")
        if lock and "Rule" in lock:
            retention = dict(lock["Rule"]["DefaultRetention"])
            for unit in ("Days", "Years"):
                if unit in retention:
                    retention[unit] = int(retention[unit])
            s3.put_object_lock_configuration(
                Bucket=name,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": retention},
                },
            )
        # Not applied: LoggingConfiguration (server access logs of the deployed bucket) and the
        # AWS::S3::BucketPolicy resources (they deny non-TLS requests; this endpoint is HTTP).
        return Physical(
            name,
            {
                "Arn": f"arn:{PARTITION}:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com",
            },
        )

    # --- Secrets Manager -------------------------------------------------------------------
    def create_secret(self, logical_id: str, props: Mapping[str, Any]) -> Physical:
        _check_known(logical_id, props, _SECRET_PROPS)
        kwargs: dict[str, Any] = {
            "Name": str(props.get("Name") or _physical_name(self.resolver.stack_name, logical_id)),
            # The auth secret gets the local tokens; the template's placeholder (no token) is
            # what a fresh deployment starts with.
            "SecretString": (
                self.secret_string if logical_id == SECRET_ID else str(props["SecretString"])
            ),
        }
        if "Description" in props:
            kwargs["Description"] = props["Description"]
        if "KmsKeyId" in props:
            kwargs["KmsKeyId"] = props["KmsKeyId"]
        arn = self.client("secretsmanager").create_secret(**kwargs)["ARN"]
        return Physical(arn, {"Id": arn})


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One rule of AWS::S3::Bucket LifecycleConfiguration, in the API's shape."""
    out: dict[str, Any] = {"Status": rule["Status"]}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    out["Filter"] = {"Prefix": str(rule.get("Prefix", ""))}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "ExpiredObjectDeleteMarker" in rule:
        out["Expiration"] = {
            "ExpiredObjectDeleteMarker": _truthy(rule["ExpiredObjectDeleteMarker"])
        }
    transitions = list(rule.get("Transitions", []))
    if "Transition" in rule:
        transitions.append(rule["Transition"])
    if transitions:
        out["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
            for t in transitions
        ]
    if "NoncurrentVersionExpiration" in rule:
        expiration = rule["NoncurrentVersionExpiration"]
        out["NoncurrentVersionExpiration"] = {
            k: int(v)
            for k, v in expiration.items()
            if k in {"NoncurrentDays", "NewerNoncurrentVersions"}
        }
    if "NoncurrentVersionExpirationInDays" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])
        }
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(
                rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
            )
        }
    known = {
        "Id",
        "Status",
        "Prefix",
        "ExpirationInDays",
        "ExpiredObjectDeleteMarker",
        "Transitions",
        "Transition",
        "NoncurrentVersionExpiration",
        "NoncurrentVersionExpirationInDays",
        "AbortIncompleteMultipartUpload",
    }
    unknown = sorted(set(rule) - known)
    if unknown:
        raise LocalResourceError(
            f"lifecycle rule {rule.get('Id', '?')}: {', '.join(unknown)} not supported locally"
        )
    return out


# The local subscriber of the lifecycle events: what an operator's own rule on the bus would do.
LIFECYCLE_EVENTS_QUEUE = "LifecycleEvents"
LIFECYCLE_EVENTS_RULE = "lifecycle-events"


def _creation_error(what: str, exc: ClientError | BotoCoreError) -> LocalResourceError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return LocalResourceError(
            f"{what}: {error.get('Code', 'error')}: {error.get('Message', exc)}"
        )
    return LocalResourceError(f"{what}: {exc}")


def _route_lifecycle_events(creator: _Creator, bus_name: str) -> str:
    """Rule `{stack}-lifecycle-events` on `bus_name` (created unless it is the account's default
    bus) forwarding every event of the archive's source to queue `{stack}-LifecycleEvents`;
    returns the queue's URL. moto delivers PutEvents to SQS targets of matching rules."""
    from recording_archive.models.archive import LIFECYCLE_SOURCE as SOURCE

    stack = creator.resolver.stack_name
    sqs, events = creator.client("sqs"), creator.client("events")
    url = str(sqs.create_queue(QueueName=_physical_name(stack, LIFECYCLE_EVENTS_QUEUE))["QueueUrl"])
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    if bus_name != "default":
        events.create_event_bus(Name=bus_name)
    rule = _physical_name(stack, LIFECYCLE_EVENTS_RULE)
    rule_arn = events.put_rule(
        Name=rule,
        EventBusName=bus_name,
        EventPattern=json.dumps({"source": [SOURCE]}),
        State="ENABLED",
        Description="Lifecycle events of the recording archive, to the local subscriber queue",
    )["RuleArn"]
    # What AWS needs for a queue target: EventBridge allowed to send, from this rule only
    # (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sqs-permissions).
    # moto does not enforce it; it is set so the local queue is what a real subscriber makes.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(
        Rule=rule, EventBusName=bus_name, Targets=[{"Id": "local-subscriber", "Arn": queue_arn}]
    )
    return url


_CREATORS: dict[str, str] = {
    "AWS::KMS::Key": "create_key",
    "AWS::KMS::Alias": "create_alias",
    "AWS::SQS::Queue": "create_queue",
    "AWS::DynamoDB::Table": "create_table",
    "AWS::S3::Bucket": "create_bucket",
    "AWS::SecretsManager::Secret": "create_secret",
}


def _creation_order(resources: Mapping[str, Mapping[str, Any]], wanted: Sequence[str]) -> list[str]:
    """Dependencies first (e.g. the key before the table, the DLQ before its queue)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order:
            return
        if logical_id in visiting:
            raise LocalResourceError(f"{logical_id}: circular reference")
        visiting.add(logical_id)
        for dep in sorted(references(resources[logical_id].get("Properties") or {})):
            if dep in wanted:
                visit(dep)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in wanted:
        visit(logical_id)
    return order


@cache
def _session(region: str) -> boto3.session.Session:
    """The usual credential chain; dummy credentials when there are none (a local endpoint).

    Cached: a session caches the service models, which otherwise dominate the creation time.
    """
    session = boto3.session.Session(region_name=region)
    if session.get_credentials() is None:
        session = boto3.session.Session(
            region_name=region,
            # A local endpoint (moto) accepts any credentials.
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106
        )
    return session


def _account_id(endpoint_url: str, region: str) -> str:
    sts = _session(region).client("sts", endpoint_url=endpoint_url)
    return str(sts.get_caller_identity()["Account"])


def create_local_resources(
    endpoint_url: str,
    *,
    auth_tokens: Sequence[str],
    auth_id: str = DEFAULT_AUTH_ID,
    region: str = "us-east-1",
    stack_name: str = "local",
    template_path: Path | None = None,
    parameters: Mapping[str, str] | None = None,
) -> LocalResources:
    """Create the template's KMS key(s), queues, table, buckets and secret at `endpoint_url`.

    The auth secret holds `{"auth_id": auth_id, "auth_tokens": [...auth_tokens]}`. `parameters`
    overrides template parameter defaults (conditions are evaluated with them). Raises
    TemplateError when the template does not parse, LocalResourceError when a resource cannot be
    created (an unsupported property, a resource that already exists, an unreachable endpoint).
    """
    if isinstance(auth_tokens, str) or not all(isinstance(t, str) and t for t in auth_tokens):
        raise LocalResourceError("auth_tokens must be a sequence of non-empty strings")
    template = template_at(template_path)
    try:
        account_id = _account_id(endpoint_url, region)
    except (BotoCoreError, ClientError) as exc:
        raise LocalResourceError(f"local AWS endpoint {endpoint_url} unreachable: {exc}") from None
    resolver = Resolver(
        template,
        region=region,
        account_id=account_id,
        stack_name=stack_name,
        parameters=parameters,
    )
    resources: Mapping[str, Mapping[str, Any]] = template["Resources"]
    wanted = [
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] in _CREATORS
        and ("Condition" not in resource or resolver.condition(str(resource["Condition"])))
    ]
    creator = _Creator(
        resolver,
        endpoint_url=endpoint_url,
        region=region,
        secret_string=json.dumps({"auth_id": auth_id, "auth_tokens": list(auth_tokens)}),
    )
    for logical_id in _creation_order(resources, wanted):
        resource = resources[logical_id]
        props = resolver.resolve(resource.get("Properties") or {})
        create = getattr(creator, _CREATORS[resource["Type"]])
        try:
            resolver.resources[logical_id] = create(logical_id, props)
        except (ClientError, BotoCoreError) as exc:
            raise _creation_error(logical_id, exc) from None

    def created(logical_id: str) -> Physical:
        if logical_id not in resolver.resources:
            raise LocalResourceError(
                f"{logical_id}: not created (missing from the template or its condition is false)"
            )
        return resolver.resources[logical_id]

    lifecycle_queue = ""
    if "EventBusName" in (template.get("Parameters") or {}):
        try:
            lifecycle_queue = _route_lifecycle_events(
                creator, str(resolver.resolve({"Ref": "EventBusName"}))
            )
        except (ClientError, BotoCoreError) as exc:
            raise _creation_error("lifecycle events rule", exc) from None

    table = created(TABLE_ID)
    if "StreamArn" not in table.attributes:
        raise LocalResourceError(f"{TABLE_ID}: the template gives the table no stream")
    return LocalResources(
        endpoint_url=endpoint_url,
        region=region,
        account_id=account_id,
        table_name=table.ref,
        stream_arn=table.attributes["StreamArn"],
        bucket_name=created(BUCKET_ID).ref,
        kms_key_arn=created(KEY_ID).attributes["Arn"],
        fallback_queue_url=created(FALLBACK_QUEUE_ID).ref,
        fallback_dlq_url=created(FALLBACK_DLQ_ID).ref,
        archive_failure_queue_url=created(ARCHIVE_FAILURE_QUEUE_ID).ref,
        secret_arn=created(SECRET_ID).ref,
        stack_name=stack_name,
        parameters=tuple(sorted((parameters or {}).items())),
        lifecycle_events_queue_url=lifecycle_queue,
        index_table_name=(
            created(INDEX_TABLE_ID).ref if INDEX_TABLE_ID in resolver.resources else ""
        ),
        number_index_key_arn=(
            created(NUMBER_INDEX_KEY_ID).attributes["Arn"]
            if NUMBER_INDEX_KEY_ID in resolver.resources
            else ""
        ),
        archive_work_queue_url=(
            created(ARCHIVE_WORK_QUEUE_ID).ref
            if ARCHIVE_WORK_QUEUE_ID in resolver.resources
            else ""
        ),
        archive_work_dlq_url=(
            created(ARCHIVE_WORK_DLQ_ID).ref if ARCHIVE_WORK_DLQ_ID in resolver.resources else ""
        ),
    )
