"""OpenAPI description of the callback route: request shapes and every answer it can give.

Only documentation: the route decorators of `handlers/recording_callback.py` pass these to
Powertools, which renders them into `openapi.json` (`scripts/gen_openapi.py`); nothing here is
used to validate a request (that is `logic/callback_request.py` and `models/callback.py`).
"""

from __future__ import annotations

from typing import Any

from recording_archive.config import MAX_BODY_BYTES

# The attributes Plivo posts (all strings on the wire); others are accepted and stored too.
CALLBACK_ATTRIBUTES = (
    "EventName",
    "EventTimestamp",
    "From",
    "To",
    "VirtualNumber",
    "SessionUUID",
    "SequenceNumber",
    "RecordingUUID",
    "RecordingURL",
    "RecordingResourceURL",
    "RecordingDuration",
    "RecordingStartTime",
    "RecordingEndTime",
    "RecordingFormat",
)
_REQUIRED = ["EventName", "SessionUUID", "SequenceNumber"]

_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "SessionUUID": {"type": "string", "format": "uuid"},
    "SequenceNumber": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    "EventName": {"type": "string", "minLength": 1, "maxLength": 128},
}

_CALLBACK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        name: _FIELD_SCHEMAS.get(name, {"type": "string"}) for name in CALLBACK_ATTRIBUTES
    },
    "required": _REQUIRED,
    "additionalProperties": {"type": "string"},
}

_SIGNATURE_HEADERS: list[dict[str, Any]] = [
    {
        "name": "X-Plivo-Signature-V3",
        "in": "header",
        "required": True,
        "description": "Plivo signature V3 (base64 HMAC-SHA256; several may be comma-separated).",
        "schema": {"type": "string"},
    },
    {
        "name": "X-Plivo-Signature-V3-Nonce",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
    },
    {
        "name": "X-Plivo-Signature-Ma-V3",
        "in": "header",
        "required": False,
        "description": "Signature with the main account's token (subaccount sessions).",
        "schema": {"type": "string"},
    },
]

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "fields": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["error", "message"],
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}


RESPONSES: dict[int, Any] = {
    200: {
        "description": "Stored, duplicate, conflict (kept on the item) or queued (fallback).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "status": {
                            "type": "string",
                            "enum": ["stored", "duplicate", "conflict", "queued"],
                        },
                        "sessionUUID": {"type": "string"},
                        "sequenceNumber": {"type": "integer"},
                    },
                    "required": ["status", "sessionUUID", "sequenceNumber"],
                }
            }
        },
    },
    400: _error("Malformed body (not UTF-8, not form or JSON, nested too deeply, ...)."),
    401: _error("Signature headers missing."),
    403: _error("Signature does not match, or no auth token is configured."),
    405: _error("Method not allowed."),
    413: _error(f"Body over {MAX_BODY_BYTES} bytes."),
    415: _error("Content type other than form or JSON."),
    422: _error("Callback does not match the schema (the fields are named, never their values)."),
    503: _error("Neither the table nor the fallback queue took the event; or no secret."),
}
# Without a request body or parameters, every answer but 413/415 stays possible.
GET_RESPONSES = {k: v for k, v in RESPONSES.items() if k != 415}

POST_EXTENSIONS: dict[str, Any] = {
    "parameters": _SIGNATURE_HEADERS,
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _CALLBACK_SCHEMA},
            "application/json": {"schema": _CALLBACK_SCHEMA},
        },
    },
}

GET_EXTENSIONS: dict[str, Any] = {
    "parameters": [
        *_SIGNATURE_HEADERS,
        *(
            {
                "name": name,
                "in": "query",
                "required": name in _REQUIRED,
                "schema": _CALLBACK_SCHEMA["properties"][name],
            }
            for name in CALLBACK_ATTRIBUTES
        ),
    ],
}

OTHER_RESPONSES: dict[int, Any] = {405: RESPONSES[405]}
