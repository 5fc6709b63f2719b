"""The fields of an API Gateway HTTP API request (payload format 2.0) the callback reads.

Why not Powertools' `APIGatewayProxyEventV2`: importing it runs the `data_classes` package's
`__init__`, which imports every event class of every AWS service (28 ms of every cold start of
CallbackFunction, about a tenth of the whole floor: bench/README.md, "Import time"). The callback
reads eight fields of one event shape; this view reads them the way that class does (same keys,
same defaults, the same stage-stripped `path`), and tests/unit/test_http_api_event.py checks the
two agree on the recorded event shapes.

Payload format 2.0: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class HttpApiEvent:
    """A read-only view of one HTTP API event: the values as API Gateway sent them."""

    raw: Mapping[str, Any]

    @property
    def _context(self) -> Mapping[str, Any]:
        context: Mapping[str, Any] = self.raw.get("requestContext") or {}
        return context

    @property
    def method(self) -> str:
        """The request's method, upper-case (requestContext.http.method)."""
        http: Mapping[str, Any] = self._context.get("http") or {}
        return str(http.get("method") or "").upper()

    @property
    def stage(self) -> str:
        return str(self._context.get("stage") or "$default")

    @property
    def domain_name(self) -> str:
        return str(self._context.get("domainName") or "")

    @property
    def api_id(self) -> str:
        return str(self._context.get("apiId") or "")

    @property
    def raw_path(self) -> str:
        return str(self.raw.get("rawPath") or "")

    @property
    def path(self) -> str:
        """The path without the stage's prefix (a named stage's URL starts with `/<stage>`)."""
        stage = self.stage
        if stage != "$default" and self.raw_path.startswith(f"/{stage}/"):
            return self.raw_path[len(stage) + 1 :]
        return self.raw_path

    @property
    def headers(self) -> dict[str, str]:
        """Header names lower-cased (HTTP API sends them so; a test event may not)."""
        return {str(k).lower(): str(v) for k, v in (self.raw.get("headers") or {}).items()}

    @property
    def raw_query_string(self) -> str:
        return str(self.raw.get("rawQueryString") or "")

    @property
    def body(self) -> str:
        return str(self.raw.get("body") or "")

    @property
    def is_base64_encoded(self) -> bool:
        return bool(self.raw.get("isBase64Encoded"))
