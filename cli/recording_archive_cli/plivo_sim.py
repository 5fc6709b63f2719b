"""The one simulated Plivo: the recording callbacks of masking sessions, signed as Plivo signs.

A session's callbacks are the sequence Plivo sends for each call: `SessionRecordingInitiated`
then `SessionRecordingCompleted` (its own recording), or one `SessionRecordingFailed`
(recording requested but could not start), with the attributes Plivo documents, all strings,
SequenceNumber 1.. in the session's order.
- `session_callbacks`: one call, chosen by the caller (`recording-archive simulate`, the local
  demo, tests);
- `random_session`: `calls` calls drawn from a seeded `random.Random` (reliability and load).

`prepare` turns a callback into the HTTP request Plivo would make to a callback URL: form-encoded
POST (or JSON), or GET with the query string, with `X-Plivo-Signature-V3` and its nonce computed
over the URL exactly as given by the `signer` passed in (`recording_archive.logic.signature_v3`
by default; reliability passes Plivo's own SDK). `send_callback` posts one with urllib and never
raises.

Imports only `recording_archive` (event names, the project's signer) and the standard library.
"""

from __future__ import annotations

import json
import random
import secrets
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode, urlparse, urlsplit

from recording_archive.models.item import EVENT_COMPLETED, EVENT_FAILED, EVENT_INITIATED

__all__ = [
    "DEFAULT_AUTH_ID",
    "EVENT_COMPLETED",
    "EVENT_FAILED",
    "EVENT_INITIATED",
    "Answer",
    "Callback",
    "Prepared",
    "Recording",
    "Signer",
    "default_media_url",
    "new_nonce",
    "prepare",
    "random_session",
    "send_callback",
    "session_callbacks",
]

DEFAULT_AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
USER_AGENT = "recording-archive-simulator/0.1"
_PLIVO_TIME = "%Y-%m-%d %H:%M:%S +0000 UTC"


class Signer(Protocol):
    """(auth token, method, URL, params, nonce) -> the X-Plivo-Signature-V3 value."""

    def __call__(
        self, token: str, method: str, url: str, params: dict[str, Any], nonce: str, /
    ) -> str: ...


def project_signer(token: str, method: str, url: str, params: dict[str, Any], nonce: str) -> str:
    """The project's own V3 signer (tested against Plivo's SDK)."""
    from recording_archive.logic.signature_v3 import compute_signature

    return compute_signature(token, method, url, params, nonce)


@dataclass(frozen=True)
class Callback:
    """One callback as Plivo would send it: its attributes (all strings) and how it is sent."""

    params: dict[str, str]
    method: str = "POST"  # POST or GET
    content_type: str = "form"  # form or json (POST)

    @property
    def event_name(self) -> str:
        return self.params["EventName"]

    @property
    def session_uuid(self) -> str:
        return self.params["SessionUUID"]

    @property
    def sequence(self) -> str:
        return self.params["SequenceNumber"]

    @property
    def key(self) -> tuple[str, int]:
        return self.params["SessionUUID"], int(self.params["SequenceNumber"])


@dataclass
class Recording:
    """A recording `random_session` made up: where its media is and what it should hold."""

    session_uuid: str
    sequence: int
    recording_uuid: str
    path: str
    size: int
    seed: int


def plivo_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_PLIVO_TIME)


def default_media_url(auth_id: str, recording_uuid: str, ext: str = ".mp3") -> str:
    return f"https://media.plivo.com/v1/Account/{auth_id}/Recording/{recording_uuid}{ext}"


def _format_of(media_url: str) -> str:
    return ".wav" if urlparse(media_url).path.lower().endswith(".wav") else ".mp3"


@dataclass(frozen=True)
class _Times:
    """Plivo-formatted times of one call: the events' timestamps and the recording's."""

    initiated: str
    completed: str
    recording_start: str
    recording_end: str


