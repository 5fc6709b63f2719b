"""Hostile input: fuzzing of the real handler, schemathesis against the OpenAPI description,
RecordingURLs aimed at the archiver, and the classic attacks one by one.

Figures: inputs tried, 5xx answers, writes caused by rejected requests, outbound requests to
refused hosts, and (with `logscan`) log lines holding a phone number, a token or a signature.

Outbound requests are counted twice over: in this process by `EgressRecorder` (urllib3's
connections, diverted to a loopback trap), and in the stack's ArchiveFunction worker by the
egress guard (`reliability/egress_guard/sitecustomize.py`, loaded through PYTHONPATH by
`end_to_end_stack_args`), which refuses and logs any lookup or connection off loopback.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
from hypothesis import given
from hypothesis import strategies as st

from recording_archive.models.callback_openapi import GET_RESPONSES, OTHER_RESPONSES, RESPONSES
from reliability.egress_guard.sitecustomize import is_loopback_host
from reliability.logscan import Secrets
from tests.integration.conftest import clear_caches
from tests.support.http_events import http_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.plivo import recording_event, sdk_signature
from tests.support.signed_fuzz import reproducible

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hostile-suite-token-8d1f0e7c"  # noqa: S105 - a local-only test token
PUBLIC_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/callbacks/recording"
FORM = "application/x-www-form-urlencoded"
# The answers openapi.json documents (POST, GET and the other methods): one source of truth.
DOCUMENTED = frozenset(RESPONSES) | frozenset(GET_RESPONSES) | frozenset(OTHER_RESPONSES)
EGRESS_GUARD_DIR = Path(__file__).resolve().parent / "egress_guard"
EGRESS_LOG_ENV = "RELIABILITY_EGRESS_LOG"


# ------------------------------------------------------------------------------------------
# The real CallbackFunction handler, in this process, against moto over HTTP
# ------------------------------------------------------------------------------------------
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
        from recording_archive_cli.local_resources import (
            create_local_resources,
            function_environment,
        )

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
        clear_caches()
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
        clear_caches()

    def close(self) -> None:
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        clear_caches()

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


# ------------------------------------------------------------------------------------------
# 1. Property-based fuzzing (hypothesis) of method, headers, query, content type and body
# ------------------------------------------------------------------------------------------
_text = st.text(st.characters(codec="utf-8"), max_size=60)
_header_values = st.one_of(_text, st.sampled_from(["", " ", "a\r\nX-Injected: 1", "\x00", "é" * 5]))
_content_types = st.one_of(
    st.sampled_from(
        [
            FORM,
            "application/json",
            f"{FORM}; charset=utf-8",
            "APPLICATION/JSON",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/xml",
            "",
        ]
    ),
    _text,
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _params(draw: st.DrawFn) -> dict[str, Any]:
    """A callback's attributes, each kept, mutated, dropped or joined by a stranger."""
    base = recording_event(
        draw(
            st.sampled_from(
                ["SessionRecordingInitiated", "SessionRecordingCompleted", "SessionRecordingFailed"]
            )
        ),
        session_uuid=str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4)),
        sequence=draw(st.integers(0, 10**6)),
        recording_url="http://127.0.0.1:9/x.mp3" if draw(st.booleans()) else "",
    )
    out: dict[str, Any] = {}
    for key, value in base.items():
        action = draw(st.sampled_from(["keep"] * 6 + ["drop", "mutate", "list"]))
        if action == "keep":
            out[key] = value
        elif action == "mutate":
            out[key] = draw(_text)
        elif action == "list":
            out[key] = [value, draw(_text)]
    for key in draw(st.lists(_text, max_size=3)):
        out[key] = draw(_text)
    return out


