"""What reliability adds to the one simulated Plivo (`recording_archive_cli.plivo_sim`): requests
signed by Plivo's own SDK (`prepare`), and an HTTP sender that times them (`Sender`)."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from recording_archive_cli import plivo_sim
from recording_archive_cli.plivo_sim import Callback, Prepared
from tests.support.plivo import sdk_signature


def prepare(
    callback: Callback, url: str, token: str, *, fixed_nonce: str | None = None
) -> Prepared:
    """The request Plivo would make for `callback`, signed by Plivo's SDK (not our signer: a
    reliability run also proves the two agree)."""
    return plivo_sim.prepare(callback, url, token, signer=sdk_signature, nonce=fixed_nonce)


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
