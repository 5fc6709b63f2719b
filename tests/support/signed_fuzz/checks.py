"""Signed fuzzing, part 3: the properties of a stored item and of the metrics a case emits."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

from tests.support.signed_fuzz.cases import Built, _plain
from tests.support.signed_fuzz.spec import TIMESTAMPS, Num, Stamp

__all__ = [
    "emf_documents",
    "item_problems",
    "metric_counts",
    "same_value",
]


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