@st.composite
def http_requests(draw: st.DrawFn, harness: HandlerHarness) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(["signed", "signed", "random", "random-sig"]))
    if kind == "signed":
        params = draw(_params())
        method = draw(st.sampled_from(["POST", "POST", "GET"]))
        ctype = draw(st.sampled_from([FORM, "application/json"]))
        for key, value in params.items():  # the SDK signs strings (and lists of strings)
            if not isinstance(value, str | list):
                params[key] = str(value)
        try:
            return kind, harness.signed(method, params, content_type=ctype)
        except (TypeError, ValueError, AttributeError):
            kind = "random"
    method = draw(st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    headers = draw(
        st.dictionaries(
            st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20),
            _header_values,
            max_size=4,
        )
    )
    headers["content-type"] = draw(_content_types)
    if kind == "random-sig" or draw(st.booleans()):
        headers["x-plivo-signature-v3"] = draw(
            st.one_of(
                _text,
                st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode()),
            )
        )
        headers["x-plivo-signature-v3-nonce"] = draw(_text)
    body_kind = draw(st.sampled_from(["bytes", "text", "form", "json", "none"]))
    body: bytes | str | None
    if body_kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif body_kind == "text":
        body = draw(_text)
    elif body_kind == "form":
        body = urlencode(draw(_params()), doseq=True)
    elif body_kind == "json":
        body = json.dumps(draw(_json_values))
    else:
        body = None
    query = draw(
        st.one_of(
            st.just(""),
            _text.map(lambda t: urlencode({"q": t})),
            _params().map(lambda p: urlencode(p, doseq=True)),
        )
    )
    as_base64 = draw(st.booleans())
    if isinstance(body, bytes):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            as_base64 = True  # API Gateway base64-encodes a body that is not text
    event = http_event(method, headers=headers, body=body, raw_query=query, base64_body=as_base64)
    if body is not None and draw(st.integers(0, 9)) == 0:
        event["isBase64Encoded"] = True
        event["body"] = draw(_text)  # claims base64, is not
    return kind, event


def fuzz_handler(harness: HandlerHarness, *, max_examples: int, seed: int = 6) -> dict[str, Any]:
    kinds: Counter[str] = Counter()

    @reproducible(max_examples)
    @given(request=http_requests(harness))
    def check(request: tuple[str, dict[str, Any]]) -> None:
        kind, event = request
        kinds[kind] += 1
        status, _ = harness.invoke(event, what=f"fuzz[{kind}]")
        assert status < 500, status
        assert status in DOCUMENTED, status

    random.seed(seed)
    error = None
    try:
        check()
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
    return {"examples": dict(kinds), "error": error}


# ------------------------------------------------------------------------------------------
# 2. The classic attacks, one by one
# ------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------
# 3. RecordingURLs aimed at the archiver
# ------------------------------------------------------------------------------------------
HOSTILE_URLS = [
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.169.254/latest/meta-data/",
    "https://[fd00:ec2::254]/latest/meta-data/",
    "https://[::ffff:169.254.169.254]/",
    "https://2852039166/",  # 169.254.169.254 as one number
    "https://0xa9.0xfe.0xa9.0xfe/",
    "https://0251.0376.0251.0376/",
    "https://127.0.0.1/x.mp3",
    "https://127.1/x.mp3",
    "https://localhost/x.mp3",
    "https://localhost./x.mp3",
    "https://10.0.0.1/x.mp3",
    "https://192.168.1.1/x.mp3",
    "https://[::1]/x.mp3",
    "http://media.plivo.com/v1/x.mp3",
    "https://media.plivo.com:8443/v1/x.mp3",
    "https://evil.example/x.mp3",
    "https://media.plivo.com.evil.example/x.mp3",
    "https://evilmedia.plivo.com/x.mp3",
    "https://media.plivo.co/x.mp3",
    "https://media.plivo.com@evil.example/x.mp3",
    "https://user:pass@media.plivo.com/x.mp3",
    "https://evil.example#@media.plivo.com/x.mp3",
    "https://evil.example\\@media.plivo.com/x.mp3",
    "https://media.plivo.com%2f@evil.example/x.mp3",
    "https://m\u0435dia.plivo.com/x.mp3",  # Cyrillic e
    "https://media.pliv\u043e.com/x.mp3",  # Cyrillic o
    "https://xn--mdia-8cd.plivo.com/x.mp3",
    "https://aps1.m\u0435dia.plivo.com/x.mp3",
    "https://media.plivo.com/" + "a" * 5000 + ".mp3",
    "https://" + "a." * 120 + "media.plivo.com/x.mp3",
    "file:///etc/passwd",
    "gopher://media.plivo.com/x",
    "ftp://media.plivo.com/x.mp3",
    "https://media.plivo.com\r\nHost: evil.example/x.mp3",
    "https://media.plivo.com /x.mp3",
]
REDIRECTS = [
    "https://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/latest/meta-data/",
    "https://evil.example/steal",
    "http://evil.example/steal",
    "https://10.0.0.1/x",
    "https://user:pw@media.plivo.com/x.mp3",
    "file:///etc/passwd",
    "https://xn--mdia-8cd.plivo.com/x.mp3",  # an IDN look-alike (a Location header is ASCII)
]


