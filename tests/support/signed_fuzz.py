"""Signed fuzzing: callbacks of any shape, signed by Plivo's own SDK, and what must hold for each.

Shared by the bounded run in `make test` (tests/integration/test_signed_fuzz.py), the large run
in `make reliability` (reliability/signed_fuzz.py) and the SDK comparison of JSON bodies
(tests/unit/test_signature_v3.py).

A case is drawn as a *spec* (which attributes, which shapes, which values) with its expected
answer worked out from the documented rules alone, not from the code under test:

- 413 body (or query) over 64 KiB; 415 content type neither form nor JSON; 400 an attribute
  name that is empty (DynamoDB refuses one, at any depth);
- 422 only for a key attribute (SessionUUID, SequenceNumber, EventName, RecordingUUID,
  RecordingURL) that is missing, not valid (not a UUID, not a non-negative integer, ...), or
  given twice with different values; on SessionRecordingCompleted, RecordingUUID and
  RecordingURL are required;
- 200 for everything else: unknown attributes, repeated non-key attributes, blank values,
  numbers of any size and exponent, booleans, nulls, nested objects, timestamps of any shape.

The spec becomes a request only when it is sent (`build`), under a fresh SessionUUID, so that
every case has a key of its own and "stored exactly once" can be checked per case.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import EllipsisType
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import boto3
from botocore.config import Config
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from tests.support.http_events import http_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.moto_server import free_port
from tests.support.plivo import AUTH_ID, sdk_signature

URL = "https://abc123.execute-api.us-east-1.amazonaws.com/callbacks/recording"
LIMIT = 64 * 1024
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
COMPLETED = "SessionRecordingCompleted"
KEYS = ("SessionUUID", "SequenceNumber", "EventName", "RecordingUUID", "RecordingURL")
TIMESTAMPS = {"EventTimestamp": "EventTime", "RecordingStartTime": "RecordingStartTime"}
TIMESTAMPS["RecordingEndTime"] = "RecordingEndTime"
KNOWN = (*KEYS, *TIMESTAMPS, "RecordingDuration", "RecordingFormat", "RecordingResourceURL")
PHONES = ("From", "To", "VirtualNumber")
PADDING = "Padding"


# ------------------------------------------------------------------------------------------------
# Values and their expected meaning
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Num:
    """A JSON number exactly as written in the body."""

    literal: str

    def value(self) -> Decimal:
        return Decimal(self.literal)


@dataclass(frozen=True)
class Session:
    """The case's fresh SessionUUID, written in one of the shapes a UUID parser takes."""

    shape: str

    def render(self, u: uuid.UUID) -> str:
        return {
            "canonical": str(u),
            "upper": str(u).upper(),
            "hex": u.hex,
            "braces": "{" + str(u) + "}",
            "urn": u.urn,
        }[self.shape]


@dataclass(frozen=True)
class Key:
    """A key attribute's value and what the rules say of it: valid, blank (absent for the
    Completed check) or invalid."""

    value: Any
    verdict: str


@dataclass(frozen=True)
class Stamp:
    """A timestamp value and the UTC instant it means: None when it means none, ... when the
    shape is free text whose meaning the oracle does not claim to know."""

    value: Any
    instant: datetime | EllipsisType | None


@dataclass
class Spec:
    kind: str  # "form", "json", "get"
    content_type: str  # the header ("" for GET)
    attrs: list[tuple[str, Any]]  # in order; a name may repeat (form, get)
    quote_via: Callable[..., str] = quote_plus
    compact: bool = True
    ascii_json: bool = True
    pad_to: int = 0
    table_down: bool = False
    replay: bool = False

    def names(self) -> list[str]:
        return [name for name, _ in self.attrs]


_text = st.text(st.characters(codec="utf-8"), max_size=40)
nonblank_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
_unknown_names = nonblank_text.filter(lambda n: n not in KNOWN and n not in PHONES and n != PADDING)

