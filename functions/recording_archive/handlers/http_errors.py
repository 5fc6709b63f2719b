"""The one place domain errors become HTTP answers (CallbackFunction's JSON bodies).

models/errors.py names what went wrong (`code`, `reason`, fixed messages) and holds no HTTP
status; the status of each refusal, and the bodies of the answers that are not a stored event,
are decided here. Bodies never carry a value from the request or an exception's text.

An `Answer` becomes the HTTP API's (payload format 2.0) proxy result as Powertools' resolver
rendered it (compact JSON, one Content-Type header, no cookies): the function serves its one
route without the resolver, whose package import (every resolver, asyncio) every cold start paid
(bench/README.md, "Import time").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from recording_archive.config import CALLBACK_PATH
from recording_archive.models.errors import (
    CallbackRejectedError,
    CallbackValidationError,
    MalformedBodyError,
    PayloadTooLargeError,
    SignatureInvalidError,
    SignatureMissingError,
    UnsupportedMediaTypeError,
)

# Most specific class first is not needed: the status is looked up along the error's MRO.
REJECTION_STATUS: dict[type[CallbackRejectedError], int] = {
    CallbackRejectedError: 400,
    MalformedBodyError: 400,
    SignatureMissingError: 401,
    SignatureInvalidError: 403,  # NoAuthTokenError too: fail closed
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    CallbackValidationError: 422,
}


@dataclass(frozen=True)
class Answer:
    """One JSON answer: its status and body (a dict)."""

    status_code: int
    body: dict[str, Any]

    def proxy_result(self) -> dict[str, Any]:
        """The Lambda result API Gateway turns into the HTTP answer (payload format 2.0:
        https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html)."""
        return {
            "statusCode": self.status_code,
            "body": json.dumps(self.body, separators=(",", ":")),
            "isBase64Encoded": False,
            "headers": {"Content-Type": "application/json"},
            "cookies": [],
        }


def json_answer(status: int, body: dict[str, Any]) -> Answer:
    return Answer(status_code=status, body=body)


def rejection_status(exc: CallbackRejectedError) -> int:
    for cls in type(exc).__mro__:
        if cls in REJECTION_STATUS:
            return REJECTION_STATUS[cls]
    return 400


def rejected(exc: CallbackRejectedError) -> Answer:
    """A refused callback: its code, fixed message and (422) the fields named."""
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if isinstance(exc, CallbackValidationError):
        body["fields"] = exc.fields
    return json_answer(rejection_status(exc), body)


def secret_unavailable() -> Answer:
    """SecretUnavailableError: nothing is verified without the secret (fail closed, retryable)."""
    return json_answer(503, {"error": "unavailable", "message": "signature cannot be verified now"})


def store_unavailable() -> Answer:
    """FallbackUnavailableError: neither the table nor the queue took the event (Plivo retries)."""
    return json_answer(503, {"error": "unavailable", "message": "event could not be stored"})


def method_not_allowed() -> Answer:
    return json_answer(405, {"error": "method_not_allowed", "message": "use POST or GET"})


def not_found() -> Answer:
    return json_answer(404, {"error": "not_found", "message": f"the only route is {CALLBACK_PATH}"})
