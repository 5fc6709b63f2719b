"""The HTTP `Retry-After` header, for the two HTTP clients (Plivo's REST API and its media host).

RFC 9110 section 10.2.3: delay-seconds or an HTTP-date. Anything else is ignored (None): the
caller falls back to its own backoff.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from `now`, never negative; None when absent or not understood."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