_number_literals = st.one_of(
    st.sampled_from(
        [
            "12.5",
            "12.50",
            "1e16",
            "1E16",
            "1.0",
            "1e400",
            "-1e400",
            "1e-400",
            "-0.0",
            "-0",
            "0",
            "1E5",
            "0.1",
            "5e-324",
            "2.5e-7",
            "1e007",
            "123456789012345678901234567890",
            "9007199254740993",
            "1.7976931348623157e308",
            "1.000000000000000000000000000000000000000",
            "1e-131",
            "9.99e125",
            "1e126",
        ]
    ),
    st.builds(
        lambda sign, whole, frac, exp: f"{sign}{whole}{frac}{exp}",
        st.sampled_from(["", "-"]),
        st.one_of(st.just("0"), st.integers(1, 10**60).map(str)),
        st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,30}", fullmatch=True)),
        st.one_of(
            st.just(""),
            st.builds(
                lambda e, s, d: f"{e}{s}{d}",
                st.sampled_from("eE"),
                st.sampled_from(["", "+", "-"]),
                st.integers(0, 450).map(str),
            ),
        ),
    ),
).map(Num)

_json_scalars = st.one_of(_text, _number_literals, st.booleans(), st.none())
json_values = st.recursive(
    _json_scalars,
    # Lists hold scalars only: the SDK renders a list holding an object or a list as Python's
    # repr (or crashes), a shape this endpoint refuses as unsignable rather than guess.
    lambda inner: (
        st.lists(_json_scalars, max_size=4) | st.dictionaries(nonblank_text, inner, max_size=4)
    ),
    max_leaves=10,
)


def _rarely(one_in: int) -> st.SearchStrategy[bool]:
    """True about once in `one_in` draws (hypothesis favours 0 in `integers(0, n)`)."""
    return st.sampled_from([False] * (one_in - 1) + [True])


def _mostly(
    valid: st.SearchStrategy[Key], invalid: st.SearchStrategy[Key]
) -> st.SearchStrategy[Key]:
    """A valid value about eight times in nine: most cases must reach storage."""
    # one_of() would merge repeated branches: the weight is drawn first.
    return st.sampled_from([True] * 8 + [False]).flatmap(lambda ok: valid if ok else invalid)


def _session_values(kind: str) -> st.SearchStrategy[Key]:
    valid = st.sampled_from(["canonical", "upper", "hex", "braces", "urn"]).map(
        lambda s: Key(Session(s), "valid")
    )
    bad = ["", "not-a-uuid", "1234", " 0f8fad5b-d9cb-469f-a165-70867728950e"]
    bad += ["0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b-d9cb-469f-a165-70867728950e\n"]
    invalid = st.sampled_from(bad).map(lambda v: Key(v, "invalid"))
    if kind == "json":
        invalid |= st.sampled_from([5, None, True, ["x"], {"a": "b"}]).map(
            lambda v: Key(v, "invalid")
        )
    return _mostly(valid, invalid)


def _sequence_values(kind: str) -> st.SearchStrategy[Key]:
    valid = st.one_of(
        st.integers(0, 10**6).map(str),
        st.from_regex(r"[0-9]{1,18}", fullmatch=True),
    ).map(lambda v: Key(v, "valid"))
    bad = ["", "-1", "1.5", "1e3", " 1", "1 ", "+1", "\uff11", "9" * 19, "0x10", "one"]
    invalid = st.sampled_from(bad).map(lambda v: Key(v, "invalid"))
    if kind != "json":
        return _mostly(valid, invalid)
    valid_json = st.integers(0, 10**18 - 1).map(lambda v: Key(Num(str(v)), "valid"))
    invalid_json = st.sampled_from(
        [Num(str(10**18)), Num("-1"), Num("1.0"), Num("1e2"), True, None, ["1"]]
    ).map(lambda v: Key(v, "invalid"))
    return _mostly(valid | valid_json, invalid | invalid_json)


