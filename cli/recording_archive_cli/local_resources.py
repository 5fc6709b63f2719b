"""The template's stateful resources, created in a local AWS endpoint (moto server).

Everything is read from `template.yaml` itself: the table's key schema, indexes and stream, the
bucket's versioning, encryption, public access block and lifecycle, the key's policy, the queues'
attributes and redrive policies, the secret's key. So the local stack, the integration tests and
the deployed stack cannot drift apart: a property this module does not know makes it fail loudly
rather than create something different from what CloudFormation would.

Intrinsic functions are resolved the way CloudFormation does, for what the template uses: `Ref`
to parameters (defaults, or overrides), pseudo parameters and created resources, `Fn::GetAtt`,
`Fn::Sub`, `Fn::If` with the template's Conditions, `Fn::Join`, `Fn::Select`, `Fn::Split`,
`Fn::FindInMap`, `AWS::NoValue`.

Two things of the template are deliberately not applied locally, because the local endpoint is
plain HTTP on loopback: the bucket policies (they deny every request without TLS) and S3 server
access logging (a logging concern of the deployed bucket only).

It also exposes the two things of the template that the event source mappings do in AWS and that
moto does not: each function's environment (`function_environment`) and the DynamoDB stream
FilterCriteria (`stream_filter_patterns`, `event_matches_filters`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from recording_archive_cli.cfn import TemplateError, default_template_path, load_template

# Logical ids of the template's resources that LocalResources names.
TABLE_ID = "EventsTable"
BUCKET_ID = "ArchiveBucket"
KEY_ID = "DataKey"
FALLBACK_QUEUE_ID = "FallbackQueue"
FALLBACK_DLQ_ID = "FallbackDeadLetterQueue"
ARCHIVE_FAILURE_QUEUE_ID = "ArchiveFailureQueue"
SECRET_ID = "AuthSecret"  # noqa: S105 - a logical id, not a secret

DEFAULT_AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
PARTITION = "aws"


class LocalResourceError(Exception):
    """The template's resources cannot be created or resolved locally (one-line message)."""


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

    @property
    def table_arn(self) -> str:
        return f"arn:{PARTITION}:dynamodb:{self.region}:{self.account_id}:table/{self.table_name}"

    @property
    def kms_key_id(self) -> str:
        return self.kms_key_arn.rsplit("/", 1)[-1]


# --------------------------------------------------------------------------------------------
# Intrinsic functions
# --------------------------------------------------------------------------------------------


class _NoValue:
    """`AWS::NoValue`: the property is removed."""


NO_VALUE = _NoValue()

_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


@dataclass
class _Physical:
    """What `Ref` and `Fn::GetAtt` return for a created resource."""

    ref: str
    attributes: dict[str, str]


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise LocalResourceError(f"expected a scalar, got {type(value).__name__}")


