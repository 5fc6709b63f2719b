"""How long an event item is kept: the one computation of its ExpiresAt (DynamoDB TTL).

Two parameters decide: EventRetentionDays (RETENTION_DAYS: the event items) and
ArchiveRetentionDays (ARCHIVE_RETENTION_DAYS: the S3 lifecycle rule that expires the current
version of a recording that many days after it was archived). 0 keeps for ever.

The rule: an event never expires before its recording. When both are set, the event is kept
at least ArchiveRetentionDays plus one day from its receipt: S3 counts lifecycle days from the
object's creation (the archive, at or after the Completed event's receipt) and rounds the expiry
up to the next midnight UTC (https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-expire-general-considerations.html),
so the day covers that rounding; both deletions then run asynchronously, neither one on the
minute. While the event exists, `erase` and `sessions find` still reach its recording. A
recording archived later than a day after its receipt (the last sweeper attempts, an operator's
`recordings retry` of a FAILED one) can outlive its event by that delay.

With ArchiveRetentionDays = 0 (recordings kept for ever) EventRetentionDays applies as set: the
events go, the recordings stay under their keys (recordings/YYYY/MM/DD/SessionUUID/...), and
only the bucket then leads to them; the README's retention table says so.

Held items (LegalHold) carry no ExpiresAt: this computes the value for a new event (or for a
hold's release, which restores it), it never adds one to a stored item.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# S3 rounds a lifecycle expiry up to the next midnight UTC (see above): one day covers it.
S3_EXPIRY_ROUNDING_DAYS = 1


def expires_at(received_at: datetime, *, event_days: int, archive_days: int) -> int | None:
    """ExpiresAt (epoch seconds) of an event received at `received_at`, or None to keep it for
    ever. `event_days`: EventRetentionDays; `archive_days`: ArchiveRetentionDays (0: for ever).
    ValueError for a negative count or a naive time."""
    if event_days < 0 or archive_days < 0:
        raise ValueError("retention days cannot be negative")
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if event_days == 0:
        return None
    days = event_days
    if archive_days > 0:
        days = max(days, archive_days + S3_EXPIRY_ROUNDING_DAYS)
    return int((received_at + timedelta(days=days)).timestamp())