def _event_names(kind: str) -> st.SearchStrategy[Key]:
    known = st.sampled_from(
        [COMPLETED, COMPLETED, "SessionRecordingInitiated", "SessionRecordingFailed"]
    )
    valid = st.one_of(known, known, st.text(st.characters(codec="utf-8"), min_size=1, max_size=128))
    invalid = st.sampled_from(["", "x" * 129]).map(lambda v: Key(v, "invalid"))
    if kind == "json":
        invalid |= st.sampled_from([Num("1"), None, False, ["x"]]).map(lambda v: Key(v, "invalid"))
    return _mostly(valid.map(lambda v: Key(v, "valid")), invalid)


def _recording_uuids(kind: str) -> st.SearchStrategy[Key]:
    valid = st.one_of(
        st.uuids().map(str), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", fullmatch=True)
    ).map(lambda v: Key(v, "valid"))
    invalid = st.sampled_from(["../x", "a b", "-abc", "x" * 129, "é", "a/b"]).map(
        lambda v: Key(v, "invalid")
    )
    blank = [Key("", "blank")]
    if kind == "json":
        blank.append(Key(None, "blank"))
        invalid |= st.sampled_from([Num("5"), True, ["a"]]).map(lambda v: Key(v, "invalid"))
    return _mostly(valid, invalid | st.sampled_from(blank))


def _recording_urls(kind: str) -> st.SearchStrategy[Key]:
    valid = st.one_of(
        st.uuids().map(lambda u: f"https://media.plivo.com/v1/Account/{AUTH_ID}/Recording/{u}.mp3"),
        st.sampled_from(
            ["https://aps1.media.plivo.com/r.wav", "https://h/", "https://media.plivo.com/a?b=c#d"]
        ),
    ).map(lambda v: Key(v, "valid"))
    invalid = st.sampled_from(
        ["http://media.plivo.com/x.mp3", "ftp://x/y", "https://", "https:///path", "nope", "//h/x"]
    ).map(lambda v: Key(v, "invalid"))
    blank = [Key("", "blank")]
    if kind == "json":
        blank.append(Key(None, "blank"))
        invalid |= st.sampled_from([Num("5"), False, ["https://h/"]]).map(
            lambda v: Key(v, "invalid")
        )
    return _mostly(valid, invalid | st.sampled_from(blank))


@st.composite
def _structured_stamps(draw: st.DrawFn) -> Stamp:
    """`YYYY-MM-DD hh:mm:ss[.f] [tz] [UTC]` with fields at and past their limits; the instant
    it means is worked out with datetime's own constructors (None where they refuse)."""
    year = draw(st.one_of(st.integers(1, 9999), st.sampled_from([1, 9999, 2026])))
    month, day = draw(st.integers(1, 13)), draw(st.integers(1, 31))
    hour, minute, second = (
        draw(st.integers(0, 24)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )
    frac = draw(st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True)))
    tz_kind = draw(st.sampled_from(["", "Z", "colon", "plain"]))
    sign = draw(st.sampled_from(["+", "-"]))
    tz_h, tz_m = draw(st.integers(0, 25)), draw(st.integers(0, 61))
    tz = {"": "", "Z": "Z", "colon": f"{sign}{tz_h:02d}:{tz_m:02d}"}.get(
        tz_kind, f"{sign}{tz_h:02d}{tz_m:02d}"
    )
    text = (
        f"{year:04d}-{month:02d}-{day:02d}{draw(st.sampled_from([' ', 'T']))}"
        f"{hour:02d}:{minute:02d}:{second:02d}{frac}"
        f"{draw(st.sampled_from(['', ' '])) if tz else ''}{tz}"
        f"{draw(st.sampled_from(['', ' UTC', ' GMT']))}"
    )
    instant: datetime | None
    try:
        offset = timedelta(0)
        if tz_kind in ("colon", "plain"):
            if tz_m > 59:
                raise ValueError("minutes")
            offset = (1 if sign == "+" else -1) * timedelta(hours=tz_h, minutes=tz_m)
        micro = int((frac[1:] or "0")[:6].ljust(6, "0"))
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset))
        instant = local.astimezone(UTC)
    except (ValueError, OverflowError):
        instant = None
    return Stamp(text, instant)


