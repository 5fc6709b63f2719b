"""Signed fuzzing, part 2: from a spec to a request, its expected answer (the documented rules
alone), and the SDK's signature of it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from hypothesis import reject

from tests.support.http_events import http_event
from tests.support.plivo import sdk_signature
from tests.support.signed_fuzz.spec import (
    COMPLETED,
    FORM,
    JSON,
    KEYS,
    LIMIT,
    PADDING,
    URL,
    Key,
    Num,
    Session,
    Spec,
    Stamp,
)

__all__ = [
    "Built",
    "build",
    "expected_answer",
    "json_text",
    "signed_event",
]


def _plain(value: Any, session: uuid.UUID) -> Any:
    """The wire value of a spec value (Key, Stamp, Session unwrapped; Num kept)."""
    if isinstance(value, Key | Stamp):
        return _plain(value.value, session)
    if isinstance(value, Session):
        return value.render(session)
    if isinstance(value, list):
        return [_plain(v, session) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, session) for k, v in value.items()}
    return value


def json_text(value: Any, *, compact: bool = True, ascii_only: bool = True) -> str:
    """JSON text with every Num written exactly as its literal."""
    colon, comma = (":", ",") if compact else (": ", ", ")
    if isinstance(value, Num):
        return value.literal
    if isinstance(value, dict):
        items = (
            json.dumps(k, ensure_ascii=ascii_only)
            + colon
            + json_text(v, compact=compact, ascii_only=ascii_only)
            for k, v in value.items()
        )
        return "{" + comma.join(items) + "}"
    if isinstance(value, list):
        return (
            "["
            + comma.join(json_text(v, compact=compact, ascii_only=ascii_only) for v in value)
            + "]"
        )
    return json.dumps(value, ensure_ascii=ascii_only)


@dataclass
class Built:
    spec: Spec
    session: uuid.UUID
    pairs: list[tuple[str, Any]]  # wire values, Num kept (JSON)
    raw: str  # the body, or the raw query string (GET)
    sdk_params: dict[str, Any]  # what a receiver using the SDK passes to it
    expected: tuple[int, str]  # (status, error code or refusal reason; "" for 200)
    sequence: int | None


def _encode(spec: Spec, pairs: list[tuple[str, Any]]) -> str:
    if spec.kind == "json":
        return json_text(dict(pairs), compact=spec.compact, ascii_only=spec.ascii_json)
    return urlencode(pairs, quote_via=spec.quote_via)


def _pad(spec: Spec, pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    if not spec.pad_to:
        return pairs
    base = len(_encode(spec, [*pairs, (PADDING, "")]).encode("utf-8"))
    missing = spec.pad_to - base
    return [*pairs, (PADDING, "x" * missing)] if missing >= 0 else pairs


def build(spec: Spec, session: uuid.UUID | None = None) -> Built:
    """The request of a spec under a fresh SessionUUID, its SDK parameters and expected answer."""
    session = session or uuid.uuid4()
    pairs = _pad(spec, [(name, _plain(value, session)) for name, value in spec.attrs])
    if spec.kind == "json":
        pairs = list(dict(pairs).items())  # a JSON object: one value per name
    raw = _encode(spec, pairs)
    if spec.kind == "json":
        sdk_params: dict[str, Any] = json.loads(raw)  # exactly what a receiver hands the SDK
    else:
        sdk_params = {}
        for name, value in pairs:
            sdk_params.setdefault(name, []).append(value)
    return Built(
        spec, session, pairs, raw, sdk_params, expected_answer(spec, pairs, raw), _sequence(spec)
    )


def _sequence(spec: Spec) -> int | None:
    for name, value in spec.attrs:
        if name == "SequenceNumber" and isinstance(value, Key) and value.verdict == "valid":
            v = value.value
            return int(v.literal if isinstance(v, Num) else v)
    return None


def _key_verdicts(spec: Spec, pairs: list[tuple[str, Any]]) -> dict[str, list[Key]]:
    out: dict[str, list[Key]] = {}
    for name, value in spec.attrs:
        if name in KEYS and isinstance(value, Key):
            out.setdefault(name, []).append(value)
    if spec.kind == "json":  # a JSON object keeps the last value of a name
        out = {k: v[-1:] for k, v in out.items()}
    return out


# Any UUID with letters: two shapes of it (lower, upper, braces, ...) are different strings.
_ANY_SESSION = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")


def expected_answer(  # noqa: PLR0911 - one return per documented rule, in their order
    spec: Spec, pairs: list[tuple[str, Any]], raw: str
) -> tuple[int, str]:
    """The documented answer: (status, error code or refusal reason), "" for a 200."""
    if len(raw.encode("utf-8")) > LIMIT:
        return 413, "payload_too_large"
    media = spec.content_type.split(";")[0].strip().lower()
    if spec.kind != "get" and media not in (FORM, JSON):
        return 415, "unsupported_media_type"
    if any(name == "" for name, _ in pairs):
        return 400, "malformed_body"
    verdicts = _key_verdicts(spec, pairs)
    wire = {name: [_plain(k.value, _ANY_SESSION) for k in keys] for name, keys in verdicts.items()}
    if any(len({json.dumps(v, default=str) for v in values}) > 1 for values in wire.values()):
        return 422, "repeated_key_attribute"
    state = {name: keys[0].verdict for name, keys in verdicts.items()}
    required = ("SessionUUID", "SequenceNumber", "EventName")
    if any(name not in state for name in required):
        return 422, "missing_key_attribute"
    if "invalid" in state.values():
        return 422, "invalid_key_attribute"
    if wire["EventName"][0] == COMPLETED and any(
        state.get(name, "blank") == "blank" for name in ("RecordingUUID", "RecordingURL")
    ):
        return 422, "missing_key_attribute"
    return 200, ""


def signed_event(built: Built, token: str, nonce: str) -> dict[str, Any]:
    """The API Gateway event, signed by the SDK (`reject()` if the SDK cannot sign it)."""
    method = "GET" if built.spec.kind == "get" else "POST"
    try:
        signature = sdk_signature(token, method, URL, built.sdk_params, nonce)
    except (TypeError, ValueError, UnicodeError):
        reject()  # e.g. a list mixing null and strings: the SDK's sorted() raises
    headers = {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}
    if method == "GET":
        return http_event("GET", headers=headers, raw_query=built.raw)
    if built.spec.content_type:
        headers["Content-Type"] = built.spec.content_type
    return http_event("POST", headers=headers, body=built.raw)