class _Resolver:
    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        region: str,
        account_id: str,
        stack_name: str,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.resources: dict[str, _Physical] = {}
        declared: Mapping[str, Any] = template.get("Parameters") or {}
        self.parameters: dict[str, str] = {}
        for name, spec in declared.items():
            if isinstance(spec, Mapping) and "Default" in spec:
                default = spec["Default"]
                if isinstance(default, list):
                    default = ",".join(_scalar_text(v) for v in default)
                self.parameters[name] = _scalar_text(default)
        for name, value in (parameters or {}).items():
            if name not in declared:
                raise LocalResourceError(f"unknown template parameter {name!r}")
            self.parameters[name] = str(value)
        self._conditions: dict[str, bool] = {}

    # --- conditions ------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions: Mapping[str, Any] = self.template.get("Conditions") or {}
            if name not in conditions:
                raise LocalResourceError(f"unknown condition {name!r}")
            self._conditions[name] = self._evaluate(conditions[name])
        return self._conditions[name]

    def _evaluate(self, expr: Any) -> bool:
        if isinstance(expr, bool):
            return expr
        if isinstance(expr, Mapping) and len(expr) == 1:
            (fn, arg), *_ = expr.items()
            if fn == "Condition":
                return self.condition(str(arg))
            if fn == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return _scalar_text(left) == _scalar_text(right)
            if fn == "Fn::Not":
                return not self._evaluate(arg[0])
            if fn == "Fn::And":
                return all(self._evaluate(v) for v in arg)
            if fn == "Fn::Or":
                return any(self._evaluate(v) for v in arg)
        raise LocalResourceError(f"unsupported condition expression {expr!r}")

    # --- references ------------------------------------------------------------------------
    def ref(self, name: str) -> Any:
        pseudo: dict[str, Any] = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": (
                f"arn:{PARTITION}:cloudformation:{self.region}:{self.account_id}"
                f":stack/{self.stack_name}/local"
            ),
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.resources[name].ref
        raise LocalResourceError(f"Ref {name!r}: not a parameter or a locally created resource")

    def getatt(self, logical_id: str, attribute: str) -> str:
        physical = self.resources.get(logical_id)
        if physical is None:
            raise LocalResourceError(
                f"GetAtt {logical_id}.{attribute}: {logical_id} is not created locally"
            )
        if attribute not in physical.attributes:
            raise LocalResourceError(f"GetAtt {logical_id}.{attribute}: unknown attribute")
        return physical.attributes[attribute]

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _scalar_text(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, _, attribute = name.partition(".")
                return self.getatt(logical_id, attribute)
            return _scalar_text(self.ref(name))

        return _SUB_VAR.sub(replace, str(text))

    # --- values ----------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            (key, arg), *_ = value.items()
            handler = self._functions().get(key)
            # An IAM statement's "Condition" block is a mapping, the intrinsic takes a name.
            if handler is not None and not (key == "Condition" and not isinstance(arg, str)):
                return handler(arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": lambda arg: self.ref(str(arg)),
            "Fn::GetAtt": self._fn_getatt,
            "Fn::Sub": self.sub,
            "Fn::If": self._fn_if,
            "Fn::Join": lambda arg: str(arg[0]).join(_scalar_text(v) for v in self.resolve(arg[1])),
            "Fn::Select": lambda arg: self.resolve(arg[1])[int(self.resolve(arg[0]))],
            "Fn::Split": lambda arg: _scalar_text(self.resolve(arg[1])).split(str(arg[0])),
            "Fn::FindInMap": self._fn_find_in_map,
            "Fn::GetAZs": lambda _arg: [f"{self.region}{z}" for z in "abc"],
            "Fn::Base64": lambda arg: base64.b64encode(
                _scalar_text(self.resolve(arg)).encode()
            ).decode(),
            "Fn::Equals": lambda arg: self._evaluate({"Fn::Equals": arg}),
            "Condition": lambda arg: self.condition(str(arg)),
        }

    def _fn_getatt(self, arg: Any) -> str:
        logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
        return self.getatt(str(logical_id), str(self.resolve(attribute)))

    def _fn_if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self.resolve(when_true if self.condition(str(name)) else when_false)

    def _fn_find_in_map(self, arg: Any) -> Any:
        name, first, second = (_scalar_text(self.resolve(v)) for v in arg)
        try:
            return self.resolve(self.template["Mappings"][name][first][second])
        except KeyError:
            raise LocalResourceError(f"FindInMap {name}/{first}/{second}: not found") from None


def _references(value: Any) -> set[str]:
    """Logical ids and parameter names a value refers to (Ref, GetAtt, Sub)."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= _references(v)
    elif isinstance(value, Mapping):
        for key, arg in value.items():
            if key == "Ref":
                found.add(str(arg))
            elif key == "Fn::GetAtt":
                found.add(str(arg[0] if isinstance(arg, list) else str(arg).split(".")[0]))
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                for name in _SUB_VAR.findall(str(text)):
                    if not name.startswith("!"):
                        found.add(name.split(".")[0])
                if isinstance(arg, list):
                    found |= _references(arg[1])
            else:
                found |= _references(arg)
    return found


# --------------------------------------------------------------------------------------------
# Template access
# --------------------------------------------------------------------------------------------


_TEMPLATES: dict[tuple[str, int, int], dict[str, Any]] = {}


def _template(template_path: Path | None) -> dict[str, Any]:
    """The parsed template, re-read whenever the file changes (this module never mutates it)."""
    path = Path(template_path) if template_path is not None else default_template_path()
    try:
        stat = path.stat()
    except OSError:
        return load_template(path)  # raises the TemplateError that says why
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = load_template(path)
    return _TEMPLATES[key]


def _function(template: Mapping[str, Any], logical_id: str) -> Mapping[str, Any]:
    resource = template["Resources"].get(logical_id)
    if resource is None or resource.get("Type") != "AWS::Serverless::Function":
        raise LocalResourceError(f"{logical_id}: no such AWS::Serverless::Function in template")
    properties: Mapping[str, Any] = resource.get("Properties") or {}
    return properties


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
        resolver: _Resolver,
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
    def create_key(self, logical_id: str, props: Mapping[str, Any]) -> _Physical:
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
        return _Physical(meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]})

    def create_alias(self, logical_id: str, props: Mapping[str, Any]) -> _Physical:
        _check_known(logical_id, props, _ALIAS_PROPS)
        self.client("kms").create_alias(
            AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"]
        )
        return _Physical(str(props["AliasName"]), {})

    # --- SQS -------------------------------------------------------------------------------
    def create_queue(self, logical_id: str, props: Mapping[str, Any]) -> _Physical:
        _check_known(logical_id, props, _QUEUE_ATTRIBUTES | {"QueueName", "Tags"})
        name = str(props.get("QueueName") or _physical_name(self.resolver.stack_name, logical_id))
        if _truthy(props.get("FifoQueue", False)) and not name.endswith(".fifo"):
            name = name[:58] + ".fifo"
        attributes: dict[str, str] = {}
        for key in _QUEUE_ATTRIBUTES & set(props):
            value = props[key]
            attributes[key] = (
                json.dumps(value) if isinstance(value, Mapping) else _scalar_text(value)
            )
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return _Physical(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    # --- DynamoDB --------------------------------------------------------------------------
    def create_table(self, logical_id: str, props: Mapping[str, Any]) -> _Physical:
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
        attributes = {"Arn": table["TableArn"]}
        if "LatestStreamArn" in table:
            attributes["StreamArn"] = table["LatestStreamArn"]
        return _Physical(name, attributes)

    # --- S3 --------------------------------------------------------------------------------
    def create_bucket(self, logical_id: str, props: Mapping[str, Any]) -> _Physical:
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
        return _Physical(
            name,
            {
                "Arn": f"arn:{PARTITION}:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com",
            },
        )

    # --- Secrets Manager -------------------------------------------------------------------
    def create_secret(self, logical_id: str, props: Mapping[str, Any]) -> _Physical:
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
        return _Physical(arn, {"Id": arn})


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
        for dep in sorted(_references(resources[logical_id].get("Properties") or {})):
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
    template = _template(template_path)
    try:
        account_id = _account_id(endpoint_url, region)
    except (BotoCoreError, ClientError) as exc:
        raise LocalResourceError(f"local AWS endpoint {endpoint_url} unreachable: {exc}") from None
    resolver = _Resolver(
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
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise LocalResourceError(
                f"{logical_id}: {error.get('Code', 'error')}: {error.get('Message', exc)}"
            ) from None
        except BotoCoreError as exc:
            raise LocalResourceError(f"{logical_id}: {exc}") from None

    def created(logical_id: str) -> _Physical:
        if logical_id not in resolver.resources:
            raise LocalResourceError(
                f"{logical_id}: not created (missing from the template or its condition is false)"
            )
        return resolver.resources[logical_id]

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
    )


# --------------------------------------------------------------------------------------------
# Function environment
# --------------------------------------------------------------------------------------------


def _queue_physical(resources: LocalResources, url: str) -> _Physical:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    arn = f"arn:{PARTITION}:sqs:{resources.region}:{resources.account_id}:{name}"
    return _Physical(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


def _resolver_for(
    template: Mapping[str, Any],
    resources: LocalResources,
    parameters: Mapping[str, str] | None,
) -> _Resolver:
    merged = dict(resources.parameters)
    merged.update(parameters or {})
    resolver = _Resolver(
        template,
        region=resources.region,
        account_id=resources.account_id,
        stack_name=resources.stack_name,
        parameters=merged,
    )
    bucket = resources.bucket_name
    resolver.resources.update(
        {
            TABLE_ID: _Physical(
                resources.table_name,
                {"Arn": resources.table_arn, "StreamArn": resources.stream_arn},
            ),
            BUCKET_ID: _Physical(
                bucket,
                {
                    "Arn": f"arn:{PARTITION}:s3:::{bucket}",
                    "DomainName": f"{bucket}.s3.amazonaws.com",
                    "RegionalDomainName": f"{bucket}.s3.{resources.region}.amazonaws.com",
                },
            ),
            KEY_ID: _Physical(
                resources.kms_key_id,
                {"Arn": resources.kms_key_arn, "KeyId": resources.kms_key_id},
            ),
            FALLBACK_QUEUE_ID: _queue_physical(resources, resources.fallback_queue_url),
            FALLBACK_DLQ_ID: _queue_physical(resources, resources.fallback_dlq_url),
            ARCHIVE_FAILURE_QUEUE_ID: _queue_physical(
                resources, resources.archive_failure_queue_url
            ),
            SECRET_ID: _Physical(resources.secret_arn, {"Id": resources.secret_arn}),
        }
    )
    return resolver


def function_environment(
    logical_id: str,
    resources: LocalResources,
    *,
    overrides: Mapping[str, str] | None = None,
    template_path: Path | None = None,
    parameters: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment variables the template gives `logical_id` (Globals merged), resolved.

    References to the table, bucket, key, queues and secret resolve to `resources`; parameters
    to their defaults, the overrides the resources were created with, then `parameters`.
    `overrides` (variable name -> value) is applied last, e.g. the local PUBLIC_CALLBACK_URL or
    MEDIA_ALLOW_LOOPBACK. A reference to anything not created locally raises LocalResourceError.
    """
    template = _template(template_path)
    properties = _function(template, logical_id)
    globals_env = (
        ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    ).get("Variables") or {}
    own_env = (properties.get("Environment") or {}).get("Variables") or {}
    resolver = _resolver_for(template, resources, parameters)
    env: dict[str, str] = {}
    for name, value in {**globals_env, **own_env}.items():
        try:
            resolved = resolver.resolve(value)
        except LocalResourceError as exc:
            raise LocalResourceError(f"{logical_id} {name}: {exc}") from None
        if resolved is NO_VALUE:
            continue
        env[name] = _scalar_text(resolved)
    env.update(overrides or {})
    return env


def function_handler(logical_id: str, template_path: Path | None = None) -> str:
    """The Handler of a function: `module.path.function`."""
    return str(_function(_template(template_path), logical_id)["Handler"])


# --------------------------------------------------------------------------------------------
# DynamoDB stream FilterCriteria
# --------------------------------------------------------------------------------------------


def stream_filter_patterns(
    logical_id: str = "ArchiveFunction", template_path: Path | None = None
) -> list[dict[str, Any]]:
    """The FilterCriteria patterns (parsed JSON) of the function's DynamoDB event source.

    An empty list means the event source has no filter (every record is delivered).
    """
    properties = _function(_template(template_path), logical_id)
    events = properties.get("Events") or {}
    streams = [e for e in events.values() if e.get("Type") == "DynamoDB"]
    if len(streams) != 1:
        raise LocalResourceError(f"{logical_id}: expected one DynamoDB event, found {len(streams)}")
    criteria = (streams[0].get("Properties") or {}).get("FilterCriteria") or {}
    patterns: list[dict[str, Any]] = []
    for entry in criteria.get("Filters") or []:
        pattern = entry.get("Pattern")
        try:
            parsed = json.loads(pattern) if isinstance(pattern, str) else pattern
        except json.JSONDecodeError as exc:
            raise TemplateError(
                f"{logical_id}: FilterCriteria pattern is not JSON: {exc}"
            ) from None
        if not isinstance(parsed, dict):
            raise TemplateError(f"{logical_id}: FilterCriteria pattern is not a JSON object")
        patterns.append(parsed)
    return patterns


_MISSING = object()


def _numeric_ok(value: Any, conditions: Sequence[Any]) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    ops: dict[str, Callable[[float, float], bool]] = {
        "=": lambda a, b: a == b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    pairs = list(zip(conditions[::2], conditions[1::2], strict=True))
    return all(ops[str(op)](float(value), float(bound)) for op, bound in pairs)


def _prefix_ok(arg: Any, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(arg, Mapping):  # {"prefix": {"equals-ignore-case": "x"}}
        return value.lower().startswith(str(arg["equals-ignore-case"]).lower())
    return value.startswith(str(arg))


def _anything_but_ok(arg: Any, value: Any) -> bool:
    if isinstance(arg, Mapping):  # {"anything-but": {"prefix": "x"}}
        return not _matcher_ok(arg, value)
    excluded = arg if isinstance(arg, list) else [arg]
    return not any(_matcher_ok(e, value) for e in excluded)


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "exists": lambda arg, _value: bool(arg),
    "prefix": _prefix_ok,
    "suffix": lambda arg, value: isinstance(value, str) and value.endswith(str(arg)),
    "equals-ignore-case": lambda arg, value: (
        isinstance(value, str) and value.lower() == str(arg).lower()
    ),
    "numeric": lambda arg, value: _numeric_ok(value, arg),
    "anything-but": _anything_but_ok,
}


def _matcher_ok(matcher: Any, value: Any) -> bool:
    """One element of a pattern's list against a present leaf value."""
    if isinstance(matcher, Mapping):
        if len(matcher) != 1:
            raise ValueError(f"filter operator must have one key: {matcher!r}")
        (op, arg), *_ = matcher.items()
        if op not in _OPERATORS:
            raise ValueError(f"unsupported filter operator {op!r}")
        return _OPERATORS[op](arg, value)
    if matcher is None or value is None:
        return matcher is None and value is None
    if isinstance(matcher, (int, float)) and not isinstance(matcher, bool):
        return _numeric_ok(value, ["=", matcher])
    return bool(matcher == value)


def _leaf_ok(matchers: Sequence[Any], value: Any) -> bool:
    if value is _MISSING:
        return any(isinstance(m, Mapping) and m.get("exists") is False for m in matchers)
    if isinstance(value, Mapping):  # a list of matchers never matches an object
        return False
    values = value if isinstance(value, list) else [value]
    for matcher in matchers:
        if isinstance(matcher, Mapping) and "exists" in matcher:
            if matcher["exists"]:
                return True
            continue
        if any(_matcher_ok(matcher, v) for v in values):
            return True
    return False


def _pattern_ok(pattern: Mapping[str, Any], data: Any) -> bool:
    if not isinstance(data, Mapping):
        return False
    for key, expected in pattern.items():
        value = data.get(key, _MISSING)
        if isinstance(expected, Mapping):
            if not _pattern_ok(expected, value):
                return False
        elif isinstance(expected, list):
            if not _leaf_ok(expected, value):
                return False
        else:
            raise ValueError(f"filter pattern value for {key!r} must be an object or a list")
    return True


def event_matches_filters(record: Mapping[str, Any], patterns: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the event source mapping would deliver `record` (a stream record dict).

    Lambda event filtering: the record passes if any pattern matches (no pattern: everything
    passes). Within a pattern every key must match; a list holds alternatives: exact values,
    `prefix`, `suffix`, `equals-ignore-case`, `anything-but`, `numeric`, `exists`.
    """
    if not patterns:
        return True
    return any(_pattern_ok(pattern, record) for pattern in patterns)