class EgressRecorder:
    """Every outbound TCP connection urllib3 opens, recorded. One to a loopback address goes
    where it was aimed (the suite's own servers are on loopback); any other is diverted to a
    loopback trap (nothing can leave the machine): the count of those is exact."""

    def __init__(self, trap_port: int) -> None:
        self.trap_port = trap_port
        self.attempts: list[tuple[str, int]] = []  # off loopback: diverted to the trap
        self.loopback: list[tuple[str, int]] = []  # on loopback: let through

    @contextlib.contextmanager
    def installed(self) -> Iterator[EgressRecorder]:
        import urllib3.util.connection as uconn
        from urllib3 import connection as conn_mod

        original = uconn.create_connection

        def recording(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
            host, port = str(address[0]), int(address[1])
            if is_loopback_host(host):
                self.loopback.append((host, port))
                return original(address, *args, **kwargs)
            self.attempts.append((host, port))
            return original(("127.0.0.1", self.trap_port), *args, **kwargs)

        saved = conn_mod.connection.create_connection  # type: ignore[attr-defined]
        conn_mod.connection.create_connection = recording  # type: ignore[attr-defined]
        try:
            yield self
        finally:
            conn_mod.connection.create_connection = saved  # type: ignore[attr-defined]


def ssrf_suite() -> dict[str, Any]:
    """The production policy (https, media.plivo.com and *.media.plivo.com, public addresses):
    every hostile URL refused before any connection; an allowed URL does connect (control).
    Then redirects off the list, followed by a loopback origin: refused, never requested."""
    from recording_archive.dal.media_source import MediaPolicy, MediaSource
    from recording_archive.models.errors import ArchiveError, MediaRefusedError
    from tests.support.media_server import MediaServer, Redirect

    PUBLIC = "93.184.215.14"  # any global unicast address: the recorder diverts it to the trap
    resolved: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return [PUBLIC]

    policy = MediaPolicy(
        allowed_hosts=("media.plivo.com", "*.media.plivo.com"),
        connect_timeout=1,
        read_timeout=1,
        retry_budget=0,
    )
    refused = 0
    unexpected: list[str] = []
    with MediaServer() as trap, MediaServer() as origin:
        egress = EgressRecorder(trap.port)
        with egress.installed():
            source = MediaSource(policy, resolver=resolver, sleep=lambda _s: None)
            for url in HOSTILE_URLS:
                try:
                    with source.open(url):
                        unexpected.append(f"opened {url[:80]}")
                except MediaRefusedError:
                    refused += 1
                except ArchiveError as exc:
                    unexpected.append(f"{url[:80]}: {type(exc).__name__} (not a refusal)")
            hostile_attempts = len(egress.attempts) + len(egress.loopback)
            hostile_lookups = list(resolved)
            # Control: an allowed URL is looked up and connected to (TLS to the trap then fails).
            seen = len(egress.attempts)
            with (
                contextlib.suppress(ArchiveError),
                source.open("https://media.plivo.com/v1/Account/MA/Recording/r.mp3"),
            ):
                pass
            control_attempts = len(egress.attempts) - seen
            # Redirects off the list, in the local mode (http on loopback allowed; the origin's
            # name resolves to the loopback origin, any other name to a public address the
            # recorder diverts): the redirect target is never looked up nor requested.
            redirect_lookups: list[str] = []

            def local_resolver(host: str, port: int) -> list[str]:
                if host == "media.test":
                    return ["127.0.0.1"]
                redirect_lookups.append(host)
                return [PUBLIC]

            local = MediaSource(
                MediaPolicy(
                    allowed_hosts=("media.test",),
                    allow_loopback=True,
                    connect_timeout=1,
                    read_timeout=1,
                    retry_budget=0,
                ),
                resolver=local_resolver,
                sleep=lambda _s: None,
            )
            seen = len(egress.attempts)
            seen_loopback = len(egress.loopback)
            redirect_refused = 0
            for n, location in enumerate(REDIRECTS):
                origin.add(f"/r{n}.mp3", b"", faults=[Redirect(location, times=None)])
                try:
                    with local.open(f"http://media.test:{origin.port}/r{n}.mp3"):
                        unexpected.append(f"redirect to {location} followed")
                except MediaRefusedError:
                    redirect_refused += 1
                except ArchiveError as exc:
                    unexpected.append(f"redirect to {location}: {type(exc).__name__}")
            redirect_attempts = (
                len(egress.attempts)
                - seen
                + sum(1 for a in egress.loopback[seen_loopback:] if a != ("127.0.0.1", origin.port))
            )
            origin_connections = sum(
                1 for a in egress.loopback[seen_loopback:] if a == ("127.0.0.1", origin.port)
            )
        redirect_requests = len(origin.requests)
        trap_requests = len(trap.requests)
    return {
        "urls_tried": len(HOSTILE_URLS),
        "urls_refused": refused,
        "redirects_tried": len(REDIRECTS),
        "redirects_refused": redirect_refused,
        "origin_requests_for_redirects": redirect_requests,
        # The recorder saw the origin's own connections: it was in place for the redirects.
        "origin_connections_recorded": origin_connections,
        "outbound_connections_to_refused_hosts": hostile_attempts + redirect_attempts,
        "dns_lookups_of_refused_hosts": len(hostile_lookups) + len(redirect_lookups),
        "outbound_connections_allowed_host_control": control_attempts,
        "trap_requests": trap_requests,
        "unexpected": unexpected,
    }


# ------------------------------------------------------------------------------------------
# 4. schemathesis against openapi.json, on the local stack over HTTP
# ------------------------------------------------------------------------------------------
def schemathesis_suite(stack: Any, *, max_examples: int, secrets: Secrets) -> dict[str, Any]:
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_path(ROOT / "openapi.json")
    base_url = stack.callback_url.rsplit("/callbacks/recording", 1)[0]
    ddb = stack.client("dynamodb")

    def count() -> int:
        return int(ddb.scan(TableName=stack.table, Select="COUNT")["Count"])

    tried: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    writes_from_rejected = 0

    def make_check(operation: Any, mode: Any) -> Any:
        @reproducible(max_examples)
        @given(
            case=operation.as_strategy(generation_mode=mode),
            sign=st.booleans(),
            nonce=st.integers(0, 10**20 - 1),
        )
        def check(case: Any, sign: bool, nonce: int) -> None:
            nonlocal writes_from_rejected
            params = case.query if case.method.upper() == "GET" else case.body
            headers = dict(case.headers or {})
            if sign and isinstance(params, dict):
                try:
                    sig = sdk_signature(
                        stack.token,
                        case.method.upper(),
                        stack.callback_url,
                        {
                            str(k): v if isinstance(v, str) else json.dumps(v)
                            for k, v in params.items()
                        },
                        f"{nonce:020d}",
                    )
                except (TypeError, ValueError, AttributeError):
                    sig = "unsignable"
                secrets.signatures.add(sig)
                headers.update(
                    {"X-Plivo-Signature-V3": sig, "X-Plivo-Signature-V3-Nonce": f"{nonce:020d}"}
                )
                case.headers = headers
            before = count()
            response = case.call(base_url=base_url, timeout=30)
            tried[f"{operation.label} {mode.value}"] += 1
            statuses[response.status_code] += 1
            if response.status_code != 200 and count() != before:
                writes_from_rejected += 1
                failures.append(f"{operation.label}: {response.status_code} but written")
            try:
                case.validate_response(
                    response,
                    checks=[
                        not_a_server_error,
                        status_code_conformance,
                        content_type_conformance,
                        response_schema_conformance,
                    ],
                )
            except Exception as exc:
                failures.append(f"{operation.label} {mode.value}: {str(exc)[:400]}")

        return check

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            make_check(operation, mode)()
    return {
        "inputs_tried": sum(tried.values()),
        "by_operation": dict(tried),
        "answers": {str(k): v for k, v in sorted(statuses.items())},
        "answers_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "writes_from_rejected_requests": writes_from_rejected,
        "failures": failures[:20],
    }


# ------------------------------------------------------------------------------------------
# 5. Hostile RecordingURLs end to end: through the endpoint, to the local archiver
# ------------------------------------------------------------------------------------------
def accepted_by_policy() -> list[str]:
    """Those of HOSTILE_URLS the production policy does not refuse outright (whatever DNS
    says): each one is a finding. Every hostile URL must be refused before any lookup."""
    from recording_archive.dal.media_source import MediaPolicy, MediaSource
    from recording_archive.models.errors import MediaRefusedError, MediaUnavailableError

    def no_dns(host: str, port: int) -> list[str]:
        raise OSError("no DNS here")

    source = MediaSource(
        MediaPolicy(allowed_hosts=("media.plivo.com", "*.media.plivo.com")), resolver=no_dns
    )
    out = []
    for url in HOSTILE_URLS:
        try:
            source.check_url(url)
        except MediaRefusedError:
            continue
        except MediaUnavailableError:  # on the allow-list: it was looked up
            out.append(f"{url[:80]} (allowed, looked up)")
        else:  # accepted without a lookup (an IP literal)
            out.append(f"{url[:80]} (accepted)")
    return out


def end_to_end_stack_args(egress_log: Path) -> list[str]:
    """The extra `recording-archive local` arguments of `hostile_urls_end_to_end`'s stack: the
    production media policy (no loopback allowance), a short retry budget, and the egress guard
    in the ArchiveFunction worker (its PYTHONPATH and log; the package itself is installed)."""
    pythonpath = os.pathsep.join(
        p for p in (str(EGRESS_GUARD_DIR), os.environ.get("PYTHONPATH", "")) if p
    )
    pairs = [
        ("CallbackFunction", "MEDIA_ALLOW_LOOPBACK", "false"),
        ("ArchiveFunction", "MEDIA_ALLOW_LOOPBACK", "false"),
        ("ArchiveFunction", "MEDIA_RETRY_BUDGET_SECONDS", "2"),
        ("ArchiveFunction", "PYTHONPATH", pythonpath),
        ("ArchiveFunction", EGRESS_LOG_ENV, str(Path(egress_log).resolve())),
    ]
    out: list[str] = []
    for function, name, value in pairs:
        out += ["--env", f"{function}:{name}={value}"]
    return out


def new_egress_log() -> Path:
    """A fresh, empty path for the egress guard's log (the guard creates the file)."""
    return Path(tempfile.mkdtemp(prefix="reliability-egress-")) / "egress.jsonl"


def read_egress_log(egress_log: Path) -> list[dict[str, Any]]:
    try:
        text = Path(egress_log).read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"event": "refused", "unparsed": line[:200]})  # count it, to be safe
    return out


