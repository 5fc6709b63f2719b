"""A function of the template, as the local stack runs it: its properties (the ONE lookup of the
template's functions: `function_properties`, raising `TemplateError`), settings (`Timeout`,
`MemorySize`), event of a kind, resolved environment and handler.

Imports `template`, `intrinsics` and `resources` (for the created resources' names).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recording_archive_cli.local.intrinsics import (
    NO_VALUE,
    PARTITION,
    LocalResourceError,
    Physical,
    Resolver,
    scalar_text,
)
from recording_archive_cli.local.resources import (
    ARCHIVE_FAILURE_QUEUE_ID,
    ARCHIVE_WORK_DLQ_ID,
    ARCHIVE_WORK_QUEUE_ID,
    BUCKET_ID,
    FALLBACK_DLQ_ID,
    FALLBACK_QUEUE_ID,
    INDEX_TABLE_ID,
    KEY_ID,
    NUMBER_INDEX_KEY_ID,
    SECRET_ID,
    TABLE_ID,
    LocalResources,
)
from recording_archive_cli.local.template import TemplateError, template_at

SERVERLESS_FUNCTION = "AWS::Serverless::Function"


def function_ids(template: Mapping[str, Any]) -> list[str]:
    """The logical ids of the template's functions, in template order."""
    resources: Mapping[str, Any] = template.get("Resources") or {}
    return [
        logical_id
        for logical_id, resource in resources.items()
        if isinstance(resource, Mapping) and resource.get("Type") == SERVERLESS_FUNCTION
    ]


def function_properties(template: Mapping[str, Any], logical_id: str) -> Mapping[str, Any]:
    """The Properties of `logical_id`, which must be an AWS::Serverless::Function."""
    resource = (template.get("Resources") or {}).get(logical_id)
    if not isinstance(resource, Mapping) or resource.get("Type") != SERVERLESS_FUNCTION:
        raise TemplateError(f"{logical_id}: no such {SERVERLESS_FUNCTION} in template")
    props: Mapping[str, Any] = resource.get("Properties") or {}
    return props


def function_setting(template: Mapping[str, Any], logical_id: str, name: str, default: int) -> int:
    """Timeout / MemorySize of a function: its own, else Globals.Function, else Lambda's."""
    props = function_properties(template, logical_id)
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    value = props.get(name, globals_fn.get(name, default))
    return template_int(value, f"{logical_id} {name}")


def template_int(value: Any, what: str) -> int:
    """A plain number of the template (no intrinsic function) or TemplateError."""
    if isinstance(value, bool):
        raise TemplateError(f"{what} must be a number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TemplateError(f"{what} must be a plain number, got {value!r}") from None


def function_event(template: Mapping[str, Any], logical_id: str, kind: str) -> Mapping[str, Any]:
    """The Properties of the function's one event of type `kind` (DynamoDB, SQS, ...)."""
    events = function_properties(template, logical_id).get("Events") or {}
    found = [e for e in events.values() if isinstance(e, Mapping) and e.get("Type") == kind]
    if len(found) != 1:
        raise TemplateError(f"{logical_id} needs exactly one {kind} event, has {len(found)}")
    props: Mapping[str, Any] = found[0].get("Properties") or {}
    return props


def _queue_physical(resources: LocalResources, url: str) -> Physical:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    arn = f"arn:{PARTITION}:sqs:{resources.region}:{resources.account_id}:{name}"
    return Physical(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


def resolver_for(
    template: Mapping[str, Any],
    resources: LocalResources,
    parameters: Mapping[str, str] | None,
) -> Resolver:
    merged = dict(resources.parameters)
    merged.update(parameters or {})
    resolver = Resolver(
        template,
        region=resources.region,
        account_id=resources.account_id,
        stack_name=resources.stack_name,
        parameters=merged,
    )
    bucket = resources.bucket_name
    resolver.resources.update(
        {
            TABLE_ID: Physical(
                resources.table_name,
                {"Arn": resources.table_arn, "StreamArn": resources.stream_arn},
            ),
            BUCKET_ID: Physical(
                bucket,
                {
                    "Arn": f"arn:{PARTITION}:s3:::{bucket}",
                    "DomainName": f"{bucket}.s3.amazonaws.com",
                    "RegionalDomainName": f"{bucket}.s3.{resources.region}.amazonaws.com",
                },
            ),
            KEY_ID: Physical(
                resources.kms_key_id,
                {"Arn": resources.kms_key_arn, "KeyId": resources.kms_key_id},
            ),
            FALLBACK_QUEUE_ID: _queue_physical(resources, resources.fallback_queue_url),
            FALLBACK_DLQ_ID: _queue_physical(resources, resources.fallback_dlq_url),
            ARCHIVE_FAILURE_QUEUE_ID: _queue_physical(
                resources, resources.archive_failure_queue_url
            ),
            SECRET_ID: Physical(resources.secret_arn, {"Id": resources.secret_arn}),
        }
    )
    for queue_id, url in (
        (ARCHIVE_WORK_QUEUE_ID, resources.archive_work_queue_url),
        (ARCHIVE_WORK_DLQ_ID, resources.archive_work_dlq_url),
    ):
        if url:
            resolver.resources[queue_id] = _queue_physical(resources, url)
    if resources.index_table_name:
        resolver.resources[INDEX_TABLE_ID] = Physical(
            resources.index_table_name, {"Arn": resources.index_table_arn}
        )
    if resources.number_index_key_arn:
        key_id = resources.number_index_key_arn.rsplit("/", 1)[-1]
        resolver.resources[NUMBER_INDEX_KEY_ID] = Physical(
            key_id, {"Arn": resources.number_index_key_arn, "KeyId": key_id}
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
    template = template_at(template_path)
    properties = function_properties(template, logical_id)
    globals_env = (
        ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    ).get("Variables") or {}
    own_env = (properties.get("Environment") or {}).get("Variables") or {}
    resolver = resolver_for(template, resources, parameters)
    env: dict[str, str] = {}
    for name, value in {**globals_env, **own_env}.items():
        try:
            resolved = resolver.resolve(value)
        except LocalResourceError as exc:
            raise LocalResourceError(f"{logical_id} {name}: {exc}") from None
        if resolved is NO_VALUE:
            continue
        env[name] = scalar_text(resolved)
    env.update(overrides or {})
    return env


def function_handler(logical_id: str, template_path: Path | None = None) -> str:
    """The Handler of a function: `module.path.function`."""
    return str(function_properties(template_at(template_path), logical_id)["Handler"])
