"""A fake of Plivo's Masking Session and Recording REST APIs on 127.0.0.1.

Every answer is built from the real response bodies of Plivo's SDK fixtures
(tests/fixtures/plivo_rest/, copied from ../shared/plivo/rest-fixtures/), with generated ids and
the test's own times and URLs filled in:
- `GET /v1/Account/{auth_id}/Masking/Session/`: `status` (active|expired|all),
  `created_time__gte/__gt/__lte/__lt`, `limit` (at most 20, else 400), `offset`; a window longer
  than 30 days is refused with 400 as Plivo does; `meta` {limit, next, offset, previous,
  total_count}; newest first.
- `GET /v1/Account/{auth_id}/Masking/Session/{uuid}/`: `maskingSessionGetWithInteractionResponse`
  with one interaction per call of the session; an interaction carries `recording_resource_url`
  (null when the call was not recorded, as Plivo documents: the SDK fixture shows an interaction
  of a session without `record`, so the field is added here).
- `GET` / `DELETE /v1/Account/{auth_id}/Recording/{id}/`: `recordingGetResponse`; DELETE answers
  204 and the recording is gone (404 afterwards).
HTTP Basic auth is checked on every request (401 otherwise). Faults can be injected: `fail(429,
retry_after="1")` or `fail(503)` answers the next matching requests with that status. Recording
media is not served here: a recording's `recording_url` is whatever the test gives (usually a
`tests.support.media_server.MediaServer` URL).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "plivo_rest"
AUTH_ID = "MAODUYZMJMZJA1ZTZLZJ"
AUTH_TOKEN = "fake-plivo-auth-token-0123456789"
_PLIVO_TIME = "%Y-%m-%d %H:%M:%S.%f +0000 UTC"
_FILTER_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _plivo_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_PLIVO_TIME)


def _parse_filter(text: str) -> datetime:
    for fmt in _FILTER_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(text)


@dataclass
class FakeRecording:
    recording_id: str
    recording_url: str
    fmt: str
    start: datetime
    duration_ms: int
    call_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class FakeSession:
    session_uuid: str
    created: datetime
    status: str
    record: bool
    # One entry per call: its recording (None: the call was not recorded).
    calls: list[FakeRecording | None] = field(default_factory=list)


@dataclass(frozen=True)
class Fault:
    status: int
    retry_after: str | None
    method: str | None
    path_contains: str


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    authorized: bool


class FakePlivoApi:
    def __init__(self, auth_id: str = AUTH_ID, auth_token: str = AUTH_TOKEN) -> None:
        self.auth_id = auth_id
        self.auth_token = auth_token
        self.sessions: dict[str, FakeSession] = {}
        self.recordings: dict[str, FakeRecording] = {}
        self.deleted: list[str] = []
        self.requests: list[SeenRequest] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- data --------------------------------------------------------------------------------
    def add_session(
        self,
        *,
        session_uuid: str | None = None,
        created: datetime | None = None,
        status: str = "expired",
        record: bool = True,
    ) -> FakeSession:
        session = FakeSession(
            session_uuid or str(uuid.uuid4()),
            created or datetime.now(UTC) - timedelta(minutes=10),
            status,
            record,
        )
        with self._lock:
            self.sessions[session.session_uuid] = session
        return session

    def add_recording(
        self,
        session: FakeSession,
        recording_url: str,
        *,
        recording_id: str | None = None,
        fmt: str = "mp3",
        start: datetime | None = None,
        duration_ms: int = 12_000,
    ) -> FakeRecording:
        recording = FakeRecording(
            recording_id or str(uuid.uuid4()),
            recording_url,
            fmt,
            start or session.created + timedelta(minutes=1),
            duration_ms,
        )
        with self._lock:
            session.calls.append(recording)
            self.recordings[recording.recording_id] = recording
        return recording

    def add_unrecorded_call(self, session: FakeSession) -> None:
        with self._lock:
            session.calls.append(None)

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: str | None = None,
        method: str | None = None,
        path_contains: str = "",
    ) -> None:
        """Answer the next `times` matching requests with `status` (and Retry-After)."""
        with self._lock:
            self._faults.extend([Fault(status, retry_after, method, path_contains)] * times)

    def requests_to(self, fragment: str, method: str = "GET") -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if fragment in r.path and r.method == method]

    # --- documents ---------------------------------------------------------------------------
    def _resource_url(self, recording_id: str) -> str:
        return f"{self.base_url}/v1/Account/{self.auth_id}/Recording/{recording_id}/"

    def _session_summary(self, session: FakeSession) -> dict[str, Any]:
        obj = copy.deepcopy(fixture("maskingSessionListResponse")["response"]["objects"][0])
        obj.update(
            session_uuid=session.session_uuid,
            created_time=_plivo_time(session.created),
            modified_time=_plivo_time(session.created),
            expiry_time=_plivo_time(session.created + timedelta(hours=1)),
            status=session.status,
            record=session.record,
            resource_uri=f"/v1/Account/{self.auth_id}/Masking/Session/{session.session_uuid}/",
            total_call_count=len(session.calls),
        )
        return obj

    def _session_detail(self, session: FakeSession) -> dict[str, Any]:
        doc = copy.deepcopy(fixture("maskingSessionGetWithInteractionResponse"))
        template = doc["response"]["interaction"][0]
        interactions = []
        for index, call in enumerate(session.calls):
            entry = copy.deepcopy(template)
            start = call.start if call else session.created + timedelta(minutes=index + 1)
            duration = (call.duration_ms // 1000) if call else 5
            entry.update(
                start_time=start.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),
                end_time=(start + timedelta(seconds=duration)).strftime(
                    "%Y-%m-%d %H:%M:%S +0000 UTC"
                ),
                first_party_resource_url=(
                    f"{self.base_url}/v1/Account/{self.auth_id}/Call/{uuid.uuid4()}"
                ),
                duration=duration,
                recording_resource_url=self._resource_url(call.recording_id) if call else None,
            )
            interactions.append(entry)
        doc["api_id"] = str(uuid.uuid4())
        doc["response"].update(
            session_uuid=session.session_uuid,
            created_time=_plivo_time(session.created),
            status=session.status,
            record=session.record,
            interaction=interactions or None,
            total_call_count=len(session.calls),
        )
        return doc

    def _recording_doc(self, rec: FakeRecording) -> dict[str, Any]:
        doc = copy.deepcopy(fixture("recordingGetResponse"))
        start_ms = rec.start.timestamp() * 1000
        doc.update(
            api_id=str(uuid.uuid4()),
            recording_id=rec.recording_id,
            recording_url=rec.recording_url,
            recording_format=rec.fmt,
            call_uuid=rec.call_uuid,
            add_time=(rec.start + timedelta(milliseconds=rec.duration_ms)).isoformat(sep=" "),
            recording_duration_ms=f"{rec.duration_ms:.5f}",
            recording_start_ms=f"{start_ms:.5f}",
            recording_end_ms=f"{start_ms + rec.duration_ms:.5f}",
            recording_type="call",
            resource_uri=f"/v1/Account/{self.auth_id}/Recording/{rec.recording_id}/",
        )
        return doc

    def _list(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        try:
            limit = int(one("limit") or 20)
            offset = int(one("offset") or 0)
            bounds = {
                op: _parse_filter(value)
                for op in ("gte", "gt", "lte", "lt")
                if (value := one(f"created_time__{op}")) is not None
            }
        except ValueError:
            return 400, self._error("invalid filter")
        if not 1 <= limit <= 20 or offset < 0:
            return 400, self._error("limit must be between 1 and 20")
        now = datetime.now(UTC)
        lower = bounds.get("gte") or bounds.get("gt")
        upper = bounds.get("lte") or bounds.get("lt") or now
        lower = lower or upper - timedelta(days=7)  # Plivo's default window
        if upper - lower > timedelta(days=30):
            return 400, self._error("created_time window must not exceed 30 days")
        status = one("status") or "active"
        with self._lock:
            sessions = list(self.sessions.values())
        matching = [
            s
            for s in sessions
            if status in ("all", s.status)
            and ("gte" not in bounds or s.created >= bounds["gte"])
            and ("gt" not in bounds or s.created > bounds["gt"])
            and ("lte" not in bounds or s.created <= bounds["lte"])
            and ("lt" not in bounds or s.created < bounds["lt"])
            and lower <= s.created <= upper
        ]
        matching.sort(key=lambda s: s.created, reverse=True)
        page = matching[offset : offset + limit]
        path = f"/v1/Account/{self.auth_id}/Masking/Session/"
        doc = copy.deepcopy(fixture("maskingSessionListResponse"))
        doc["api_id"] = str(uuid.uuid4())
        doc["response"]["meta"] = {
            "limit": limit,
            "next": (
                f"{path}?limit={limit}&offset={offset + limit}"
                if offset + limit < len(matching)
                else None
            ),
            "offset": offset,
            "previous": (
                f"{path}?limit={limit}&offset={max(0, offset - limit)}" if offset > 0 else None
            ),
            "total_count": len(matching),
        }
        doc["response"]["objects"] = [self._session_summary(s) for s in page]
        return 200, doc

    @staticmethod
    def _error(message: str) -> dict[str, Any]:
        return {"api_id": str(uuid.uuid4()), "error": message}

    # --- routing -----------------------------------------------------------------------------
    def _route(  # noqa: PLR0911 - one answer per route and error
        self, method: str, path: str, query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        account = re.escape(self.auth_id)
        if method == "GET" and re.fullmatch(rf"/v1/Account/{account}/Masking/Session/?", path):
            return self._list(query)
        match = re.fullmatch(rf"/v1/Account/{account}/Masking/Session/([^/]+)/?", path)
        if match and method == "GET":
            with self._lock:
                session = self.sessions.get(match.group(1))
            if session is None:
                return 404, self._error("session not found")
            return 200, self._session_detail(session)
        match = re.fullmatch(rf"/v1/Account/{account}/Recording/([^/]+)/?", path)
        if match and method in ("GET", "DELETE"):
            with self._lock:
                rec = self.recordings.get(match.group(1))
                if rec is not None and method == "DELETE":
                    del self.recordings[rec.recording_id]
                    self.deleted.append(rec.recording_id)
                    return 204, None
            if rec is None:
                return 404, self._error("not found")
            return 200, self._recording_doc(rec)
        return 404, self._error("not found")

    def _next_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if (fault.method in (None, method)) and fault.path_contains in path:
                    return self._faults.pop(i)
        return None

    def _authorized(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.auth_id}:{self.auth_token}".encode()).decode()
        return header == f"Basic {expected}"

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakePlivoApi:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query, keep_blank_values=True)
                authorized = fake._authorized(self.headers.get("Authorization"))
                with fake._lock:
                    fake.requests.append(SeenRequest(method, parts.path, query, authorized))
                if not authorized:
                    self._send(401, {"api_id": str(uuid.uuid4()), "error": "not authorized"})
                    return
                fault = fake._next_fault(method, parts.path)
                if fault is not None:
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    self._send(fault.status, fake._error("injected fault"), headers)
                    return
                status, body = fake._route(method, parts.path, query)
                self._send(status, body)

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakePlivoApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
