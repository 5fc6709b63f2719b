"""Least privilege from the calls the code really makes (issue 12).

The conftest records every AWS call a handler makes while the tests run, in this process and in
`recording-archive local`'s workers (cli/recording_archive_cli/local/aws_call_log.py).
`test_recorded_calls_are_allowed_by_each_role` runs after every other test (tests/conftest.py
reorders it) and checks each call, plus what Lambda itself does with the role (logs, the event
source mappings, the on-failure destination), against the function's role in template.yaml
(tests/support/iam_policy.py). A call the role does not allow fails it with the function, the
action and the resource. On a full run (every recording suite, nothing deselected) it also fails
when a function made no call at all, or when a grant no call needs is not justified below.

The other tests check the evaluator itself on synthetic calls, against the real template and
against copies of it with one grant removed.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from recording_archive_cli.local import aws_call_log
from recording_archive_cli.local.template import load_template
from tests.support import iam_policy
from tests.support.iam_policy import (
    ACCOUNT,
    FAKE_RESOURCES,
    PARTITION,
    REGION,
    Grant,
    Need,
    PolicyCheckError,
    allows,
    evaluate,
    without_action,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
# Where to write the figures of the recorded-calls check as JSON (reliability/template_checks.py).
SUMMARY_ENV = "RECORDING_ARCHIVE_PERMISSION_SUMMARY"
# The suites whose tests run the handlers (in-process on moto, or through the local stack).
RECORDING_SUITES = ("tests/integration/", "tests/e2e/", "tests/reliability/")

# Grants no recorded call needs, each with the code path that does (the template's comment on the
# statement says the same). A full run fails on any other unused grant: justify it or remove it.
_STORE = "RecordingStore (dal/recording_store.py), shared by the three archiving functions"
_UPLOADERS = ("ArchiveFunction", "ArchiveWorkFunction", "ReconcileFunction")
JUSTIFIED_UNUSED: dict[tuple[str, str], str] = {
    **{
        (fn, "s3:AbortMultipartUpload"): f"a failed multipart upload: {_STORE}" for fn in _UPLOADERS
    },
    # test_archive_existing_version.py drives this path through ArchiveFunction.
    **{
        (fn, action): f"the 412 path of a multipart object (verify_existing): {_STORE}"
        for fn in ("ArchiveWorkFunction", "ReconcileFunction")
        for action in ("s3:GetObjectVersion", "s3:GetObjectVersionTagging")
    },
    **{
        (fn, action): f"multipart tag / 412 HeadObject as recorded for ArchiveFunction: {_STORE}"
        for fn in ("ArchiveWorkFunction", "ReconcileFunction")
        for action in ("s3:PutObjectVersionTagging", "s3:GetObject", "s3:ListBucket")
    },
    # test_archive.py drives both (a held item's upload, the 412 path) through ArchiveFunction.
    **{
        (fn, "s3:PutObjectLegalHold"): f"a recording held before it was archived: {_STORE}"
        for fn in ("ArchiveWorkFunction", "ReconcileFunction")
    },
    ("CallbackFunction", "dynamodb:GetItem"): "put_new: the conflicting item was not returned",
    ("FallbackDrainFunction", "dynamodb:GetItem"): "put_new: the conflicting item was not returned",
    ("FallbackDrainFunction", "dynamodb:UpdateItem"): "put_new: a conflicting payload is kept",
    # DynamoDB's use of a customer-managed table key is not derived from the calls (see
    # iam_policy._KMS_FOR_OPERATION); kept as the template's DataKeyUse comment says.
    ("FallbackDrainFunction", "kms:GenerateDataKey"): "writes to the KMS-encrypted table",
}

# Local resource names as the integration fixtures create them (local/resources.py).
LOCAL = {
    "EVENTS_TABLE_NAME": "local-EventsTable",
    "ARCHIVE_BUCKET_NAME": "local-archivebucket",
    "ARCHIVE_KMS_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/local-key",
    "AUTH_SECRET_ID": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:local-AuthSecret-AbCdEf",
    "FALLBACK_QUEUE_URL": "http://127.0.0.1:5000/123456789012/local-FallbackQueue",
    "MEDIA_AUTH": "false",
}
KEY = "recordings/2026/12/03/0b6f3e4c-5d7a-4c1e-9b2a-2f0d8c6e1a9b.mp3"
BUCKET_ARN = f"arn:{PARTITION}:s3:::{FAKE_RESOURCES.bucket_name}"
TABLE_ARN = FAKE_RESOURCES.table_arn
KEY_ARN = FAKE_RESOURCES.kms_key_arn
STACK_QUEUE = FAKE_RESOURCES.fallback_queue_url.rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def call(
    function: str,
    service: str,
    operation: str,
    *,
    present: tuple[str, ...] = (),
    environment: dict[str, str] | None = None,
    **params: str,
) -> dict[str, Any]:
    prefix = "dynamodb" if service == "dynamodbstreams" else service
    return {
        "functions": [function],
        "service": service,
        "iam_prefix": prefix,
        "operation": operation,
        "params": params,
        "present": sorted(present),
        "environment": environment if environment is not None else dict(LOCAL),
    }


def needs_of(template: dict[str, Any], record: dict[str, Any], **parameters: str) -> list[Need]:
    stack = iam_policy.ResolvedStack(template, parameters)
    return iam_policy.call_needs(stack, record["functions"][0], record)


def refused(template: dict[str, Any], *records: dict[str, Any]) -> set[tuple[str, str, str]]:
    report = evaluate(template, list(records))
    return {(n.function, n.action, n.resource) for n in report.refused}


# --------------------------------------------------------------------------------------------
# Mapping calls to actions and resources
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "present", "action"),
    [
        ("PutObjectTagging", ("VersionId",), "s3:PutObjectVersionTagging"),
        ("PutObjectTagging", (), "s3:PutObjectTagging"),
        ("GetObjectTagging", ("VersionId",), "s3:GetObjectVersionTagging"),
        ("GetObject", ("VersionId",), "s3:GetObjectVersion"),
        ("GetObject", (), "s3:GetObject"),
        ("HeadObject", (), "s3:GetObject"),
        ("HeadObject", ("VersionId",), "s3:GetObjectVersion"),
        ("UploadPart", (), "s3:PutObject"),
        ("CompleteMultipartUpload", (), "s3:PutObject"),
        ("ListParts", (), "s3:ListMultipartUploadParts"),
        ("AbortMultipartUpload", (), "s3:AbortMultipartUpload"),
    ],
)
def test_s3_object_operations_map_to_the_sar_action(
    template: dict[str, Any], operation: str, present: tuple[str, ...], action: str
) -> None:
    record = call(
        "ArchiveFunction", "s3", operation, present=present, Bucket="local-archivebucket", Key=KEY
    )
    first = needs_of(template, record)[0]
    assert (first.action, first.resource) == (action, f"{BUCKET_ARN}/{KEY}")


def test_list_objects_is_list_bucket_on_the_bucket(template: dict[str, Any]) -> None:
    record = call("ArchiveFunction", "s3", "ListObjectsV2", Bucket="local-archivebucket")
    assert [(n.action, n.resource) for n in needs_of(template, record)] == [
        ("s3:ListBucket", BUCKET_ARN)
    ]


def test_sse_kms_put_needs_the_data_key_and_tags_need_tagging(template: dict[str, Any]) -> None:
    record = call(
        "ArchiveFunction",
        "s3",
        "PutObject",
        present=("Tagging",),
        Bucket="local-archivebucket",
        Key=KEY,
        SSEKMSKeyId=LOCAL["ARCHIVE_KMS_KEY_ID"],
    )
    got = {(n.action, n.resource) for n in needs_of(template, record)}
    assert got == {
        ("s3:PutObject", f"{BUCKET_ARN}/{KEY}"),
        ("s3:PutObjectTagging", f"{BUCKET_ARN}/{KEY}"),
        ("kms:GenerateDataKey", KEY_ARN),
    }


def test_get_object_of_the_kms_bucket_needs_decrypt(template: dict[str, Any]) -> None:
    record = call("ArchiveFunction", "s3", "GetObject", Bucket="local-archivebucket", Key=KEY)
    assert ("kms:Decrypt", KEY_ARN) in {(n.action, n.resource) for n in needs_of(template, record)}


def test_query_on_an_index_is_on_the_index_arn(template: dict[str, Any]) -> None:
    record = call(
        "SweeperFunction",
        "dynamodb",
        "Query",
        TableName="local-EventsTable",
        IndexName="ArchiveQueueIndex",
    )
    assert [n.resource for n in needs_of(template, record)] == [
        f"{TABLE_ARN}/index/ArchiveQueueIndex"
    ]
    # The sweeper may query the index, not the table itself.
    table_query = call("SweeperFunction", "dynamodb", "Query", TableName="local-EventsTable")
    assert ("SweeperFunction", "dynamodb:Query", TABLE_ARN) in refused(template, table_query)


def test_the_sweepers_batch_send_is_send_message_on_the_work_queue(
    template: dict[str, Any],
) -> None:
    """SendMessageBatch is authorised as sqs:SendMessage (and the queue's key), on the work queue
    only: the sweeper may not send to the fallback queue."""
    url = FAKE_RESOURCES.archive_work_queue_url
    env = dict(LOCAL, ARCHIVE_WORK_QUEUE_URL=url)
    record = call("SweeperFunction", "sqs", "SendMessageBatch", environment=env, QueueUrl=url)
    queue_arn = f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{url.rsplit('/', 1)[-1]}"
    assert {(n.action, n.resource) for n in needs_of(template, record)} == {
        ("sqs:SendMessage", queue_arn),
        ("kms:GenerateDataKey", KEY_ARN),
        ("kms:Decrypt", KEY_ARN),
    }
    assert refused(template, record) == set()
    without = without_action(template, "SweeperFunctionRole", "sqs:SendMessage")
    assert refused(without, record) == {("SweeperFunction", "sqs:SendMessage", queue_arn)}


def test_sqs_send_to_the_encrypted_queue_needs_the_key(template: dict[str, Any]) -> None:
    record = call("CallbackFunction", "sqs", "SendMessage", QueueUrl=LOCAL["FALLBACK_QUEUE_URL"])
    queue_arn = f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{STACK_QUEUE}"
    assert {(n.action, n.resource) for n in needs_of(template, record)} == {
        ("sqs:SendMessage", queue_arn),
        ("kms:GenerateDataKey", KEY_ARN),
        ("kms:Decrypt", KEY_ARN),
    }


def test_put_events_is_on_the_bus_of_the_function_and_only_the_archivers(
    template: dict[str, Any],
) -> None:
    bus_arn = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/default"
    env = dict(LOCAL, EVENT_BUS_NAME="default")
    for function in (
        "ArchiveFunction",
        "SweeperFunction",
        "ArchiveWorkFunction",
        "ReconcileFunction",
    ):
        record = call(function, "events", "PutEvents", environment=env)
        record["params"] = {"EventBusNames": ["default"]}
        assert [(n.action, n.resource) for n in needs_of(template, record)] == [
            ("events:PutEvents", bus_arn)
        ]
        assert refused(template, record) == set()
        without = without_action(template, f"{function}Role", "events:PutEvents")
        assert refused(without, record) == {(function, "events:PutEvents", bus_arn)}
        # EventBusName=audit: the role's grant follows the parameter to that bus.
        other = dict(record, environment=dict(env, EVENT_BUS_NAME="audit"))
        other["params"] = {"EventBusNames": ["audit"]}
        audit = [n.resource for n in needs_of(template, other, EventBusName="audit")]
        assert audit == [bus_arn.replace("/default", "/audit")]
        assert refused(template, other) == set()
        # A bus that is not the function's EVENT_BUS_NAME cannot be mapped: fails closed.
        foreign = dict(record, params={"EventBusNames": ["someone-elses"]})
        with pytest.raises(PolicyCheckError, match="someone-elses"):
            needs_of(template, foreign)
    callback = call("CallbackFunction", "events", "PutEvents", environment=env)
    callback["params"] = {"EventBusNames": ["default"]}
    with pytest.raises(PolicyCheckError, match="default"):
        needs_of(template, callback)  # the callback has no EVENT_BUS_NAME at all


def test_secret_read_needs_decrypt_with_the_stack_key(template: dict[str, Any]) -> None:
    record = call(
        "CallbackFunction", "secretsmanager", "GetSecretValue", SecretId=LOCAL["AUTH_SECRET_ID"]
    )
    assert {(n.action, n.resource) for n in needs_of(template, record)} == {
        ("secretsmanager:GetSecretValue", FAKE_RESOURCES.secret_arn),
        ("kms:Decrypt", KEY_ARN),
    }


def test_a_name_no_environment_variable_holds_fails_closed(template: dict[str, Any]) -> None:
    record = call("ArchiveFunction", "s3", "GetObject", Bucket="someone-elses-bucket", Key=KEY)
    with pytest.raises(PolicyCheckError, match="someone-elses-bucket"):
        needs_of(template, record)


def test_an_operation_without_an_iam_action_fails_closed(template: dict[str, Any]) -> None:
    record = call("ArchiveFunction", "s3", "CopyObject", Bucket="local-archivebucket", Key=KEY)
    with pytest.raises(PolicyCheckError, match="s3:CopyObject"):
        needs_of(template, record)


def test_an_unmapped_service_fails_closed(template: dict[str, Any]) -> None:
    record = call("ArchiveFunction", "sns", "Publish")
    with pytest.raises(PolicyCheckError, match="sns"):
        needs_of(template, record)


def test_a_call_attributed_to_no_function_of_the_template_fails(template: dict[str, Any]) -> None:
    record = call("<unknown handler module x>", "s3", "GetObject")
    with pytest.raises(PolicyCheckError, match="not a function"):
        evaluate(template, [record])


# --------------------------------------------------------------------------------------------
# Matching grants
# --------------------------------------------------------------------------------------------


def test_iam_wildcards() -> None:
    grant = Grant("F", "S", "s3:Get*", "arn:aws:s3:::b/recordings/*")
    assert allows(grant, Need("F", "s3:GetObjectVersion", "arn:aws:s3:::b/recordings/x", ""))
    assert allows(grant, Need("F", "S3:getobject", "arn:aws:s3:::b/recordings/a/b", ""))
    assert not allows(grant, Need("F", "s3:PutObject", "arn:aws:s3:::b/recordings/x", ""))
    assert not allows(grant, Need("F", "s3:GetObject", "arn:aws:s3:::b/other/x", ""))
    assert not allows(grant, Need("F", "s3:GetObject", "arn:aws:s3:::B/recordings/x", ""))
    single = Grant("F", "S", "sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q?")
    assert allows(single, Need("F", "sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q1", ""))
    assert not allows(single, Need("F", "sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q12", ""))


def test_versioned_tagging_needs_the_version_grant(template: dict[str, Any]) -> None:
    tag = call(
        "ArchiveFunction",
        "s3",
        "PutObjectTagging",
        present=("VersionId", "Tagging"),
        Bucket="local-archivebucket",
        Key=KEY,
    )
    assert refused(template, tag) == set()
    # Without s3:PutObjectVersionTagging (the template before issue 12) the call is refused.
    before = without_action(template, "ArchiveFunctionRole", "s3:PutObjectVersionTagging")
    assert ("ArchiveFunction", "s3:PutObjectVersionTagging", f"{BUCKET_ARN}/{KEY}") in refused(
        before, tag
    )


def test_the_template_grants_what_lambda_itself_needs(template: dict[str, Any]) -> None:
    """Logs, the environment's key, the stream and queue pollers, the on-failure destination."""
    assert refused(template) == set()
    report = evaluate(template, [])
    archive = {(n.action, n.resource) for n in report.needs if n.function == "ArchiveFunction"}
    assert ("dynamodb:ListStreams", "*") in archive
    assert (
        "sqs:SendMessage",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:archive-ArchiveFailureQueue-1A2B3C4D",
    ) in archive
    drain = {(n.action, n.resource) for n in report.needs if n.function == "FallbackDrainFunction"}
    assert ("kms:Decrypt", KEY_ARN) in drain
    without_logs = without_action(template, "SweeperFunctionRole", "logs:PutLogEvents")
    assert any(a == "logs:PutLogEvents" for _f, a, _r in refused(without_logs))


def test_media_auth_decides_the_archivers_secret_grant(template: dict[str, Any]) -> None:
    off = dict(LOCAL, MEDIA_AUTH="false")
    on = dict(LOCAL, MEDIA_AUTH="true")
    for function in ("ArchiveFunction", "ArchiveWorkFunction"):
        read = call(
            function,
            "secretsmanager",
            "GetSecretValue",
            environment=off,
            SecretId=LOCAL["AUTH_SECRET_ID"],
        )
        assert (function, "secretsmanager:GetSecretValue", FAKE_RESOURCES.secret_arn) in refused(
            template, read
        )
        read["environment"] = on
        assert refused(template, read) == set()
    # Unused when MediaAuth is false: the grant does not exist then.
    report = evaluate(template, [])
    assert not any(
        g.action == "secretsmanager:GetSecretValue" and g.function == "ArchiveFunction"
        for g in report.unused
    )


def test_an_ambiguous_pool_call_is_checked_against_every_candidate(
    template: dict[str, Any],
) -> None:
    record = call("ArchiveFunction", "s3", "UploadPart", Bucket="local-archivebucket", Key=KEY)
    record["functions"] = ["ArchiveFunction", "CallbackFunction"]
    report = evaluate(template, [record])
    # The callback's environment names no bucket: the call cannot be its, and the check fails.
    assert len(report.errors) == 1
    assert "CallbackFunction: Bucket 'local-archivebucket'" in report.errors[0]
    assert not any(
        n.function == "ArchiveFunction" for n in report.refused if n.action == "s3:PutObject"
    )


# --------------------------------------------------------------------------------------------
# The recorded calls of this session
# --------------------------------------------------------------------------------------------


def _full_run(session: pytest.Session) -> bool:
    """Every recording suite was selected whole (its directory or an ancestor given), nothing
    deselected: the record then covers every path the tests exercise."""
    option = session.config.option
    if getattr(option, "keyword", "") or getattr(option, "markexpr", ""):
        return False
    if getattr(option, "deselect", None) or getattr(option, "lf", False):
        return False
    root = session.config.rootpath
    given = [(root / arg.split("::", 1)[0]).resolve() for arg in session.config.args]
    return all(
        any(
            arg == (root / suite).resolve() or arg in (root / suite).resolve().parents
            for arg in given
        )
        for suite in RECORDING_SUITES
    )


def test_recorded_calls_are_allowed_by_each_role(
    template: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    session = request.session
    if not any(s in item.nodeid for item in session.items for s in RECORDING_SUITES):
        pytest.skip(
            "no test of tests/integration, tests/e2e or tests/reliability ran in this session: "
            "nothing was recorded to check (run them together with this file)"
        )
    path = aws_call_log.enabled_path()
    assert path, f"{aws_call_log.CALL_LOG_ENV} is not set: the recorder is off"
    records = aws_call_log.read_records(path)
    report = evaluate(template, records)
    problems = sorted(set(report.errors)) + report.refused_lines()
    if not records:
        problems.append("NO CALLS at all: tests that run the handlers ran, the recorder saw none")
    silent = sorted(set(iam_policy.functions_of(template)) - report.functions_with_calls)
    silent_lines = [f"NO CALLS {fn}: no AWS call of this function was recorded" for fn in silent]
    unjustified = [g for g in report.unused if (g.function, g.action) not in JUSTIFIED_UNUSED]
    unused_lines = [
        line
        for g, line in zip(report.unused, report.unused_lines(), strict=True)
        if g in unjustified
    ]
    summary_path = os.environ.get(SUMMARY_ENV)
    if summary_path:
        # Machine-readable figures for reliability/template_checks.py.
        summary = {
            "recorded_calls": len(records),
            "needs_checked": len(report.needs),
            "functions_with_calls": sorted(report.functions_with_calls),
            "refused": len(report.refused) + len(report.errors),
            "unused_unjustified": len(unused_lines),
            "unused_justified": len(report.unused) - len(unused_lines),
        }
        Path(summary_path).write_text(json.dumps(summary), encoding="utf-8")
    # A full run must exercise every function and need every grant; a partial run (some files
    # of the recording suites) reports what it did not cover without failing on it.
    if _full_run(session):
        problems += silent_lines + unused_lines
    elif silent_lines or unused_lines:
        warnings.warn(
            "not covered by this partial run:\n" + "\n".join(silent_lines + unused_lines),
            stacklevel=1,
        )
    assert not problems, (
        f"{len(records)} recorded calls checked against template.yaml's roles:\n"
        + "\n".join(problems)
    )


def test_every_justified_unused_grant_exists(template: dict[str, Any]) -> None:
    """A justification for a grant the template no longer has is stale."""
    granted: set[tuple[str, str]] = set()
    for media_auth in ("false", "true"):
        stack = iam_policy.ResolvedStack(template, {"MediaAuth": media_auth})
        for function in iam_policy.functions_of(template):
            granted |= {(g.function, g.action) for g in stack.role_grants(function)}
    assert set(JUSTIFIED_UNUSED) <= granted, set(JUSTIFIED_UNUSED) - granted


@pytest.mark.parametrize(
    ("args", "keyword", "full"),
    [
        ([str(ROOT / "tests")], "", True),
        ([str(ROOT)], "", True),
        (["tests/integration", "tests/e2e", "tests/reliability", "tests/infra"], "", True),
        (["tests/integration", "tests/e2e"], "", False),
        (["tests/integration/test_archive.py", "tests/e2e", "tests/reliability"], "", False),
        ([str(ROOT / "tests")], "archive", False),
    ],
)
def test_a_full_run_is_every_recording_suite_whole(
    args: list[str], keyword: str, full: bool
) -> None:
    option = SimpleNamespace(keyword=keyword, markexpr="", deselect=None, lf=False)
    config = SimpleNamespace(option=option, rootpath=ROOT, args=args)
    assert _full_run(SimpleNamespace(config=config)) is full  # type: ignore[arg-type]
