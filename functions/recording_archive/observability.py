"""The package's one Logger and one Metrics, and the masking every log line relies on.

Phone numbers (From, To, VirtualNumber) never appear in full in a log line: `mask_phone` keeps the
last four digits at most. Auth tokens and signatures are never logged at all.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics

SERVICE = "plivo-recording-archive"
NAMESPACE = "PlivoRecordingArchive"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

PHONE_FIELDS = frozenset({"From", "To", "VirtualNumber", "FirstParty", "SecondParty"})


def mask_phone(value: str) -> str:
    """`+14155550123` -> `***0123`; anything with fewer than 8 characters -> `***`."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) < 8:
        return "***"
    return "***" + digits[-4:]


def masked_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """The callback's attributes, safe to log: phone fields masked, nothing else changed."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in PHONE_FIELDS:
            first = value[0] if isinstance(value, list) and value else value
            out[key] = mask_phone(first if isinstance(first, str) else str(first))
        else:
            out[key] = value
    return out


# Metrics are flushed after every invocation; invocations that only emit dimensioned metrics
# (single_metric) or none at all would otherwise print a UserWarning into the logs every time.
warnings.filterwarnings("ignore", message="No application metrics to publish")
