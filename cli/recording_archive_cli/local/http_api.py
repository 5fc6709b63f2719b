"""The callback API on 127.0.0.1: what API Gateway's HTTP API does in front of CallbackFunction.

Each HTTP request on a route the template declares (the function's `HttpApi` events: method and
path) becomes an HTTP API payload format 2.0 event, is passed to the real handler, and the
handler's answer becomes the HTTP answer. A request on no route is answered 404
`{"message":"Not Found"}` without invoking the function, as API Gateway does.

The event, as API Gateway builds it (payload 2.0):
- `version` "2.0", `routeKey` "POST /callbacks/recording", `rawPath`, `rawQueryString` (as
  received), `queryStringParameters` (repeated names joined with commas; absent when empty);
- `headers`: names lower-cased, repeated headers joined with commas; the `Cookie` header moves
  to `cookies` (a list);
- `body` and `isBase64Encoded`: HTTP API base64-encodes every body whose Content-Type is not
  text-like. Text-like here means `text/*` and JSON (`application/json`, `application/*+json`);
  everything else, `application/x-www-form-urlencoded` included, and a body without a
  Content-Type, arrives base64-encoded (AWS documents this rule for the 2.0 payload shared by
  HTTP APIs and function URLs: a body is sent as text only for `text/*` and `application/json`
  content types). Plivo's form posts therefore reach the handler base64-encoded, as in AWS;
- `requestContext`: accountId, apiId "local", domainName "127.0.0.1:PORT", domainPrefix,
  http {method, path, protocol, sourceIp, userAgent}, requestId, routeKey, stage "$default",
  time ("12/Mar/2020:19:03:58 +0000"), timeEpoch (ms).

The answer, as API Gateway reads a 2.0 response: a dict with `statusCode` gives status, headers,
`cookies` (Set-Cookie) and body (decoded from base64 when `isBase64Encoded`); any other value is
sent as 200 JSON. A function error is 500 `{"message":"Internal Server Error"}`; a function that
runs out of time is 503 `{"message":"Service Unavailable"}`. A body over 10 MB (API Gateway's
payload quota) is answered 413 `{"message":"Request Entity Too Large"}` without invoking anything.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from recording_archive_cli.errors import CLIError
from recording_archive_cli.local.functions import function_properties
from recording_archive_cli.local.lambda_worker import (
    FunctionError,
    FunctionTimeoutError,
    WorkerError,
)
from recording_archive_cli.local.template import TemplateError

MAX_BODY_BYTES = 10 * 1024 * 1024
API_ID = "local"


@dataclass(frozen=True)
class Route:
    method: str  # "POST", "GET", ... or "ANY"
    path: str  # "/callbacks/recording" or "$default"

    @property
    def key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def matches(self, method: str, path: str) -> bool:
        if self.path == "$default":
            return True
        return self.path == path and self.method in (method, "ANY")


def http_api_routes(template: Mapping[str, Any], logical_id: str) -> list[Route]:
    """The `HttpApi` events of a function in the (parsed) template."""
    events = function_properties(template, logical_id).get("Events") or {}
    routes: list[Route] = []
    for event in events.values():
        if not isinstance(event, Mapping) or event.get("Type") != "HttpApi":
            continue
        props = event.get("Properties") or {}
        method, path = props.get("Method", "ANY"), props.get("Path", "$default")
        if not isinstance(method, str) or not isinstance(path, str):
            raise TemplateError(f"{logical_id}: HttpApi Method and Path must be plain strings")
        routes.append(Route("ANY" if method.lower() == "any" else method.upper(), path))
    if not routes:
        raise TemplateError(f"{logical_id}: the template gives it no HttpApi route")
    return routes


def is_text_content_type(content_type: str | None) -> bool:
    """Whether HTTP API passes a body of this type as text (otherwise base64)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media == "application/json" or media.endswith("+json")


def _join_headers(headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined, cookies


def _request_time(epoch: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch))


def request_id() -> str:
    """Shaped like API Gateway's: 16 base64 characters ending in '='."""
    return base64.b64encode(secrets.token_bytes(10)).decode("ascii")[:15] + "="


