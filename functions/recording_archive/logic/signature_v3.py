"""Plivo callback signature V3: builds the signed message and verifies the signature headers.

Scheme (reproduced byte for byte from the official SDK, plivo-python 4.63,
``plivo.utils.signature_v3``):

- base = ``scheme://netloc/path`` of the callback URL as configured in Plivo (port and trailing
  slash kept; query, ``;params`` and ``#fragment`` dropped).
- GET: the parameters merged with the URL's own query (the URL's value list wins on a shared
  key), keys sorted by code point, each key's values sorted, ``k=v`` joined by ``&``;
  message = ``base?...`` (just ``base`` with nothing to render).
- POST: message = ``base?`` + (sorted URL query + ``.`` when the URL has a query) +
  ``k1v1k2v2...`` (nested objects render as key + their own rendering); with no body
  parameters it is the GET form of the URL query alone.
- signature = base64(HMAC-SHA256(auth token, UTF-8 of ``message + "." + nonce``)).

Why this is written here rather than calling the SDK:

- the SDK compares with ``signature in header.split(",")``: not constant time, and it does not
  trim spaces around each comma-separated signature; here every (expected, candidate)
  pair goes through :func:`hmac.compare_digest`, with no early exit;
- ``plivo`` pulls in ``requests``, ``lxml``, ``PyJWT`` and ``decorator``: megabytes in the Lambda
  package and import time on every cold start, for forty lines of string handling;
- the SDK mutates the caller's dict for GET (``params.update(url_query)``) and crashes on a
  percent-encoded non-ASCII value in the URL's query (it parses bytes as ASCII); this module
  copies, and decodes such a value as UTF-8 like every other value.

The module is tested against the SDK itself with randomised cases
(``tests/unit/test_signature_v3.py``).

Fail-closed choices where the SDK is silent or crashes:

- a non-ASCII nonce never verifies: the Python SDK signs its UTF-8 bytes re-read as Latin-1,
  an accident of its Python 2 heritage that we do not guess Plivo's signer shares;
- a blank auth token is ignored (an empty HMAC key is a misconfiguration, not a secret);
- parameters the scheme cannot render (a list holding objects or lists; the SDK renders Python
  ``repr`` or crashes) raise :class:`UnsignableParamsError`, which :func:`verify_signature`
  turns into "not verified";
- a callback URL that is not ASCII ``http(s)://host...`` raises :class:`ValueError`: it comes
  from configuration and must be percent-encoded exactly as configured in Plivo.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeGuard
from urllib.parse import parse_qs, urlparse, urlunparse

__all__ = [
    "Params",
    "UnsignableParamsError",
    "compute_signature",
    "parse_query",
    "signed_message",
    "verify_signature",
]

Params = Mapping[str, str | Sequence[str] | Mapping[str, Any]]
"""Callback parameters: form/query values are a string or a list of strings; a JSON body may
also hold nested objects and non-string scalars. The SDK signs what ``json.loads`` gives and
renders each scalar with ``str()`` (``string_format``): ``1`` -> ``"1"``, ``True`` ->
``"True"``, ``None`` -> ``"None"``, and a number with a fraction or an exponent is a Python
float: ``12.50`` -> ``"12.5"``, ``1e16`` -> ``"1e+16"``, ``1E5`` -> ``"100000.0"``, ``1e400``
-> ``"inf"``. The handler parses such numbers as :class:`~decimal.Decimal` (exact, storable),
so a Decimal renders as ``str(float(value))``: the float ``json.loads`` would have made of the
same text (``float(Decimal)`` rounds correctly, as float parsing does), then its ``str()``."""

_METHODS = frozenset({"GET", "POST"})
_HEADER_SPACE = " \t"


class UnsignableParamsError(ValueError):
    """The parameters hold a shape the V3 scheme has no rendering for."""


def parse_query(query: str) -> dict[str, list[str]]:
    """Decode a query string or form body exactly as the SDK decodes a URL query.

    ``urllib.parse.parse_qs`` with blank values kept: ``+`` is a space, percent escapes are
    UTF-8 (invalid sequences become U+FFFD), ``a`` and ``a=`` both give ``[""]``, empty segments
    are skipped, only ``&`` separates, and the values of a repeated key keep their order.
    """
    return parse_qs(query, keep_blank_values=True)


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    # bool before int is irrelevant for str(), kept explicit for the reader: str(True) == "True".
    if value is None or isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, Decimal):  # a JSON number with a fraction or exponent (see Params)
        return str(float(value))
    raise UnsignableParamsError(f"cannot sign a value of type {type(value).__name__}")


def _is_list(value: object) -> TypeGuard[Sequence[object]]:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def _sorted_values(value: Sequence[object]) -> list[str]:
    # The SDK converts every element to a string first, then sorts: ["10", "9"] order.
    return sorted(_scalar(item) for item in value)


def _query_string(params: Mapping[str, object]) -> str:
    """GET rendering: ``k=v`` for each value, keys and values sorted, joined by ``&``."""
    parts: list[str] = []
    for key in sorted(params):
        value = params[key]
        if isinstance(value, Mapping):
            raise UnsignableParamsError("a GET parameter cannot be an object")
        if _is_list(value):
            # An empty list renders as an empty segment ("a=1&&b=2"), as in the SDK.
            parts.append("&".join(f"{key}={item}" for item in _sorted_values(value)))
        else:
            parts.append(f"{key}={_scalar(value)}")
    return "&".join(parts)


def _params_string(params: Mapping[str, object]) -> str:
    """POST rendering: ``k1v1k2v2...``, keys and values sorted, objects rendered recursively."""
    parts: list[str] = []
    for key in sorted(params):
        value = params[key]
        if isinstance(value, Mapping):
            parts.append(f"{key}{_params_string(value)}")
        elif _is_list(value):
            parts.append("".join(f"{key}{item}" for item in _sorted_values(value)))
        else:
            parts.append(f"{key}{_scalar(value)}")
    return "".join(parts)


def _split_url(url: str) -> tuple[str, dict[str, list[str]]]:
    if not url.isascii():
        raise ValueError("the callback URL must be ASCII (percent-encoded as configured in Plivo)")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("the callback URL must be an absolute http(s) URL")
    base = urlunparse((parsed.scheme, parsed.netloc, parsed.path, "", "", ""))
    return base, parse_query(parsed.query)


def signed_message(method: str, url: str, params: Params) -> str:
    """The message Plivo signs, before ``"." + nonce`` (SDK ``construct_get_url`` /
    ``construct_post_url``). ``params`` is not modified.

    Raises ValueError for a method other than GET/POST or a URL that is not an ASCII absolute
    http(s) URL, and UnsignableParamsError for a parameter shape the scheme cannot render.
    """
    verb = method.upper()
    if verb not in _METHODS:
        raise ValueError("the callback method must be GET or POST")
    base, url_query = _split_url(url)
    if verb == "GET":
        merged: dict[str, object] = dict(params)
        merged.update(url_query)  # the URL's value list wins on a shared key, as in the SDK
        query = _query_string(merged)
        return f"{base}?{query}" if query else base
    url_part = _query_string(url_query)
    if not params:
        return f"{base}?{url_part}" if url_part else base
    prefix = f"{url_part}." if url_part else ""
    return f"{base}?{prefix}{_params_string(params)}"


def _hmac_b64(token: str, payload: bytes) -> bytes:
    digest = hmac.new(token.encode("utf-8"), payload, hashlib.sha256).digest()
    return base64.b64encode(digest)


def _payload(message: str, nonce: str) -> bytes:
    return f"{message}.{nonce}".encode()


def compute_signature(auth_token: str, method: str, url: str, params: Params, nonce: str) -> str:
    """base64(HMAC-SHA256(auth_token, message + "." + nonce)), as the SDK's ``get_signature_v3``.

    Raises ValueError for a non-ASCII nonce (see the module docstring), besides the errors of
    :func:`signed_message`.
    """
    if not nonce.isascii():
        raise ValueError("the nonce must be ASCII")
    payload = _payload(signed_message(method, url, params), nonce)
    return _hmac_b64(auth_token, payload).decode("ascii")


def _candidates(signature_headers: Sequence[str]) -> list[bytes]:
    found: list[bytes] = []
    for header in signature_headers:
        for part in header.split(","):
            candidate = part.strip(_HEADER_SPACE)
            if candidate:
                found.append(candidate.encode("utf-8"))
    return found


# The positional signature is the contract the callback handler and the simulator CLI call.
def verify_signature(  # noqa: PLR0917
    auth_tokens: Sequence[str],
    method: str,
    url: str,
    params: Params,
    nonce: str,
    signature_headers: Sequence[str],
) -> bool:
    """True if any signature in the headers was made with any of the auth tokens.

    ``signature_headers`` are the raw values of ``X-Plivo-Signature-V3`` and/or
    ``X-Plivo-Signature-Ma-V3``; each may hold several comma-separated signatures, spaces around
    each are ignored, blank ones never match. Every (expected, candidate) pair is compared with
    :func:`hmac.compare_digest`, without early exit. No (non-blank) token, a non-ASCII nonce or
    parameters the scheme cannot render: False. A bad method or URL (configuration) raises
    ValueError, as in :func:`signed_message`.
    """
    try:
        message = signed_message(method, url, params)
    except UnsignableParamsError:
        return False
    tokens = [token for token in auth_tokens if token]
    candidates = _candidates(signature_headers)
    if not tokens or not candidates or not nonce.isascii():
        return False
    payload = _payload(message, nonce)
    matched = False
    for token in tokens:
        expected = _hmac_b64(token, payload)
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    return matched