def _stamps(kind: str) -> st.SearchStrategy[Stamp]:
    epoch = st.integers(10**8, 10**10 - 1).map(
        lambda n: Stamp(str(n), datetime.fromtimestamp(n, tz=UTC))
    )
    fixed = st.sampled_from(
        [
            Stamp("2026-12-03 10:00:00 +2400", None),  # the issue's reproductions
            Stamp("0001-01-01 00:00:00 +0100", None),
            Stamp("9999-12-31 23:59:59 -0100", None),
            Stamp(
                "2023-07-05 10:25:40.877364 +0000 UTC",
                datetime(2023, 7, 5, 10, 25, 40, 877364, tzinfo=UTC),
            ),
            Stamp("", None),
        ]
    )
    free = _text.map(lambda t: Stamp(t, ...))
    out = st.one_of(_structured_stamps(), _structured_stamps(), epoch, fixed, free)
    if kind == "json":
        out |= st.one_of(
            st.integers(10**8, 10**10 - 1).map(
                lambda n: Stamp(Num(str(n)), datetime.fromtimestamp(n, tz=UTC))
            ),
            st.sampled_from([Stamp(None, None), Stamp(True, None), Stamp(Num("1e400"), None)]),
            json_values.map(lambda v: Stamp(v, ...)),
        )
    return out


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    """One signed callback of any shape (see the module docstring)."""
    kind = draw(st.sampled_from(["form", "form", "json", "json", "get"]))
    if kind == "get":
        content_type = ""
    elif draw(_rarely(15)):  # signed, but a content type the endpoint refuses
        content_type = draw(st.sampled_from(["text/plain", "multipart/form-data; boundary=x", ""]))
    elif kind == "form":
        content_type = draw(st.sampled_from([FORM, FORM, f"{FORM}; charset=UTF-8", FORM.upper()]))
    else:
        content_type = draw(
            st.sampled_from([JSON, JSON, f"{JSON}; charset=utf-8", "Application/JSON"])
        )
    attrs: list[tuple[str, Any]] = []
    strategies = {
        "SessionUUID": _session_values,
        "SequenceNumber": _sequence_values,
        "EventName": _event_names,
        "RecordingUUID": _recording_uuids,
        "RecordingURL": _recording_urls,
    }
    for name, strategy in strategies.items():
        roll = draw(st.sampled_from(["once"] * 37 + ["absent", "absent if optional", "twice"]))
        if roll == "absent" or (roll == "absent if optional" and name in KEYS[3:]):
            continue  # absent
        attrs.append((name, draw(strategy(kind))))
        if kind != "json" and roll == "twice":  # given twice: the same value, or another one
            attrs.append((name, draw(st.one_of(st.just(attrs[-1][1]), strategy(kind)))))
    for name in TIMESTAMPS:
        if draw(st.booleans()):
            attrs.append((name, draw(_stamps(kind))))
    others: list[tuple[str, st.SearchStrategy[Any]]] = [
        ("RecordingDuration", st.one_of(_text, _number_literals.map(lambda n: n.literal))),
        ("RecordingFormat", st.sampled_from([".mp3", ".wav", "MP3", ".ogg", ""]) | _text),
        ("RecordingResourceURL", _text),
        *(
            (phone, st.sampled_from(["+14155550101", "+919876543210", ""]) | _text)
            for phone in PHONES
        ),
    ]
    for name, strategy in others:
        if draw(st.booleans()):
            attrs.append((name, draw(strategy if kind != "json" else strategy | json_values)))
    for name in draw(st.lists(_unknown_names, max_size=4, unique=True)):
        attrs.append((name, draw(_text if kind != "json" else json_values)))
    if kind != "json":  # repeated attributes of any name: the list is kept
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
            if attrs:  # usually one that is not a key (a key given twice is its own case)
                name, _value = attrs[draw(st.integers(0, len(attrs) - 1))]
                if name in KEYS and not draw(_rarely(4)):
                    continue
                attrs.append((name, draw(_repeat_value(name, kind))))
    if draw(_rarely(10)):  # an empty name: refused (DynamoDB holds none)
        attrs.append(("", draw(_text)))
    order = draw(st.permutations(range(len(attrs))))
    return Spec(
        kind=kind,
        content_type=content_type,
        attrs=[attrs[i] for i in order],
        quote_via=draw(st.sampled_from([quote_plus, quote])),
        compact=draw(st.booleans()),
        ascii_json=draw(st.booleans()),
        pad_to=draw(st.sampled_from([0] * 12 + [LIMIT - 1000, LIMIT, LIMIT + 1])),
        table_down=draw(_rarely(8)),
        replay=draw(_rarely(10)),
    )


