"""Signature V3 verifier, checked against the official SDK (plivo-python 4.63) as the reference.

The randomised cases are seeded (one seed per test id), so every run checks the same inputs and a
failure names the seed that reproduces it.

One module (over 500 lines): one verifier against one reference, case by case.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
import string
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st
from plivo.utils import signature_v3 as sdk

from recording_archive.logic import signature_v3 as sv3
from recording_archive.logic.callback_request import decode_request
from tests.support import signed_fuzz as sf

RANDOM_CASES = 1000
RANDOM_QUERIES = 300

# Values mix everything the scheme must carry untouched: separators of both renderings, spaces,
# percent signs, Latin-1, CJK, an astral emoji (code-point order differs from UTF-16 order there),
# and a no-break space.
VALUE_CHARS = [
    *string.ascii_letters,
    *string.digits,
    " ",
    "&",
    "=",
    ".",
    "?",
    "+",
    "%",
    "/",
    ",",
    "-",
    "_",
    "é",
    "ü",
    "Ä",
    "中",
    "😀",
    "\uff21",
    "\u00a0",
]
# A small key pool makes collisions between the URL query and the parameters frequent.
KEY_POOL = [
    "a",
    "A",
    "b",
    "To",
    "From",
    "EventName",
    "SequenceNumber",
    "RecordingURL",
    "é",
    "Ée",
    "z",
    "_",
    "k1",
    "k10",
    "k9",
    "中文",
]
URL_QUERY_CHARS = string.ascii_letters + string.digits + " &=+%./?,-_~:"
HOSTS = ["example.com", "cb.Example.org", "127.0.0.1", "api.test", "sub.domain.example.net"]


# --- random case generation ---------------------------------------------------------------------
def _text(rng: random.Random, *, max_len: int = 8, blank_ok: bool = True) -> str:
    low = 0 if blank_ok else 1
    return "".join(rng.choice(VALUE_CHARS) for _ in range(rng.randint(low, max_len)))


def _url_query(rng: random.Random) -> str:
    """An ASCII query string: encoded by quote, quote_plus or left raw, with blank values, keys
    without '=', repeated keys, empty segments and invalid escapes (the SDK parses bytes as
    ASCII and crashes on a percent-encoded non-ASCII value, so those are tested separately)."""
    segments: list[str] = []
    for _ in range(rng.randint(0, 5)):
        key = rng.choice([*KEY_POOL[:8], "q", "page"])
        raw = "".join(rng.choice(URL_QUERY_CHARS) for _ in range(rng.randint(0, 6)))
        style = rng.randrange(6)
        if style == 0:
            segments.append(f"{quote(key)}={quote(raw, safe='')}")
        elif style == 1:
            segments.append(f"{quote_plus(key)}={quote_plus(raw)}")
        elif style == 2:
            segments.append(f"{key}=")
        elif style == 3:
            segments.append(key)
        elif style == 4:
            segments.append(f"{key}=a+b%2Bc%zz%")
        else:
            segments.append("")
    return "&".join(segments)


def _url(rng: random.Random) -> str:
    scheme = rng.choice(["http", "https"])
    netloc = rng.choice(HOSTS)
    if rng.random() < 0.4:
        netloc += f":{rng.choice([80, 443, 3000, 8443, 65535])}"
    segments = [rng.choice(["cb", "plivo", "recording%20callback", "v1", "Hook", "a.b"])]
    segments += [rng.choice(["x", "y", "prod", "z"]) for _ in range(rng.randint(0, 2))]
    path = "" if rng.random() < 0.1 else "/" + "/".join(segments)
    if rng.random() < 0.35:
        path += "/"
    url = f"{scheme}://{netloc}{path}"
    if path and rng.random() < 0.1:
        url += ";jsessionid=1"
    if rng.random() < 0.6:
        url += "?" + _url_query(rng)
    if rng.random() < 0.15:
        url += rng.choice(["#frag", "#a?b=c", "#"])
    return url


def _scalar(rng: random.Random) -> Any:
    return rng.choice(
        [
            lambda: rng.randint(-5, 100),
            lambda: rng.choice([True, False]),
            lambda: round(rng.uniform(-10, 10), rng.randint(0, 3)),
            lambda: None,
        ]
    )()


def _value(rng: random.Random, *, post: bool, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.5:
        return _text(rng)
    if roll < 0.75:
        count = rng.choice([0, 1, 1, 2, 3, 4]) if rng.random() < 0.1 else rng.randint(1, 4)
        items: list[Any] = [_text(rng) for _ in range(count)]
        if post and items and rng.random() < 0.3:
            items[0] = rng.choice([rng.randint(0, 20), True, 2.5])
        return items
    if post and depth < 2 and roll < 0.88:
        return _params(rng, post=True, depth=depth + 1)
    if post:
        return _scalar(rng)
    return _text(rng, blank_ok=False)


def _params(rng: random.Random, *, post: bool, depth: int = 0) -> dict[str, Any]:
    count = rng.choice([0, 0, 1, 2, 3, 4, 6, 8]) if depth == 0 else rng.randint(0, 3)
    keys = rng.sample(KEY_POOL, count)
    if rng.random() < 0.1:
        keys.append(_text(rng, max_len=4, blank_ok=False))
    return {key: _value(rng, post=post, depth=depth) for key in keys}


def _token(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits
    token = "".join(rng.choice(alphabet) for _ in range(40))
    return token + "é" if rng.random() < 0.05 else token


def _nonce(rng: random.Random) -> str:
    return "".join(rng.choice(string.digits + string.ascii_letters) for _ in range(20))


def _fake_signature(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(32)).decode()


def _spaced(rng: random.Random, signatures: list[str]) -> list[str]:
    """The same signatures with spaces around the commas, split over one or two header values
    (X-Plivo-Signature-V3 and X-Plivo-Signature-Ma-V3)."""
    separators = [",", ", ", " ,", " , ", ",\t", ",  "]
    joined = rng.choice(["", " "])
    for index, signature in enumerate(signatures):
        if index:
            joined += rng.choice(separators)
        joined += signature
    joined += rng.choice(["", " ", "\t"])
    if len(signatures) > 1 and rng.random() < 0.3:
        first, _, rest = joined.partition(",")
        return [first, rest]
    return [joined]


def _sdk_message(method: str, url: str, params: dict[str, Any]) -> str:
    params = copy.deepcopy(params)
    if method == "GET":
        return sdk.construct_get_url(url, params).decode("utf-8")
    return sdk.construct_post_url(url, params).decode("utf-8")


def _sdk_signature(token: str, message: str, nonce: str) -> str:
    signature: bytes = sdk.get_signature_v3(token, message, nonce)
    return signature.decode("ascii")


def _sdk_valid(
    method: str, url: str, nonce: str, *, token: str, header: str, params: dict[str, Any]
) -> bool:
    result: bool = sdk.validate_v3_signature(
        method, url, nonce, token, header, copy.deepcopy(params)
    )
    return result


def _tamper(rng: random.Random, params: dict[str, Any]) -> dict[str, Any]:
    tampered = copy.deepcopy(params)
    if not tampered or rng.random() < 0.2:
        tampered["Injected"] = "1"
        return tampered
    key = rng.choice(sorted(tampered))
    value = tampered[key]
    if isinstance(value, str):
        tampered[key] = value + rng.choice(["x", "1", " ", "é"])
    elif isinstance(value, list):
        value.append("x")
    elif isinstance(value, dict):
        value["zz"] = "1"
    else:
        tampered[key] = "tampered"
    return tampered


# --- randomised agreement with the SDK ----------------------------------------------------------
@pytest.mark.parametrize("seed", range(RANDOM_CASES))
def test_agrees_with_sdk(seed: int) -> None:
    rng = random.Random(seed)
    method = "GET" if seed % 2 == 0 else "POST"
    url = _url(rng)
    params = _params(rng, post=method == "POST")
    token = _token(rng)
    other_token = _token(rng)
    nonce = _nonce(rng)
    original = copy.deepcopy(params)
    our_method = rng.choice([method, method.lower(), method.title()])

    # The message and the signature are the SDK's, byte for byte; the caller's dict is untouched.
    message = sv3.signed_message(our_method, url, params)
    assert message == _sdk_message(method, url, params)
    signature = sv3.compute_signature(token, our_method, url, params, nonce)
    assert signature == _sdk_signature(token, message, nonce)
    assert params == original

    # Positive: the valid signature anywhere among decoys.
    candidates = [_fake_signature(rng) for _ in range(rng.randint(0, 3))]
    candidates.insert(rng.randint(0, len(candidates)), signature)
    header = ",".join(candidates)
    assert _sdk_valid(method, url, nonce, token=token, header=header, params=params) is True
    assert sv3.verify_signature([token], our_method, url, params, nonce, [header]) is True
    # With spaces (which the SDK does not trim) and with the token anywhere in the list.
    tokens = [other_token, token] if rng.random() < 0.5 else [token, other_token]
    spaced = _spaced(rng, candidates)
    assert sv3.verify_signature(tokens, our_method, url, params, nonce, spaced) is True

    # Negative: wrong token, wrong nonce, decoys only.
    assert _sdk_valid(method, url, nonce, token=other_token, header=header, params=params) is False
    assert sv3.verify_signature([other_token], our_method, url, params, nonce, spaced) is False
    wrong_nonce = nonce + rng.choice(["1", "a"])
    assert _sdk_valid(method, url, wrong_nonce, token=token, header=header, params=params) is False
    assert sv3.verify_signature(tokens, our_method, url, params, wrong_nonce, spaced) is False
    decoys = ",".join(c for c in candidates if c != signature) or _fake_signature(rng)
    assert _sdk_valid(method, url, nonce, token=token, header=decoys, params=params) is False
    assert sv3.verify_signature(tokens, our_method, url, params, nonce, [decoys]) is False

    # Tampered parameter: both agree; refused whenever the signed message changed (a GET key
    # that the URL's query also sets is overridden by the URL, so tampering it changes nothing).
    tampered = _tamper(rng, params)
    sdk_result = _sdk_valid(method, url, nonce, token=token, header=header, params=tampered)
    ours = sv3.verify_signature([token], our_method, url, tampered, nonce, [header])
    assert ours is sdk_result
    if sv3.signed_message(method, url, tampered) != message:
        assert ours is False


@pytest.mark.parametrize("seed", range(RANDOM_QUERIES))
def test_parse_query_agrees_with_sdk(seed: int) -> None:
    rng = random.Random(10_000 + seed)
    query = _url_query(rng)
    assert sv3.parse_query(query) == sdk.get_map_from_query(query.encode("ascii"))


# --- fixed vectors: the rules written out ---------------------------------------------------
TOKEN = "MAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
NONCE = "12345678901234567890"


@pytest.mark.parametrize(
    ("method", "url", "params", "expected"),
    [
        pytest.param(
            "GET",
            "https://example.com:8443/cb/?b=2&a=1;x#frag",
            {"a": "ignored", "c": ["2", "1", ""]},
            "https://example.com:8443/cb/?a=1;x&b=2&c=&c=1&c=2",
            id="get-url-wins-port-slash-fragment",
        ),
        pytest.param(
            "GET",
            "https://example.com/cb;jsessionid=1",
            {},
            "https://example.com/cb",
            id="get-no-params-no-question-mark",
        ),
        pytest.param(
            "POST",
            "https://example.com/cb?z=1&a=x+y",
            {"To": "é", "A": ["2", "10"], "b": ""},
            "https://example.com/cb?a=x y&z=1.A10A2To\u00e9b",
            id="post-url-query-dot-prefix",
        ),
        pytest.param(
            "POST",
            "https://example.com/cb/",
            {"b": "1", "a": {"y": "2", "x": [True, 3]}},
            "https://example.com/cb/?ax3xTruey2b1",
            id="post-nested-object-and-scalars",
        ),
        pytest.param(
            "POST",
            "https://example.com/cb?q=1",
            {},
            "https://example.com/cb?q=1",
            id="post-no-body-is-get-form",
        ),
        pytest.param(
            "POST",
            "http://example.com",
            {},
            "http://example.com",
            id="post-no-body-no-query",
        ),
        pytest.param(
            "POST",
            "https://example.com/cb",
            {"n": None, "f": 1.5, "i": 0, "t": False},
            "https://example.com/cb?f1.5i0nNonetFalse",
            id="post-non-string-scalars-like-sdk",
        ),
    ],
)
def test_signed_message_vectors(
    method: str, url: str, params: dict[str, Any], expected: str
) -> None:
    assert sv3.signed_message(method, url, params) == expected
    assert _sdk_message(method, url, params) == expected
    digest = hmac.new(TOKEN.encode(), f"{expected}.{NONCE}".encode(), hashlib.sha256).digest()
    assert sv3.compute_signature(TOKEN, method, url, params, NONCE) == (
        base64.b64encode(digest).decode()
    )


def test_keys_sort_by_code_point() -> None:
    # "Z" (U+005A) < "a" (U+0061) < "é" (U+00E9) < fullwidth z (U+FF5A) < "😀" (U+1F600)
    params = {"😀": "5", "\uff5a": "4", "é": "3", "a": "2", "Z": "1"}
    expected = "https://h/?Z=1&a=2&é=3&\uff5a=4&😀=5"
    assert sv3.signed_message("GET", "https://h/", params) == expected


def test_percent_encoded_non_ascii_in_url_query_is_utf8() -> None:
    # The SDK crashes here (it parses the query as ASCII bytes); we decode it like a value.
    with pytest.raises(UnicodeEncodeError):
        sdk.construct_get_url("https://h/cb?x=%C3%A9", {})
    assert sv3.signed_message("GET", "https://h/cb?x=%C3%A9", {}) == "https://h/cb?x=é"


def test_get_does_not_mutate_params() -> None:
    params: dict[str, Any] = {"a": "1"}
    sv3.signed_message("GET", "https://h/cb?b=2", params)
    assert params == {"a": "1"}


# --- parse_query ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", {}, id="empty"),
        pytest.param("&&", {}, id="only-separators"),
        pytest.param("a=1&a=2&a=1", {"a": ["1", "2", "1"]}, id="repeated-order-kept"),
        pytest.param("a=&b", {"a": [""], "b": [""]}, id="blank-and-no-equals"),
        pytest.param("a=x+y%2Bz", {"a": ["x y+z"]}, id="plus-is-space"),
        pytest.param("a%20b=c%26d%3De", {"a b": ["c&d=e"]}, id="escaped-separators"),
        pytest.param("a=1;b=2", {"a": ["1;b=2"]}, id="semicolon-is-not-separator"),
        pytest.param("=x", {"": ["x"]}, id="blank-key"),
        pytest.param("a=b=c", {"a": ["b=c"]}, id="equals-in-value"),
        pytest.param("v=%C3%A9%F0%9F%98%80", {"v": ["é😀"]}, id="utf8"),
        pytest.param("v=%FF", {"v": ["\ufffd"]}, id="invalid-utf8-replaced"),
        pytest.param("v=%zz%", {"v": ["%zz%"]}, id="invalid-escape-literal"),
        pytest.param("v=é", {"v": ["é"]}, id="raw-non-ascii"),
    ],
)
def test_parse_query(query: str, expected: dict[str, list[str]]) -> None:
    assert sv3.parse_query(query) == expected


# --- verify_signature: refusals and constant time ---------------------------------------------
URL = "https://example.com/cb"
PARAMS = {"EventName": "SessionRecordingCompleted", "SessionUUID": "s-1"}


def _valid_signature(token: str = TOKEN) -> str:
    return sv3.compute_signature(token, "POST", URL, PARAMS, NONCE)


def test_verify_without_tokens_is_false() -> None:
    assert sv3.verify_signature([], "POST", URL, PARAMS, NONCE, [_valid_signature()]) is False


def test_blank_token_is_ignored() -> None:
    forged = _valid_signature(token="")
    assert sv3.verify_signature([""], "POST", URL, PARAMS, NONCE, [forged]) is False
    assert sv3.verify_signature(["", TOKEN], "POST", URL, PARAMS, NONCE, [forged]) is False


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="no-header"),
        pytest.param([""], id="empty-header"),
        pytest.param([" , ,\t,"], id="blank-candidates"),
        pytest.param(["", "  "], id="two-blank-headers"),
    ],
)
def test_verify_without_candidates_is_false(headers: list[str]) -> None:
    assert sv3.verify_signature([TOKEN], "POST", URL, PARAMS, NONCE, headers) is False


def test_verify_accepts_the_main_account_header() -> None:
    main_token = "MAINTOKEN" * 4
    headers = [_valid_signature(token="subaccount-token"), _valid_signature(token=main_token)]
    assert sv3.verify_signature([main_token], "POST", URL, PARAMS, NONCE, headers) is True


def test_verify_non_ascii_candidate_is_false_not_an_error() -> None:
    headers = [f"é😀, {_valid_signature()[:-1]}é"]
    assert sv3.verify_signature([TOKEN], "POST", URL, PARAMS, NONCE, headers) is False


def test_verify_compares_every_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    header = f"{_valid_signature()}, decoy1 ,decoy2"
    assert sv3.verify_signature([TOKEN, "other"], "POST", URL, PARAMS, NONCE, [header]) is True
    # 2 tokens x 3 candidates: no early exit after the first match.
    assert len(calls) == 6
    assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


def test_non_ascii_nonce_is_refused() -> None:
    with pytest.raises(ValueError, match="nonce must be ASCII"):
        sv3.compute_signature(TOKEN, "POST", URL, PARAMS, "12é")
    digest = hmac.new(
        TOKEN.encode(),
        f"{URL}?EventNameSessionRecordingCompletedSessionUUIDs-1.12é".encode(),
        hashlib.sha256,
    ).digest()
    header = base64.b64encode(digest).decode()
    assert sv3.verify_signature([TOKEN], "POST", URL, PARAMS, "12é", [header]) is False
    # The SDK signs the nonce's UTF-8 bytes re-read as Latin-1 ("12Ã©"): we accept neither form.
    mojibake = "12é".encode().decode("latin-1")
    sdk_header = _sdk_signature(TOKEN, sv3.signed_message("POST", URL, PARAMS), mojibake)
    assert _sdk_valid("POST", URL, "12é", token=TOKEN, header=sdk_header, params=PARAMS) is True
    assert sv3.verify_signature([TOKEN], "POST", URL, PARAMS, "12é", [sdk_header]) is False


@pytest.mark.parametrize(
    ("method", "params"),
    [
        pytest.param("POST", {"a": [{"b": "1"}]}, id="object-in-list"),
        pytest.param("POST", {"a": [["1"]]}, id="list-in-list"),
        pytest.param("POST", {"a": b"bytes"}, id="bytes"),
        pytest.param("GET", {"a": {"b": "1"}}, id="object-in-get"),
    ],
)
def test_unsignable_params(method: str, params: dict[str, Any]) -> None:
    with pytest.raises(sv3.UnsignableParamsError):
        sv3.signed_message(method, URL, params)
    header = _valid_signature()
    assert sv3.verify_signature([TOKEN], method, URL, params, NONCE, [header]) is False


@pytest.mark.parametrize(
    ("method", "url", "match"),
    [
        pytest.param("PUT", URL, "GET or POST", id="method"),
        pytest.param("POST", "https://exämple.com/cb", "ASCII", id="non-ascii-url"),
        pytest.param("POST", "ftp://example.com/cb", "http", id="scheme"),
        pytest.param("POST", "/cb?x=1", "http", id="relative"),
        pytest.param("POST", "https:///cb", "http", id="no-host"),
    ],
)
def test_configuration_errors_raise(method: str, url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sv3.signed_message(method, url, PARAMS)
    with pytest.raises(ValueError, match=match):
        sv3.verify_signature([TOKEN], method, url, PARAMS, NONCE, ["sig"])


# --- JSON bodies as the handler decodes them (numbers as Decimal) against the SDK ---------------
JSON_HEADERS = {"content-type": "application/json", "x-plivo-signature-v3": "s"}
JSON_HEADERS["x-plivo-signature-v3-nonce"] = NONCE


@sf.reproducible(300)
@given(
    tree=st.dictionaries(sf.nonblank_text, sf.json_values, max_size=6),
    compact=st.booleans(),
    ascii_only=st.booleans(),
)
def test_json_bodies_render_as_the_sdk_renders_json_loads(
    tree: dict[str, Any], compact: bool, ascii_only: bool
) -> None:
    """The SDK signs what `json.loads` gives (floats, ints, True, None); the handler parses
    numbers with a fraction or exponent as Decimal: both must make the same message."""
    body = sf.json_text(tree, compact=compact, ascii_only=ascii_only)
    try:
        expected = _sdk_message("POST", URL, json.loads(body))
    except TypeError:  # a list mixing null and strings: the SDK's sorted() raises
        reject()
    request = decode_request("POST", JSON_HEADERS, body.encode(), "")
    assert sv3.signed_message("POST", URL, request.params) == expected
    signature = _sdk_signature(TOKEN, expected, NONCE)
    assert sv3.verify_signature([TOKEN], "POST", URL, request.params, NONCE, [signature])


@pytest.mark.parametrize(
    ("literal", "rendered"),
    [
        ("12.5", "12.5"),
        ("12.50", "12.5"),
        ("1e16", "1e+16"),
        ("1E16", "1e+16"),
        ("1.0", "1.0"),
        ("1E5", "100000.0"),
        ("1e400", "inf"),
        ("-1e400", "-inf"),
        ("1e-400", "0.0"),
        ("-0.0", "-0.0"),
        ("-0", "0"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ("123456789012345678901234567890.5", "1.2345678901234568e+29"),
        ("true", "True"),
        ("null", "None"),
    ],
)
def test_json_scalars_render_as_the_sdk_renders_them(literal: str, rendered: str) -> None:
    body = '{"n": ' + literal + "}"
    request = decode_request("POST", JSON_HEADERS, body.encode(), "")
    assert sv3.signed_message("POST", URL, request.params) == f"{URL}?n{rendered}"
    assert _sdk_message("POST", URL, json.loads(body)) == f"{URL}?n{rendered}"


def test_a_number_changed_in_the_body_no_longer_verifies() -> None:
    signed = _sdk_signature(TOKEN, _sdk_message("POST", URL, {"n": 12.5}), NONCE)
    for body, ok in [('{"n": 12.5}', True), ('{"n": 12.50}', True), ('{"n": 12.51}', False)]:
        request = decode_request("POST", JSON_HEADERS, body.encode(), "")
        assert sv3.verify_signature([TOKEN], "POST", URL, request.params, NONCE, [signed]) is ok
