"""Callbacks to the real CallbackFunction handler exactly as Plivo would send them: a form body
signed with Plivo's own SDK (V3) for the API's public URL. The handler's environment (the
template's, through the integration tests' `function_env`) must be in place for
`post_signed_callback`."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.http_events import form_body, http_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.plivo import sdk_signature

# The URL the test events' request context derives (API id abc123, stage $default, us-east-1).
PUBLIC_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/callbacks/recording"
FORM = "application/x-www-form-urlencoded"


def signed_form_event(
    params: dict[str, Any],
    token: str,
    *,
    url: str = PUBLIC_URL,
    nonce: str | None = None,
    header: str = "X-Plivo-Signature-V3",
    extra_headers: dict[str, str] | None = None,
    **event_kwargs: Any,
) -> dict[str, Any]:
    """An API Gateway POST event: `params` form-encoded, signed with `token` for `url` (in
    `header`; a fresh nonce unless one is given), plus `extra_headers`."""
    nonce = nonce or uuid.uuid4().hex
    headers = {
        "Content-Type": FORM,
        header: sdk_signature(token, "POST", url, params, nonce),
        "X-Plivo-Signature-V3-Nonce": nonce,
        **(extra_headers or {}),
    }
    return http_event("POST", body=form_body(params), headers=headers, **event_kwargs)


def post_signed_callback(
    params: dict[str, str], token: str, context: FakeLambdaContext | None = None
) -> int:
    """The handler's HTTP status for `params`, form-encoded and signed with `token`."""
    from recording_archive.handlers.recording_callback import lambda_handler

    event = signed_form_event(params, token)
    return int(lambda_handler(event, context or FakeLambdaContext())["statusCode"])
