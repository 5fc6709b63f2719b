"""Lambda event filtering for the DynamoDB stream, which moto does not do: the template's
FilterCriteria patterns (`stream_filter_patterns`) and whether a record passes them
(`event_matches_filters`).

Imports `template` and `functions` only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from recording_archive_cli.local.functions import function_event
from recording_archive_cli.local.template import TemplateError, template_at


def stream_filter_patterns(
    logical_id: str = "ArchiveFunction", template_path: Path | None = None
) -> list[dict[str, Any]]:
    """The FilterCriteria patterns (parsed JSON) of the function's DynamoDB event source.

    An empty list means the event source has no filter (every record is delivered).
    """
    stream = function_event(template_at(template_path), logical_id, "DynamoDB")
    criteria = stream.get("FilterCriteria") or {}
    patterns: list[dict[str, Any]] = []
    for entry in criteria.get("Filters") or []:
        pattern = entry.get("Pattern")
        try:
            parsed = json.loads(pattern) if isinstance(pattern, str) else pattern
        except json.JSONDecodeError as exc:
            raise TemplateError(
                f"{logical_id}: FilterCriteria pattern is not JSON: {exc}"
            ) from None
        if not isinstance(parsed, dict):
            raise TemplateError(f"{logical_id}: FilterCriteria pattern is not a JSON object")
        patterns.append(parsed)
    return patterns


_MISSING = object()


def _numeric_ok(value: Any, conditions: Sequence[Any]) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    ops: dict[str, Callable[[float, float], bool]] = {
        "=": lambda a, b: a == b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    pairs = list(zip(conditions[::2], conditions[1::2], strict=True))
    return all(ops[str(op)](float(value), float(bound)) for op, bound in pairs)


def _prefix_ok(arg: Any, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(arg, Mapping):  # {"prefix": {"equals-ignore-case": "x"}}
        return value.lower().startswith(str(arg["equals-ignore-case"]).lower())
    return value.startswith(str(arg))


def _anything_but_ok(arg: Any, value: Any) -> bool:
    if isinstance(arg, Mapping):  # {"anything-but": {"prefix": "x"}}
        return not _matcher_ok(arg, value)
    excluded = arg if isinstance(arg, list) else [arg]
    return not any(_matcher_ok(e, value) for e in excluded)


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "exists": lambda arg, _value: bool(arg),
    "prefix": _prefix_ok,
    "suffix": lambda arg, value: isinstance(value, str) and value.endswith(str(arg)),
    "equals-ignore-case": lambda arg, value: (
        isinstance(value, str) and value.lower() == str(arg).lower()
    ),
    "numeric": lambda arg, value: _numeric_ok(value, arg),
    "anything-but": _anything_but_ok,
}


def _matcher_ok(matcher: Any, value: Any) -> bool:
    """One element of a pattern's list against a present leaf value."""
    if isinstance(matcher, Mapping):
        if len(matcher) != 1:
            raise ValueError(f"filter operator must have one key: {matcher!r}")
        (op, arg), *_ = matcher.items()
        if op not in _OPERATORS:
            raise ValueError(f"unsupported filter operator {op!r}")
        return _OPERATORS[op](arg, value)
    if matcher is None or value is None:
        return matcher is None and value is None
    if isinstance(matcher, (int, float)) and not isinstance(matcher, bool):
        return _numeric_ok(value, ["=", matcher])
    return bool(matcher == value)


def _leaf_ok(matchers: Sequence[Any], value: Any) -> bool:
    if value is _MISSING:
        return any(isinstance(m, Mapping) and m.get("exists") is False for m in matchers)
    if isinstance(value, Mapping):  # a list of matchers never matches an object
        return False
    values = value if isinstance(value, list) else [value]
    for matcher in matchers:
        if isinstance(matcher, Mapping) and "exists" in matcher:
            if matcher["exists"]:
                return True
            continue
        if any(_matcher_ok(matcher, v) for v in values):
            return True
    return False


def _pattern_ok(pattern: Mapping[str, Any], data: Any) -> bool:
    if not isinstance(data, Mapping):
        return False
    for key, expected in pattern.items():
        value = data.get(key, _MISSING)
        if isinstance(expected, Mapping):
            if not _pattern_ok(expected, value):
                return False
        elif isinstance(expected, list):
            if not _leaf_ok(expected, value):
                return False
        else:
            raise ValueError(f"filter pattern value for {key!r} must be an object or a list")
    return True


def event_matches_filters(record: Mapping[str, Any], patterns: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the event source mapping would deliver `record` (a stream record dict).

    Lambda event filtering: the record passes if any pattern matches (no pattern: everything
    passes). Within a pattern every key must match; a list holds alternatives: exact values,
    `prefix`, `suffix`, `equals-ignore-case`, `anything-but`, `numeric`, `exists`.
    """
    if not patterns:
        return True
    return any(_pattern_ok(pattern, record) for pattern in patterns)
