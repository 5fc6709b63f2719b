"""Headless Chromium from Debian's `chromium` package, driven by Playwright (the console's
browser tests and `make screenshots`). Never `playwright install`: this machine cannot download
a browser, and the system one is what `make chromium` installs.

The flags: no sandbox (tests run as root), no GPU, and none of Chromium's own background
connections (component updates, sync, first-run), which a closed network refuses one by one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_path() -> str | None:
    """Debian's chromium, or None when it is not installed."""
    return CHROMIUM if shutil.which(CHROMIUM) else None


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright Browser on the system Chromium (Playwright gives it a new temporary
    profile), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageWatch:
    """What a page reported: console errors (CSP violations are console errors), uncaught
    exceptions and dialogs (alert/confirm/prompt: dismissed, and recorded)."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> Any:
        page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return page
