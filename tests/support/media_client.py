"""Client-side helpers of the media download tests: a fake clock for the retry budget, and a
reader that drains a MediaStream into its size and SHA-256."""

from __future__ import annotations

import hashlib
from typing import Protocol


class _Readable(Protocol):
    def read(self, n: int) -> bytes: ...


class FakeClock:
    """time.monotonic and time.sleep in one: sleeping advances the clock, instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def drain(stream: _Readable) -> tuple[int, str]:
    """(bytes read, their SHA-256) until the stream says the body is complete."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(256 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()
