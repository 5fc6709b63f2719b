"""`recording-archive simulate`: a simulated Plivo posting signed recording callbacks.

Each simulated masking session is the sequence Plivo sends: `SessionRecordingInitiated`
(SequenceNumber 1) then `SessionRecordingCompleted` (2), with the attributes Plivo documents, all
strings; every third session instead ends at once in `SessionRecordingFailed` (recording requested
but could not start). Requests are form-encoded like Plivo's voice callbacks (POST, or the query
string with `--method GET`) and carry `X-Plivo-Signature-V3` and `X-Plivo-Signature-V3-Nonce`
computed over the URL exactly as given, with the project's own V3 signer
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
import secrets
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlparse

from recording_archive.logic.signature_v3 import compute_signature
from recording_archive_cli.errors import CLIError

EVENT_INITIATED = "SessionRecordingInitiated"
EVENT_COMPLETED = "SessionRecordingCompleted"
EVENT_FAILED = "SessionRecordingFailed"
DEFAULT_AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
USER_AGENT = "recording-archive-simulator/0.1"
TOKEN_ENV = "PLIVO_AUTH_TOKEN"  # noqa: S105 - a variable name, not a token
_PLIVO_TIME = "%Y-%m-%d %H:%M:%S +0000 UTC"


@dataclass(frozen=True)
class Callback:
    """One callback as Plivo would send it: its attributes, all strings."""

    params: dict[str, str]

    @property
    def event_name(self) -> str:
        return self.params["EventName"]

    @property
    def session_uuid(self) -> str:
        return self.params["SessionUUID"]

    @property
    def sequence(self) -> str:
        return self.params["SequenceNumber"]


@dataclass(frozen=True)
class Answer:
    """What the endpoint answered: status None when there was no HTTP answer at all."""

    callback: Callback
    method: str
    status: int | None
    body: str

    @property
    def ok(self) -> bool:
        return self.status == 200


def _plivo_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_PLIVO_TIME)


def default_media_url(auth_id: str, recording_uuid: str, ext: str = ".mp3") -> str:
    return f"https://media.plivo.com/v1/Account/{auth_id}/Recording/{recording_uuid}{ext}"


def _format_of(media_url: str) -> str:
    return ".wav" if urlparse(media_url).path.lower().endswith(".wav") else ".mp3"


def session_callbacks(
    *,
    auth_id: str = DEFAULT_AUTH_ID,
    media_url: str | Callable[[str], str] | None = None,
    failed: bool = False,
    duration_seconds: int = 12,
    now: datetime | None = None,
    session_uuid: str | None = None,
    recording_uuid: str | None = None,
) -> list[Callback]:
    """The callbacks of one masking session: Initiated + Completed, or just Failed.

    `media_url` is the Completed event's RecordingURL: a string (`{recording_uuid}` and
    `{auth_id}` are filled in), a function of the recording UUID, or None for a Plivo-shaped URL.
    """
    now = now or datetime.now(UTC)
    session_uuid = session_uuid or str(uuid.uuid4())
    recording_uuid = recording_uuid or str(uuid.uuid4())
    end = now - timedelta(seconds=1)
    start = end - timedelta(seconds=duration_seconds)
    common = {
        "From": "+14155550101",
        "To": "+14155550102",
        "VirtualNumber": "+14155550199",
        "SessionUUID": session_uuid,
    }
    if failed:
        return [
            Callback(
                {
                    **common,
                    "EventName": EVENT_FAILED,
                    "EventTimestamp": _plivo_time(start),
                    "SequenceNumber": "1",
                }
            )
        ]
    if media_url is None:
        url = default_media_url(auth_id, recording_uuid)
    elif callable(media_url):
        url = media_url(recording_uuid)
    else:
        url = media_url.replace("{recording_uuid}", recording_uuid).replace("{auth_id}", auth_id)
    fmt = _format_of(url)
    recording = {
        "RecordingUUID": recording_uuid,
        "RecordingFormat": fmt,
        "RecordingStartTime": _plivo_time(start),
    }
    initiated = {
        **common,
        **recording,
        "EventName": EVENT_INITIATED,
        "EventTimestamp": _plivo_time(start),
        "SequenceNumber": "1",
    }
    completed = {
        **common,
        **recording,
        "EventName": EVENT_COMPLETED,
        "EventTimestamp": _plivo_time(end),
        "SequenceNumber": "2",
        "RecordingURL": url,
        "RecordingResourceURL": (
            f"https://api.plivo.com/v1/Account/{auth_id}/Recording/{recording_uuid}/"
        ),
        "RecordingDuration": str(duration_seconds),
        "RecordingEndTime": _plivo_time(end),
    }
    return [Callback(initiated), Callback(completed)]


def new_nonce() -> str:
    """A nonce shaped like Plivo's: 20 decimal digits."""
    return f"{secrets.randbelow(10**20):020d}"


def signed_request(
    url: str, auth_token: str, callback: Callback, method: str = "POST", nonce: str | None = None
) -> urllib.request.Request:
    """The HTTP request Plivo would make for `callback` to the callback URL `url`."""
    verb = method.upper()
    nonce = nonce or new_nonce()
    signature = compute_signature(auth_token, verb, url, callback.params, nonce)
    headers = {
        "X-Plivo-Signature-V3": signature,
        "X-Plivo-Signature-V3-Nonce": nonce,
        "User-Agent": USER_AGENT,
    }
    encoded = urlencode(callback.params)
    if verb == "GET":
        target = f"{url}{'&' if urlparse(url).query else '?'}{encoded}"
        return urllib.request.Request(target, headers=headers, method="GET")  # noqa: S310
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    # The scheme is checked (http/https) by check_url before any request is made.
    return urllib.request.Request(url, data=encoded.encode(), headers=headers, method="POST")  # noqa: S310


def send_callback(
    url: str, auth_token: str, callback: Callback, *, method: str = "POST", timeout: float = 30.0
) -> Answer:
    """Post one signed callback; any answer (or none) becomes an `Answer`, never an exception."""
    request = signed_request(url, auth_token, callback, method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) checked
            return Answer(
                callback, method, response.status, response.read().decode(errors="replace")
            )
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        return Answer(callback, method, exc.code, body)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(callback, method, None, f"no answer: {reason}")


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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


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
        "--sessions", type=_positive, default=1, help="masking sessions to simulate"
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
