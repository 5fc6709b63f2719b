"""From an HTTP request (method, headers, body, query) to a verified, validated callback.

The order of the checks is the order of the answers' precedence: size (413), content type (415),
signature headers present (401), body decodes (400), signature matches (403), schema (422). A
request is never parsed further than needed to refuse it, and no check reads a value that a
client controls to decide which URL was signed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from recording_archive.config import MAX_BODY_BYTES
from recording_archive.logic.signature_v3 import verify_signature
from recording_archive.models.callback import RecordingCallback, field_names
from recording_archive.models.errors import (
    CallbackValidationError,
    MalformedBodyError,
    NoAuthTokenError,
    PayloadTooLargeError,
    SignatureInvalidError,
    SignatureMissingError,
    UnsupportedMediaTypeError,
)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
SIGNATURE_HEADERS = ("x-plivo-signature-v3", "x-plivo-signature-ma-v3")
NONCE_HEADER = "x-plivo-signature-v3-nonce"
MAX_JSON_DEPTH = 8


@dataclass(frozen=True)
class CallbackRequest:
    method: str
    content_type: str  # FORM, JSON, or "" for GET
    params: dict[str, Any]  # as received: str or list[str] (form, query) or JSON values
    raw: str  # the body (POST) or the raw query string (GET), as text
    signatures: tuple[str, ...]
    nonce: str

    def __repr__(self) -> str:  # signatures and phone numbers stay out of reprs and logs
        return f"CallbackRequest(method={self.method!r}, content_type={self.content_type!r})"


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedBodyError("JSON body has a duplicated key")
        out[key] = value
    return out


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBodyError("body is not valid UTF-8") from exc


def _parse_form(text: str) -> dict[str, list[str]]:
    # Decoded as the Plivo SDK decodes (parse_qs, blank values kept, '+' is a space), except that
    # percent-escapes that are not UTF-8 are refused instead of becoming U+FFFD, so that the
    # stored payload is exactly what Plivo sent.
    try:
        return parse_qs(text, keep_blank_values=True, errors="strict", max_num_fields=1000)
    except ValueError as exc:  # UnicodeDecodeError, or too many fields
        raise MalformedBodyError("form body is not valid") from exc


def _parse_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates, parse_float=Decimal)
    except RecursionError as exc:
        raise MalformedBodyError("JSON body is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError is a ValueError
        if isinstance(exc, MalformedBodyError):  # pragma: no cover - MalformedBodyError isn't one
            raise
        raise MalformedBodyError("body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise MalformedBodyError("JSON body must be an object")
    if _depth(data) > MAX_JSON_DEPTH:
        raise MalformedBodyError("JSON body is nested too deeply")
    return data


def decode_request(
    method: str, headers: dict[str, str], body: bytes, raw_query: str
) -> CallbackRequest:
    """Checks 413, 415, 401 and 400, in that order. `headers` keys are lower-case."""
    method = method.upper()
    if len(body) > MAX_BODY_BYTES or len(raw_query) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"body over the limit of {MAX_BODY_BYTES} bytes")
    content_type = ""
    if method == "POST":
        content_type = _media_type(headers.get("content-type", ""))
        if content_type not in (FORM, JSON):
            raise UnsupportedMediaTypeError(f"content type must be {FORM} or {JSON}")
    signatures = tuple(v for h in SIGNATURE_HEADERS if (v := headers.get(h, "").strip()))
    nonce = headers.get(NONCE_HEADER, "").strip()
    if not signatures or not nonce:
        raise SignatureMissingError(
            "X-Plivo-Signature-V3 (or -Ma-V3) and X-Plivo-Signature-V3-Nonce headers are required"
        )
    if method == "POST":
        raw = _decode_text(body)
        params: dict[str, Any] = _parse_form(raw) if content_type == FORM else _parse_json(raw)
    else:
        raw = raw_query
        params = _parse_form(raw_query)
    return CallbackRequest(method, content_type, params, raw, signatures, nonce)


def verify_request(request: CallbackRequest, callback_url: str, tokens: tuple[str, ...]) -> None:
    """403 unless one signature matches one token for the configured callback URL."""
    if not tokens:
        raise NoAuthTokenError("signature cannot be verified: no auth token is configured")
    if not verify_signature(
        tokens, request.method, callback_url, request.params, request.nonce, request.signatures
    ):
        raise SignatureInvalidError("signature does not match")


def _flatten(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    flat: dict[str, Any] = {}
    repeated: list[str] = []
    for key, value in params.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            if len(set(value)) > 1:
                repeated.append(key)
                continue
            flat[key] = value[0] if value else ""
        else:
            flat[key] = value
    return flat, repeated


def validate_callback(request: CallbackRequest, *, allow_loopback_http: bool) -> RecordingCallback:
    """422 naming the offending attributes, never their values."""
    flat, repeated = _flatten(request.params)
    if repeated:
        raise CallbackValidationError("attributes given more than once", sorted(repeated))
    try:
        return RecordingCallback.model_validate(
            flat, context={"allow_loopback_http": allow_loopback_http}
        )
    except ValidationError as exc:
        fields = field_names(exc.errors(include_input=False, include_url=False))  # type: ignore[arg-type]
        raise CallbackValidationError("callback does not match the schema", fields) from exc
