"""The real CallbackFunction handler on HTTP API 2.0 events, against the template's table."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.config import Config

from recording_archive.handlers import fallback_drain, wiring
from recording_archive.handlers.recording_callback import lambda_handler
from recording_archive_cli.local.resources import LocalResources
from tests.support.callback_flow import signed_form_event
from tests.support.http_events import form_body, http_event
from tests.support.logs import captured_log_lines
from tests.support.moto_resources import SECOND_TOKEN, TOKEN, scan_items, set_secret
from tests.support.net import free_port
from tests.support.plivo import recording_event, sdk_signature

API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/callbacks/recording"
NONCE = "31415926535897932384"


def signed_post(
    params: dict[str, Any],
    *,
    url: str = API_URL,
    token: str = TOKEN,
    header: str = "X-Plivo-Signature-V3",
    **event_kwargs: Any,
) -> dict[str, Any]:
    return signed_form_event(params, token, url=url, nonce=NONCE, header=header, **event_kwargs)


def call(event: dict[str, Any], ctx: Any) -> tuple[int, dict[str, Any]]:
    resp = lambda_handler(event, ctx)
    body = resp["body"]
    if resp.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return resp["statusCode"], json.loads(body)


@pytest.fixture
def callback_env(function_env: Any) -> dict[str, str]:
    return function_env("CallbackFunction")


def test_signed_completed_callback_is_stored_once(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    params = recording_event("SessionRecordingCompleted", sequence=10)
    status, body = call(signed_post(params), lambda_context)
    assert (status, body["status"]) == (200, "stored")
    assert body["sessionUUID"] == params["SessionUUID"] and body["sequenceNumber"] == 10

    [item] = scan_items(resources)
    assert item["SessionUUID"] == {"S": params["SessionUUID"]}
    assert item["SequenceNumber"] == {"N": "10"}
    assert item["EventName"] == {"S": "SessionRecordingCompleted"}
    assert {k: v["L"][0]["S"] for k, v in item["Payload"]["M"].items()} == params
    assert item["RawBody"]["S"] == form_body(params)
    assert item["ArchiveStatus"] == {"S": "PENDING"} and item["ArchiveQueue"] == {"S": "PENDING"}
    assert item["RecordingExt"] == {"S": "mp3"}
    assert item["RecordingStartTime"] == {"S": "2026-11-20T10:25:10.000Z"}
    assert item["RecordingDurationSeconds"] == {"N": "12"}

    status, body = call(signed_post(params), lambda_context)
    assert (status, body["status"]) == (200, "duplicate")
    assert scan_items(resources) == [item]  # nothing rewritten


def test_different_payload_on_existing_key_is_kept_once(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    first = recording_event("SessionRecordingInitiated", sequence=1)
    second = dict(first, EventTimestamp="2026-11-20 10:26:00 +0000 UTC")
    assert call(signed_post(first), lambda_context)[1]["status"] == "stored"
    assert call(signed_post(second), lambda_context)[1]["status"] == "conflict"
    assert call(signed_post(second), lambda_context)[1]["status"] == "duplicate"
    [item] = scan_items(resources)
    assert item["Payload"]["M"]["EventTimestamp"]["L"][0]["S"] == first["EventTimestamp"]
    [kept] = item["ConflictingPayloads"]["L"]
    assert kept["M"]["Payload"]["M"]["EventTimestamp"]["L"][0]["S"] == second["EventTimestamp"]


def test_tampered_callback_is_refused_and_nothing_written(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    params = recording_event("SessionRecordingCompleted")
    event = signed_post(params)
    tampered = dict(params, RecordingURL="https://media.plivo.com/v1/other.mp3")
    event["body"] = base64.b64encode(form_body(tampered).encode()).decode()
    status, body = call(event, lambda_context)
    assert status == 403 and body["error"] == "signature_invalid"
    assert scan_items(resources) == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 401),
        ({"X-Plivo-Signature-V3": "abc"}, 401),
        ({"X-Plivo-Signature-V3-Nonce": NONCE}, 401),
        ({"X-Plivo-Signature-V3": "abc", "X-Plivo-Signature-V3-Nonce": NONCE}, 403),
    ],
)
def test_signature_headers(
    callback_env: dict[str, str],
    resources: LocalResources,
    lambda_context: Any,
    headers: dict[str, str],
    expected: int,
) -> None:
    params = recording_event("SessionRecordingInitiated")
    headers = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    status, _ = call(http_event("POST", body=form_body(params), headers=headers), lambda_context)
    assert status == expected
    assert scan_items(resources) == []


def test_get_callback_with_query_string_and_blank_values(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    params = recording_event("SessionRecordingInitiated", sequence=2)
    params["RecordingURL"] = ""  # blank values are signed and kept
    raw_query = form_body(params)
    sig = sdk_signature(TOKEN, "GET", API_URL, {k: [v] for k, v in params.items()}, NONCE)
    event = http_event(
        "GET",
        raw_query=raw_query,
        headers={"X-Plivo-Signature-V3": sig, "X-Plivo-Signature-V3-Nonce": NONCE},
    )
    status, body = call(event, lambda_context)
    assert (status, body["status"]) == (200, "stored")
    [item] = scan_items(resources)
    assert item["Payload"]["M"]["RecordingURL"] == {"L": [{"S": ""}]}
    assert item["Method"] == {"S": "GET"} and item["RawBody"] == {"S": raw_query}


def test_json_body_signed_by_sdk(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    params = recording_event("SessionRecordingFailed", sequence=3)
    sig = sdk_signature(TOKEN, "POST", API_URL, params, NONCE)
    event = http_event(
        "POST",
        body=json.dumps(params),
        base64_body=False,
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "X-Plivo-Signature-V3": sig,
            "X-Plivo-Signature-V3-Nonce": NONCE,
        },
    )
    status, body = call(event, lambda_context)
    assert (status, body["status"]) == (200, "stored")
    [item] = scan_items(resources)
    assert item["Payload"]["M"]["From"] == {"S": "+14155550101"}
    assert "ArchiveStatus" not in item  # only Completed events wait for the archiver


def test_stage_prefix_is_part_of_the_signed_url(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    params = recording_event("SessionRecordingInitiated")
    staged = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/callbacks/recording"
    assert call(signed_post(params, url=staged, stage="prod"), lambda_context)[0] == 200
    # Signed for the URL without the stage: refused.
    params2 = recording_event("SessionRecordingInitiated")
    assert call(signed_post(params2, stage="prod"), lambda_context)[0] == 403


def test_custom_domain_from_request_context(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    params = recording_event("SessionRecordingInitiated")
    url = "https://calls.example.com/callbacks/recording"
    event = signed_post(params, url=url, domain="calls.example.com")
    assert call(event, lambda_context)[0] == 200


def test_configured_url_wins_and_client_headers_are_ignored(
    function_env: Any, resources: LocalResources, lambda_context: Any
) -> None:
    public = "https://proxy.example.com:8443/plivo/callbacks/recording/?account=1"
    function_env("CallbackFunction", PUBLIC_CALLBACK_URL=public)
    params = recording_event("SessionRecordingInitiated")
    assert call(signed_post(params, url=public), lambda_context)[0] == 200
    # A signature over a URL rebuilt from client headers is refused.
    spoofed = "https://evil.example.com/callbacks/recording"
    event = signed_post(
        recording_event("SessionRecordingInitiated"),
        url=spoofed,
        extra_headers={"Host": "evil.example.com", "X-Forwarded-Host": "evil.example.com"},
    )
    assert call(event, lambda_context)[0] == 403


def test_several_signatures_and_main_account_header(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    params = recording_event("SessionRecordingInitiated")
    good = sdk_signature(SECOND_TOKEN, "POST", API_URL, params, NONCE)
    event = http_event(
        "POST",
        body=form_body(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Plivo-Signature-Ma-V3": f"bm9wZQ==, {good}",
            "X-Plivo-Signature-V3-Nonce": NONCE,
        },
    )
    assert call(event, lambda_context)[0] == 200


@pytest.mark.parametrize(
    ("content_type", "body", "base64_body", "status", "error"),
    [
        ("text/plain", "a=b", True, 415, "unsupported_media_type"),
        ("", "a=b", True, 415, "unsupported_media_type"),
        ("application/json", "[1, 2]", True, 400, "malformed_body"),
        ("application/json", '{"a": 1, "a": 2}', True, 400, "malformed_body"),
        ("application/json", "{" * 5000, True, 400, "malformed_body"),
        ("application/json", '{"a":' * 20 + "1" + "}" * 20, True, 400, "malformed_body"),
        ("application/x-www-form-urlencoded", b"From=%ff%fe", True, 400, "malformed_body"),
        ("application/x-www-form-urlencoded", b"\xff\xfe=1", True, 400, "malformed_body"),
        (
            "application/x-www-form-urlencoded",
            "x" * (64 * 1024 + 1),
            True,
            413,
            "payload_too_large",
        ),
    ],
)
def test_rejections(
    callback_env: dict[str, str],
    resources: LocalResources,
    lambda_context: Any,
    content_type: str,
    body: str | bytes,
    base64_body: bool,
    status: int,
    error: str,
) -> None:
    headers = {"X-Plivo-Signature-V3": "c2ln", "X-Plivo-Signature-V3-Nonce": NONCE}
    if content_type:
        headers["Content-Type"] = content_type
    event = http_event("POST", body=body, headers=headers, base64_body=base64_body)
    got_status, got = call(event, lambda_context)
    assert (got_status, got["error"]) == (status, error)
    assert scan_items(resources) == []


def test_invalid_base64_body_is_malformed(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    event = http_event(
        "POST",
        body="a=b",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Plivo-Signature-V3": "c2ln",
            "X-Plivo-Signature-V3-Nonce": NONCE,
        },
    )
    event["body"] = "!!!not base64"
    assert call(event, lambda_context) == (
        400,
        {"error": "malformed_body", "message": "body is not valid base64"},
    )


def test_schema_violation_names_fields_without_values(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    params = recording_event("SessionRecordingCompleted")
    params |= {"SessionUUID": "not-a-uuid-555", "SequenceNumber": "-1"}
    params["RecordingURL"] = "http://media.plivo.com/x.mp3"
    status, body = call(signed_post(params), lambda_context)
    assert status == 422 and body["error"] == "invalid_callback"
    assert set(body["fields"]) == {"SessionUUID", "SequenceNumber", "RecordingURL"}
    assert "not-a-uuid-555" not in json.dumps(body) and "http://" not in json.dumps(body)
    assert scan_items(resources) == []


def test_unknown_event_and_attributes_are_stored_as_received(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    params = {
        "EventName": "SessionRecordingTranscribed",
        "SessionUUID": str(uuid.uuid4()),
        "SequenceNumber": "7",
        "FirstParty": "+14155550111",
        "NewAttribute": "ünïcode value",
    }
    assert call(signed_post(params), lambda_context)[0] == 200
    [item] = scan_items(resources)
    assert item["EventName"] == {"S": "SessionRecordingTranscribed"}
    assert item["Payload"]["M"]["NewAttribute"] == {"L": [{"S": "ünïcode value"}]}


def test_other_methods_get_405(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    assert call(http_event("PUT", body="x"), lambda_context)[0] == 405
    assert call(http_event("POST", path="/elsewhere", body="x"), lambda_context)[0] == 404


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"])
def test_every_other_method_is_405_and_writes_nothing(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any, method: str
) -> None:
    params = recording_event("SessionRecordingCompleted")
    event = signed_post(params)
    event["requestContext"]["http"]["method"] = method
    assert call(event, lambda_context) == (
        405,
        {"error": "method_not_allowed", "message": "use POST or GET"},
    )
    assert scan_items(resources) == []


@pytest.mark.parametrize(
    ("path", "stage"),
    [
        ("/elsewhere", "$default"),
        ("/callbacks/recording/", "$default"),
        ("/callbacks", "$default"),
        ("/callbacks/recording/x", "prod"),
        ("/prod/callbacks/recording", "$default"),  # a stage-like prefix without that stage
    ],
)
def test_other_paths_are_404_and_write_nothing(
    callback_env: dict[str, str],
    resources: LocalResources,
    lambda_context: Any,
    path: str,
    stage: str,
) -> None:
    params = recording_event("SessionRecordingCompleted")
    event = signed_post(params, path=path, stage=stage)
    assert call(event, lambda_context) == (
        404,
        {"error": "not_found", "message": "the only route is /callbacks/recording"},
    )
    assert scan_items(resources) == []


def test_answer_is_the_http_api_proxy_result(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    """The exact result Powertools' resolver gave (compact JSON, one header, no cookies)."""
    params = recording_event("SessionRecordingCompleted", sequence=3)
    stored = lambda_handler(signed_post(params), lambda_context)
    assert stored == {
        "statusCode": 200,
        "body": json.dumps(
            {"status": "stored", "sessionUUID": params["SessionUUID"], "sequenceNumber": 3},
            separators=(",", ":"),
        ),
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "cookies": [],
    }
    lowercase = signed_post(params)
    lowercase["requestContext"]["http"]["method"] = "post"
    assert call(lowercase, lambda_context) == (
        200,
        {"status": "duplicate", "sessionUUID": params["SessionUUID"], "sequenceNumber": 3},
    )
    refused = lambda_handler(
        http_event("POST", body="a=b", headers={"Content-Type": "text/plain"}), lambda_context
    )
    assert (refused["statusCode"], refused["headers"], refused["cookies"]) == (
        415,
        {"Content-Type": "application/json"},
        [],
    )
    assert json.loads(refused["body"])["error"] == "unsupported_media_type"