def _call(
    common: Mapping[str, str],
    *,
    seq: int,
    auth_id: str,
    recording_uuid: str | None,
    media_url: str,
    duration_seconds: int,
    times: _Times,
    method: str,
    content_type: str,
) -> list[Callback]:
    """One call's callbacks from SequenceNumber `seq`: Initiated + Completed, or (no
    `recording_uuid`) one Failed."""
    if recording_uuid is None:
        failed = {
            **common,
            "EventName": EVENT_FAILED,
            "EventTimestamp": times.initiated,
            "SequenceNumber": str(seq),
        }
        return [Callback(failed, method, content_type)]
    recording = {
        "RecordingUUID": recording_uuid,
        "RecordingFormat": _format_of(media_url),
        "RecordingStartTime": times.recording_start,
    }
    initiated = {
        **common,
        **recording,
        "EventName": EVENT_INITIATED,
        "EventTimestamp": times.initiated,
        "SequenceNumber": str(seq),
    }
    completed = {
        **common,
        **recording,
        "EventName": EVENT_COMPLETED,
        "EventTimestamp": times.completed,
        "SequenceNumber": str(seq + 1),
        "RecordingURL": media_url,
        "RecordingResourceURL": (
            f"https://api.plivo.com/v1/Account/{auth_id}/Recording/{recording_uuid}/"
        ),
        "RecordingDuration": str(duration_seconds),
        "RecordingEndTime": times.recording_end,
    }
    return [Callback(initiated, method, content_type), Callback(completed, method, content_type)]


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
    """The callbacks of one masking session of one call: Initiated + Completed, or just Failed.

    `media_url` is the Completed event's RecordingURL: a string (`{recording_uuid}` and
    `{auth_id}` are filled in), a function of the recording UUID, or None for a Plivo-shaped URL.
    """
    now = now or datetime.now(UTC)
    session_uuid = session_uuid or str(uuid.uuid4())
    recording_uuid = recording_uuid or str(uuid.uuid4())
    end = now - timedelta(seconds=1)
    start = end - timedelta(seconds=duration_seconds)
    if media_url is None:
        url = default_media_url(auth_id, recording_uuid)
    elif callable(media_url):
        url = media_url(recording_uuid)
    else:
        url = media_url.replace("{recording_uuid}", recording_uuid).replace("{auth_id}", auth_id)
    common = {
        "From": "+14155550101",
        "To": "+14155550102",
        "VirtualNumber": "+14155550199",
        "SessionUUID": session_uuid,
    }
    return _call(
        common,
        seq=1,
        auth_id=auth_id,
        recording_uuid=None if failed else recording_uuid,
        media_url=url,
        duration_seconds=duration_seconds,
        times=_Times(plivo_time(start), plivo_time(end), plivo_time(start), plivo_time(end)),
        method="POST",
        content_type="form",
    )


def phone(rng: random.Random) -> str:
    return f"+1415{rng.randrange(10**7):07d}"


# Fixed times of `random_session` (its sessions are reproducible from the seed).
_RANDOM_TIMES = _Times(
    initiated="2026-11-20 10:25:40 +0000 UTC",
    completed="2026-11-20 10:25:40 +0000 UTC",
    recording_start="2026-11-20 10:25:10 +0000 UTC",
    recording_end="2026-11-20 10:35:40 +0000 UTC",
)
_RANDOM_AUTH_ID = "MAREL"


