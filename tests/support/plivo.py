"""Realistic Plivo recording callbacks, and signatures computed by Plivo's own SDK."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from plivo.utils.signature_v3 import construct_get_url, construct_post_url, get_signature_v3

AUTH_ID = "MAODUYZMJMZJA1ZTZLZJ"


def sdk_signature(token: str, method: str, url: str, params: dict[str, Any], nonce: str) -> str:
    """The V3 signature exactly as plivo-python computes it."""
    params = copy.deepcopy(params)
    if method.upper() == "GET":
        base = construct_get_url(url, params).decode("utf-8")
    else:
        base = construct_post_url(url, params).decode("utf-8")
    sig: bytes = get_signature_v3(token.encode(), base, nonce.encode())
    return sig.decode()


def recording_event(
    event_name: str,
    *,
    session_uuid: str | None = None,
    sequence: int = 1,
    recording_uuid: str | None = None,
    recording_url: str = "",
    fmt: str = ".mp3",
    duration: str = "12",
) -> dict[str, str]:
    session_uuid = session_uuid or str(uuid.uuid4())
    recording_uuid = recording_uuid or str(uuid.uuid4())
    params = {
        "EventName": event_name,
        "EventTimestamp": "2026-11-20 10:25:40 +0000 UTC",
        "From": "+14155550101",
        "To": "+919876543210",
        "VirtualNumber": "+14155550199",
        "SessionUUID": session_uuid,
        "SequenceNumber": str(sequence),
    }
    if event_name != "SessionRecordingFailed":
        params |= {
            "RecordingUUID": recording_uuid,
            "RecordingFormat": fmt,
            "RecordingStartTime": "2026-11-20 10:25:10 +0000 UTC",
        }
    if event_name == "SessionRecordingCompleted":
        url = recording_url or (
            f"https://media.plivo.com/v1/Account/{AUTH_ID}/Recording/{recording_uuid}{fmt}"
        )
        params |= {
            "RecordingURL": url,
            "RecordingResourceURL": (
                f"https://api.plivo.com/v1/Account/{AUTH_ID}/Recording/{recording_uuid}/"
            ),
            "RecordingDuration": duration,
            "RecordingEndTime": "2026-11-20 10:25:40 +0000 UTC",
        }
    return params
