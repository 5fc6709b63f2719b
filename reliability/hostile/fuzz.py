"""Suite 1: property-based fuzzing (hypothesis) of the handler's method, headers, query,
content type and body."""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st

from reliability.hostile.harness import DOCUMENTED, FORM, HandlerHarness
from tests.support.http_events import http_event
from tests.support.plivo import recording_event
from tests.support.signed_fuzz import reproducible

_text = st.text(st.characters(codec="utf-8"), max_size=60)
_header_values = st.one_of(_text, st.sampled_from(["", " ", "a\r\nX-Injected: 1", "\x00", "é" * 5]))
_content_types = st.one_of(
    st.sampled_from(
        [
            FORM,
            "application/json",
            f"{FORM}; charset=utf-8",
            "APPLICATION/JSON",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/xml",
            "",
        ]
    ),
    _text,
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _params(draw: st.DrawFn) -> dict[str, Any]:
    """A callback's attributes, each kept, mutated, dropped or joined by a stranger."""
    base = recording_event(
        draw(
            st.sampled_from(
                ["SessionRecordingInitiated", "SessionRecordingCompleted", "SessionRecordingFailed"]
            )
        ),
        session_uuid=str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4)),
        sequence=draw(st.integers(0, 10**6)),
        recording_url="http://127.0.0.1:9/x.mp3" if draw(st.booleans()) else "",
    )
    out: dict[str, Any] = {}
    for key, value in base.items():
        action = draw(st.sampled_from(["keep"] * 6 + ["drop", "mutate", "list"]))
        if action == "keep":
            out[key] = value
        elif action == "mutate":
            out[key] = draw(_text)
        elif action == "list":
            out[key] = [value, draw(_text)]
    for key in draw(st.lists(_text, max_size=3)):
        out[key] = draw(_text)
    return out


@st.composite
def http_requests(draw: st.DrawFn, harness: HandlerHarness) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(["signed", "signed", "random", "random-sig"]))
    if kind == "signed":
        params = draw(_params())
        method = draw(st.sampled_from(["POST", "POST", "GET"]))
        ctype = draw(st.sampled_from([FORM, "application/json"]))
        for key, value in params.items():  # the SDK signs strings (and lists of strings)
            if not isinstance(value, str | list):
                params[key] = str(value)
        try:
            return kind, harness.signed(method, params, content_type=ctype)
        except (TypeError, ValueError, AttributeError):
            kind = "random"
    method = draw(st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    headers = draw(
        st.dictionaries(
            st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20),
            _header_values,
            max_size=4,
        )
    )
    headers["content-type"] = draw(_content_types)
    if kind == "random-sig" or draw(st.booleans()):
        headers["x-plivo-signature-v3"] = draw(
            st.one_of(
                _text,
                st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode()),
            )
        )
        headers["x-plivo-signature-v3-nonce"] = draw(_text)
    body_kind = draw(st.sampled_from(["bytes", "text", "form", "json", "none"]))
    body: bytes | str | None
    if body_kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif body_kind == "text":
        body = draw(_text)
    elif body_kind == "form":
        body = urlencode(draw(_params()), doseq=True)
    elif body_kind == "json":
        body = json.dumps(draw(_json_values))
    else:
        body = None
    query = draw(
        st.one_of(
            st.just(""),
            _text.map(lambda t: urlencode({"q": t})),
            _params().map(lambda p: urlencode(p, doseq=True)),
        )
    )
    as_base64 = draw(st.booleans())
    if isinstance(body, bytes):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            as_base64 = True  # API Gateway base64-encodes a body that is not text
    event = http_event(method, headers=headers, body=body, raw_query=query, base64_body=as_base64)
    if body is not None and draw(st.integers(0, 9)) == 0:
        event["isBase64Encoded"] = True
        event["body"] = draw(_text)  # claims base64, is not
    return kind, event


def fuzz_handler(harness: HandlerHarness, *, max_examples: int, seed: int = 6) -> dict[str, Any]:
    kinds: Counter[str] = Counter()

    @reproducible(max_examples)
    @given(request=http_requests(harness))
    def check(request: tuple[str, dict[str, Any]]) -> None:
        kind, event = request
        kinds[kind] += 1
        status, _ = harness.invoke(event, what=f"fuzz[{kind}]")
        assert status < 500, status
        assert status in DOCUMENTED, status

    random.seed(seed)
    error = None
    try:
        check()
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
    return {"examples": dict(kinds), "error": error}
