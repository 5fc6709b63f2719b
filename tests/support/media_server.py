"""A scripted media server on 127.0.0.1: Plivo's media host, with the faults a real one can have.

Each path serves a body (fixed bytes, or a large deterministic stream generated block by block and
never held in memory) behind a list of scripted faults consumed one request at a time:

    server.add("/rec.mp3", GeneratedBody(12 * MiB, seed=7),
               faults=[Status(404, times=2), Truncate(1000)])

serves 404 twice, then a truncated body, then the whole file for every later request. Every
request received is recorded (method, path, headers including Authorization, the client's port:
one port, one connection), so a test can assert what reached the server, and what did not.

With `tls=` (a server-side `ssl.SSLContext`, see `tests.support.tls`) it serves HTTPS: the
handshake runs in the connection's own thread, and the SNI name of every handshake and the reason
of every failed one are recorded (`sni_names`, `tls_failures`).

Also usable as a process of its own (the benchmark runs it so): `python -m
tests.support.media_server --port 0 --generated /big.bin:1073741824:1` prints its base URL.

One module (over 500 lines): the server, its bodies and its fault types are one API, imported
together by the tests, reliability and bench (as a process).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import random
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from recording_archive_cli.local.tls import TLSServerMixin

MiB = 1024 * 1024
_BLOCK = 64 * 1024


class Body(Protocol):
    size: int

    def chunks(self) -> Iterator[bytes]: ...

    @property
    def sha256_hex(self) -> str: ...


@dataclass(frozen=True)
class StaticBody:
    """A small body held in memory (real audio files, empty files)."""

    data: bytes

    @property
    def size(self) -> int:  # type: ignore[override]
        return len(self.data)

    def chunks(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), _BLOCK):
            yield self.data[i : i + _BLOCK]

    @property
    def sha256_hex(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class GeneratedBody:
    """`size` bytes from a seeded generator: 64 KiB blocks of seeded random bytes, each starting
    with its own block number, so a reordered or repeated part changes the SHA-256."""

    size: int
    seed: int = 1

    @cached_property
    def _pattern(self) -> bytes:
        return random.Random(self.seed).randbytes(_BLOCK)

    def chunks(self) -> Iterator[bytes]:
        remaining, index = self.size, 0
        tail = self._pattern[8:]
        while remaining > 0:
            block = struct.pack(">Q", index) + tail
            yield block[: min(remaining, _BLOCK)]
            remaining -= _BLOCK
            index += 1

    def read_all(self) -> bytes:
        return b"".join(self.chunks())

    @cached_property
    def sha256_hex(self) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.hexdigest()


def wav_body(seconds: float = 1.0, rate: int = 8000) -> StaticBody:
    """A real 8 kHz 16-bit mono WAV file (a 440 Hz tone), like a Plivo `.wav` recording."""
    import io
    import math
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for n in range(int(seconds * rate)):
            frames += struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * n / rate)))
        w.writeframes(bytes(frames))
    return StaticBody(out.getvalue())


# --- faults ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Status:
    """Answer `code` with an empty body (and `headers`, e.g. Retry-After)."""

    code: int
    headers: tuple[tuple[str, str], ...] = ()
    times: int | None = 1  # None: for ever


@dataclass(frozen=True)
class Redirect:
    location: str
    code: int = 302
    times: int | None = 1


@dataclass(frozen=True)
class Truncate:
    """Content-Length of the whole body, `send` bytes of it, then the connection is closed."""

    send: int
    times: int | None = 1


@dataclass(frozen=True)
class Stall:
    """Content-Length of the whole body, `send` bytes, then silence for `seconds`, then close."""

    send: int
    seconds: float
    times: int | None = 1


@dataclass(frozen=True)
class WrongLength:
    """Declares `declared` as Content-Length but sends the whole body, then closes."""

    declared: int
    times: int | None = 1


@dataclass(frozen=True)
class Reset:
    """Sends `send` bytes of the body, then resets the connection (RST)."""

    send: int
    times: int | None = 1


@dataclass(frozen=True)
class Drip:
    """Content-Length of the whole body, then `chunk` bytes every `every` seconds (a host that
    never trips a read timeout yet never finishes)."""

    every: float
    chunk: int = 1024
    times: int | None = 1


@dataclass(frozen=True)
class Chunked:
    """The whole body with Transfer-Encoding: chunked, no Content-Length."""

    times: int | None = 1


@dataclass(frozen=True)
class ErrorBody:
    """Answer `code` with a body of `size` bytes (declared in Content-Length)."""

    code: int
    size: int
    times: int | None = 1


Fault = Status | Redirect | Truncate | Stall | WrongLength | Reset | Drip | Chunked | ErrorBody


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    client_port: int = 0  # the same port: the same connection

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class _Route:
    body: Body
    content_type: str
    faults: list[list[object]]  # [fault, remaining times]
    basic_auth: tuple[str, str] | None


class _QuietServer(TLSServerMixin, ThreadingHTTPServer):
    daemon_threads = True
    tls_failures: list[str]

    def handle_error(self, request: object, client_address: object) -> None:
        # Scripted faults close sockets under the handler's feet, and clients drop connections
        # mid-body on purpose: those tracebacks are expected, not news.
        return

    def on_tls_failure(self, reason: str) -> None:
        self.tls_failures.append(reason)


@dataclass
class MediaServer:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)
    tls: ssl.SSLContext | None = None
    sni_names: list[str | None] = field(default_factory=list)
    tls_failures: list[str] = field(default_factory=list)
    # Body bytes written per path (what the client really took, up to the socket buffers).
    bytes_sent: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting ---
    def add(
        self,
        path: str,
        body: Body | bytes,
        *,
        content_type: str = "audio/mpeg",
        faults: list[Fault] | tuple[Fault, ...] = (),
        basic_auth: tuple[str, str] | None = None,
    ) -> Body:
        """Serve `body` at `path` after `faults`; with basic_auth, 403 without those credentials
        (what Plivo does when "HTTP Auth on recordings" is on). Returns the body (size, sha256)."""
        b: Body = StaticBody(body) if isinstance(body, bytes) else body
        with self._lock:
            self._routes[path] = _Route(b, content_type, [[f, f.times] for f in faults], basic_auth)
        return b

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """Distinct connections that carried a request."""
        with self._lock:
            return len({r.client_port for r in self.requests})

    def requests_for(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _next_fault(self, path: str) -> tuple[_Route | None, object | None]:
        with self._lock:
            route = self._routes.get(path)
            if route is None:
                return None, None
            while route.faults:
                entry = route.faults[0]
                fault, remaining = entry
                if remaining is None:
                    return route, fault
                if isinstance(remaining, int) and remaining > 0:
                    entry[1] = remaining - 1
                    if remaining - 1 == 0:
                        route.faults.pop(0)
                    return route, fault
                route.faults.pop(0)
            return route, None

    # --- lifecycle ---
    def start(self) -> MediaServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests.append(
                        RecordedRequest(
                            "GET",
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            int(self.client_address[1]),
                        )
                    )
                route, fault = server._next_fault(path)
                if route is None:
                    self._empty(404)
                    return
                if route.basic_auth is not None:
                    expected = "Basic " + base64.b64encode(
                        ":".join(route.basic_auth).encode()
                    ).decode("ascii")
                    if self.headers.get("Authorization") != expected:
                        self._empty(403)
                        return
                self._serve(route, fault)

            def _empty(self, code: int, headers: tuple[tuple[str, str], ...] = ()) -> None:
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _head(self, route: _Route, length: int) -> None:
                self.send_response(200)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(length))
                self.end_headers()

            def _write(self, path: str, data: bytes) -> None:
                self.wfile.write(data)
                with server._lock:
                    server.bytes_sent[path] = server.bytes_sent.get(path, 0) + len(data)

            def _send_prefix(self, route: _Route, n: int) -> None:
                sent = 0
                for chunk in route.body.chunks():
                    if sent >= n:
                        break
                    piece = chunk[: n - sent]
                    self.wfile.write(piece)
                    sent += len(piece)
                self.wfile.flush()

            def _serve(self, route: _Route, fault: object | None) -> None:
                body = route.body
                match fault:
                    case Status(code=code, headers=headers):
                        self._empty(code, headers)
                    case Redirect(location=location, code=code):
                        self._empty(code, (("Location", location),))
                    case Truncate(send=n):
                        self._head(route, body.size)
                        self._send_prefix(route, n)
                        self.close_connection = True
                    case Stall(send=n, seconds=seconds):
                        self._head(route, body.size)
                        self._send_prefix(route, n)
                        server._stop.wait(seconds)
                        self.close_connection = True
                    case WrongLength(declared=declared):
                        self._head(route, declared)
                        self._send_prefix(route, body.size)
                        self.close_connection = True
                    case Reset(send=n):
                        self._head(route, body.size)
                        self._send_prefix(route, n)
                        # SO_LINGER 0: close() sends RST instead of FIN. Closed here, before
                        # the server's own shutdown(SHUT_WR) could send a clean FIN first.
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        self.wfile.close()
                        self.rfile.close()
                        self.connection.close()
                        self.close_connection = True
                    case Drip(every=every, chunk=size):
                        self._head(route, body.size)
                        data = b"".join(body.chunks())
                        try:
                            for i in range(0, len(data), size):
                                self.wfile.write(data[i : i + size])
                                self.wfile.flush()
                                if server._stop.wait(every):
                                    break
                        except OSError:
                            pass
                        self.close_connection = True
                    case Chunked():
                        self.send_response(200)
                        self.send_header("Content-Type", route.content_type)
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        try:
                            for chunk in body.chunks():
                                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            self.wfile.write(b"0\r\n\r\n")
                        except OSError:
                            self.close_connection = True
                    case ErrorBody(code=code, size=size):
                        self.send_response(code)
                        self.send_header("Content-Length", str(size))
                        self.end_headers()
                        path = self.path.split("?", 1)[0]
                        try:
                            for start in range(0, size, _BLOCK):
                                self._write(path, b"e" * min(_BLOCK, size - start))
                        except OSError:
                            self.close_connection = True
                    case _:
                        self._head(route, body.size)
                        try:
                            for chunk in body.chunks():
                                self.wfile.write(chunk)
                        except (BrokenPipeError, ConnectionResetError):
                            self.close_connection = True

        httpd = _QuietServer((self.host, self.port), Handler)
        httpd.tls_failures = self.tls_failures
        if self.tls is not None:
            httpd.tls = self.tls
            self.tls.sni_callback = self._record_sni
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def handshake_failures(self, at_least: int = 1, timeout: float = 5.0) -> list[str]:
        """The failed handshakes, once `at_least` are recorded (the server's thread records a
        failure just after the client gave up) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while len(self.tls_failures) < at_least and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.tls_failures)

    def _record_sni(self, _sock: object, name: str | None, _context: object) -> None:
        with self._lock:
            self.sni_names.append(name)

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--generated",
        action="append",
        default=[],
        metavar="PATH:SIZE:SEED",
        help="serve a generated body of SIZE bytes at PATH",
    )
    parser.add_argument(
        "--tls-name",
        default=None,
        metavar="NAME",
        help="serve HTTPS with a certificate for NAME from a new local CA (see --ca-file)",
    )
    parser.add_argument("--ca-file", default=None, metavar="PATH", help="write that CA's PEM")
    parser.add_argument(
        "--drip",
        action="append",
        default=[],
        metavar="PATH:EVERY:CHUNK",
        help="serve PATH (a --generated one) CHUNK bytes every EVERY seconds, every time",
    )
    args = parser.parse_args(argv)
    drips: dict[str, list[Fault]] = {}
    for spec in args.drip:
        path, every, chunk = spec.rsplit(":", 2)
        drips[path] = [Drip(float(every), int(chunk), times=None)]
    tls = None
    if args.tls_name:
        from pathlib import Path

        from tests.support.tls import LocalCA

        ca = LocalCA()
        tls = ca.server_context(args.tls_name)
        if args.ca_file:
            ca.ca.cert_pem.write_to_path(str(Path(args.ca_file)))
    server = MediaServer(port=args.port, tls=tls)
    for spec in args.generated:
        path, size, seed = spec.rsplit(":", 2)
        server.add(path, GeneratedBody(int(size), int(seed)), faults=drips.get(path, []))
    server.start()
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
