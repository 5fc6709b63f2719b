"""Suites 1 and 2 run together on one handler harness, with the package's logs captured."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reliability.hostile.classic import classic_attacks
from reliability.hostile.fuzz import fuzz_handler
from reliability.hostile.harness import HandlerHarness, handler_harness


@contextlib.contextmanager
def capture_logs() -> Iterator[io.StringIO]:
    """Every formatted line of the package's logger, into a buffer (and not onto stdout)."""
    import logging

    from recording_archive.observability import logger
    from tests.support.logs import captured_log_lines

    inner = logging.getLogger(logger.name)
    others = list(inner.handlers)
    for h in others:
        inner.removeHandler(h)
    try:
        with captured_log_lines() as buffer:
            yield buffer
    finally:
        for h in others:
            inner.addHandler(h)


def log_lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


@dataclass
class HandlerRun:
    """The handler suites' outcome: fuzz and classic results, the harness, every log line."""

    harness: HandlerHarness
    results: dict[str, Any]
    lines: list[str]


def run_handler_suites(*, max_examples: int) -> HandlerRun:
    """Fuzzing and the classic attacks on the handler, with its logs and output captured."""
    out = io.StringIO()
    with (
        capture_logs() as buffer,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
        handler_harness() as harness,
    ):
        results = {
            "fuzz": fuzz_handler(harness, max_examples=max_examples),
            "classic": classic_attacks(harness),
        }
    return HandlerRun(harness, results, log_lines(buffer) + out.getvalue().splitlines())
