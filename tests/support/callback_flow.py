"""Posts a callback to the real CallbackFunction handler exactly as Plivo would send it: a form
body signed with Plivo's own SDK (V3) for the API's public URL. The handler's environment (the
template's, through the integration tests' `function_env`) must be in place."""

from __future__ import annotations

import uuid

from tests.support.http_events import form_body, http_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.plivo import sdk_signature

# The URL the test events' request context derives (API id abc123, stage $default, us-east-1).
PUBLIC_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/callbacks/recording"


def post_signed_callback(
    params: dict[str, str], token: str, context: FakeLambdaContext | None = None
) -> int:
    """The handler's HTTP status for `params`, form-encoded and signed with `token`."""
    from recording_archive.handlers.recording_callback import lambda_handler

    nonce = uuid.uuid4().hex
    event = http_event(
        "POST",
        body=form_body(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Plivo-Signature-V3": sdk_signature(token, "POST", PUBLIC_URL, params, nonce),
            "X-Plivo-Signature-V3-Nonce": nonce,
        },
    )
    return int(lambda_handler(event, context or FakeLambdaContext())["statusCode"])
