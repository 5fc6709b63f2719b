"""Signed Plivo callbacks (signatures by Plivo's own SDK) and an HTTP sender that times them."""

from __future__ import annotations

import http.client
import json
import random
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from tests.support.plivo import sdk_signature

EVENT_INITIATED = "SessionRecordingInitiated"
EVENT_COMPLETED = "SessionRecordingCompleted"
EVENT_FAILED = "SessionRecordingFailed"


@dataclass(frozen=True)
class Callback:
    params: dict[str, str]
    method: str = "POST"  # POST or GET
    content_type: str = "form"  # form or json (POST)

    @property
    def key(self) -> tuple[str, int]:
        return self.params["SessionUUID"], int(self.params["SequenceNumber"])


@dataclass
class Recording:
    session_uuid: str
    sequence: int
    recording_uuid: str
    path: str
    size: int
    seed: int


def phone(rng: random.Random) -> str:
    return f"+1415{rng.randrange(10**7):07d}"


def session_callbacks(
    rng: random.Random,
    *,
    calls: int,
    media_base: str,
    failed_rate: float,
    method: str = "POST",
    content_type: str = "form",
    media_size: tuple[int, int] = (2048, 32768),
) -> tuple[list[Callback], list[Recording], set[str]]:
    """One masking session: `calls` calls, each Initiated + Completed (its own recording) or,
    with probability `failed_rate`, one Failed; sequence numbers 1.. in the session's order."""
    session = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    numbers = {phone(rng), phone(rng), phone(rng)}
    if len(numbers) < 3:  # a collision: one number for all three parties, scanned like others
        numbers = {phone(rng)}
    first, second, virtual = sorted(numbers) if len(numbers) == 3 else (next(iter(numbers)),) * 3
    out: list[Callback] = []
    recordings: list[Recording] = []
    seq = 0
    for _call in range(calls):
        base = {
            "EventTimestamp": "2026-11-20 10:25:40 +0000 UTC",
            "From": first,
            "To": second,
            "VirtualNumber": virtual,
            "SessionUUID": session,
        }
        if rng.random() < failed_rate:
            seq += 1
            out.append(
                Callback(
                    {**base, "EventName": EVENT_FAILED, "SequenceNumber": str(seq)},
                    method,
                    content_type,
                )
            )
            continue
        rec = uuid.UUID(int=rng.getrandbits(128), version=4).hex
        seq += 1
        started = {
            **base,
            "RecordingUUID": rec,
            "RecordingFormat": ".mp3",
            "RecordingStartTime": "2026-11-20 10:25:10 +0000 UTC",
        }
        out.append(
            Callback(
                {**started, "EventName": EVENT_INITIATED, "SequenceNumber": str(seq)},
                method,
                content_type,
            )
        )
        seq += 1
        path = f"/v1/Account/MAREL/Recording/{rec}.mp3"
        out.append(
            Callback(
                {
                    **started,
                    "EventName": EVENT_COMPLETED,
                    "SequenceNumber": str(seq),
                    "RecordingURL": f"{media_base}{path}",
                    "RecordingResourceURL": f"https://api.plivo.com/v1/Account/MAREL/Recording/{rec}/",
                    "RecordingDuration": str(rng.randrange(5, 600)),
                    "RecordingEndTime": "2026-11-20 10:35:40 +0000 UTC",
                },
                method,
                content_type,
            )
        )
        recordings.append(
            Recording(session, seq, rec, path, rng.randrange(*media_size), rng.getrandbits(31))
        )
    return out, recordings, numbers


def nonce() -> str:
    return f"{secrets.randbelow(10**20):020d}"


@dataclass(frozen=True)
class Prepared:
    """An HTTP request ready to send: what was signed, and the signature (to scan logs for)."""

    method: str
    target: str  # path?query
    body: bytes | None
    headers: dict[str, str]
    signature: str


def prepare(
    callback: Callback, url: str, token: str, *, fixed_nonce: str | None = None
) -> Prepared:
    n = fixed_nonce or nonce()
    signature = sdk_signature(token, callback.method, url, callback.params, n)
    headers = {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": n}
    path = urlsplit(url).path
    if callback.method == "GET":
        return Prepared("GET", f"{path}?{urlencode(callback.params)}", None, headers, signature)
    if callback.content_type == "json":
        body = json.dumps(callback.params).encode()
        headers["Content-Type"] = "application/json"
    else:
        body = urlencode(callback.params).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return Prepared("POST", path, body, headers, signature)


@dataclass
class Result:
    status: int  # 0: no answer
    seconds: float
    body: str
    resent: bool = False  # sent a second time after a connection error (counted in figures)


@dataclass
class Sender:
    """HTTP/1.1 to the callback API on loopback, one connection per thread, re-opened on need."""

    url: str
    timeout: float = 60.0
    _local: threading.local = field(default_factory=threading.local)

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            parts = urlsplit(self.url)
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def send_raw(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> Result:
        start = time.perf_counter()
        for attempt in range(2):
            conn = self._conn()
            try:
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read().decode(errors="replace")
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    self._local.conn = None
                return Result(
                    response.status, time.perf_counter() - start, data, resent=attempt > 0
                )
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                self._local.conn = None
                if attempt == 1:
                    return Result(
                        0, time.perf_counter() - start, f"no answer: {exc!r}", resent=True
                    )
        raise AssertionError("unreachable")  # pragma: no cover

    def send(self, prepared: Prepared) -> Result:
        return self.send_raw(prepared.method, prepared.target, prepared.body, prepared.headers)


def percentile(values: Iterable[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
