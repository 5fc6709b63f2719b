"""FaultProxy's lost-answer fault against a real HTTP/1.1 server on loopback: the request
reaches the server (applied), the client never reads the answer."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.tcp_proxy import FaultProxy


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connections are
    seen: list[tuple[str, int, bytes]]  # (path, client port, body), set on the class below

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.client_address[1], body))
        answer = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[ThreadingHTTPServer, list[tuple[str, int, bytes]]]]:
    seen: list[tuple[str, int, bytes]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, seen
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def proxy(server: tuple[ThreadingHTTPServer, list[tuple[str, int, bytes]]]) -> Iterator[FaultProxy]:
    p = FaultProxy(server[0].server_address[1]).start()
    try:
        yield p
    finally:
        p.stop()


def _post(conn: http.client.HTTPConnection, path: str, body: bytes, target: str) -> bytes:
    conn.request("POST", path, body=body, headers={"X-Amz-Target": target})
    return conn.getresponse().read()


def _conn(proxy: FaultProxy) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)


def test_a_matching_request_is_applied_and_its_answer_lost_once(
    server: tuple[ThreadingHTTPServer, list[tuple[str, int, bytes]]], proxy: FaultProxy
) -> None:
    _, seen = server
    proxy.lose_answers(b"DynamoDB_20120810.PutItem", 1)
    conn = _conn(proxy)
    with pytest.raises(ConnectionResetError):  # http.client.RemoteDisconnected is one too
        _post(conn, "/first", b"{}", "DynamoDB_20120810.PutItem")
    conn.close()
    assert [s[0] for s in seen] == ["/first"]  # the server got it: the write was applied
    assert (proxy.answers_lost, proxy.answers_to_lose) == (1, 0)

    retry = _conn(proxy)  # the SDK's retry on a new connection: answered
    assert _post(retry, "/first", b"{}", "DynamoDB_20120810.PutItem") == b'{"ok":true}'
    assert [s[0] for s in seen] == ["/first", "/first"]
    assert proxy.answers_lost == 1
    assert proxy.requests_matched == 2  # the lost one and its retry: the client retried


def test_only_matching_requests_lose_answers_also_on_an_open_keep_alive_connection(
    server: tuple[ThreadingHTTPServer, list[tuple[str, int, bytes]]], proxy: FaultProxy
) -> None:
    _, seen = server
    conn = _conn(proxy)
    assert _post(conn, "/a", b"{}", "DynamoDB_20120810.GetItem") == b'{"ok":true}'
    proxy.lose_answers(b"DynamoDB_20120810.PutItem", 2)  # set while the connection is open
    assert _post(conn, "/b", b"{}", "DynamoDB_20120810.GetItem") == b'{"ok":true}'
    with pytest.raises(ConnectionResetError):
        _post(conn, "/c", b"{}", "DynamoDB_20120810.PutItem")
    assert [s[0] for s in seen] == ["/a", "/b", "/c"]
    assert seen[0][1] == seen[1][1] == seen[2][1]  # one connection throughout
    assert (proxy.answers_lost, proxy.answers_to_lose) == (1, 1)
    assert proxy.requests_matched == 1  # the GetItem requests did not match
    proxy.lose_answers(b"", 0)  # cleared: nothing more is lost, nor counted
    again = _conn(proxy)
    assert _post(again, "/d", b"{}", "DynamoDB_20120810.PutItem") == b'{"ok":true}'
    assert proxy.answers_lost == 1
    assert proxy.requests_matched == 1


def test_a_match_split_across_sends_of_the_body_is_found(
    server: tuple[ThreadingHTTPServer, list[tuple[str, int, bytes]]], proxy: FaultProxy
) -> None:
    _, seen = server
    proxy.lose_answers(b'"TableName": "events"', 1)
    body = b'{"TableName": "events"}'
    conn = _conn(proxy)
    conn.putrequest("POST", "/split")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    conn.send(body[:10])
    time.sleep(0.1)  # two segments: the proxy reads them apart
    conn.send(body[10:])
    with pytest.raises(ConnectionResetError):
        conn.getresponse()
    assert seen == [("/split", seen[0][1], body)]
    assert proxy.answers_lost == 1


@pytest.mark.parametrize(("match", "count"), [(b"", 1), (b"PutItem", -1)])
def test_lose_answers_refuses_an_empty_match_or_a_negative_count(match: bytes, count: int) -> None:
    with pytest.raises(ValueError, match="non-empty match"):
        FaultProxy(1).lose_answers(match, count)
