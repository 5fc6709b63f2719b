"""Streaming download of a recording from Plivo's media host, to addresses url_policy.py vetted.

The connection goes to the vetted addresses themselves, each in turn until one connects; TLS sends
the name as SNI and OpenSSL checks the certificate against it during the handshake (TLS 1.2 or
later, the system's trust store). Redirects are followed by hand, each target vetted the same
way; credentials go to the original host only.

Bounded in every dimension: the body's size (`max_bytes`, checked against Content-Length before
any byte is read, and while streaming), the whole download's time (`max_seconds`, enforced by a
watchdog that shuts the socket, since a host sending a byte every few seconds never trips the
read timeout), the bytes read from a non-200 answer to keep its connection, and the number of
connection pools kept (least recently used first out).

A recording may be missing for a few seconds after the Completed callback, so 404, 429, 5xx and
connection failures before the first body byte are retried with exponential backoff and full
jitter inside `retry_budget` seconds; then `MediaUnavailableError` (the record is retried later).
Refusals (`MediaRefusedError`) are never retried; neither is a certificate the trust store refuses
(it will not change in seconds; the sweeper tries again later). `ca_bundle` exists for the local
stack only.
"""

from __future__ import annotations

import base64
import random
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from urllib.parse import urljoin

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    IncompleteRead,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.ssl_ import create_urllib3_context
from urllib3.util.wait import wait_for_read

from recording_archive.dal.media.url_policy import (
    MediaPolicy,
    MediaTarget,
    Resolver,
    UrlVetter,
)
from recording_archive.dal.retry_after import retry_after_seconds
from recording_archive.models.errors import (
    ArchiveError,
    MediaIntegrityError,
    MediaRefusedError,
    MediaUnavailableError,
)

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_RETRYABLE_CODES = frozenset({404, 408, 425, 429})
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 8.0
_READ_CHUNK = 1024 * 1024
_USER_AGENT = "plivo-recording-archive/1"
# A non-200 answer's body is read (to keep its connection for the next request) only when it
# declares a length up to this; otherwise the connection is closed instead.
_DISCARD_LIMIT = 64 * 1024
# Pools kept per execution environment: a CDN name resolves to addresses that change over time.
_MAX_POOLS = 8
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH: its message would echo the URL's host name.
_X509_V_ERR_HOSTNAME_MISMATCH = 62
_jitter = random.SystemRandom()


