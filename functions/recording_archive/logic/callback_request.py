"""From an HTTP request (method, headers, body, query) to a verified, validated callback.

The order of the checks is the order of the answers' precedence: size (413), content type (415),
signature headers present (401), body decodes (400), signature matches (403), key attributes
(422). A request is never parsed further than needed to refuse it, and no check reads a value
that a client controls to decide which URL was signed.

What decodes (400 otherwise) is what DynamoDB can hold as received: UTF-8 text (no lone
surrogate escapes in JSON), JSON without NaN/Infinity (RFC 8259 has none), attribute names of
1 byte to under 64 KiB at any depth (DynamoDB refuses an empty or longer name, also as a map
key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html).
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
from recording_archive.models.callback import (
    KEY_ATTRIBUTES,
    RecordingCallback,
    field_names,
    missing_fields,
)
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
MAX_NAME_BYTES = 64 * 1024 - 1  # DynamoDB: an attribute name is under 64 KB


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


def _reject_constant(_name: str) -> Any:
    raise MalformedBodyError("JSON body holds NaN or Infinity, which JSON does not allow")


def _check_name(name: str) -> None:
    if not name:
        raise MalformedBodyError("an attribute name is empty")
    if len(name) > MAX_NAME_BYTES // 4 and len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise MalformedBodyError("an attribute name is 64 KiB or longer")


def _check_text(text: str) -> None:
    # json.loads turns a "\ud800" escape into a lone surrogate: not UTF-8, so neither signable
    # (the SDK encodes the message as UTF-8) nor storable.
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedBodyError("JSON body holds a lone surrogate escape") from exc


def _check_json(value: Any, level: int = 0) -> None:
    """Depth (objects and arrays), names and strings at every level of a parsed JSON body."""
    if isinstance(value, dict | list) and level >= MAX_JSON_DEPTH:
        raise MalformedBodyError("JSON body is nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_name(key)
            _check_text(key)
            _check_json(item, level + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, level + 1)
    elif isinstance(value, str):
        _check_text(value)


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
        params = parse_qs(text, keep_blank_values=True, errors="strict", max_num_fields=1000)
    except ValueError as exc:  # UnicodeDecodeError, or too many fields
        raise MalformedBodyError("form body is not valid") from exc
    for name in params:
        _check_name(name)
    return params


def _parse_json(text: str) -> dict[str, Any]:
    # Numbers with a fraction or an exponent become Decimal, exact as written (DynamoDB takes no
    # float); the signature renders them as the SDK does (logic/signature_v3.py). An integer
    # over 4,300 digits is refused by int() (ValueError), as it is by the SDK's json.loads.
    try:
        data = json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_float=Decimal,
            parse_constant=_reject_constant,
        )
    except RecursionError as exc:
        raise MalformedBodyError("JSON body is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError is a ValueError
        if isinstance(exc, MalformedBodyError):  # pragma: no cover - MalformedBodyError isn't one
            raise
        raise MalformedBodyError("body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise MalformedBodyError("JSON body must be an object")
    _check_json(data)
    return data


def decode_request(
    method: str, headers: dict[str, str], body: bytes, raw_query: str
) -> CallbackRequest:
    """Checks 413, 415, 401 and 400, in that order. `headers` keys are lower-case."""
    method = method.upper()
    query_bytes = len(raw_query.encode("utf-8", "surrogatepass"))  # bytes, as for the body
    if len(body) > MAX_BODY_BYTES or query_bytes > MAX_BODY_BYTES:
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
    """One value per attribute for the model. A form or query attribute given once is its
    string; a key attribute given twice with different values is refused (which one is the
    event?); any other repeated attribute is kept as the list received."""
    flat: dict[str, Any] = {}
    repeated: list[str] = []
    for key, value in params.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            if len(set(value)) > 1:
                if key in KEY_ATTRIBUTES:
                    repeated.append(key)
                else:
                    flat[key] = value
                continue
            flat[key] = value[0] if value else ""
        else:
            flat[key] = value
    return flat, repeated


def validate_callback(request: CallbackRequest, *, allow_loopback_http: bool) -> RecordingCallback:
    """422 naming the offending key attributes, never their values."""
    # A form or query gives every attribute as a list (parse_qs); a JSON body gives its values
    # as they are: a list there is a value of its own, not an attribute given several times.
    flat, repeated = (
        (dict(request.params), []) if request.content_type == JSON else _flatten(request.params)
    )
    if repeated:
        raise CallbackValidationError(
            "key attributes given more than once", sorted(repeated), reason="repeated_key_attribute"
        )
    try:
        return RecordingCallback.model_validate(
            flat, context={"allow_loopback_http": allow_loopback_http}
        )
    except ValidationError as exc:
        errors: list[dict[str, Any]] = exc.errors(include_input=False, include_url=False)  # type: ignore[assignment]
        missing = missing_fields(errors)
        raise CallbackValidationError(
            "key attributes missing" if missing else "key attributes not valid",
            field_names(errors),
            reason="missing_key_attribute" if missing else "invalid_key_attribute",
        ) from exc