def test_no_token_configured_refuses_everything(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    set_secret(resources, {"auth_id": "", "auth_tokens": []})
    params = recording_event("SessionRecordingInitiated")
    status, body = call(signed_post(params), lambda_context)
    assert (status, body["error"]) == (403, "no_auth_token_configured")
    set_secret(resources, {"auth_id": "MA", "auth_tokens": "not-json-list"})
    assert call(signed_post(params), lambda_context)[0] == 403
    assert scan_items(resources) == []


def test_unreadable_secret_answers_503_and_writes_nothing(
    function_env: Any, resources: LocalResources, lambda_context: Any
) -> None:
    function_env(
        "CallbackFunction",
        AUTH_SECRET_ID="arn:aws:secretsmanager:us-east-1:123456789012:secret:missing",
    )
    status, body = call(signed_post(recording_event("SessionRecordingInitiated")), lambda_context)
    assert (status, body["error"]) == (503, "unavailable")
    assert scan_items(resources) == []


def _dead_client(service: str) -> Any:
    """A real client pointed at a closed loopback port: every call fails to connect."""
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(connect_timeout=0.2, read_timeout=0.2, retries={"max_attempts": 1}),
    )


def _dead_table(resources: LocalResources) -> Any:
    """The events table through a client that cannot connect."""
    from recording_archive.dal.events_table import RecordingEventStore

    return RecordingEventStore(_dead_client("dynamodb"), resources.table_name)


