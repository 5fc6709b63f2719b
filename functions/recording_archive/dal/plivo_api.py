"""A small client of Plivo's REST APIs: masking sessions and recordings (urllib3, no SDK).

Endpoints (https://api.plivo.com by default; HTTP Basic auth with the auth id and auth token):
- `GET /v1/Account/{auth_id}/Masking/Session/` lists sessions: `status=all`, `created_time__gte`
  / `created_time__lte` ("YYYY-MM-DD HH:MM:SS", UTC), `limit` (at most 20) and `offset`. Plivo
  accepts a window of at most 30 days, so a longer one is split into windows of 30 days (a
  session on a boundary is returned once). Pages are followed while `meta.next` is set.
- `GET /v1/Account/{auth_id}/Masking/Session/{session_uuid}/`: the session with its
  `interaction[]`; an interaction's `recording_resource_url` is null when nothing was recorded.
- `GET` / `DELETE /v1/Account/{auth_id}/Recording/{recording_id}/`: the Recording resource
  (`recording_url`, `recording_format`, `recording_duration_ms`, `add_time`, `call_uuid`, ...).

Response shapes are those of Plivo's own SDK fixtures (`api_id`, `response`, `meta` {limit, next,
offset, previous, total_count}, `objects`).

Rate limits and outages: a 429 is retried after its Retry-After (seconds or an HTTP date), a 5xx
or a connection failure with exponential backoff and jitter, both a bounded number of times; then
`PlivoUnavailableError`. 401/403 -> `PlivoAuthError`, 404 -> `PlivoNotFoundError`, any other
answer -> `PlivoApiError`. Credentials only ever go to the configured base URL: a resource URL
found in a response is reduced to its recording id and never followed. The base URL must be
https, except on a loopback host (tests and the local stack).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.exceptions import HTTPError

from recording_archive.dal.retry_after import retry_after_seconds
from recording_archive.models.plivo import (
    Interaction,
    MaskingSession,
    PlivoApiError,
    PlivoAuthError,
    PlivoNotFoundError,
    PlivoUnavailableError,
    RecordingResource,
    check_id,
    recording_id_from_url,
)

# The Plivo types and errors live in models/plivo.py; importable from here too (the client's API).
__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_WINDOW",
    "Interaction",
    "MaskingSession",
    "PlivoApi",
    "PlivoApiError",
    "PlivoAuthError",
    "PlivoNotFoundError",
    "PlivoUnavailableError",
    "RecordingResource",
    "check_id",
    "recording_id_from_url",
    "windows",
]

DEFAULT_BASE_URL = "https://api.plivo.com"
PAGE_LIMIT = 20  # Plivo's maximum page size
MAX_WINDOW = timedelta(days=30)  # Plivo's maximum created_time window
_FILTER_TIME = "%Y-%m-%d %H:%M:%S"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_USER_AGENT = "plivo-recording-archive/1"
_MAX_PAGES = 10_000
_jitter = random.SystemRandom()


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def windows(
    start: datetime, end: datetime, size: timedelta = MAX_WINDOW
) -> list[tuple[datetime, datetime]]:
    """[start, end] cut into consecutive windows of at most `size`."""
    if end < start:
        raise ValueError("the window ends before it starts")
    out: list[tuple[datetime, datetime]] = []
    cursor = start
    while True:
        upper = min(end, cursor + size)
        out.append((cursor, upper))
        if upper >= end:
            return out
        cursor = upper


class PlivoApi:
    def __init__(
        self,
        auth_id: str,
        auth_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        max_delay: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.auth_id = check_id(auth_id, "auth id")
        if not auth_token:
            raise PlivoAuthError("no Plivo auth token")
        parts = urlsplit(base_url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http") or not host:
            raise PlivoApiError("the Plivo API base URL must be an absolute https URL")
        if parts.scheme == "http" and host not in _LOOPBACK_HOSTS:
            raise PlivoApiError("the Plivo API base URL must be https (http only on loopback)")
        self.base_url = base_url.rstrip("/")
        self._headers = {
            **urllib3.util.make_headers(basic_auth=f"{auth_id}:{auth_token}"),
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=False,
            maxsize=2,
        )
        self._max_attempts = max(1, max_attempts)
        self._backoff_base = backoff_base
        self._max_delay = max_delay
        self._sleep = sleep

    def __repr__(self) -> str:  # never the token
        return f"PlivoApi(auth_id={self.auth_id!r}, base_url={self.base_url!r})"

    # --- transport ---------------------------------------------------------------------------
    def _account_path(self, rest: str) -> str:
        return f"/v1/Account/{self.auth_id}/{rest}"

    def _call(
        self, method: str, path: str, query: Mapping[str, str | int] | None = None
    ) -> dict[str, Any]:
        url = self.base_url + path + (f"?{urlencode(query)}" if query else "")
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    method, url, headers=self._headers, redirect=False, retries=False
                )
            except HTTPError as exc:
                reason = f"connection failed ({type(exc).__name__})"
                self._wait_or_raise(attempt, None, reason)
                continue
            status = response.status
            body = response.data
            if status == 429 or 500 <= status <= 599:
                delay = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
                self._wait_or_raise(attempt, delay, f"HTTP {status}", status)
                continue
            return self._decode(method, path, status, body)

    def _wait_or_raise(
        self, attempt: int, retry_after: float | None, reason: str, status: int | None = None
    ) -> None:
        if attempt >= self._max_attempts:
            raise PlivoUnavailableError(
                f"Plivo API unavailable after {attempt} attempts: {reason}", status=status
            )
        backoff = _jitter.uniform(0, min(self._max_delay, self._backoff_base * 2**attempt))
        delay = backoff if retry_after is None else max(retry_after, backoff)
        if delay > self._max_delay:
            raise PlivoUnavailableError(
                f"Plivo API rate limit: retry after {int(delay)} s", status=status
            )
        self._sleep(delay)

    @staticmethod
    def _decode(method: str, path: str, status: int, body: bytes) -> dict[str, Any]:
        data: Any = None
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
        if status in (401, 403):
            raise PlivoAuthError(
                f"Plivo refused the credentials (HTTP {status}): check the auth id and token",
                status=status,
            )
        if status == 404:
            raise PlivoNotFoundError(f"Plivo: not found ({method} {path})", status=status)
        if not 200 <= status <= 299:
            detail = data.get("error") if isinstance(data, dict) else None
            text = f": {' '.join(str(detail).split())[:200]}" if detail else ""
            raise PlivoApiError(f"Plivo answered HTTP {status}{text}", status=status)
        if status == 204 or not body:
            return {}
        if not isinstance(data, dict):
            raise PlivoApiError("Plivo answered with a body that is not a JSON object")
        return data

    # --- masking sessions ----------------------------------------------------------------------
    def list_sessions(
        self, created_from: datetime, created_to: datetime, *, status: str = "all"
    ) -> Iterator[dict[str, Any]]:
        """Every session created in [created_from, created_to] (summaries, as Plivo lists them)."""
        seen: set[str] = set()
        for lower, upper in windows(created_from.astimezone(UTC), created_to.astimezone(UTC)):
            for summary in self._list_window(lower, upper, status):
                uuid = str(summary.get("session_uuid") or "")
                if uuid and uuid not in seen:
                    seen.add(uuid)
                    yield summary

    def _list_window(
        self, lower: datetime, upper: datetime, status: str
    ) -> Iterator[dict[str, Any]]:
        offset = 0
        for _ in range(_MAX_PAGES):
            data = self._call(
                "GET",
                self._account_path("Masking/Session/"),
                {
                    "status": status,
                    "created_time__gte": lower.strftime(_FILTER_TIME),
                    "created_time__lte": upper.strftime(_FILTER_TIME),
                    "limit": PAGE_LIMIT,
                    "offset": offset,
                },
            )
            page = data.get("response")
            if not isinstance(page, dict) or not isinstance(page.get("objects"), list):
                raise PlivoApiError("Plivo's session list has no response.objects")
            objects: list[Any] = page["objects"]
            for obj in objects:
                if isinstance(obj, dict):
                    yield obj
            meta = page.get("meta")
            if not objects or not isinstance(meta, dict) or not meta.get("next"):
                return
            offset += len(objects)
        raise PlivoApiError("Plivo's session list did not end")  # pragma: no cover

    def get_session(self, session_uuid: str) -> MaskingSession:
        sid = check_id(session_uuid, "session uuid")
        data = self._call("GET", self._account_path(f"Masking/Session/{sid}/"))
        raw = data.get("response")
        if not isinstance(raw, dict):
            raise PlivoApiError("Plivo's session has no response object")
        interactions = tuple(
            Interaction(
                type=str(i.get("type") or ""),
                start_time=str(i.get("start_time") or ""),
                end_time=str(i.get("end_time") or ""),
                recording_resource_url=(
                    str(i["recording_resource_url"]) if i.get("recording_resource_url") else None
                ),
                raw=i,
            )
            for i in (raw.get("interaction") or [])
            if isinstance(i, dict)
        )
        return MaskingSession(
            session_uuid=str(raw.get("session_uuid") or sid),
            status=str(raw.get("status") or ""),
            created_time=str(raw.get("created_time") or ""),
            record=bool(raw.get("record")),
            record_file_format=str(raw.get("record_file_format") or ""),
            interactions=interactions,
            raw=raw,
        )

    # --- recordings ----------------------------------------------------------------------------
    def get_recording(self, recording_id: str) -> RecordingResource:
        rid = check_id(recording_id, "recording id")
        raw = self._call("GET", self._account_path(f"Recording/{rid}/"))
        url = raw.get("recording_url")
        if not isinstance(url, str) or not url:
            raise PlivoApiError("Plivo's recording has no recording_url")
        fmt = str(raw.get("recording_format") or "").lstrip(".").lower()
        if not fmt:
            path = urlsplit(url).path.lower()
            fmt = "wav" if path.endswith(".wav") else "mp3"
        return RecordingResource(
            recording_id=str(raw.get("recording_id") or rid),
            recording_url=url,
            recording_format=fmt,
            call_uuid=str(raw.get("call_uuid") or ""),
            add_time=str(raw.get("add_time") or ""),
            recording_duration_ms=_decimal(raw.get("recording_duration_ms")),
            recording_start_ms=_decimal(raw.get("recording_start_ms")),
            recording_end_ms=_decimal(raw.get("recording_end_ms")),
            raw=raw,
        )

    def delete_recording(self, recording_id: str) -> None:
        """Delete the recording from Plivo. PlivoNotFoundError if it is already gone."""
        rid = check_id(recording_id, "recording id")
        self._call("DELETE", self._account_path(f"Recording/{rid}/"))
