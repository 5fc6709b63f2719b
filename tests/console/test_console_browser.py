"""The recording console in headless Chromium (Debian's), against `recording-archive local`.

The demo session's recording was archived from an HTTPS media server (the production TLS path);
its player loads the archived WAV through the console's audited redirect to a presigned URL on
the local AWS endpoint. Every test ends with no console error (a CSP violation is one) and no
dialog (`conftest.page`). With CONSOLE_SCREENSHOTS=DIR (`make screenshots`), the list and the
session page are also saved there as PNG files for the README.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from recording_archive.dal.archive_index import ArchiveIndex
from tests.support.browser import PageWatch
from tests.support.console import ConsoleStack
from tests.support.local_stack import ddb, post, table_name
from tests.support.media_server import MediaServer, Status
from tests.support.plivo import AUTH_ID, recording_event

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

XSS = "<script>alert(1)</script>"
XSS_ATTRIBUTE = '"><img src=x onerror=alert(2)>'


def item(stack: ConsoleStack, session_uuid: str, seq: int) -> dict[str, Any]:
    found: dict[str, Any] = (
        ddb(stack.stack)
        .get_item(
            TableName=table_name(stack.stack),
            Key={"SessionUUID": {"S": session_uuid}, "SequenceNumber": {"N": str(seq)}},
            ConsistentRead=True,
        )
        .get("Item", {})
    )
    return found


def screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_the_list_shows_the_demo_session_and_its_page_plays_the_wav(
    page: tuple[Any, PageWatch], console_stack: ConsoleStack
) -> None:
    tab, _watch = page
    media_requests: list[str] = []
    tab.on(
        "request",
        lambda r: (
            media_requests.append(r.url) if r.url.startswith(console_stack.stack.endpoint) else None
        ),
    )
    # The token was taken from the URL: the address bar holds it no more.
    assert "token=" not in tab.url
    link = tab.locator("a.session", has_text=console_stack.demo_session)
    assert link.count() == 1
    assert tab.locator("#health-archived").inner_text() != "0"
    screenshot(tab, "console-sessions.png")

    link.click()
    tab.wait_for_url(f"**/sessions/{console_stack.demo_session}")
    section = tab.locator(f"#recording-{console_stack.demo_recording}")
    assert "ARCHIVED" in section.locator(".status").inner_text()
    audio = section.locator("audio")
    # The element follows the console's redirect to the presigned URL and reads the WAV header.
    tab.wait_for_function(
        "a => a.readyState >= 1 && a.duration > 0", arg=audio.element_handle(), timeout=15000
    )
    duration = audio.evaluate("a => a.duration")
    assert 2.5 < duration < 3.5  # the demo's 3-second tone
    # Played from the archive bucket on the local AWS endpoint, through a presigned URL.
    assert media_requests
    assert all("X-Amz-Signature=" in url for url in media_requests)
    tab.locator("details summary").last.click()  # the Completed event's attributes, masked
    screenshot(tab, "console-session.png")


def test_search_by_session_and_recording_finds_the_session(
    page: tuple[Any, PageWatch], console_stack: ConsoleStack
) -> None:
    tab, _watch = page
    session_uuid, recording_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    event = recording_event(
        "SessionRecordingInitiated", session_uuid=session_uuid, recording_uuid=recording_uuid
    )
    assert post(console_stack.stack, event, token=console_stack.stack.token)[0] == 200

    tab.reload()
    assert tab.locator("a.session", has_text=session_uuid).count() == 1

    for query in (session_uuid, recording_uuid, f"  {session_uuid.upper()}  ".lower()):
        tab.fill("#q", query)
        tab.click("form.search button")
        tab.wait_for_url(f"**/sessions/{session_uuid}")
        tab.go_back()

    tab.fill("#q", "no-such-session")
    tab.click("form.search button")
    assert tab.locator("table.sessions").first.inner_text().count("No sessions.") == 1


def test_search_by_phone_number(page: tuple[Any, PageWatch], console_stack: ConsoleStack) -> None:
    tab, _watch = page
    session_uuid = str(uuid.uuid4())
    event = recording_event("SessionRecordingInitiated", session_uuid=session_uuid)
    event["From"] = "+1 415 555 7" + session_uuid[:3].translate(str.maketrans("abcdef", "123456"))
    assert post(console_stack.stack, event, token=console_stack.stack.token)[0] == 200
    tab.fill("#q", event["From"])
    tab.click("form.search button")
    tab.wait_for_url(f"**/sessions/{session_uuid}")
    # Masked on the page, as in the logs.
    assert event["From"] not in tab.content()


def test_retry_moves_a_failed_recording_to_pending(
    page: tuple[Any, PageWatch], console_stack: ConsoleStack, media: MediaServer
) -> None:
    tab, _watch = page
    session_uuid, recording_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    path = f"/v1/Account/{AUTH_ID}/Recording/{recording_uuid}.wav"
    # The media host refuses every download: each attempt fails at once, and may be retried.
    media.add(path, b"RIFF", content_type="audio/wav", faults=[Status(403, times=None)])
    completed = recording_event(
        "SessionRecordingCompleted",
        session_uuid=session_uuid,
        sequence=2,
        recording_uuid=recording_uuid,
        fmt=".wav",
        recording_url=media.url(path),
    )
    assert post(console_stack.stack, completed, token=console_stack.stack.token)[0] == 200
    # The stream's archiver tries once and leaves it PENDING; the attempts a sweeper would make
    # are replaced by marking it FAILED through the events table's own operation.
    gave_up = sum("archive gave up on" in line for line in console_stack.stack.stdout)
    deadline = time.monotonic() + 30
    while sum("archive gave up on" in line for line in console_stack.stack.stdout) == gave_up:
        assert time.monotonic() < deadline, console_stack.stack.output()
        time.sleep(0.2)
    attempts = int(item(console_stack, session_uuid, 2)["ArchiveAttempts"]["N"])
    index = ArchiveIndex(ddb(console_stack.stack), table_name(console_stack.stack))
    now = int(time.time())
    assert index.record_failure(
        session_uuid, 2, error="attempts exhausted", next_due_at=now, failed=True, lease_free_at=now
    )

    tab.click("header nav >> text=Failed")
    row = tab.locator("table.queue tr", has_text=recording_uuid)
    assert row.count() == 1
    row.locator("button.retry").click()
    tab.wait_for_url("**/recordings/failed?done=*")
    assert f"retry of {recording_uuid}: retry_later" in tab.locator(".notice").inner_text()
    assert tab.locator("table.queue tr", has_text=recording_uuid).count() == 0

    after = item(console_stack, session_uuid, 2)
    assert after["ArchiveStatus"]["S"] == "PENDING"
    assert int(after["ArchiveAttempts"]["N"]) == attempts + 1  # the retry's own attempt
    assert "403" in after["ArchiveLastError"]["S"]
    tab.click("header nav >> text=Pending")
    assert tab.locator("table.queue tr", has_text=recording_uuid).count() == 1


def test_script_valued_attributes_show_as_text(
    page: tuple[Any, PageWatch], console_stack: ConsoleStack
) -> None:
    tab, watch = page
    session_uuid = str(uuid.uuid4())
    event = recording_event("SessionRecordingInitiated", session_uuid=session_uuid)
    # Unknown attributes are stored as received (README): the console must show them as text.
    event["CustomerNote"] = XSS
    event[XSS_ATTRIBUTE] = XSS_ATTRIBUTE
    assert post(console_stack.stack, event, token=console_stack.stack.token)[0] == 200

    tab.goto(f"{console_stack.console.base}/sessions/{session_uuid}")
    tab.click("details summary")
    payload = tab.locator("table.payload")
    assert XSS in payload.inner_text()
    assert payload.locator("th", has_text=XSS_ATTRIBUTE).count() == 1
    assert tab.locator("main script, main img").count() == 0
    tab.wait_for_timeout(300)  # an onerror handler would have run by now
    assert watch.dialogs == []
    # The numbers of the event are masked.
    assert "+14155550101" not in tab.content()
    assert "***0101" in payload.inner_text()


def test_inline_script_is_refused_and_reported(
    page: tuple[Any, PageWatch], console_stack: ConsoleStack
) -> None:
    """The CSP holds in the browser, and a violation is a console error this suite would see
    (what makes "no console errors" above mean something)."""
    tab, watch = page
    from playwright.sync_api import Error as PlaywrightError

    with pytest.raises(PlaywrightError, match=r"Refused|Content Security Policy"):
        tab.add_script_tag(content="window.injected = true")
    assert tab.evaluate("window.injected === undefined")
    assert any("Content Security Policy" in e for e in watch.errors)
    watch.errors.clear()