def random_session(
    rng: random.Random,
    *,
    calls: int,
    media_base: str,
    failed_rate: float,
    method: str = "POST",
    content_type: str = "form",
    media_size: tuple[int, int] = (2048, 32768),
) -> tuple[list[Callback], list[Recording], set[str]]:
    """One masking session of `calls` calls, each Initiated + Completed (its own recording, at
    `media_base` + its path) or, with probability `failed_rate`, one Failed. Returns the
    callbacks, the recordings and the session's phone numbers."""
    session = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    numbers = {phone(rng), phone(rng), phone(rng)}
    if len(numbers) < 3:  # a collision: one number for all three parties, scanned like others
        numbers = {phone(rng)}
    first, second, virtual = sorted(numbers) if len(numbers) == 3 else (next(iter(numbers)),) * 3
    common = {"From": first, "To": second, "VirtualNumber": virtual, "SessionUUID": session}
    out: list[Callback] = []
    recordings: list[Recording] = []
    seq = 0
    for _call_index in range(calls):
        if rng.random() < failed_rate:
            seq += 1
            out += _call(
                common,
                seq=seq,
                auth_id=_RANDOM_AUTH_ID,
                recording_uuid=None,
                media_url="",
                duration_seconds=0,
                times=_RANDOM_TIMES,
                method=method,
                content_type=content_type,
            )
            continue
        rec = uuid.UUID(int=rng.getrandbits(128), version=4).hex
        path = f"/v1/Account/{_RANDOM_AUTH_ID}/Recording/{rec}.mp3"
        out += _call(
            common,
            seq=seq + 1,
            auth_id=_RANDOM_AUTH_ID,
            recording_uuid=rec,
            media_url=f"{media_base}{path}",
            duration_seconds=rng.randrange(5, 600),
            times=_RANDOM_TIMES,
            method=method,
            content_type=content_type,
        )
        seq += 2
        recordings.append(
            Recording(session, seq, rec, path, rng.randrange(*media_size), rng.getrandbits(31))
        )
    return out, recordings, numbers


# --- signed requests -----------------------------------------------------------------------------
def new_nonce() -> str:
    """A nonce shaped like Plivo's: 20 decimal digits."""
    return f"{secrets.randbelow(10**20):020d}"


@dataclass(frozen=True)
class Prepared:
    """An HTTP request ready to send: what was signed, and the signature (to scan logs for)."""

    method: str
    url: str  # the full URL requested (GET: with the callback's query string)
    body: bytes | None
    headers: dict[str, str]
    signature: str

    @property
    def target(self) -> str:
        """path?query, for http.client."""
        parts = urlsplit(self.url)
        return f"{parts.path}?{parts.query}" if parts.query else parts.path


def prepare(
    callback: Callback,
    url: str,
    token: str,
    *,
    signer: Signer = project_signer,
    nonce: str | None = None,
) -> Prepared:
    """The HTTP request Plivo would make for `callback` to the callback URL `url`."""
    verb = callback.method.upper()
    n = nonce or new_nonce()
    signature = signer(token, verb, url, callback.params, n)
    headers = {
        "X-Plivo-Signature-V3": signature,
        "X-Plivo-Signature-V3-Nonce": n,
        "User-Agent": USER_AGENT,
    }
    encoded = urlencode(callback.params)
    if verb == "GET":
        target = f"{url}{'&' if urlparse(url).query else '?'}{encoded}"
        return Prepared("GET", target, None, headers, signature)
    if callback.content_type == "json":
        body = json.dumps(callback.params).encode()
        headers["Content-Type"] = "application/json"
    else:
        body = encoded.encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return Prepared("POST", url, body, headers, signature)


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


def send_callback(
    url: str,
    auth_token: str,
    callback: Callback,
    *,
    method: str = "POST",
    timeout: float = 30.0,
    signer: Signer = project_signer,
) -> Answer:
    """Post one signed callback (as `method`); any answer (or none) becomes an `Answer`, never an
    exception. `url` must be http(s) (`recording-archive simulate` checks it)."""
    prepared = prepare(Callback(callback.params, method.upper()), url, auth_token, signer=signer)
    request = urllib.request.Request(  # noqa: S310 - http(s) checked by the caller
        prepared.url, data=prepared.body, headers=prepared.headers, method=prepared.method
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Answer(
                callback, method, response.status, response.read().decode(errors="replace")
            )
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        return Answer(callback, method, exc.code, body)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(callback, method, None, f"no answer: {reason}")
