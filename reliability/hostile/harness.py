"""The real CallbackFunction handler, in this process, against a moto server over HTTP; the
constants every hostile suite shares."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3

from recording_archive.handlers import wiring
from recording_archive.models.callback_openapi import GET_RESPONSES, OTHER_RESPONSES, RESPONSES
from reliability.logscan import Secrets
from tests.support.http_events import http_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.plivo import sdk_signature

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hostile-suite-token-8d1f0e7c"  # noqa: S105 - a local-only test token
PUBLIC_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/callbacks/recording"
FORM = "application/x-www-form-urlencoded"
# The answers openapi.json documents (POST, GET and the other methods): one source of truth.
DOCUMENTED = frozenset(RESPONSES) | frozenset(GET_RESPONSES) | frozenset(OTHER_RESPONSES)
EGRESS_GUARD_DIR = Path(__file__).resolve().parents[1] / "egress_guard"
EGRESS_LOG_ENV = "RELIABILITY_EGRESS_LOG"


@dataclass
class HandlerHarness:
    endpoint_url: str
    secrets: Secrets = field(default_factory=Secrets)
    tried: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    writes_from_rejected: int = 0
    failures: list[str] = field(default_factory=list)
    _nonces: int = 0

    def __post_init__(self) -> None:
        from recording_archive_cli.local.functions import function_environment
        from recording_archive_cli.local.resources import create_local_resources

        self.resources = create_local_resources(self.endpoint_url, auth_tokens=[TOKEN])
        env = function_environment(
            "CallbackFunction", self.resources, overrides={"PUBLIC_CALLBACK_URL": PUBLIC_URL}
        )
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
                "POWERTOOLS_METRICS_NAMESPACE": "PlivoRecordingArchive",
            }
        )
        self._saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        wiring.reset()
        self.secrets.tokens.add(TOKEN)
        kw = {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"}
        self._ddb = boto3.client("dynamodb", **kw)
        self._sqs = boto3.client("sqs", **kw)
        self._sm = boto3.client("secretsmanager", **kw)

    def secret(self) -> dict[str, Any]:
        """The auth secret's current value."""
        value = self._sm.get_secret_value(SecretId=self.resources.secret_arn)["SecretString"]
        return dict(json.loads(value))

    def set_secret(self, value: dict[str, Any]) -> None:
        """Replace the auth secret's value (and drop the handler's cached copy)."""
        self._sm.put_secret_value(
            SecretId=self.resources.secret_arn, SecretString=json.dumps(value)
        )
        wiring.reset()

    def close(self) -> None:
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        wiring.reset()

    def writes(self) -> int:
        # A scan reads at most 1 MB a page, COUNT included: large items need the pages.
        pages = self._ddb.get_paginator("scan").paginate(
            TableName=self.resources.table_name, Select="COUNT", ConsistentRead=True
        )
        items = sum(page["Count"] for page in pages)
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=self.resources.fallback_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(items) + sum(int(v) for v in attrs.values())

    def invoke(self, event: dict[str, Any], what: str = "") -> tuple[int, dict[str, Any]]:
        from recording_archive.handlers.recording_callback import lambda_handler

        before = self.writes()
        answer = lambda_handler(event, FakeLambdaContext())  # type: ignore[arg-type]
        status = int(answer["statusCode"])
        body_text = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            body_text = base64.b64decode(body_text).decode()
        self.tried += 1
        self.statuses[status] += 1
        try:
            body = json.loads(body_text)
        except ValueError:
            body = {}
            self.failures.append(f"{what}: answer is not JSON")
        if status >= 500 or status not in DOCUMENTED:
            self.failures.append(f"{what}: HTTP {status} {body_text[:200]}")
        if status != 200 and self.writes() != before:
            self.writes_from_rejected += 1
            self.failures.append(f"{what}: HTTP {status} but something was written")
        return status, body

    def signed(
        self,
        method: str,
        params: dict[str, Any],
        *,
        content_type: str = FORM,
        nonce: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        self._nonces += 1
        n = nonce or f"{self._nonces:020d}"
        sig = sdk_signature(TOKEN, method, PUBLIC_URL, params, n)
        self.secrets.signatures.add(sig)
        headers = {
            "X-Plivo-Signature-V3": sig,
            "X-Plivo-Signature-V3-Nonce": n,
            **(extra_headers or {}),
        }
        if method == "GET":
            return http_event("GET", headers=headers, raw_query=urlencode(params, doseq=True))
        headers["Content-Type"] = content_type
        body = (
            json.dumps(params)
            if content_type == "application/json"
            else urlencode(params, doseq=True)
        )
        return http_event("POST", headers=headers, body=body)

    def figures(self) -> dict[str, Any]:
        return {
            "inputs_tried": self.tried,
            "answers": {str(k): v for k, v in sorted(self.statuses.items())},
            "answers_5xx": sum(v for k, v in self.statuses.items() if k >= 500),
            "writes_from_rejected_requests": self.writes_from_rejected,
            "failures": self.failures[:20],
        }


@contextlib.contextmanager
def handler_harness() -> Iterator[HandlerHarness]:
    from tests.support.moto_server import reset_moto, running_moto_server

    with running_moto_server() as endpoint:
        # moto's backends are global to the process: in a pytest run, earlier tests' resources
        # (same names) are still there. Start from an empty local AWS, as the `aws` fixture does.
        reset_moto(endpoint)
        harness = HandlerHarness(endpoint)
        try:
            yield harness
        finally:
            harness.close()
