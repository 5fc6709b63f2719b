"""Hostile input on the real CallbackFunction handler (in process, moto over HTTP) and on the
archiver's media policy: bounded runs of the suites `make reliability` runs in full."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reliability import hostile
from reliability.egress_guard.sitecustomize import is_loopback_host
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
    # The fuzzer's own examples (the classic attacks are counted apart).
    assert sum(results["fuzz"]["examples"].values()) >= 60
    assert figures["inputs_tried"] >= 60 + len(results["classic"])
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
    assert classic["header injection: CRLF in the nonce"] == {"status": 200, "error": "stored"}
    assert classic["no token configured (signed)"] == {
        "status": 403,
        "error": "no_auth_token_configured",
    }
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
    assert figures["origin_requests_for_redirects"] == len(hostile.REDIRECTS)
    # The recorder does see connections: the allowed host's control attempt is counted, and
    # the redirecting origin's own (loopback) connections were recorded and let through.
    assert figures["outbound_connections_allowed_host_control"] >= 1
    assert figures["origin_connections_recorded"] >= 1


def test_every_hostile_url_is_refused_by_the_policy_itself() -> None:
    assert hostile.accepted_by_policy() == []


def test_end_to_end_stack_args_put_the_egress_guard_in_the_archiver(tmp_path: Path) -> None:
    log = tmp_path / "egress.jsonl"
    args = hostile.end_to_end_stack_args(log)
    assert args[0::2] == ["--env"] * 5
    pairs = dict(a.split("=", 1) for a in args[1::2])
    assert pairs["CallbackFunction:MEDIA_ALLOW_LOOPBACK"] == "false"
    assert pairs["ArchiveFunction:MEDIA_ALLOW_LOOPBACK"] == "false"
    assert pairs["ArchiveFunction:MEDIA_RETRY_BUDGET_SECONDS"] == "2"
    assert pairs["ArchiveFunction:RELIABILITY_EGRESS_LOG"] == str(log.resolve())
    path = pairs["ArchiveFunction:PYTHONPATH"].split(os.pathsep)
    assert path[0] == str(hostile.EGRESS_GUARD_DIR)
    assert (hostile.EGRESS_GUARD_DIR / "sitecustomize.py").is_file()


def _guarded(code: str, log: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(hostile.EGRESS_GUARD_DIR),
        hostile.EGRESS_LOG_ENV: str(log),
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_egress_guard_refuses_and_logs_a_connection_off_loopback(tmp_path: Path) -> None:
    log = tmp_path / "egress.jsonl"
    # TEST-NET-1 (documentation range): refused before any packet, and the refusal is an
    # OSError, what a network failure would raise.
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 9), timeout=5)\n"
        "except OSError as exc:\n"
        "    print('refused', type(exc).__name__, exc)\n"
        "else:\n"
        "    print('connected')\n"
        "for host in ('evil.example', '10.0.0.1'):\n"
        "    s = socket.socket()\n"
        "    try:\n"
        "        print('connect_ex', s.connect_ex((host, 80)))\n"
        "    finally:\n"
        "        s.close()\n"
    )
    done = _guarded(code, log)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("refused")
    assert "connected" not in done.stdout.splitlines()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["installed", "refused", "refused", "refused"]
    # create_connection resolves first: the lookup is what is refused (and logged once).
    assert (events[1]["call"], events[1]["host"], events[1]["port"]) == (
        "getaddrinfo",
        "192.0.2.1",
        9,
    )
    assert [(e["call"], e["host"]) for e in events[2:]] == [
        ("connect_ex", "evil.example"),
        ("connect_ex", "10.0.0.1"),
    ]


def test_egress_guard_lets_loopback_through(tmp_path: Path) -> None:
    log = tmp_path / "egress.jsonl"
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            f"with socket.create_connection(('127.0.0.1', {port}), timeout=5):\n"
            "    pass\n"
            f"with socket.create_connection(('localhost', {port}), timeout=5):\n"
            "    pass\n"
            "print('ok')\n"
        )
        done = _guarded(code, log)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["installed"]


def test_egress_guard_is_inert_without_its_log_variable() -> None:
    env = {k: v for k, v in os.environ.items() if k != hostile.EGRESS_LOG_ENV}
    env["PYTHONPATH"] = str(hostile.EGRESS_GUARD_DIR)
    code = (
        "import socket, sitecustomize\n"
        "print(sitecustomize.__file__)\n"
        "print(socket.socket.connect is socket._socket.socket.connect,"
        " socket.getaddrinfo.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        str(hostile.EGRESS_GUARD_DIR / "sitecustomize.py"),
        "True socket",
    ]


def test_egress_guard_stops_the_archivers_fetch_of_a_host_the_policy_let_through(
    tmp_path: Path,
) -> None:
    """The regression the guard exists for: a policy that lets a hostile host through. The
    archiver's real MediaSource (default resolver) is stopped at the lookup, and it is logged."""
    log = tmp_path / "egress.jsonl"
    code = (
        "from recording_archive.dal.media import MediaPolicy, MediaSource\n"
        "from recording_archive.models.errors import MediaUnavailableError\n"
        "source = MediaSource(MediaPolicy(allowed_hosts=('evil.example',), retry_budget=0))\n"
        "try:\n"
        "    with source.open('https://evil.example/x.mp3'):\n"
        "        print('opened')\n"
        "except MediaUnavailableError as exc:\n"
        "    print('unavailable')\n"
    )
    done = _guarded(code, log)
    assert (done.returncode, done.stdout.strip()) == (0, "unavailable"), done.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["event"], e.get("call"), e.get("host")) for e in events] == [
        ("installed", None, None),
        ("refused", "getaddrinfo", "evil.example"),
    ]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        (b"127.0.0.1", True),
        (None, True),
        ("127.1", False),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("::ffff:10.0.0.1", False),
        ("localhost.evil.example", False),
        ("media.plivo.com", False),
        (2130706433, False),
    ],
)
def test_one_loopback_test_for_the_guard_and_the_recorder(host: Any, loopback: bool) -> None:
    # The in-process EgressRecorder and the egress guard judge hosts with the same function.
    assert hostile.is_loopback_host is is_loopback_host
    assert is_loopback_host(host) is loopback


def test_importing_the_guard_as_a_module_installs_nothing() -> None:
    code = (
        "import socket\n"
        "import reliability.egress_guard.sitecustomize as guard\n"
        "print(socket.socket.connect is socket._socket.socket.connect,"
        " socket.getaddrinfo.__module__, guard.is_loopback_host('::1'))\n"
    )
    env = {**os.environ, hostile.EGRESS_LOG_ENV: "/nonexistent/egress.jsonl"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=hostile.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True socket True"