def base_spec(kind: str, *extra: tuple[str, Any], **options: Any) -> Spec:
    """A valid Completed callback of `kind` ("form", "json", "get"), plus `extra` attributes."""
    attrs: list[tuple[str, Any]] = [
        ("SessionUUID", Key(Session("canonical"), "valid")),
        ("SequenceNumber", Key("3", "valid")),
        ("EventName", Key(COMPLETED, "valid")),
        ("RecordingUUID", Key("0f8fad5b-d9cb-469f-a165-70867728950e", "valid")),
        ("RecordingURL", Key("https://media.plivo.com/v1/r.mp3", "valid")),
        *extra,
    ]
    content_type = {"form": FORM, "json": JSON, "get": ""}[kind]
    return Spec(**{"kind": kind, "content_type": content_type, "attrs": attrs, **options})


def _without(spec: Spec, name: str) -> Spec:
    spec.attrs = [(n, v) for n, v in spec.attrs if n != name]
    return spec


def _replaced(spec: Spec, name: str, value: Any) -> Spec:
    spec.attrs = [(n, value if n == name else v) for n, v in spec.attrs]
    return spec


# Every run tries these first (hypothesis `@example`), whatever it generates after: the issue's
# three reproductions (a JSON number, timestamps out of range, a repeated unknown attribute)
# and one case of each documented outcome.
SEED_SPECS: tuple[Spec, ...] = (
    base_spec("json", ("RecordingDuration", Num("12.5")), ("Size", Num("1e16"))),
    base_spec("form", ("EventTimestamp", Stamp("2026-12-03 10:00:00 +2400", None))),
    base_spec("json", ("RecordingStartTime", Stamp("0001-01-01 00:00:00 +0100", None))),
    base_spec("get", ("EventTimestamp", Stamp("9999-12-31 23:59:59 -0100", None))),
    base_spec("form", ("Custom", "a"), ("Custom", "b")),
    base_spec("form", ("SequenceNumber", Key("4", "valid"))),
    _without(base_spec("form"), "SessionUUID"),
    _replaced(base_spec("get"), "SessionUUID", Key("not-a-uuid", "invalid")),
    base_spec("json", content_type="text/plain"),
    base_spec("form", pad_to=LIMIT + 1),
    base_spec("json", pad_to=LIMIT),
    base_spec("json", ("", "empty name")),
    base_spec("form", table_down=True),
    base_spec("json", replay=True),
)


def _repeat_value(name: str, kind: str) -> st.SearchStrategy[Any]:
    if name == "SessionUUID":
        return _session_values(kind)
    if name in KEYS:
        return {
            "SequenceNumber": _sequence_values,
            "EventName": _event_names,
            "RecordingUUID": _recording_uuids,
            "RecordingURL": _recording_urls,
        }[name](kind)
    if name in TIMESTAMPS:
        return _stamps(kind)
    return _text


