"""A TCP proxy on 127.0.0.1 that can pass, refuse or stall the connections through it.

Put between a function and the local AWS (e.g. the callback function's DynamoDB endpoint,
`AWS_ENDPOINT_URL_DYNAMODB`) to take the table away for a window:
- "pass": bytes flow both ways;
- "refuse": the listening socket is closed (new connections get ECONNREFUSED) and open ones are
  reset;
- "stall": connections are accepted and the client's bytes read and dropped; nothing answers
  (the client's read timeout fires). Switching back to "pass" closes the stalled connections.

`lose_answers(match, count)` adds, in "pass" mode, a fault moto cannot show: the next `count`
requests whose bytes contain `match` (e.g. `X-Amz-Target: DynamoDB_20120810.PutItem`) reach the
server and are applied, but the client's connection is closed (shut down, then an abortive
close) as soon as the server starts to answer, so the client never reads the answer: a write
applied whose response is lost (botocore: ConnectionClosedError, retried if it retries).
`requests_matched` counts every request that contained the match while it was set, lost or not:
with the losses, whether the client retried at all.
Requests are told apart on a connection as HTTP/1.1 clients send them: one at a time, the next
only after the previous answer (no pipelining; botocore's urllib3 never pipelines).
Not for requests sent with `Expect: 100-continue` (S3 uploads): the interim 100 answer would
count as the answer, before the body was sent.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import Counter

MODES = ("pass", "refuse", "stall")
_MATCH_WINDOW = 64 * 1024  # bytes of each request kept to match against (headers come first)


class _Link:
    """One client connection in "pass" mode: the bytes of its current request, and whether
    the answer to that request is to be lost."""

    def __init__(self) -> None:
        self.request = bytearray()
        self.doomed = False
        self.matched = False  # counted in `requests_matched` already


class FaultProxy:
    def __init__(self, target_port: int, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = port
        self.mode = "pass"
        self.connections: Counter[str] = Counter()  # accepted connections, by mode
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._generation = 0
        self._lose_match = b""
        self._lose_left = 0
        self.answers_lost = 0  # requests forwarded whose answer the client never got
        # requests containing the `lose_answers` match, lost or not: with the losses, tells
        # whether the client retried (botocore's retry quota can refuse a retry)
        self.requests_matched = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        self._listen()
        return self

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        with self._lock:
            if mode == self.mode:  # nothing changes: connections of this mode stay open
                return
            self.mode = mode
            self._generation += 1
            doomed = list(self._open)
            self._open.clear()
        for s in doomed:  # every connection opened under the previous mode ends now
            self._reset(s)
        if mode == "refuse" and self._listener is not None:
            self._listener.close()
            self._listener = None
        elif mode != "refuse" and self._listener is None and not self._stopped.is_set():
            self._listen()

    def lose_answers(self, match: bytes, count: int) -> None:
        """Lose the answer of the next `count` requests containing `match` (0: none)."""
        if count < 0 or (count and not match):
            raise ValueError("lose_answers needs a non-empty match and a count >= 0")
        with self._lock:
            self._lose_match, self._lose_left = match, count

    @property
    def answers_to_lose(self) -> int:
        """How many of the requested lost answers have not happened yet."""
        with self._lock:
            return self._lose_left

    def stop(self) -> None:
        self._stopped.set()
        self.set_mode("refuse")
        with self._lock:
            doomed = list(self._open)
            self._open.clear()
        for s in doomed:
            self._reset(s)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set() and self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                mode, generation = self.mode, self._generation
                self.connections[mode] += 1
                self._open.add(client)
            if mode == "stall":
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                if generation != self._generation:
                    self._reset(client)
                    self._reset(upstream)
                    continue
                self._open.add(upstream)
            link = _Link()
            threading.Thread(
                target=self._pump, args=(client, upstream, link, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, link, False), daemon=True
            ).start()

    def _swallow(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass

    def _doom_if_matching(self, link: _Link, data: bytes) -> None:
        """Client bytes of the current request: doom its answer if it matches a pending loss."""
        if link.doomed or link.matched or len(link.request) >= _MATCH_WINDOW:
            return
        link.request += data[: _MATCH_WINDOW - len(link.request)]
        with self._lock:
            if self._lose_match and self._lose_match in link.request:
                link.matched = True
                self.requests_matched += 1
                if self._lose_left > 0:
                    self._lose_left -= 1
                    link.doomed = True

    def _pump(self, src: socket.socket, dst: socket.socket, link: _Link, upstream: bool) -> None:
        """Copy src to dst; `upstream` is the client-to-server direction."""
        try:
            while data := src.recv(65536):
                if upstream:
                    self._doom_if_matching(link, data)  # decided before the server sees it
                elif link.doomed:
                    # The server answers, so it has applied the request: the answer is lost
                    # and the client's connection ended (below: shutdown, which also wakes the
                    # other pump blocked in recv, then an abortive close), as when a network
                    # path fails late.
                    with self._lock:
                        self.answers_lost += 1
                    with contextlib.suppress(OSError):
                        dst.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                else:
                    link.request.clear()  # the answer started: the client's next bytes are new
                    link.matched = False
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
                with self._lock:
                    self._open.discard(s)
