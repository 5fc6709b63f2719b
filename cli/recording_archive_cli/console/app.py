"""The console's web application (Flask, Jinja2 templates with autoescaping, no inline script).

Every request, in this order (`_guard`):
1. Host: exactly `127.0.0.1:PORT` or `localhost:PORT`, else 421. A page of another site whose
   name a DNS-rebinding attacker pointed at 127.0.0.1 sends its own name as Host.
2. Token: the per-launch token, given once as `?token=` (the printed URL): answered with an
   HttpOnly, SameSite=Strict cookie (named after the port: cookies are not separated by port)
   and a redirect to the same URL without the token; afterwards the cookie. Neither: 401.
3. A POST (every state change) carries the per-launch CSRF token in the form field `csrf`,
   and an Origin header, if it names one, names this console: else 403.
Every answer: a strict Content-Security-Policy (no inline script or style; media only from
this console and the archive bucket's origin, where the presigned URLs point), nosniff,
no referrer (the URLs carry ids), no framing, no caching.

Plays and downloads go through this console (`/recordings/.../play|download`), which writes
the audit record (`console.play`, `recording.download`, in `Ops.audit`: operator/audit.py) and
then redirects to a presigned URL (`PLAY_SECONDS`, `DOWNLOAD_SECONDS`); actions write theirs
(`recording.retry`, `hold.set`, `hold.clear`). No audit record, no action: a failing audit log
is a 503.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, abort, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from recording_archive.models import item as f
from recording_archive_cli.console.data import (
    EVENTS,
    STATUSES,
    ConsoleData,
    SearchError,
    is_plivo_id,
)
from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.context import Ops, runtime_logs

# Presigned URLs live at most 15 minutes (the bound). A player may fetch more ranges of
# the same URL while it plays (a paused page resumes within that time); a download starts at once.
PLAY_SECONDS = 900
DOWNLOAD_SECONDS = 60
HERE = Path(__file__).parent
F = TypeVar("F", bound=Callable[..., Any])


class AuditUnavailableError(Exception):
    """The audit record could not be written: the action is not done."""


class Console:
    """The application's state: the launch's secrets, the data source, pending notices."""

    def __init__(
        self, ops: Ops, *, port: int, token: str, show_numbers: bool, media_origin: str
    ) -> None:
        self.ops = ops
        self.port = port
        self.token = token
        self.csrf = secrets.token_urlsafe(32)
        self.cookie = f"ra_console_{port}"
        self.data = ConsoleData(ops, show_numbers=show_numbers)
        self.media_origin = media_origin
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        # One operator: AWS work is serialised (boto3 sessions are not thread-safe, and the
        # operator layer builds its clients lazily).
        self.lock = threading.RLock()
        self.notices: dict[str, str] = {}

    # --- audit ----------------------------------------------------------------------------------
    def audit(
        self,
        action: str,
        targets: dict[str, Any],
        *,
        reason: str | None = None,
        counts: dict[str, int] | None = None,
    ) -> None:
        try:
            with self.ops.aws_errors("audit table"):
                self.ops.audit.write(
                    action, actor=self.ops.caller_arn, targets=targets, counts=counts, reason=reason
                )
        except CLIError as exc:
            raise AuditUnavailableError(exc.message) from None

    # --- notices (post/redirect/get) -------------------------------------------------------------
    def notice(self, text: str) -> str:
        key = secrets.token_urlsafe(8)
        if len(self.notices) > 100:
            self.notices.clear()
        self.notices[key] = text
        return key

    def csp(self) -> str:
        return (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"media-src 'self' {self.media_origin}; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'"
        )


def media_origin(ops: Ops) -> str:
    """scheme://host[:port] of the archive's presigned URLs (the CSP's media source)."""
    with ops.aws_errors("presign"):
        url = ops.s3.generate_presigned_url(
            "get_object", Params={"Bucket": ops.names.bucket, "Key": "x"}, ExpiresIn=60
        )
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def attribute_text(value: Any) -> str:
    """An attribute as received, as text (escaped by the template like every value): a form
    field given once is a one-element list, repeated ones are joined, JSON is shown as JSON."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " | ".join(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def create_app(console: Console) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(HERE / "templates"),
        static_folder=str(HERE / "static"),
    )
    app.config.update(TEMPLATES_AUTO_RELOAD=False, MAX_CONTENT_LENGTH=64 * 1024)
    app.jinja_env.autoescape = True  # every template, whatever its file name
    app.jinja_env.filters["attribute"] = attribute_text
    data = console.data

    def locked(view: F) -> F:
        @wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with console.lock:
                return view(*args, **kwargs)

        return inner  # type: ignore[return-value]

    @app.before_request
    def _guard() -> BaseResponse | None:
        if request.host not in console.hosts:
            abort(421)
        given = request.args.get("token")
        if given is not None:
            if not hmac.compare_digest(given.encode(), console.token.encode()):
                abort(401)
            rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
            # One leading slash: "//host/..." would be a redirect to another site.
            target = "/" + request.path.lstrip("/") + (f"?{urlencode(rest)}" if rest else "")
            response = redirect(target, code=303)
            response.set_cookie(
                console.cookie,
                console.token,
                httponly=True,
                samesite="Strict",
                path="/",
            )
            return response
        cookie = request.cookies.get(console.cookie, "")
        if not hmac.compare_digest(cookie.encode(), console.token.encode()):
            abort(401)
        if request.method == "POST":
            # Under Referrer-Policy no-referrer a browser sends `Origin: null` with a form POST
            # (https://fetch.spec.whatwg.org/#serializing-a-request-origin): then the CSRF
            # token (and the SameSite=Strict cookie) decide alone.
            origin = request.headers.get("Origin")
            if origin not in (None, "null") and urlsplit(origin).netloc not in console.hosts:
                abort(403)
            csrf = request.form.get("csrf", "")
            if not hmac.compare_digest(csrf.encode(), console.csrf.encode()):
                abort(403)
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = console.csp()
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[str, int]:
        code = exc.code or 500
        messages = {
            401: "This console needs its token: open the URL it printed "
            "(console: http://127.0.0.1:PORT/?token=...).",
            403: "Refused: the form's CSRF token is missing or wrong (reload the page).",
            421: "This console answers only to 127.0.0.1 and localhost on its own port.",
        }
        text = messages.get(code, exc.description or "error")
        return render_template("error.html", code=code, message=text, csrf=""), code

    @app.errorhandler(CLIError)
    def _aws_error(exc: CLIError) -> tuple[str, int]:
        return render_template("error.html", code=502, message=exc.message, csrf=""), 502

    @app.errorhandler(AuditUnavailableError)
    def _audit_error(exc: AuditUnavailableError) -> tuple[str, int]:
        message = f"The audit log could not be written ({exc}): nothing was done."
        return render_template("error.html", code=503, message=message, csrf=""), 503

    @app.context_processor
    def _common() -> dict[str, Any]:
        return {
            "csrf": console.csrf,
            "show_numbers": data.show_numbers,
        }

    def notice_text() -> str | None:
        key = request.args.get("done")
        return console.notices.pop(key, None) if key else None

    # --- pages ----------------------------------------------------------------------------------
    @app.get("/")
    @locked
    def index() -> Any:
        today = datetime.now(UTC).date()
        query = request.args.get("q", "").strip()
        error = None
        found: list[Any] | None = None
        if query:
            try:
                uuids = data.search(query)
            except SearchError as exc:
                error = str(exc)
            else:
                if len(uuids) == 1:
                    return redirect(url_for("session_page", session_uuid=uuids[0]), code=303)
                found = [row for row in (data.row(u) for u in uuids) if row is not None]
        try:
            day = date.fromisoformat(request.args.get("day") or today.isoformat())
        except ValueError:
            error = "the date must be YYYY-MM-DD"
            day = today
        status = request.args.get("status") or None
        event = request.args.get("event") or None
        if status not in (None, *STATUSES) or event not in (None, *EVENTS):
            abort(400)
        cursor = request.args.get("cursor") or None
        # The list and the summary need the session index; search by UUID does not: a stack
        # without a reachable index still gets the search box, and the reason.
        list_error = None
        rows: list[Any] = []
        next_cursor = health = None
        try:
            rows, next_cursor = data.sessions(day, status=status, event=event, cursor=cursor)
            health = data.health(today)
        except ValueError:  # a cursor the index did not write
            abort(400)
        except CLIError as exc:
            list_error = exc.message
        return render_template(
            "index.html",
            query=query,
            error=error,
            found=found,
            rows=rows,
            next_cursor=next_cursor,
            day=day.isoformat(),
            status=status or "",
            event=event or "",
            statuses=STATUSES,
            events=EVENTS,
            health=health,
            list_error=list_error,
            notice=notice_text(),
        )

    @app.get("/sessions/<session_uuid>")
    @locked
    def session_page(session_uuid: str) -> Any:
        if not is_plivo_id(session_uuid):
            abort(404)
        events = data.events(session_uuid)
        if not events:
            abort(404, f"no events for session {session_uuid}")
        return render_template(
            "session.html",
            session_uuid=session_uuid,
            events=[data.shown(e) for e in events],
            recordings=data.recordings(events),
            notice=notice_text(),
        )

    @app.get("/recordings/<queue>")
    @locked
    def queue_page(queue: str) -> Any:
        states = {"pending": f.ArchiveStatus.PENDING, "failed": f.ArchiveStatus.FAILED}
        if queue not in states:
            abort(404)
        return render_template(
            "queue.html",
            queue=queue,
            items=data.queue(states[queue]),
            notice=notice_text(),
        )

    # --- a recording: play, download, actions --------------------------------------------------
    def archived(session_uuid: str, recording_uuid: str) -> dict[str, Any]:
        item = recording(session_uuid, recording_uuid)
        if item.get(f.ARCHIVE_STATUS) != f.ArchiveStatus.ARCHIVED or not item.get(f.ARCHIVE_KEY):
            abort(409, f"recording {recording_uuid} is not archived")
        return item

    def recording(session_uuid: str, recording_uuid: str) -> dict[str, Any]:
        if not (is_plivo_id(session_uuid) and is_plivo_id(recording_uuid)):
            abort(404)
        item = data.recording_item(session_uuid, recording_uuid)
        if item is None:
            abort(404, f"no recording {recording_uuid} in session {session_uuid}")
        return item

    def targets(item: dict[str, Any]) -> dict[str, Any]:
        # The names `recording-archive hold` and `erase` use in their records.
        return {
            "session_uuid": str(item[f.SESSION_UUID]),
            "sequence_number": int(item[f.SEQUENCE_NUMBER]),
            "recording_uuid": str(item.get(f.RECORDING_UUID) or ""),
        }

    @app.get("/recordings/<session_uuid>/<recording_uuid>/play")
    @locked
    def play(session_uuid: str, recording_uuid: str) -> Any:
        from recording_archive_cli.operator.archive import presigned_url

        item = archived(session_uuid, recording_uuid)
        console.audit("console.play", targets(item))
        return redirect(presigned_url(console.ops, item, PLAY_SECONDS), code=303)

    @app.get("/recordings/<session_uuid>/<recording_uuid>/download")
    @locked
    def download(session_uuid: str, recording_uuid: str) -> Any:
        from recording_archive_cli.operator.archive import presigned_url

        item = archived(session_uuid, recording_uuid)
        console.audit("recording.download", targets(item))
        name = Path(str(item[f.ARCHIVE_KEY])).name
        url = presigned_url(console.ops, item, DOWNLOAD_SECONDS, attachment=name)
        return redirect(url, code=303)

    def back(session_uuid: str, text: str) -> Any:
        key = console.notice(text)
        target = request.form.get("back", "")
        if target in ("pending", "failed"):
            return redirect(url_for("queue_page", queue=target, done=key), code=303)
        return redirect(url_for("session_page", session_uuid=session_uuid, done=key), code=303)

    @app.post("/recordings/<session_uuid>/<recording_uuid>/retry")
    @locked
    def retry(session_uuid: str, recording_uuid: str) -> Any:
        from recording_archive_cli.operator.archive import retry_item

        item = recording(session_uuid, recording_uuid)
        console.audit("recording.retry", targets(item))
        with runtime_logs(verbose=False):
            outcome, detail = retry_item(console.ops, item)
        text = f"retry of {recording_uuid}: {outcome}" + (f" ({detail})" if detail else "")
        return back(session_uuid, text)

    @app.post("/recordings/<session_uuid>/<recording_uuid>/verify")
    @locked
    def verify(session_uuid: str, recording_uuid: str) -> Any:
        from recording_archive_cli.operator.archive import verify_item

        item = archived(session_uuid, recording_uuid)
        outcome, detail = verify_item(console.ops, item)
        text = f"verify of {recording_uuid}: {outcome}" + (f" ({detail})" if detail else "")
        return back(session_uuid, text)

    register_compliance(app, console, recording, back, locked)
    return app


def register_compliance(
    app: Flask,
    console: Console,
    recording: Callable[[str, str], dict[str, Any]],
    back: Callable[[str, str], Any],
    locked: Callable[[Callable[..., Any]], Callable[..., Any]],
) -> None:
    """Legal hold and its release on a session (`operator/compliance.py`, as `recording-archive
    hold set|clear --session`), each confirmed with a reason on a page of its own before
    anything is done. Erase stays a CLI command (`recording-archive erase`: its resumable,
    refusing-when-held run lives in that command)."""

    @app.post("/recordings/<session_uuid>/<recording_uuid>/<action>")
    @locked
    def compliance_action(session_uuid: str, recording_uuid: str, action: str) -> Any:
        if action not in ("hold", "release"):
            abort(404)
        recording(session_uuid, recording_uuid)  # 404 unless the session has the recording
        reason = " ".join(request.form.get("reason", "").split())[:1000]
        if request.form.get("confirm") != "yes" or not reason:
            return render_template(
                "confirm.html",
                action=action,
                session_uuid=session_uuid,
                recording_uuid=recording_uuid,
                reason=reason,
                missing_reason=request.form.get("confirm") == "yes" and not reason,
            )
        return back(session_uuid, hold(console, session_uuid, on=action == "hold", reason=reason))


def hold(console: Console, session_uuid: str, *, on: bool, reason: str) -> str:
    """A legal hold on a session, or its release, with its audit record (as `hold set|clear`)."""
    from recording_archive_cli.operator.compliance import session_scope, set_hold

    ops = console.ops
    scope = session_scope(ops, [session_uuid])
    counts = set_hold(ops, scope, on=on, reason=reason)
    targets = {"session_uuid": session_uuid, "recordings": sorted(scope.recordings)}
    console.audit("hold.set" if on else "hold.clear", targets, reason=reason, counts=counts)
    verb = "held" if on else "released"
    return (
        f"session {session_uuid} {verb}: {counts['items']} event item(s), "
        f"{counts['object_versions']} object version(s)"
    )
