"""The local HTTP API: requests become payload 2.0 events, answers become HTTP answers."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from recording_archive_cli.errors import CLIError
from recording_archive_cli.local.http_api import (
    MAX_BODY_BYTES,
    CallbackApi,
    Exchange,
    Route,
    answer_from_result,
    build_event,
    describe,
    http_api_routes,
    is_text_content_type,
    port_is_free,
)
from recording_archive_cli.local.lambda_worker import (
    FunctionError,
    FunctionTimeoutError,
    WorkerError,
)
from recording_archive_cli.local.template import TemplateError, load_template

ROUTES = [Route("POST", "/callbacks/recording"), Route("GET", "/callbacks/recording")]


class Function:
    """Records each event and answers with the next scripted result."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.result: Any = {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": json.dumps({"status": "stored"}),
        }

    def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def function() -> Function:
    return Function()


@pytest.fixture
def api(function: Function) -> Iterator[CallbackApi]:
    exchanges: list[Exchange] = []
    server = CallbackApi(
        0, routes=ROUTES, account_id="123456789012", invoke=function, on_exchange=exchanges.append
    )
    server.exchanges = exchanges  # type: ignore[attr-defined]
    server.start()
    yield server
    server.stop()


def request(
    api: CallbackApi,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers or []:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_form_post_becomes_a_payload_2_event(api: CallbackApi, function: Function) -> None:
    body = b"EventName=SessionRecordingInitiated&SessionUUID=s-1&SequenceNumber=1"
    status, headers, answer = request(
        api,
        "POST",
        "/callbacks/recording?a=1&a=2&b=",
        body,
        [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Plivo-Signature-V3", "sig1"),
            ("x-plivo-signature-v3", "sig2"),
            ("User-Agent", "PlivoTest"),
            ("Cookie", "c1=1; c2=2"),
        ],
    )
    assert status == 200
    assert json.loads(answer) == {"status": "stored"}
    assert headers["content-type"] == "application/json"
    assert headers["apigw-requestid"].endswith("=")
    event = function.events[0]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /callbacks/recording"
    assert event["rawPath"] == "/callbacks/recording"
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    # Lower-cased names, repeated headers joined with commas, cookies moved out.
    assert event["headers"]["x-plivo-signature-v3"] == "sig1,sig2"
    assert event["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["c1=1", "c2=2"]
    # HTTP API base64-encodes a form body.
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
    ctx = event["requestContext"]
    assert ctx["accountId"] == "123456789012"
    assert ctx["apiId"] == "local"
    assert ctx["domainName"] == f"127.0.0.1:{api.port}"
    assert ctx["domainPrefix"] == "127"
    assert ctx["stage"] == "$default"
    assert ctx["routeKey"] == "POST /callbacks/recording"
    assert ctx["http"] == {
        "method": "POST",
        "path": "/callbacks/recording",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "PlivoTest",
    }
    assert isinstance(ctx["timeEpoch"], int)
    assert ctx["time"].endswith(" +0000")
    assert api.exchanges[0].status == 200  # type: ignore[attr-defined]


def test_json_body_is_passed_as_text(api: CallbackApi, function: Function) -> None:
    request(
        api,
        "POST",
        "/callbacks/recording",
        b'{"a":"b"}',
        [("Content-Type", "application/json; charset=utf-8")],
    )
    event = function.events[0]
    assert event["isBase64Encoded"] is False
    assert event["body"] == '{"a":"b"}'


def test_get_without_body_has_no_body(api: CallbackApi, function: Function) -> None:
    status, _, _ = request(api, "GET", "/callbacks/recording?EventName=x")
    assert status == 200
    event = function.events[0]
    assert "body" not in event
    assert event["isBase64Encoded"] is False
    assert event["routeKey"] == "GET /callbacks/recording"
    assert "queryStringParameters" in event


def test_chunked_body_is_read(api: CallbackApi, function: Function) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    conn.request(
        "POST",
        "/callbacks/recording",
        body=iter([b"a=1", b"&b=2"]),
        headers={"Content-Type": "text/plain"},
        encode_chunked=True,
    )
    assert conn.getresponse().status == 200
    conn.close()
    assert function.events[0]["body"] == "a=1&b=2"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/other"), ("PUT", "/callbacks/recording"), ("POST", "/callbacks/recording/")],
)
def test_no_route_is_404_without_invoking(
    api: CallbackApi, function: Function, method: str, path: str
) -> None:
    status, _, body = request(api, method, path, b"")
    assert status == 404
    assert json.loads(body) == {"message": "Not Found"}
    assert function.events == []


def test_body_over_10_mb_is_413_without_invoking(api: CallbackApi, function: Function) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    conn.putrequest("POST", "/callbacks/recording")
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()
    conn.send(b"x" * 1024)  # the server answers without reading the rest
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read()) == {"message": "Request Entity Too Large"}
    conn.close()
    assert function.events == []