def test_table_down_goes_to_fallback_queue_and_drain_stores_it(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    live = wiring.callback_dependencies()
    wiring.set_callback_dependencies(replace(live, store=_dead_table(resources)))
    params = recording_event("SessionRecordingCompleted", sequence=4)
    status, body = call(signed_post(params), lambda_context)
    assert (status, body["status"]) == (200, "queued")
    assert scan_items(resources) == []

    sqs = boto3.client("sqs", endpoint_url=resources.endpoint_url)
    msgs = sqs.receive_message(QueueUrl=resources.fallback_queue_url, MaxNumberOfMessages=10)
    [msg] = msgs["Messages"]
    sqs_event = {
        "Records": [
            {
                "messageId": msg["MessageId"],
                "receiptHandle": msg["ReceiptHandle"],
                "body": msg["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": msg["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fallback",
                "awsRegion": "us-east-1",
            }
        ]
        * 2  # delivered twice: stored once
    }
    wiring.set_callback_dependencies(None)
    assert fallback_drain.lambda_handler(sqs_event, lambda_context) == {"batchItemFailures": []}
    [item] = scan_items(resources)
    assert item["Source"] == {"S": "fallback"}
    assert item["ArchiveStatus"] == {"S": "PENDING"}


def test_drain_reports_a_failed_record_for_retry(
    function_env: Any, resources: LocalResources, lambda_context: Any
) -> None:
    function_env("FallbackDrainFunction")
    event = {
        "Records": [
            {
                "messageId": "m1",
                "receiptHandle": "r1",
                "body": '{"version": 99}',
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fallback",
            }
        ]
    }
    assert fallback_drain.lambda_handler(event, lambda_context) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}]
    }