# ------------------------------------------------------------------------------------------------
# From a spec to a request, and the SDK's signature of it
# ------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------
# The properties
# ------------------------------------------------------------------------------------------------
def same_value(stored: Any, sent: Any) -> bool:  # noqa: PLR0911 - one return per JSON type
    """Whether a stored Payload value is the value sent: strings, booleans and nulls equal;
    a number the same number exactly (a Decimal, or its exact text when DynamoDB cannot hold
    it); lists and objects element by element."""
    if isinstance(sent, Num):
        if isinstance(stored, Decimal) or (isinstance(stored, str) and stored):
            try:
                return Decimal(stored) == sent.value()
            except ArithmeticError:
                return False
        return False
    if isinstance(sent, bool) or sent is None:
        return stored is sent
    if isinstance(sent, str):
        return isinstance(stored, str) and stored == sent
    if isinstance(sent, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(sent)
            and all(same_value(a, b) for a, b in zip(stored, sent, strict=True))
        )
    if isinstance(sent, dict):
        return (
            isinstance(stored, dict)
            and stored.keys() == sent.keys()
            and all(same_value(stored[k], v) for k, v in sent.items())
        )
    return False


def item_problems(built: Built, item: dict[str, Any]) -> list[str]:
    """What is wrong with the stored item of a case: raw body, every attribute, parsed times."""
    problems: list[str] = []
    if item.get("RawBody") != built.raw:
        problems.append("RawBody differs from the body received")
    payload = item.get("Payload")
    if built.spec.kind == "json":
        sent: dict[str, Any] = dict(built.pairs)
    else:
        sent = {}
        for name, value in built.pairs:
            sent.setdefault(name, []).append(value)
    if not isinstance(payload, dict) or payload.keys() != sent.keys():
        return [*problems, "Payload does not hold exactly the attributes received"]
    problems += [
        f"Payload[{name!r}] differs" for name, v in sent.items() if not same_value(payload[name], v)
    ]
    # Parsed timestamps: present with the right instant, or absent when there is none.
    stamps: dict[str, list[Stamp]] = {}
    for name, value in built.spec.attrs:
        if name in TIMESTAMPS and isinstance(value, Stamp):
            stamps.setdefault(name, []).append(value)
    for name, attribute in TIMESTAMPS.items():
        given_ = stamps.get(name, [])
        if built.spec.kind == "json":
            given_ = given_[-1:]
        if len({json.dumps(_plain(s.value, built.session), default=str) for s in given_}) > 1:
            expected: Any = None  # two different values: no single instant
        elif given_:
            expected = given_[0].instant
        else:
            expected = None
        got = item.get(attribute)
        if expected is ...:
            if got is not None and not _is_iso(got):
                problems.append(f"{attribute} is not an ISO timestamp")
        elif expected is None and got is not None:
            problems.append(f"{attribute} present for an unparseable value")
        elif isinstance(expected, datetime):
            want = expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            if got != want:
                problems.append(f"{attribute} is {got!r}, expected {want!r}")
    return problems


