"""The EMF metric values a function printed (one JSON document a line, Powertools Metrics)."""

from __future__ import annotations

import json

_DECODER = json.JSONDecoder()
_START = '{"_aws"'


def emf_values(output: str, name: str) -> list[float]:
    """Every value of metric `name` in the EMF documents among `output`'s lines. A line may hold
    more than one document (the local stack's workers share its stderr): each is read."""
    values: list[float] = []
    for line in output.splitlines():
        at = line.find(_START)
        while at >= 0:
            document, end = _DECODER.raw_decode(line, at)
            value = document.get(name)
            if value is not None:
                values += [float(v) for v in value] if isinstance(value, list) else [float(value)]
            at = line.find(_START, end)
    return values
