"""`recording-archive simulate`: a simulated Plivo posting signed recording callbacks.

Each simulated masking session is the sequence Plivo sends (`plivo_sim.session_callbacks`):
Initiated then Completed; every third session instead ends at once in Failed. Requests are
form-encoded like Plivo's voice callbacks (POST, or the query string with `--method GET`) and
signed over the URL exactly as given, with the project's own V3 signer
(`recording_archive.logic.signature_v3`, tested against Plivo's SDK).

Every answer is reported (status and body); the exit status is 1 if any answer was not 200. The
demo of `recording-archive local` posts its callbacks with the same code.

Against a deployed stack, `--media-url` should point to a file the archiver can download (an
allowed media host); the default is a Plivo-shaped URL that does not exist, so the archiver will
record a failed download for it (and, after the sweeper's attempts, the failure alarm fires).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from recording_archive_cli.commands.options import positive_int
from recording_archive_cli.errors import CLIError
from recording_archive_cli.plivo_sim import (
    DEFAULT_AUTH_ID,
    Answer,
    send_callback,
    session_callbacks,
)

TOKEN_ENV = "PLIVO_AUTH_TOKEN"  # noqa: S105 - a variable name, not a token


def check_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise CLIError(f"--url must be an absolute http(s) URL, got {url!r}")
    if not url.isascii():
        raise CLIError("--url must be ASCII, percent-encoded exactly as configured in Plivo")
    return url


def answer_table(answers: Sequence[Answer]) -> str:
    """A plain-text table: one row per answer."""
    header = ("#", "session", "seq", "event", "method", "status", "answer")
    rows = [
        (
            str(i),
            a.callback.session_uuid[:8],
            a.callback.sequence,
            a.callback.event_name,
            a.method,
            "-" if a.status is None else str(a.status),
            " ".join(a.body.split())[:100],
        )
        for i, a in enumerate(answers, 1)
    ]
    widths = [max(len(r[c]) for r in (header, *rows)) for c in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[c]) for c, cell in enumerate(row)).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def simulate(
    url: str,
    auth_token: str,
    *,
    sessions: int = 1,
    method: str = "POST",
    media_url: str | None = None,
    auth_id: str = DEFAULT_AUTH_ID,
    timeout: float = 30.0,
) -> list[Answer]:
    """Send `sessions` sessions' callbacks in order; every third session is a failed one."""
    answers: list[Answer] = []
    for index in range(sessions):
        for callback in session_callbacks(
            auth_id=auth_id, media_url=media_url, failed=index % 3 == 2
        ):
            answers.append(send_callback(url, auth_token, callback, method=method, timeout=timeout))
    return answers


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="post signed Plivo recording callbacks to an endpoint and report each answer",
        description=(
            "Post realistic, correctly signed Plivo recording callback sequences (Initiated, "
            "Completed; every third session Failed) to a callback URL, local or deployed, and "
            "report each answer. Exit status 1 if any answer was not 200."
        ),
    )
    parser.add_argument(
        "--url",
        required=True,
        help="the callback URL exactly as configured in Plivo (the signature covers it)",
    )
    parser.add_argument(
        "--auth-token",
        default=os.environ.get(TOKEN_ENV, ""),
        help=f"the Plivo auth token to sign with (default: ${TOKEN_ENV})",
    )
    parser.add_argument("--auth-id", default=DEFAULT_AUTH_ID, help="Plivo auth id in the URLs")
    parser.add_argument(
        "--sessions", type=positive_int, default=1, help="masking sessions to simulate"
    )
    parser.add_argument("--method", choices=("POST", "GET"), default="POST", type=str.upper)
    parser.add_argument(
        "--media-url",
        default=None,
        help=(
            "RecordingURL of Completed events ({recording_uuid} is filled in); default: a "
            "Plivo-shaped URL that does not exist"
        ),
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.auth_token:
        raise CLIError(f"no auth token: pass --auth-token or set {TOKEN_ENV}")
    answers = simulate(
        check_url(args.url),
        args.auth_token,
        sessions=args.sessions,
        method=args.method,
        media_url=args.media_url,
        auth_id=args.auth_id,
        timeout=args.timeout,
    )
    print(answer_table(answers), flush=True)
    bad = [a for a in answers if not a.ok]
    if bad:
        print(f"{len(bad)} of {len(answers)} callbacks were not answered 200", flush=True)
        return 1
    print(f"all {len(answers)} callbacks answered 200", flush=True)
    return 0