def _is_iso(value: Any) -> bool:
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def emf_documents(text: str) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric-format documents among printed lines."""
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict) and "_aws" in doc:
                out.append(doc)
    return out


def metric_counts(docs: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """(metric name, Reason dimension or "") -> count, over EMF documents."""
    counts: Counter[tuple[str, str]] = Counter()
    for doc in docs:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                name = metric["Name"]
                value = doc.get(name, 0)
                total = sum(value) if isinstance(value, list) else value
                counts[(name, str(doc.get("Reason", "")))] += int(total)
    return counts


# ------------------------------------------------------------------------------------------------
# The target: the real handler in this process, against moto over HTTP
# ------------------------------------------------------------------------------------------------
@dataclass
class Figures:
    inputs: int = 0
    answers: Counter[int] = field(default_factory=Counter)
    expected: Counter[str] = field(default_factory=Counter)
    stored_in_table: int = 0
    stored_via_queue: int = 0
    replays: int = 0
    lost: int = 0
    raw_mismatches: int = 0
    unexpected_answers: int = 0
    refusals_not_counted: int = 0
    failures: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs_tried": self.inputs,
            "answers": {str(k): v for k, v in sorted(self.answers.items())},
            "answers_5xx": sum(v for k, v in self.answers.items() if k >= 500),
            "expected_outcomes": dict(sorted(self.expected.items())),
            "stored_in_table": self.stored_in_table,
            "stored_via_fallback_queue": self.stored_via_queue,
            "replays": self.replays,
            "lost": self.lost,
            "raw_value_mismatches": self.raw_mismatches,
            "unexpected_answers": self.unexpected_answers,
            "refusals_not_counted": self.refusals_not_counted,
            "failures": self.failures[:20],
            "error": self.error,
        }


class HandlerTarget:
    """The CallbackFunction handler with its environment already applied (the template's, on
    moto); `table_down()` swaps in a table client that cannot connect, as in an outage."""

    def __init__(self, endpoint_url: str, table_name: str, queue_url: str, token: str) -> None:
        kw: dict[str, Any] = {"endpoint_url": endpoint_url, "region_name": "us-east-1"}
        self.token = token
        self.signatures: set[str] = set()  # every signature sent, for the log scan
        self.table_name = table_name
        self.queue_url = queue_url
        self._ddb = boto3.client("dynamodb", **kw)
        self._sqs = boto3.client("sqs", **kw)
        self._dead = boto3.client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{free_port()}",
            region_name="us-east-1",
            config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"max_attempts": 1}),
        )

    def invoke(self, event: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        """(status, JSON answer, what the invocation printed: its EMF documents)."""
        from recording_archive.handlers.recording_callback import lambda_handler

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            answer = lambda_handler(event, FakeLambdaContext())  # type: ignore[arg-type]
        body = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8")
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        return int(answer["statusCode"]), data if isinstance(data, dict) else {}, printed.getvalue()

    @contextlib.contextmanager
    def table_down(self, down: bool) -> Iterator[None]:
        from recording_archive.dal.events_table import RecordingEventStore
        from recording_archive.handlers import recording_callback

        if not down:
            yield
            return
        live = recording_callback.default_dependencies()
        recording_callback._deps = recording_callback.CallbackDependencies(
            settings=live.settings,
            store=RecordingEventStore(self._dead, self.table_name),
            fallback=live.fallback,
            credentials=live.credentials,
        )
        try:
            yield
        finally:
            recording_callback._deps = None

    def items(self, session: uuid.UUID) -> list[dict[str, Any]]:
        from recording_archive.dal.events_table import deserialize_item

        found = self._ddb.query(
            TableName=self.table_name,
            KeyConditionExpression="SessionUUID = :s",
            ExpressionAttributeValues={":s": {"S": str(session)}},
            ConsistentRead=True,
        )["Items"]
        return [deserialize_item(item) for item in found]

    def take_queued(self) -> list[dict[str, Any]]:
        """Every message of the fallback queue, decoded, and deleted."""
        from recording_archive.dal.fallback_queue import decode_message

        out: list[dict[str, Any]] = []
        while True:
            got = self._sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30
            ).get("Messages", [])
            if not got:
                return out
            for message in got:
                out.append(decode_message(message["Body"]))
                self._sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


def _send(target: HandlerTarget, built: Built, event: dict[str, Any], figures: Figures) -> Sent:
    with target.table_down(built.spec.table_down):
        status, answer, printed = target.invoke(event)
        figures.inputs += 1
        figures.answers[status] += 1
        replayed = None
        # A replay while the table is down is queued again (the drain's idempotent put makes
        # it one event): replays are sent only while the table is up.
        if built.spec.replay and not built.spec.table_down and status == 200:
            replayed = target.invoke(event)[:2]
            figures.inputs += 1
            figures.replays += 1
            figures.answers[replayed[0]] += 1
    return Sent(status, answer, metric_counts(emf_documents(printed)), replayed)


@dataclass
class Sent:
    status: int
    answer: dict[str, Any]
    metrics: Counter[tuple[str, str]]
    replayed: tuple[int, dict[str, Any]] | None


def _answer_problems(built: Built, sent: Sent, figures: Figures) -> list[str]:
    want_status, want_reason = built.expected
    problems: list[str] = []
    if sent.status >= 500:
        problems.append(f"HTTP {sent.status} for a signed request")
    # The answer names the error code; a 422's finer reason is the metric's dimension.
    want_error = "invalid_callback" if want_status == 422 else want_reason
    got_error = sent.answer.get("error", "")
    if (sent.status, got_error) != (want_status, want_error):
        figures.unexpected_answers += 1
        problems.append(f"HTTP {sent.status} {got_error!r}, expected {want_status} {want_error!r}")
    counted = sent.metrics[("CallbackRejected", want_reason)]
    if want_status != 200 and sent.status == want_status and counted != 1:
        figures.refusals_not_counted += 1
        problems.append(f"refusal not counted once as CallbackRejected/{want_reason}")
    return problems


def _storage_problems(
    target: HandlerTarget, built: Built, sent: Sent, figures: Figures
) -> list[str]:
    items = target.items(built.session)
    queued = target.take_queued()
    if sent.status != 200:
        return (
            [f"HTTP {sent.status} but {len(items) + len(queued)} written"]
            if items or queued
            else []
        )
    problems: list[str] = []
    down = built.spec.table_down
    where = "queued" if down else "stored"
    if sent.answer.get("status") != where:
        problems.append(f"answered {sent.answer.get('status')!r}, expected {where!r}")
    kept, other = (queued, items) if down else (items, queued)
    if len(kept) != 1 or other:
        figures.lost += 1
        return [*problems, f"200 but stored {len(kept)} times ({len(other)} elsewhere)"]
    if down:
        figures.stored_via_queue += 1
    else:
        figures.stored_in_table += 1
    item_issues = item_problems(built, kept[0])
    if item_issues:
        figures.raw_mismatches += 1
    problems += item_issues
    if sent.replayed is not None and (sent.replayed[0], sent.replayed[1].get("status")) != (
        200,
        "duplicate",
    ):
        problems.append(f"replay answered {sent.replayed[0]} {sent.replayed[1].get('status')!r}")
    return problems


def check_case(target: HandlerTarget, built: Built, figures: Figures, nonce: str) -> list[str]:
    """Send one case (twice if it is a replay) and return what does not hold."""
    event = signed_event(built, target.token, nonce)
    target.signatures.add(event["headers"]["x-plivo-signature-v3"])
    want_status, want_reason = built.expected
    figures.expected[f"{want_status} {want_reason}".strip()] += 1
    sent = _send(target, built, event, figures)
    return _answer_problems(built, sent, figures) + _storage_problems(target, built, sent, figures)


def reproducible(max_examples: int) -> settings:
    """Derandomised, no example database, no deadline (shared machine), no health checks (a
    handler invocation is slower than hypothesis expects of a test)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def run(target: HandlerTarget, *, max_examples: int) -> Figures:
    """Run the signed fuzzing; every problem is recorded, and the first one shrunk by
    hypothesis becomes `figures.error`."""
    figures = Figures()
    nonces = iter(range(10**12))

    def check(spec: Spec) -> None:
        built = build(copy.deepcopy(spec))
        problems = check_case(target, built, figures, f"{next(nonces):020d}")
        if problems:
            figures.failures.append(
                f"{built.spec.kind} {built.expected}: {'; '.join(problems)}"[:600]
            )
        assert not problems, problems

    for seed in reversed(SEED_SPECS):
        check = example(spec=seed)(check)
    try:
        reproducible(max_examples)(given(spec=specs())(check))()
    except Exception as exc:  # the shrunk failure, reported as a figure
        figures.error = f"{type(exc).__name__}: {str(exc)[:800]}"
    return figures