def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """urllib3's own defaults (TLS 1.2 or later, host name checked by OpenSSL against the SNI
    name) with the system's trust store, plus `ca_bundle`'s certificates when given."""
    context = create_urllib3_context(ssl_minimum_version=ssl.TLSVersion.TLSv1_2)
    context.load_default_certs()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ssl module's error behind a urllib3 SSLError (as cause, context or argument)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        for arg in getattr(seen, "args", ()):
            if isinstance(arg, ssl.SSLError):
                return arg
        seen = seen.__cause__ or seen.__context__
    return None


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Done with a non-200 answer: read a short declared body so the connection can serve the
    next request; close the connection on anything longer, unframed or broken."""
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) <= _DISCARD_LIMIT:
        try:
            response.read(_DISCARD_LIMIT, decode_content=False)
        except HTTPError:
            pass
        else:
            response.release_conn()
            return
    response.close()
    response.release_conn()


class _RetryableError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class MediaStream:
    """The body of one 200 answer, read raw (no content decoding), with its length, its size
    limit and its time limit enforced."""

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        final_url: str,
        *,
        max_bytes: int = MediaPolicy.max_bytes,
        max_seconds: float = MediaPolicy.max_seconds,
    ) -> None:
        self._response = response
        self.final_url = final_url
        self.content_type: str | None = response.headers.get("Content-Type")
        length = response.headers.get("Content-Length")
        self.content_length: int | None = int(length) if length and length.isdigit() else None
        self.bytes_read = 0
        self._max_bytes = max_bytes
        self._max_seconds = max_seconds
        self._done = False
        self._reusable = False
        self._expired = threading.Event()
        self._watchdog: threading.Timer | None = None
        # urllib3 hands the connection back to its pool as soon as the body is complete: keep
        # the socket to look for bytes sent beyond Content-Length.
        self._sock = getattr(getattr(response, "connection", None), "sock", None)

    def check_size(self) -> None:
        """Refuse, before reading it, a body whose declared length is over the limit."""
        if self.content_length is not None and self.content_length > self._max_bytes:
            raise self._too_large()

    def start_watchdog(self, seconds_left: float) -> None:
        """Shut the socket when the download's time is up: a blocked read then returns."""
        if seconds_left <= 0:
            self._expired.set()
            raise self._too_slow()
        self._watchdog = threading.Timer(seconds_left, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _expire(self) -> None:
        self._expired.set()
        sock = self._sock
        if sock is not None:
            # socket.socket's own shutdown, not SSLSocket's: the TLS object stays in place for
            # the reading thread, which then sees end of file.
            with suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _too_large(self) -> MediaRefusedError:
        return MediaRefusedError(f"media body is larger than the limit of {self._max_bytes} bytes")

    def _too_slow(self) -> MediaUnavailableError:
        return MediaUnavailableError(
            f"media download exceeded its time limit of {self._max_seconds:g} s"
        )

    def read(self, n: int) -> bytes:
        """Up to `n` bytes (at most 1 MiB a call); b"" once the body is complete."""
        if self._done or n <= 0:
            return b""
        if self._expired.is_set():
            raise self._too_slow()
        try:
            data = self._response.read(min(n, _READ_CHUNK), decode_content=False)
        except HTTPError as exc:
            raise self._read_failure(exc) from exc
        self.bytes_read += len(data)
        if self.bytes_read > self._max_bytes:
            raise self._too_large()
        if self.content_length is not None and self.bytes_read > self.content_length:
            raise MediaIntegrityError("media body is longer than its Content-Length")
        if not data:
            if self._expired.is_set() and self.bytes_read != self.content_length:
                raise self._too_slow()
            self._done = True
            # urllib3 may already have pooled the connection: the watchdog must not shut it.
            self._stop_watchdog()
            if self.content_length is not None and self.bytes_read != self.content_length:
                raise MediaIntegrityError("media body ended before its Content-Length")
            self._check_no_trailing_bytes()
            self._reusable = self.content_length is not None
        return data

    def _read_failure(self, exc: HTTPError) -> ArchiveError:
        if self._expired.is_set():  # the watchdog shut the socket
            return self._too_slow()
        if isinstance(exc, ReadTimeoutError):
            return MediaUnavailableError("media host stopped sending mid-body (read timeout)")
        if isinstance(exc, ProtocolError | IncompleteRead):
            if self._is_short_close(exc):
                return MediaIntegrityError("media body ended before its Content-Length")
            return MediaUnavailableError("media connection broken mid-body")
        return MediaUnavailableError("media connection failed mid-body")

    def _is_short_close(self, exc: BaseException) -> bool:
        """A clean close before Content-Length (IncompleteRead), unlike a reset or timeout."""
        seen: BaseException | None = exc
        while seen is not None:
            if isinstance(seen, IncompleteRead | ConnectionResetError):
                return isinstance(seen, IncompleteRead)
            for arg in getattr(seen, "args", ()):
                if isinstance(arg, ConnectionResetError):
                    return False
                if isinstance(arg, IncompleteRead):
                    return True
            seen = seen.__cause__ or seen.__context__
        return False

    def _check_no_trailing_bytes(self) -> None:
        """HTTP framing ends the message at Content-Length; bytes still waiting on the socket
        after it mean the server sent more than it declared: best effort, without blocking."""
        if self.content_length is None or self._expired.is_set():
            return
        sock = self._sock
        if sock is None:
            return
        try:
            if isinstance(sock, ssl.SSLSocket):
                # Decrypted bytes already buffered by TLS (recv flags are not allowed on TLS).
                extra = b"x" if sock.pending() > 0 else b""
            elif wait_for_read(sock, timeout=0.0):
                extra = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            else:
                return
        except (OSError, ValueError):
            return
        if extra:
            raise MediaIntegrityError("media body is longer than its Content-Length")

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()

    def close(self) -> None:
        self._stop_watchdog()
        if self._reusable and not self._expired.is_set():
            self._response.release_conn()
        else:
            # Unread, broken or over-long body: the connection cannot be reused.
            self._response.close()
            self._response.release_conn()


class MediaSource:
    """Downloads recordings under a `MediaPolicy`. One instance per execution environment: the
    connection pools (one per vetted host address) are reused across downloads."""

    def __init__(
        self,
        policy: MediaPolicy,
        *,
        resolver: Resolver | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if policy.ca_bundle and not policy.allow_loopback:
            # Fail closed: a deployed function trusts the system's store and nothing else.
            raise ValueError("MediaPolicy.ca_bundle is for the local stack only (allow_loopback)")
        self.policy = policy
        self._vetter = UrlVetter(policy, resolver)
        self._sleep = sleep
        self._clock = clock
        self._pools: OrderedDict[tuple[str, str, str, int], urllib3.HTTPConnectionPool] = (
            OrderedDict()
        )
        self._tls: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        auth = policy.basic_auth
        self._authorization = (
            "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            if auth
            else None
        )

    # --- vetting (url_policy.py) ------------------------------------------------------------
    def check_url(self, url: str) -> None:
        """Raise MediaRefusedError if `url` may not be fetched (MediaUnavailableError if its
        name does not resolve). No connection is made."""
        self._vetter.vet(url)

    def _vet(self, url: str) -> MediaTarget:
        return self._vetter.vet(url)

    # --- fetching --------------------------------------------------------------------------
    def _pool(self, target: MediaTarget, address: str) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, target.host, address, target.port)
        evicted: urllib3.HTTPConnectionPool | None = None
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            timeout = urllib3.Timeout(
                connect=self.policy.connect_timeout, read=self.policy.read_timeout
            )
            if target.scheme == "https":
                if self._tls is None:
                    self._tls = _tls_context(self.policy.ca_bundle)
                # No assert_hostname: OpenSSL checks the certificate against server_hostname
                # (also sent as SNI) during the handshake, before any request byte is sent.
                pool = urllib3.HTTPSConnectionPool(
                    host=address,
                    port=target.port,
                    timeout=timeout,
                    maxsize=2,
                    retries=False,
                    server_hostname=target.host,
                    cert_reqs="CERT_REQUIRED",
                    ssl_context=self._tls,
                )
            else:
                pool = urllib3.HTTPConnectionPool(
                    host=address, port=target.port, timeout=timeout, maxsize=2, retries=False
                )
            self._pools[key] = pool
            if len(self._pools) > _MAX_POOLS:
                _, evicted = self._pools.popitem(last=False)
        if evicted is not None:
            # Closes its idle connections; one still in use is closed when it is put back.
            evicted.close()
        return pool

    def _request(self, target: MediaTarget, send_auth: bool) -> urllib3.BaseHTTPResponse:
        headers = {
            "Host": target.host_header,
            "User-Agent": _USER_AGENT,
            "Accept-Encoding": "identity",  # the archive keeps the file's own bytes
        }
        if send_auth and self._authorization:
            headers["Authorization"] = self._authorization
        failure: HTTPError = ConnectTimeoutError("no address")
        for address in target.addresses:
            try:
                return self._pool(target, address).urlopen(
                    "GET",
                    target.request_path,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    decode_content=False,
                    assert_same_host=False,
                )
            except (ConnectTimeoutError, SSLError) as exc:
                # Not connected (refused, unreachable, timed out, TLS refused): nothing reached
                # this address. Every address was vetted; the next one may serve the request.
                failure = exc
        raise failure

    def _vet_retryable(self, url: str) -> MediaTarget:
        try:
            return self._vet(url)
        except MediaUnavailableError as exc:  # the name did not resolve: DNS may recover
            raise _RetryableError("media host name does not resolve") from exc

    def _attempt(self, url: str) -> tuple[urllib3.BaseHTTPResponse, str]:
        """One attempt: follow redirects to a 200. Raises _Retryable or a final error."""
        origin = self._vet_retryable(url)
        target = origin
        for _ in range(self.policy.max_redirects + 1):
            try:
                response = self._request(target, send_auth=target.origin == origin.origin)
            except SSLError as exc:
                cause = _ssl_cause(exc)
                if isinstance(cause, ssl.SSLCertVerificationError):
                    detail = (
                        "it is not valid for the host name"
                        if cause.verify_code == _X509_V_ERR_HOSTNAME_MISMATCH
                        else str(cause.verify_message)
                    )
                    raise MediaUnavailableError(
                        f"media host's TLS certificate was refused: {detail}"
                    ) from exc
                reason = getattr(cause, "reason", None) or type(cause or exc).__name__
                raise _RetryableError(f"TLS handshake failed ({reason})") from exc
            except HTTPError as exc:
                raise _RetryableError(f"connection failed: {type(exc).__name__}") from exc
            status = response.status
            if status == 200:
                return response, target.url
            location = response.headers.get("Location")
            retry_after = response.headers.get("Retry-After")
            _discard(response)
            if status in _REDIRECT_CODES:
                if not location:
                    raise MediaUnavailableError("media host redirected without a Location")
                target = self._vet_retryable(urljoin(target.url, location))
                continue
            if status in _RETRYABLE_CODES or 500 <= status <= 599:
                raise _RetryableError(
                    f"HTTP {status}", retry_after_seconds(retry_after, datetime.now(UTC))
                )
            if status == 403 and self._authorization is None:
                raise MediaUnavailableError(
                    "media host answered 403: if HTTP Auth on recordings is on in the Plivo "
                    "console, enable MEDIA_AUTH so the auth id and token are sent"
                )
            if status in (401, 403):
                raise MediaUnavailableError(f"media host refused the credentials (HTTP {status})")
            raise MediaUnavailableError(f"media host answered HTTP {status}")
        raise MediaUnavailableError("media URL redirected too many times")

    @contextmanager
    def open(self, url: str) -> Iterator[MediaStream]:
        """Open the recording at `url` for streaming; retried inside the policy's budget; the
        whole download, retries and body, inside `max_seconds`."""
        started = time.monotonic()  # real time: the watchdog's timer runs in real time
        deadline = self._clock() + min(self.policy.retry_budget, self.policy.max_seconds)
        attempt = 0
        while True:
            try:
                response, final_url = self._attempt(url)
                break
            except _RetryableError as failure:
                attempt += 1
                delay = _jitter.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))
                if failure.retry_after is not None:
                    delay = max(delay, failure.retry_after)
                if self._clock() + delay > deadline:
                    raise MediaUnavailableError(
                        f"media unavailable after {attempt} attempts: {failure.reason}"
                    ) from failure
                self._sleep(delay)
        stream = MediaStream(
            response,
            final_url,
            max_bytes=self.policy.max_bytes,
            max_seconds=self.policy.max_seconds,
        )
        try:
            stream.check_size()
            stream.start_watchdog(self.policy.max_seconds - (time.monotonic() - started))
            yield stream
        finally:
            stream.close()
