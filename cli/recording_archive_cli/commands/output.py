"""Command output: a readable table by default, `--json` for scripts; progress bars on stderr
when it is a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TextIO


def plain(value: Any) -> Any:
    """Decimals as numbers, sets as sorted lists: JSON-ready."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if c is None else str(plain(c))) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in [list(headers), *cells]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(plain(data), indent=2, sort_keys=True, default=str), flush=True)
    else:
        print(text, flush=True)


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        width: int = 30,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._width = width

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if not self._enabled:
            return
        if self.total:
            filled = min(self._width, self._width * self.done // self.total)
            bar = "#" * filled + "-" * (self._width - filled)
            text = f"\r{self.label} [{bar}] {self.done}/{self.total}"
        else:
            text = f"\r{self.label} {self.done}"
        self._stream.write(f"{text} {note[:40]}".ljust(self._width + 60))
        self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()
