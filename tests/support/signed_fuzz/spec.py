"""Signed fuzzing, part 1: the constants, and specs (which attributes, which shapes, which
values) drawn by hypothesis with their expected meaning."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import EllipsisType
from typing import Any
from urllib.parse import quote, quote_plus

from hypothesis import strategies as st

from tests.support.plivo import AUTH_ID

__all__ = [
    "COMPLETED",
    "FORM",
    "JSON",
    "KEYS",
    "KNOWN",
    "LIMIT",
    "PADDING",
    "PHONES",
    "SEED_SPECS",
    "TIMESTAMPS",
    "URL",
    "Key",
    "Num",
    "Session",
    "Spec",
    "Stamp",
    "base_spec",
    "json_values",
    "nonblank_text",
    "specs",
]

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
            Stamp("2026-12-03 10:00:00 +2400", None),  # the reproductions
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