def build_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes | None,
    source_ip: str,
    domain_name: str,
    account_id: str,
    route: Route,
    protocol: str = "HTTP/1.1",
    now: float | None = None,
    req_id: str | None = None,
) -> dict[str, Any]:
    """An HTTP API payload 2.0 event for one request (see the module docstring)."""
    now = time.time() if now is None else now
    joined, cookies = _join_headers(headers)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": joined,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        params = parse_qs(raw_query, keep_blank_values=True)
        event["queryStringParameters"] = {k: ",".join(v) for k, v in params.items()}
    req_id = req_id or request_id()
    event["requestContext"] = {
        "accountId": account_id,
        "apiId": API_ID,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": req_id,
        "routeKey": route.key,
        "stage": "$default",
        "time": _request_time(now),
        "timeEpoch": int(now * 1000),
    }
    if body:
        if is_text_content_type(joined.get("content-type")):
            event["body"] = body.decode("utf-8", errors="replace")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _json_answer(status: int, message: str) -> HttpAnswer:
    body = json.dumps({"message": message}).encode()
    return HttpAnswer(status, [("content-type", "application/json")], body)


def answer_from_result(result: Any) -> HttpAnswer:
    """How API Gateway turns a payload 2.0 function result into an HTTP answer."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        body = json.dumps(result).encode()
        return HttpAnswer(200, [("content-type", "application/json")], body)
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        return _json_answer(500, "Internal Server Error")
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(("set-cookie", str(c)) for c in result.get("cookies") or [])
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(str(raw), validate=True)
        except (binascii.Error, ValueError):
            return _json_answer(500, "Internal Server Error")
    else:
        body = str(raw).encode()
    return HttpAnswer(status, headers, body)


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, for the one-line log."""

    method: str
    path: str
    status: int
    event: dict[str, Any] | None
    answer_body: bytes
    error: str = ""


def _request_params(event: Mapping[str, Any]) -> dict[str, str]:
    """The callback attributes of a request, for the log line only (first value of each)."""
    body = event.get("body") or ""
    raw = base64.b64decode(body).decode(errors="replace") if event.get("isBase64Encoded") else body
    content_type = (event.get("headers") or {}).get("content-type", "")
    params: dict[str, str] = {}
    if "json" in content_type:
        try:
            data = json.loads(raw)
        except ValueError:
            data = {}
        if isinstance(data, dict):
            params = {str(k): str(v) for k, v in data.items() if not isinstance(v, dict | list)}
    elif raw:
        params = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    query = parse_qs(str(event.get("rawQueryString") or ""), keep_blank_values=True)
    for key, values in query.items():
        params.setdefault(key, values[0])
    return params


