"""Suite 2: the classic attacks on the handler, one by one."""

from __future__ import annotations

import base64
import uuid
from typing import Any
from urllib.parse import urlencode

from reliability.hostile.harness import FORM, PUBLIC_URL, TOKEN, HandlerHarness
from tests.support.http_events import http_event
from tests.support.plivo import recording_event, sdk_signature


def classic_attacks(harness: HandlerHarness) -> dict[str, Any]:
    from recording_archive.config import MAX_BODY_BYTES

    results: dict[str, Any] = {}
    ok = recording_event("SessionRecordingInitiated")
    harness.secrets.add_phones([ok["From"], ok["To"], ok["VirtualNumber"]])

    def run(
        name: str, event: dict[str, Any], expected: set[int], outcome: str | None = None
    ) -> None:
        """`outcome`: the answer's `error` (or, for a 200, `status`) that must come back."""
        status, body = harness.invoke(event, what=name)
        got = body.get("error", body.get("status"))
        results[name] = {"status": status, "error": got}
        if status not in expected:
            harness.failures.append(f"{name}: HTTP {status}, expected {sorted(expected)}")
        elif outcome is not None and got != outcome:
            harness.failures.append(f"{name}: answered {got!r}, expected {outcome!r}")

    def signed_raw(
        body: bytes, ctype: str = FORM, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        n = "12345678901234567890"
        sig = sdk_signature(TOKEN, "POST", PUBLIC_URL, params or {}, n)
        harness.secrets.signatures.add(sig)
        return http_event(
            "POST",
            headers={
                "Content-Type": ctype,
                "X-Plivo-Signature-V3": sig,
                "X-Plivo-Signature-V3-Nonce": n,
            },
            body=body,
        )

    big = {**ok, "Padding": "x" * (MAX_BODY_BYTES + 1)}
    run("body over the limit (signed)", harness.signed("POST", big), {413})
    run("query over the limit (GET, signed)", harness.signed("GET", big), {413})
    run("invalid UTF-8 body", signed_raw(b"EventName=\xff\xfe&SessionUUID=x"), {400})
    run("invalid UTF-8 percent-escape", signed_raw(b"EventName=%ff%fe"), {400, 403})
    run(
        "JSON nested 10000 deep", signed_raw(b"[" * 10000 + b"]" * 10000, "application/json"), {400}
    )
    nested: Any = "x"
    for _ in range(20):
        nested = {"a": nested}
    run(
        "JSON nested 20 deep (signed)",
        harness.signed("POST", {**ok, "Extra": nested}, content_type="application/json"),
        {400},
    )
    run(
        "JSON duplicated keys",
        signed_raw(
            b'{"EventName":"SessionRecordingInitiated","EventName":"x"}', "application/json"
        ),
        {400},
    )
    run(
        "form: an attribute twice with different values (signed)",
        harness.signed("POST", {**ok, "SessionUUID": [ok["SessionUUID"], str(uuid.uuid4())]}),
        {422},
    )
    run("JSON array body", signed_raw(b"[1,2]", "application/json"), {400})
    run(
        "body claims base64 and is not",
        {**harness.signed("POST", ok), "body": "%%%not base64", "isBase64Encoded": True},
        {400},
    )
    # The nonce is signed as sent (CR/LF included) and only ever stored, never echoed into a
    # header: a correctly signed callback with such a nonce is stored.
    run(
        "header injection: CRLF in the nonce",
        harness.signed("POST", ok, nonce="1\r\nX-Injected: yes"),
        {200},
        "stored",
    )
    run(
        "header injection: CRLF in the signature",
        http_event(
            "POST",
            headers={
                "Content-Type": FORM,
                "X-Plivo-Signature-V3": "abc\r\nSet-Cookie: x=1",
                "X-Plivo-Signature-V3-Nonce": "1",
            },
            body=urlencode(ok),
        ),
        {403},
    )
    run(
        "no signature headers",
        http_event("POST", headers={"Content-Type": FORM}, body=urlencode(ok)),
        {401},
    )
    run(
        "nonce without signature",
        http_event(
            "POST",
            headers={"Content-Type": FORM, "X-Plivo-Signature-V3-Nonce": "1"},
            body=urlencode(ok),
        ),
        {401},
    )
    wrong = harness.signed("POST", ok)
    wrong["headers"]["x-plivo-signature-v3"] = base64.b64encode(b"\0" * 32).decode()
    run("wrong signature", wrong, {403})
    other_token = http_event(
        "POST",
        headers={
            "Content-Type": FORM,
            "X-Plivo-Signature-V3-Nonce": "1",
            "X-Plivo-Signature-V3": sdk_signature("another-token", "POST", PUBLIC_URL, ok, "1"),
        },
        body=urlencode(ok),
    )
    run("signed with another token", other_token, {403})
    tampered = harness.signed("POST", ok)
    tampered["body"] = base64.b64encode(
        urlencode({**ok, "SequenceNumber": "999"}).encode()
    ).decode()
    run("signed body, then tampered", tampered, {403})
    host = harness.signed("POST", ok)
    host["headers"].update(
        {"host": "evil.example", "x-forwarded-host": "evil.example", "x-forwarded-proto": "http"}
    )
    run("Host / X-Forwarded-* rewritten (signature still valid)", host, {200})
    run(
        "unsupported content type (signed)",
        {
            **harness.signed("POST", ok),
            "headers": {**harness.signed("POST", ok)["headers"], "content-type": "text/plain"},
        },
        {415},
    )
    run("method DELETE", http_event("DELETE"), {405})
    # A replayed signed request: stored once, the second is a duplicate (nothing written).
    replay = harness.signed("POST", recording_event("SessionRecordingFailed"))
    s1, b1 = harness.invoke(replay, what="replay (first)")
    before = harness.writes()
    s2, b2 = harness.invoke(replay, what="replay (second)")
    results["replayed signed request"] = {
        "first": b1.get("status"),
        "second": b2.get("status"),
        "written_by_replay": harness.writes() - before,
    }
    if (s1, s2, b2.get("status")) != (200, 200, "duplicate") or harness.writes() != before:
        harness.failures.append("replay: not a harmless duplicate")
    # No token configured (the secret as the template creates it): fail closed, nothing written.
    saved = harness.secret()
    harness.set_secret({"auth_id": "", "auth_tokens": []})
    try:
        run(
            "no token configured (signed)",
            harness.signed("POST", recording_event("SessionRecordingInitiated")),
            {403},
            "no_auth_token_configured",
        )
    finally:
        harness.set_secret(saved)
    return results
