"""End-to-end fixtures: `recording-archive local` as a subprocess on free ports.

The helpers (starting, driving and stopping the stack) live in tests/support/local_stack.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.local_stack import LocalStackProcess, start_local, stop_tree
from tests.support.media_server import MediaServer


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStackProcess]:
    """One `recording-archive local --no-demo` for the module's tests; stopped at the end."""
    stack = start_local("--no-demo", "--sweep-interval", "2")
    yield stack
    stop_tree(stack)


@pytest.fixture(scope="module")
def media() -> Iterator[MediaServer]:
    """A loopback media server shared by the module's tests."""
    with MediaServer() as server:
        yield server
