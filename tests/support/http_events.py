"""API Gateway HTTP API (payload 2.0) events, built from `sam local generate-event` output."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

_TEMPLATE = json.loads(
    (Path(__file__).parent.parent / "events" / "http_api_proxy.json").read_text("utf-8")
)


def http_event(
    method: str,
    *,
    path: str = "/callbacks/recording",
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    raw_query: str = "",
    base64_body: bool = True,
    stage: str = "$default",
    domain: str = "abc123.execute-api.us-east-1.amazonaws.com",
    api_id: str = "abc123",
) -> dict[str, Any]:
    event = copy.deepcopy(_TEMPLATE)
    for key in ("cookies", "pathParameters", "stageVariables"):
        event.pop(key, None)
    event["requestContext"].pop("authorizer", None)
    event["requestContext"].pop("authentication", None)
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    event["routeKey"] = f"{method} /callbacks/recording"
    event["rawPath"] = raw_path
    event["rawQueryString"] = raw_query
    event["queryStringParameters"] = None
    # HTTP API lower-cases header names.
    event["headers"] = {k.lower(): v for k, v in (headers or {}).items()}
    ctx = event["requestContext"]
    ctx.update(
        {
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".", maxsplit=1)[0],
            "stage": stage,
        }
    )
    ctx["routeKey"] = event["routeKey"]
    ctx["http"].update({"method": method, "path": raw_path, "sourceIp": "203.0.113.9"})
    if body is None:
        event.pop("body", None)
        event["isBase64Encoded"] = False
    else:
        data = body.encode("utf-8") if isinstance(body, str) else body
        if base64_body:
            event["body"] = base64.b64encode(data).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = data.decode("utf-8")
            event["isBase64Encoded"] = False
    return event


def form_body(params: dict[str, Any]) -> str:
    return urlencode(params, doseq=True)