def test_queue_client_is_made_only_when_the_table_fails(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    from recording_archive.dal.fallback_queue import FallbackQueue

    made: list[Any] = []

    def sqs_factory() -> Any:
        made.append(boto3.client("sqs", endpoint_url=resources.endpoint_url))
        return made[-1]

    live = wiring.callback_dependencies()
    queue = FallbackQueue(sqs_factory, resources.fallback_queue_url)
    wiring.set_callback_dependencies(replace(live, fallback=queue))
    status, body = call(signed_post(recording_event("SessionRecordingInitiated")), lambda_context)
    assert (status, body["status"], made) == (200, "stored", [])

    wiring.set_callback_dependencies(replace(live, store=_dead_table(resources), fallback=queue))
    status, body = call(signed_post(recording_event("SessionRecordingCompleted")), lambda_context)
    assert (status, body["status"], len(made)) == (200, "queued", 1)


def test_table_and_queue_down_answers_503(
    callback_env: dict[str, str], resources: LocalResources, lambda_context: Any
) -> None:
    from recording_archive.dal.fallback_queue import FallbackQueue

    live = wiring.callback_dependencies()
    dead_queue = FallbackQueue(lambda: _dead_client("sqs"), resources.fallback_queue_url)
    wiring.set_callback_dependencies(
        replace(live, store=_dead_table(resources), fallback=dead_queue)
    )
    status, body = call(signed_post(recording_event("SessionRecordingInitiated")), lambda_context)
    assert (status, body["error"]) == (503, "unavailable")


def test_logs_never_hold_full_phone_numbers_tokens_or_signatures(
    callback_env: dict[str, str],
    resources: LocalResources,
    lambda_context: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    params = recording_event("SessionRecordingCompleted")
    event = signed_post(params)
    with captured_log_lines() as logs:
        call(event, lambda_context)
        call(event, lambda_context)  # replay: logged as seen before
    out = logs.getvalue() + capfd.readouterr().out
    assert "***0101" in out  # masked From is logged
    sig = event["headers"]["x-plivo-signature-v3"]
    for secret in ("+14155550101", "14155550101", "919876543210", TOKEN, sig):
        assert secret not in out