def test_bad_content_length_is_400(api: CallbackApi, function: Function) -> None:
    status, _, _ = request(api, "POST", "/callbacks/recording", None, [("Content-Length", "x")])
    assert status == 400
    assert function.events == []


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (FunctionError("KeyError", "x", []), 500, "Internal Server Error"),
        (WorkerError("died"), 500, "Internal Server Error"),
        (FunctionTimeoutError("timed out"), 503, "Service Unavailable"),
    ],
)
def test_function_failures_map_like_api_gateway(
    api: CallbackApi, function: Function, error: Exception, status: int, message: str
) -> None:
    function.result = error
    got, _, body = request(api, "POST", "/callbacks/recording", b"a=1")
    assert got == status
    assert json.loads(body) == {"message": message}


def test_base64_answer_is_decoded(api: CallbackApi, function: Function) -> None:
    function.result = {
        "statusCode": 201,
        "body": base64.b64encode(b"\x00\x01").decode(),
        "isBase64Encoded": True,
        "cookies": ["k=v"],
    }
    status, headers, body = request(api, "GET", "/callbacks/recording")
    assert status == 201
    assert body == b"\x00\x01"
    assert headers["set-cookie"] == "k=v"


def test_answer_from_result_rules() -> None:
    plain = answer_from_result({"ok": True})
    assert (plain.status, json.loads(plain.body)) == (200, {"ok": True})
    assert answer_from_result({"statusCode": "x"}).status == 500
    assert (
        answer_from_result({"statusCode": 200, "body": "!", "isBase64Encoded": True}).status == 500
    )
    assert answer_from_result({"statusCode": 204}).body == b""


def test_text_content_types() -> None:
    assert is_text_content_type("text/plain; charset=utf-8")
    assert is_text_content_type("application/json")
    assert is_text_content_type("application/vnd.api+json")
    assert not is_text_content_type("application/x-www-form-urlencoded")
    assert not is_text_content_type("application/octet-stream")
    assert not is_text_content_type(None)


def test_build_event_without_query_has_no_query_parameters() -> None:
    event = build_event(
        method="POST",
        raw_path="/p",
        raw_query="",
        headers=[],
        body=None,
        source_ip="127.0.0.1",
        domain_name="127.0.0.1:1",
        account_id="1",
        route=Route("POST", "/p"),
        now=1_600_000_000.0,
        req_id="r=",
    )
    assert "queryStringParameters" not in event
    assert "cookies" not in event
    assert event["requestContext"]["time"] == "13/Sep/2020:12:26:40 +0000"
    assert event["requestContext"]["timeEpoch"] == 1_600_000_000_000


def test_routes_come_from_the_template() -> None:
    routes = http_api_routes(load_template(), "CallbackFunction")
    assert sorted((r.method, r.path) for r in routes) == [
        ("ANY", "/callbacks/recording"),
        ("GET", "/callbacks/recording"),
        ("POST", "/callbacks/recording"),
    ]
    with pytest.raises(TemplateError, match="no HttpApi route"):
        http_api_routes(load_template(), "ArchiveFunction")


def test_port_in_use_is_a_clear_error(api: CallbackApi) -> None:
    assert not port_is_free(api.port)
    with pytest.raises(CLIError, match=f"cannot listen on 127.0.0.1:{api.port}"):
        CallbackApi(api.port, routes=ROUTES, account_id="1", invoke=lambda _e: None)


def test_describe_makes_one_readable_line() -> None:
    body = base64.b64encode(
        b"EventName=SessionRecordingCompleted&SessionUUID=s-1&SequenceNumber=2&From=%2B1415"
    ).decode()
    event = {
        "body": body,
        "isBase64Encoded": True,
        "headers": {"content-type": "application/x-www-form-urlencoded"},
    }
    ok = describe(
        Exchange(
            "POST",
            "/callbacks/recording",
            200,
            event,
            b'{"status":"stored","sessionUUID":"s-1","sequenceNumber":2}',
        )
    )
    assert ok == "callback 200 stored SessionRecordingCompleted session=s-1 seq=2"
    assert "1415" not in ok  # phone numbers never appear
    refused = describe(
        Exchange(
            "POST",
            "/callbacks/recording",
            403,
            event,
            b'{"error":"signature_invalid","message":"no"}',
        )
    )
    assert refused.startswith("callback 403 signature_invalid SessionRecordingCompleted")
    missing = describe(Exchange("GET", "/x", 404, None, b'{"message":"Not Found"}'))
    assert missing == "callback 404 Not_Found GET /x"