def describe(exchange: Exchange) -> str:
    """`callback 200 stored SessionRecordingCompleted session=... seq=...` and the like."""
    try:
        answer = json.loads(exchange.answer_body or b"{}")
    except ValueError:
        answer = {}
    answer = answer if isinstance(answer, dict) else {}
    params = _request_params(exchange.event) if exchange.event else {}
    outcome = answer.get("status") or answer.get("error") or answer.get("message") or ""
    parts = [f"callback {exchange.status}", str(outcome).replace(" ", "_")]
    if params.get("EventName"):
        parts.append(params["EventName"][:60])
    session = answer.get("sessionUUID") or params.get("SessionUUID")
    if session:
        parts.append(f"session={str(session)[:36]}")
    seq = answer.get("sequenceNumber") or params.get("SequenceNumber")
    if seq:
        parts.append(f"seq={str(seq)[:20]}")
    if exchange.status != 200 and exchange.event is None:
        parts.append(f"{exchange.method} {exchange.path}")
    if exchange.error:
        parts.append(f"({exchange.error})")
    return " ".join(p for p in parts if p)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Never share the port with a second instance (SO_REUSEADDR would not, on Linux, while
    # this one listens; off anyway, so the "port in use" check is the bind itself).
    allow_reuse_address = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops its connection mid-request is not worth a traceback.
        return


class CallbackApi:
    """ThreadingHTTPServer on 127.0.0.1:`port` in front of one function."""

    def __init__(
        self,
        port: int,
        *,
        routes: list[Route],
        account_id: str,
        invoke: Callable[[dict[str, Any]], Any],
        on_exchange: Callable[[Exchange], None] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.routes = routes
        self.account_id = account_id
        self.invoke = invoke
        self.on_exchange = on_exchange
        try:
            self._httpd = _Server((host, port), self._handler_class())
        except OSError as exc:
            raise CLIError(
                f"cannot listen on {host}:{port} for the callback API: {exc.strerror or exc} "
                "(is another `recording-archive local` running? choose another --port)"
            ) from None
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="callback-api",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def handle(
        self,
        method: str,
        target: str,
        *,
        headers: list[tuple[str, str]],
        body: bytes | None,
        source_ip: str,
        protocol: str,
    ) -> tuple[HttpAnswer, Exchange]:
        raw_path, _, raw_query = target.partition("?")
        # As API Gateway: an exact method beats ANY, which beats $default.
        route = min(
            (r for r in self.routes if r.matches(method, raw_path)),
            key=lambda r: (r.path == "$default", r.method == "ANY"),
            default=None,
        )
        if route is None:
            answer = _json_answer(404, "Not Found")
            return answer, Exchange(method, raw_path, 404, None, answer.body)
        event = build_event(
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            source_ip=source_ip,
            domain_name=f"{self.host}:{self.port}",
            account_id=self.account_id,
            route=route,
            protocol=protocol,
        )
        error = ""
        try:
            answer = answer_from_result(self.invoke(event))
        except FunctionTimeoutError:
            answer, error = _json_answer(503, "Service Unavailable"), "function timed out"
        except FunctionError as exc:
            answer, error = _json_answer(500, "Internal Server Error"), str(exc)
        except WorkerError as exc:
            answer, error = _json_answer(500, "Internal Server Error"), str(exc)
        return answer, Exchange(method, raw_path, answer.status, event, answer.body, error)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "recording-archive-local"
            sys_version = ""

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _read_body(self) -> bytes | None:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    return self._read_chunked()
                length_header = self.headers.get("Content-Length")
                if length_header is None:
                    return None
                try:
                    length = int(length_header)
                except ValueError:
                    raise _BadRequestError("bad Content-Length") from None
                if length < 0:
                    raise _BadRequestError("bad Content-Length")
                if length > MAX_BODY_BYTES:
                    raise _TooLargeError
                return self.rfile.read(length)

            def _read_chunked(self) -> bytes:
                data = bytearray()
                while True:
                    size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
                    try:
                        size = int(size_line, 16)
                    except ValueError:
                        raise _BadRequestError("bad chunk size") from None
                    if size == 0:
                        while self.rfile.readline(1024).strip():
                            pass  # trailers
                        return bytes(data)
                    if len(data) + size > MAX_BODY_BYTES:
                        raise _TooLargeError
                    data += self.rfile.read(size)
                    self.rfile.readline(16)

            def _send(self, answer: HttpAnswer, req_id: str) -> None:
                self.send_response(answer.status)
                names = set()
                for name, value in answer.headers:
                    if name.lower() in ("content-length", "connection", "transfer-encoding"):
                        continue
                    names.add(name.lower())
                    self.send_header(name, value)
                if "content-type" not in names and answer.body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.body)))
                self.send_header("apigw-requestid", req_id)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)

            def _dispatch(self) -> None:
                req_id = request_id()
                try:
                    body = self._read_body()
                except _TooLargeError:
                    self.close_connection = True
                    answer = _json_answer(413, "Request Entity Too Large")
                    self._log(Exchange(self.command, self.path, 413, None, answer.body))
                    self._send(answer, req_id)
                    return
                except _BadRequestError as exc:
                    self.close_connection = True
                    answer = _json_answer(400, "Bad Request")
                    self._log(Exchange(self.command, self.path, 400, None, answer.body, str(exc)))
                    self._send(answer, req_id)
                    return
                answer, exchange = api.handle(
                    self.command,
                    self.path,
                    headers=list(self.headers.items()),
                    body=body,
                    source_ip=self.client_address[0],
                    protocol=self.request_version,
                )
                # Logged before answering, so the line is out when the client has its answer.
                self._log(exchange)
                self._send(answer, req_id)

            def _log(self, exchange: Exchange) -> None:
                if api.on_exchange is not None:
                    api.on_exchange(exchange)

            # http.server dispatches on these names; every method goes through the routes.
            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch  # noqa: N815

        return Handler


class _TooLargeError(Exception):
    pass


class _BadRequestError(Exception):
    pass


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on host:port (a bind test, released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
