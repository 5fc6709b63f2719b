"""Phone numbers as the blinded session index keys them (dal/session_index.py).

Plivo sends the parties' numbers as digits without a `+` ("14155550123"); an operator types them
in any form ("+1 415-555-0123"). Both must reach the same index entry, so a number is reduced to
its ASCII digits before it is blinded. Nothing here logs or stores a number.
"""

from __future__ import annotations

# E.164 numbers have at most 15 digits (ITU-T E.164, section 6.1); a value with far more digits
# is no phone number (a SIP URI, an id), and KMS GenerateMac takes at most 4,096 bytes of
# message (https://docs.aws.amazon.com/kms/latest/APIReference/API_GenerateMac.html).
MAX_DIGITS = 32

_DIGITS = frozenset("0123456789")


def normalise_number(value: str) -> str | None:
    """The number's ASCII digits ("+1 415-555-0123" -> "14155550123"); None when the value has no
    digit or more than MAX_DIGITS of them."""
    digits = "".join(ch for ch in value if ch in _DIGITS)
    if not digits or len(digits) > MAX_DIGITS:
        return None
    return digits