def hostile_urls_end_to_end(stack: Any, secrets: Secrets, egress_log: Path) -> dict[str, Any]:
    """Completed callbacks carrying HOSTILE_URLS, through the endpoint to the stack's archiver
    (started with `end_to_end_stack_args(egress_log)`: the production media policy, the egress
    guard): refused (422) by the endpoint, or stored and then FAILED by the archiver without a
    single lookup or connection off loopback; never an object."""
    from reliability.callbacks import Callback, Sender, prepare

    accepted = accepted_by_policy()
    sender = Sender(stack.callback_url)
    answers: Counter[int] = Counter()
    stored: list[tuple[str, int]] = []
    for url in HOSTILE_URLS:
        params = recording_event("SessionRecordingCompleted", sequence=2, recording_url=url)
        secrets.add_phones([params["From"], params["To"], params["VirtualNumber"]])
        p = prepare(Callback(params), stack.callback_url, stack.token)
        secrets.signatures.add(p.signature)
        result = sender.send(p)
        answers[result.status] += 1
        if result.status == 200:
            stored.append((params["SessionUUID"], 2))
    ddb = stack.client("dynamodb")

    def statuses(keys: list[tuple[str, int]]) -> list[str]:
        return [
            ddb.get_item(
                TableName=stack.table,
                ConsistentRead=True,
                Key={"SessionUUID": {"S": s}, "SequenceNumber": {"N": str(q)}},
            )
            .get("Item", {})
            .get("ArchiveStatus", {})
            .get("S", "")
            for s, q in keys
        ]

    # Every stored hostile URL must end FAILED (refused); one still pending after the wait
    # was not refused (it was looked up, retried, ...).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(x != "FAILED" for x in statuses(stored)):
        time.sleep(1)
    final = Counter(statuses(stored))
    objects = stack.client("s3").list_objects_v2(Bucket=stack.bucket).get("KeyCount", 0)
    log = read_egress_log(egress_log)
    refused = [e for e in log if e.get("event") != "installed"]
    guarded = {e.get("pid") for e in log if e.get("event") == "installed"}
    return {
        "urls_sent": len(HOSTILE_URLS),
        "answers": {str(k): v for k, v in sorted(answers.items())},
        "stored_then_refused_by_archiver": dict(final),
        "stored_refusals_expected": len(stored),
        "hostile_urls_accepted_by_policy": accepted,
        "objects_written": objects,
        "egress_guarded_processes": len(guarded),
        "outbound_attempts_to_refused_hosts": len(refused),
        "outbound_attempt_examples": refused[:5],
    }


@contextlib.contextmanager
def capture_logs() -> Iterator[io.StringIO]:
    """Every formatted line of the package's logger, into a buffer (and not onto stdout)."""
    import logging

    from recording_archive.observability import logger
    from tests.support.logs import captured_log_lines

    inner = logging.getLogger(logger.name)
    others = list(inner.handlers)
    for h in others:
        inner.removeHandler(h)
    try:
        with captured_log_lines() as buffer:
            yield buffer
    finally:
        for h in others:
            inner.addHandler(h)


def log_lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


@dataclass
class HandlerRun:
    """The handler suites' outcome: fuzz and classic results, the harness, every log line."""

    harness: HandlerHarness
    results: dict[str, Any]
    lines: list[str]


def run_handler_suites(*, max_examples: int) -> HandlerRun:
    """Fuzzing and the classic attacks on the handler, with its logs and output captured."""
    out = io.StringIO()
    with (
        capture_logs() as buffer,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
        handler_harness() as harness,
    ):
        results = {
            "fuzz": fuzz_handler(harness, max_examples=max_examples),
            "classic": classic_attacks(harness),
        }
    return HandlerRun(harness, results, log_lines(buffer) + out.getvalue().splitlines())
