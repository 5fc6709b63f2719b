"""Hostile input on the real CallbackFunction handler (in process, moto over HTTP) and on the
archiver's media policy: bounded runs of the suites `make reliability` runs in full."""

from __future__ import annotations

from typing import Any

import pytest

from reliability import hostile
from reliability.logscan import Secrets, scan

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harness_run() -> tuple[hostile.HandlerHarness, dict[str, Any], list[str]]:
    run = hostile.run_handler_suites(max_examples=60)
    return run.harness, run.results, run.lines


def test_fuzzed_requests_never_get_a_5xx_nor_write_when_rejected(harness_run) -> None:  # type: ignore[no-untyped-def]
    harness, results, _ = harness_run
    assert results["fuzz"]["error"] is None
    figures = harness.figures()
    assert figures["inputs_tried"] >= 60
    assert figures["answers_5xx"] == 0
    assert figures["writes_from_rejected_requests"] == 0
    assert figures["failures"] == []
    # The run reached storage, not only the early refusals.
    assert figures["answers"].get("200", 0) > 0
    assert figures["answers"].get("422", 0) > 0


def test_classic_attacks_get_their_precise_answers(harness_run) -> None:  # type: ignore[no-untyped-def]
    _, results, _ = harness_run
    classic = results["classic"]
    assert classic["body over the limit (signed)"]["status"] == 413
    assert classic["invalid UTF-8 body"]["status"] == 400
    assert classic["JSON nested 10000 deep"]["status"] == 400
    assert classic["JSON duplicated keys"]["status"] == 400
    assert classic["no signature headers"]["status"] == 401
    assert classic["wrong signature"]["status"] == 403
    assert classic["signed body, then tampered"]["status"] == 403
    assert classic["Host / X-Forwarded-* rewritten (signature still valid)"]["status"] == 200
    assert classic["replayed signed request"] == {
        "first": "stored",
        "second": "duplicate",
        "written_by_replay": 0,
    }


def test_no_log_line_holds_a_phone_number_token_or_signature(harness_run) -> None:  # type: ignore[no-untyped-def]
    harness, _, lines = harness_run
    assert len(lines) > 50  # the handler did log
    result = scan(lines, harness.secrets)
    assert result.leaks == []


def test_log_scanner_finds_each_kind_of_leak() -> None:
    secrets = Secrets(tokens={"tok-123456"}, signatures={"A" * 43 + "="})
    secrets.add_phones(["+14155550101"])
    leaks = scan(
        [
            '{"message": "token tok-123456"}',
            '{"sig": "' + "A" * 43 + '="}',
            '{"From": "+14155550101"}',
            '{"From": "14155550101"}',
            '{"From": "***0101", "n": "12345678901234567890"}',
        ],
        secrets,
    )
    assert [leak.split(":", 1)[0] for leak in leaks.leaks] == [
        "token",
        "signature",
        "phone",
        "phone",
    ]


def test_hostile_recording_urls_are_refused_before_any_connection() -> None:
    figures = hostile.ssrf_suite()
    assert figures["unexpected"] == []
    assert figures["urls_refused"] == figures["urls_tried"] == len(hostile.HOSTILE_URLS)
    assert figures["redirects_refused"] == figures["redirects_tried"]
    assert figures["outbound_connections_to_refused_hosts"] == 0
    assert figures["dns_lookups_of_refused_hosts"] == 0
    assert figures["trap_requests"] == 0
    # The recorder does see connections: the allowed host's control attempt is counted.
    assert figures["outbound_connections_allowed_host_control"] >= 1
