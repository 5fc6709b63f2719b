"""The console's guards over plain HTTP: the token, the Host header, CSRF, the headers of every
answer; its audited redirects to presigned URLs; and `recording-archive console` as a command."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.console import ConsoleAddress, ConsoleStack, csrf_token, request
from tests.support.local_stack import cli_command, ddb, post, run_cli, table_name
from tests.support.net import free_port
from tests.support.plivo import recording_event

pytestmark = pytest.mark.e2e

AUDIT_TABLE = "local-AuditTable"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self' {media}; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def session_path(stack: ConsoleStack) -> str:
    return f"/sessions/{stack.demo_session}"


def recording_path(stack: ConsoleStack, action: str) -> str:
    return f"/recordings/{stack.demo_session}/{stack.demo_recording}/{action}"


@pytest.mark.parametrize("path", ["/", "/recordings/failed", "/static/console.css", "/x"])
def test_every_path_needs_the_token(console_stack: ConsoleStack, path: str) -> None:
    address = console_stack.console
    answer = request(address, "GET", path, cookie=False)
    assert answer.status == 401
    assert console_stack.demo_session not in answer.body
    wrong = ConsoleAddress(address.port, address.token[:-2] + "xy")
    assert request(wrong, "GET", path).status == 401
    assert request(wrong, "GET", f"{path}?token={wrong.token}", cookie=False).status == 401


def test_the_token_becomes_a_strict_httponly_cookie(console_stack: ConsoleStack) -> None:
    address = console_stack.console
    answer = request(
        address, "GET", f"/?day=2026-12-01&token={address.token}&status=FAILED", cookie=False
    )
    assert answer.status == 303
    assert answer.header("Location") == "/?day=2026-12-01&status=FAILED"
    cookie = answer.header("Set-Cookie")
    assert cookie.startswith(f"{address.cookie};")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert request(address, "GET", "/").status == 200
    # Never a redirect to another site.
    other = request(address, "GET", f"//evil.example/x?token={address.token}", cookie=False)
    assert other.header("Location") == "/evil.example/x"


def test_bad_console_port_of_local() -> None:
    result = run_cli("local", "--console-port", "70000", timeout=30)
    assert result.returncode == 2
    assert "port must be between 1 and 65535" in result.stderr


@pytest.mark.parametrize(
    "host", ["evil.example:{port}", "127.0.0.1", "127.0.0.1:1", "localhost", "[::1]:{port}", ""]
)
def test_a_foreign_host_is_refused(console_stack: ConsoleStack, host: str) -> None:
    address = console_stack.console
    answer = request(address, "GET", "/", host=host.format(port=address.port))
    assert answer.status == 421
    assert console_stack.demo_session not in answer.body


def test_the_ready_file_names_the_console_port_never_its_token(
    console_stack: ConsoleStack,
) -> None:
    ready = console_stack.stack.ready
    assert ready["console_port"] == console_stack.console.port
    assert console_stack.console.token not in json.dumps(ready)
    # The token is printed once, in the console line, and nowhere else.
    output = console_stack.stack.output() + "\n".join(console_stack.stack.stderr)
    assert output.count(console_stack.console.token) == 1


def test_localhost_is_its_own_name(console_stack: ConsoleStack) -> None:
    address = console_stack.console
    assert request(address, "GET", "/", host=f"localhost:{address.port}").status == 200


def test_every_answer_has_the_security_headers(console_stack: ConsoleStack) -> None:
    address = console_stack.console
    media = console_stack.stack.endpoint
    for answer in (
        request(address, "GET", "/"),
        request(address, "GET", session_path(console_stack)),
        request(address, "GET", "/", cookie=False),
        request(address, "GET", "/", host="evil.example"),
        request(address, "GET", "/static/console.css"),
    ):
        assert answer.header("Content-Security-Policy") == CSP.format(media=media)
        assert answer.header("X-Content-Type-Options") == "nosniff"
        assert answer.header("Referrer-Policy") == "no-referrer"
        assert answer.header("X-Frame-Options") == "DENY"


def test_a_post_needs_the_csrf_token(console_stack: ConsoleStack) -> None:
    address = console_stack.console
    csrf = csrf_token(request(address, "GET", session_path(console_stack)).body)
    verify = recording_path(console_stack, "verify")
    assert request(address, "POST", verify, form={}).status == 403
    assert request(address, "POST", verify, form={"csrf": csrf[:-1] + "x"}).status == 403
    foreign = {"Origin": "http://evil.example"}
    assert request(address, "POST", verify, form={"csrf": csrf}, headers=foreign).status == 403
    # A GET cannot act.
    assert request(address, "GET", verify).status == 405
    for origin in (f"http://127.0.0.1:{address.port}", "null"):
        # "null": what a browser sends with a form POST under Referrer-Policy no-referrer.
        answer = request(address, "POST", verify, form={"csrf": csrf}, headers={"Origin": origin})
        assert answer.status == 303
        done = request(address, "GET", answer.header("Location"))
        assert f"verify of {console_stack.demo_recording}: ok" in done.body


def test_play_and_download_redirect_to_short_presigned_urls(console_stack: ConsoleStack) -> None:
    address = console_stack.console
    for action in ("play", "download"):
        answer = request(address, "GET", recording_path(console_stack, action))
        assert answer.status == 303
        url = urlsplit(answer.header("Location"))
        assert f"{url.scheme}://{url.netloc}" == console_stack.stack.endpoint
        query = parse_qs(url.query)
        assert int(query["X-Amz-Expires"][0]) == {"play": 900, "download": 60}[action]
        if action == "download":
            disposition = query["response-content-disposition"][0]
            assert disposition == f'attachment; filename="{console_stack.demo_recording}.wav"'
    missing = recording_path(console_stack, "play").replace(console_stack.demo_recording, "nope")
    assert request(address, "GET", missing).status == 404


def audit_records(since: datetime, stack: ConsoleStack) -> list[dict[str, Any]]:
    from recording_archive_cli.operator.audit import AuditLog

    return AuditLog(ddb(stack.stack), AUDIT_TABLE).records(since)


def test_plays_downloads_and_actions_are_audited(console_stack: ConsoleStack) -> None:
    address = console_stack.console
    since = datetime.now(UTC)
    assert request(address, "GET", recording_path(console_stack, "play")).status == 303
    assert request(address, "GET", recording_path(console_stack, "download")).status == 303
    csrf = csrf_token(request(address, "GET", session_path(console_stack)).body)
    retry = recording_path(console_stack, "retry")
    answer = request(address, "POST", retry, form={"csrf": csrf})
    assert answer.status == 303
    done = request(address, "GET", answer.header("Location"))
    assert f"retry of {console_stack.demo_recording}: already_archived" in done.body
    records = audit_records(since, console_stack)
    assert [r["Action"] for r in records] == [
        "console.play",
        "recording.download",
        "recording.retry",
    ]
    for record in records:
        assert record["Targets"] == {
            "session_uuid": console_stack.demo_session,
            "sequence_number": 2,
            "recording_uuid": console_stack.demo_recording,
        }
        assert record["Actor"].startswith("arn:aws:")


def test_hold_and_release_are_confirmed_and_audited(console_stack: ConsoleStack) -> None:
    address = console_stack.console
    csrf = csrf_token(request(address, "GET", session_path(console_stack)).body)
    hold = recording_path(console_stack, "hold")
    since = datetime.now(UTC)
    # Without confirmation (or without a reason) nothing is done: a confirmation page.
    first = request(address, "POST", hold, form={"csrf": csrf})
    assert first.status == 200
    assert 'name="confirm" value="yes"' in first.body
    blank = request(address, "POST", hold, form={"csrf": csrf, "confirm": "yes", "reason": " "})
    assert "A reason is required." in blank.body
    assert audit_records(since, console_stack) == []
    # Erase is not offered by the console (a CLI command), nor any other action.
    for action in ("erase", "delete"):
        answer = request(
            address, "POST", recording_path(console_stack, action), form={"csrf": csrf}
        )
        assert answer.status == 404
    item = ddb(console_stack.stack).get_item(
        TableName=table_name(console_stack.stack),
        Key={"SessionUUID": {"S": console_stack.demo_session}, "SequenceNumber": {"N": "2"}},
    )["Item"]
    assert "LegalHold" not in item

    reason = "dispute 42 <b>"
    try:
        held = request(
            address, "POST", hold, form={"csrf": csrf, "confirm": "yes", "reason": reason}
        )
        assert held.status == 303
        page = request(address, "GET", held.header("Location")).body
        assert f"session {console_stack.demo_session} held: 2 event item(s)" in page
        item = ddb(console_stack.stack).get_item(
            TableName=table_name(console_stack.stack),
            Key={"SessionUUID": {"S": console_stack.demo_session}, "SequenceNumber": {"N": "2"}},
        )["Item"]
        assert item["LegalHold"]["M"]["Reason"]["S"] == reason
        # Held: the page says so and offers the release instead of another hold.
        assert "LEGAL HOLD" in page
        assert recording_path(console_stack, "release") in page
        assert recording_path(console_stack, "hold") not in page
    finally:
        release = recording_path(console_stack, "release")
        released = request(
            address, "POST", release, form={"csrf": csrf, "confirm": "yes", "reason": "settled"}
        )
        assert released.status == 303
    records = audit_records(since, console_stack)
    assert [(r["Action"], r.get("Reason")) for r in records] == [
        ("hold.set", reason),
        ("hold.clear", "settled"),
    ]
    assert records[0]["Counts"]["items"] == 2


def test_filters_of_the_list(console_stack: ConsoleStack) -> None:
    address = console_stack.console
    demo = console_stack.demo_session
    today = datetime.now(UTC).date().isoformat()
    shown = {
        query: demo in request(address, "GET", f"/?day={today}&{query}").body
        for query in (
            "status=ARCHIVED",
            "status=FAILED",
            "event=SessionRecordingInitiated",
            "event=SessionRecordingFailed",
            "status=ARCHIVED&event=SessionRecordingCompleted",
        )
    }
    assert shown == {
        "status=ARCHIVED": True,
        "status=FAILED": False,
        "event=SessionRecordingInitiated": True,
        "event=SessionRecordingFailed": False,
        "status=ARCHIVED&event=SessionRecordingCompleted": True,
    }
    old_day = request(address, "GET", "/?day=2020-01-01").body
    assert demo not in old_day
    assert "No sessions." in old_day
    assert request(address, "GET", f"/?day={today}&cursor=not-a-cursor").status == 400


def test_a_recording_in_two_sessions_lists_both(console_stack: ConsoleStack) -> None:
    recording_uuid = str(uuid.uuid4())
    sessions = sorted(str(uuid.uuid4()) for _ in range(2))
    for session_uuid in sessions:
        event = recording_event(
            "SessionRecordingInitiated", session_uuid=session_uuid, recording_uuid=recording_uuid
        )
        assert post(console_stack.stack, event)[0] == 200
    body = request(console_stack.console, "GET", f"/?q={recording_uuid}").body
    assert f"Found for “{recording_uuid}”" in body
    assert all(f'href="/sessions/{s}"' in body for s in sessions)
    nothing = request(console_stack.console, "GET", "/?q=(((---)))").body
    assert "not a phone number (no digit, or too many)" in nothing


def test_no_audit_record_no_play_no_retry(console_stack: ConsoleStack) -> None:
    """The console's application in this process, on the same stack, with an audit log whose
    table does not exist: every audited request is a 503 and nothing is done."""
    from recording_archive_cli.console.app import Console, create_app, media_origin
    from recording_archive_cli.operator.audit import AuditLog
    from recording_archive_cli.operator.context import Ops

    args = argparse.Namespace(
        endpoint_url=console_stack.stack.endpoint, stack=None, profile=None, region="us-east-1"
    )
    ops = Ops(args)
    ops.__dict__["audit"] = AuditLog(ops.client("dynamodb"), "no-such-audit-table")
    console = Console(
        ops, port=8080, token="t" * 43, show_numbers=False, media_origin=media_origin(ops)
    )
    client = create_app(console).test_client()
    client.set_cookie("ra_console_8080", "t" * 43, domain="127.0.0.1")
    for method, action in (("GET", "play"), ("GET", "download"), ("POST", "retry")):
        answer = client.open(
            recording_path(console_stack, action),
            base_url="http://127.0.0.1:8080",
            method=method,
            data={"csrf": console.csrf} if method == "POST" else None,
        )
        assert answer.status_code == 503, action
        assert "The audit log could not be written" in answer.text
        assert "nothing was done" in answer.text
        assert "Location" not in answer.headers  # no presigned URL handed out


def test_numbers_are_masked(console_stack: ConsoleStack) -> None:
    body = request(console_stack.console, "GET", session_path(console_stack)).body
    assert "numbers masked" in body
    assert "+14155550101" not in body
    assert "***0101" in body


def test_bad_filters_and_unknown_pages(console_stack: ConsoleStack) -> None:
    address = console_stack.console
    assert request(address, "GET", "/?status=<b>").status == 400
    assert "the date must be YYYY-MM-DD" in request(address, "GET", "/?day=yesterday").body
    assert "enter a session UUID" in request(address, "GET", "/?q=%3Cscript%3E").body
    assert "&lt;script&gt;" in request(address, "GET", "/?q=%3Cscript%3E").body
    assert request(address, "GET", "/sessions/no-such-session").status == 404
    assert request(address, "GET", "/sessions/..%2F..").status == 404
    assert request(address, "GET", "/recordings/archived").status == 404


def test_the_console_command_serves_a_running_stack(console_stack: ConsoleStack) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            *cli_command(),
            "console",
            "--endpoint-url",
            console_stack.stack.endpoint,
            "--port",
            str(port),
            "--show-numbers",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith(f"console: http://127.0.0.1:{port}/?token=")
        token = line.rsplit("=", 1)[1]
        assert len(token) >= 40
        assert token != console_stack.console.token  # one per launch
        address = ConsoleAddress(port, token)
        body = request(address, "GET", session_path(console_stack)).body
        assert "numbers shown" in body
        assert "+14155550101" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert proc.stderr is not None
    assert token not in proc.stderr.read()


def test_the_console_command_fails_cleanly(console_stack: ConsoleStack) -> None:
    busy = run_cli(
        "console",
        "--endpoint-url",
        console_stack.stack.endpoint,
        "--port",
        str(console_stack.console.port),
        timeout=60,
    )
    assert busy.returncode == 1
    assert f"console: port {console_stack.console.port} on 127.0.0.1 is not available" in (
        busy.stderr
    )
    assert "Traceback" not in busy.stderr
    neither = run_cli("console", "--port", "0", timeout=30)
    assert neither.returncode == 2
    assert "port must be between 1 and 65535" in neither.stderr
