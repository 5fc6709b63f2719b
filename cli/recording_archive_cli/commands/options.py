"""Argument types and option groups of the commands, each defined once."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from recording_archive_cli.operator.context import MEDIA_RETRY_BUDGET

PLIVO_URL_ENV = "PLIVO_API_URL"
DEFAULT_PLIVO_URL = "https://api.plivo.com"
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
T = TypeVar("T", int, float)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


# --- types ---------------------------------------------------------------------------------------
def duration(text: str) -> timedelta:
    """`90s`, `30m`, `48h`, `7d`, `2w`, or combinations such as `1d12h`."""
    value = text.strip().lower()
    if not value or _DURATION.sub("", value):
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (use e.g. 90s, 30m, 48h, 7d, 2w, 1d12h)"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(value))
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the duration must be positive")
    return timedelta(seconds=seconds)


def instant(text: str) -> datetime:
    """An ISO-8601 time, e.g. `2026-12-03T17:00:00Z` or `2026-12-03`; UTC when it names no
    offset."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO-8601 time: {text!r} (use e.g. 2026-12-03T17:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def identifier(text: str) -> str:
    """A Plivo id (session or recording UUID)."""
    if not _ID.match(text):
        raise argparse.ArgumentTypeError(f"not a Plivo id: {text!r}")
    return text


def _number(text: str, convert: Callable[[str], T], what: str) -> T:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, limits)."""
    value = _number(text, int, "number")
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def port_number(text: str) -> int:
    value = _number(text, int, "port number")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {value}")
    return value


def positive_seconds(text: str) -> float:
    value = _number(text, float, "number of seconds")
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


# --- option groups -------------------------------------------------------------------------------
def common_options() -> argparse.ArgumentParser:
    """The options every operator command takes (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    where = parent.add_argument_group("where the archive is (one of)")
    where.add_argument(
        "--endpoint-url", help="the local stack's AWS endpoint, e.g. http://127.0.0.1:4566"
    )
    where.add_argument("--stack", help="a deployed stack's name (CloudFormation outputs)")
    parent.add_argument("--profile", help="AWS profile")
    parent.add_argument("--region", help="AWS region")
    parent.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    parent.add_argument("--verbose", action="store_true", help="the functions' INFO logs on stderr")
    return parent


def media_retry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--media-retry-budget",
        type=float,
        default=MEDIA_RETRY_BUDGET,
        metavar="SECONDS",
        help=f"time spent retrying one recording's download ({MEDIA_RETRY_BUDGET:g} s)",
    )


def plivo_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plivo-api-url",
        default=os.environ.get(PLIVO_URL_ENV) or DEFAULT_PLIVO_URL,
        help=f"Plivo's REST API base URL (default ${PLIVO_URL_ENV} or {DEFAULT_PLIVO_URL})",
    )
