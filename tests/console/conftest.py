"""The console's tests share one `recording-archive local` (with its demo session, archived from
an HTTPS media server) and, for the browser tests, one headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import PageWatch, chromium, chromium_path
from tests.support.console import ConsoleStack, console_address
from tests.support.local_stack import start_local, stop_tree
from tests.support.media_server import MediaServer
from tests.support.net import free_port

DEMO_ARCHIVE_SECONDS = 90.0


@pytest.fixture(scope="package")
def console_stack() -> Iterator[ConsoleStack]:
    stack = start_local("--sweep-interval", "2", "--console-port", str(free_port()))
    try:
        address = console_address(stack)
        stack.wait_for(lambda line: "archived s3://" in line, timeout=DEMO_ARCHIVE_SECONDS)
        served = stack.wait_for(lambda line: "demo: media server serves" in line)
        stored = stack.wait_for(lambda line: "stored SessionRecordingCompleted session=" in line)
        session = re.search(r"session=([0-9a-f-]{36})", stored)
        recording = re.search(r"/Recording/([0-9a-f-]{36})\.wav", served)
        assert session is not None and recording is not None
        yield ConsoleStack(stack, address, session.group(1), recording.group(1))
    finally:
        stop_tree(stack)


@pytest.fixture(scope="package")
def media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        yield server


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if chromium_path() is None:
        pytest.fail("Debian's chromium is not installed: `make chromium` installs it")
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any, console_stack: ConsoleStack) -> Iterator[tuple[Any, PageWatch]]:
    """A page of a new browser context, signed in with the console's token (the printed URL);
    every test ends with no console error (CSP violations included) and no dialog."""
    context = browser.new_context()
    watch = PageWatch()
    tab = watch.attach(context.new_page())
    tab.goto(console_stack.console.url)
    try:
        yield tab, watch
        assert watch.errors == []
        assert watch.dialogs == []
    finally:
        context.close()
