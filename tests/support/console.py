"""The recording console of a running local stack (`recording-archive local --console-port`):
its URL and token, and plain HTTP requests to it (any Host, cookie, form), no redirects followed.

The token is read from the stack's `console: http://127.0.0.1:PORT/?token=TOKEN` line: the one
place it is ever written (never the ready file, which holds no secret)."""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from tests.support.local_stack import LocalStackProcess

_LINE = re.compile(r"^console: http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]+)$")


@dataclass(frozen=True)
class ConsoleAddress:
    port: int
    token: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/?token={self.token}"

    @property
    def cookie(self) -> str:
        return f"ra_console_{self.port}={self.token}"


@dataclass(frozen=True)
class ConsoleStack:
    """A local stack serving the console, and its demo session (archived at start)."""

    stack: LocalStackProcess
    console: ConsoleAddress
    demo_session: str
    demo_recording: str


def console_address(stack: LocalStackProcess, timeout: float = 30) -> ConsoleAddress:
    line = stack.wait_for(lambda text: bool(_LINE.match(text)), timeout=timeout)
    match = _LINE.match(line)
    assert match is not None
    return ConsoleAddress(int(match.group(1)), match.group(2))


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def request(
    address: ConsoleAddress,
    method: str,
    path: str,
    *,
    host: str | None = None,
    cookie: bool = True,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request to the console on 127.0.0.1 with the given Host header (default its own)."""
    conn = http.client.HTTPConnection("127.0.0.1", address.port, timeout=30)
    sent = {"Host": f"127.0.0.1:{address.port}" if host is None else host, **(headers or {})}
    if cookie:
        sent["Cookie"] = address.cookie
    body = None
    if form is not None:
        body = urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        got = {k.lower(): v for k, v in response.getheaders()}
        return Answer(response.status, got, text)
    finally:
        conn.close()


def csrf_token(page_html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page_html)
    assert match is not None, "no CSRF field in the page"
    return match.group(1)
