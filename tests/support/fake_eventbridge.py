"""An EventBridge endpoint on 127.0.0.1 that answers every PutEvents with a failed entry.

PutEvents can answer HTTP 200 and still reject entries: FailedEntryCount > 0, and an ErrorCode
on each rejected entry instead of an EventId
(https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html). moto accepts
every well-formed entry, so this server stands in for the service where a test needs that
answer: point the client at it with `AWS_ENDPOINT_URL_EVENTBRIDGE` (botocore's per-service
endpoint variable). Real HTTP and the real botocore parsing; nothing is patched.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class FailingEventBridge:
    """`with FailingEventBridge() as bus:` ... `bus.url`, `bus.requests` (the PutEvents bodies)."""

    def __init__(self, error_code: str = "InternalFailure") -> None:
        self.error_code = error_code
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                target = self.headers.get("X-Amz-Target", "")
                owner.requests.append({"target": target, "body": body})
                entries = body.get("Entries") or []
                answer = {
                    "FailedEntryCount": len(entries),
                    "Entries": [
                        {"ErrorCode": owner.error_code, "ErrorMessage": "injected by the test"}
                        for _ in entries
                    ],
                }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FailingEventBridge:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
