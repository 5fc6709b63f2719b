"""Suite 4: schemathesis against openapi.json, on the local stack over HTTP."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reliability.hostile.harness import ROOT
from reliability.logscan import Secrets
from tests.support.plivo import sdk_signature
from tests.support.signed_fuzz import reproducible


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
