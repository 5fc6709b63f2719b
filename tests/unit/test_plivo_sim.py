"""The one simulated Plivo: callback sequences and signed requests, whichever signer is passed."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl, urlsplit

from recording_archive.logic.signature_v3 import verify_signature
from recording_archive_cli.plivo_sim import (
    EVENT_COMPLETED,
    EVENT_FAILED,
    EVENT_INITIATED,
    Callback,
    prepare,
    random_session,
    session_callbacks,
)
from tests.support.plivo import sdk_signature

TOKEN = "sim-token"
URL = "http://127.0.0.1:3000/callbacks/recording?x=1"


def test_one_call_is_initiated_then_completed_or_failed() -> None:
    ok = session_callbacks(media_url="http://m/{auth_id}/{recording_uuid}.wav")
    assert [c.event_name for c in ok] == [EVENT_INITIATED, EVENT_COMPLETED]
    assert [c.sequence for c in ok] == ["1", "2"]
    rec = ok[0].params["RecordingUUID"]
    assert ok[1].params["RecordingURL"].endswith(f"/{rec}.wav")
    assert ok[1].params["RecordingFormat"] == ".wav"
    (failed,) = session_callbacks(failed=True)
    assert failed.event_name == EVENT_FAILED
    assert failed.sequence == "1"


def test_random_sessions_are_reproducible_and_numbered_in_order() -> None:
    first = random_session(random.Random(7), calls=5, media_base="http://m", failed_rate=0.3)
    again = random_session(random.Random(7), calls=5, media_base="http://m", failed_rate=0.3)
    assert first == again
    callbacks, recordings, _numbers = first
    assert [c.key[1] for c in callbacks] == list(range(1, len(callbacks) + 1))
    completed = {c.key: c for c in callbacks if c.event_name == EVENT_COMPLETED}
    for rec in recordings:
        cb = completed[(rec.session_uuid, rec.sequence)]
        assert cb.params["RecordingURL"] == f"http://m{rec.path}"


def test_project_and_sdk_signers_sign_the_same_request() -> None:
    (cb,) = session_callbacks(failed=True)
    ours = prepare(cb, URL, TOKEN, nonce="12345678901234567890")
    sdk = prepare(cb, URL, TOKEN, signer=sdk_signature, nonce="12345678901234567890")
    assert ours.signature == sdk.signature
    assert ours.body == sdk.body
    assert ours.target == "/callbacks/recording?x=1"


def test_get_carries_the_params_in_the_query_and_verifies() -> None:
    (cb,) = session_callbacks(failed=True)
    prepared = prepare(Callback(cb.params, "GET"), URL, TOKEN)
    assert prepared.body is None
    query = dict(parse_qsl(urlsplit(prepared.url).query))
    assert query["x"] == "1"
    assert query["SessionUUID"] == cb.session_uuid
    nonce = prepared.headers["X-Plivo-Signature-V3-Nonce"]
    assert verify_signature(
        [TOKEN], "GET", URL, cb.params, nonce, [prepared.headers["X-Plivo-Signature-V3"]]
    )
