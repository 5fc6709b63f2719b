"""Hostile input, one module per suite; figures: inputs tried, 5xx answers, writes caused by
rejected requests, outbound requests to refused hosts, and (with `logscan`) log lines holding a
phone number, a token or a signature.

- harness.py          the real CallbackFunction handler in this process, on a moto server
- fuzz.py             1. property-based fuzzing (hypothesis) of the handler's requests
- classic.py          2. the classic attacks, one by one
- handler_suites.py   1 and 2 together, with the package's logs captured
- ssrf.py             3. hostile RecordingURLs aimed at the archiver, in this process
- openapi_suite.py    4. schemathesis against openapi.json, on the local stack over HTTP
- end_to_end.py       5. hostile RecordingURLs through the local stack to its archiver

Outbound requests are counted twice over: in this process by `ssrf.EgressRecorder` (urllib3's
connections, diverted to a loopback trap), and in the stack's ArchiveFunction worker by the
egress guard (`reliability/egress_guard/sitecustomize.py`, loaded through PYTHONPATH by
`end_to_end_stack_args`), which refuses and logs any lookup or connection off loopback.

Imports: the project's packages, reliability.egress_guard / reliability.logscan and
tests.support; this package re-exports what reliability/__main__.py and the tests call.
"""

from __future__ import annotations

from reliability.egress_guard.sitecustomize import is_loopback_host
from reliability.hostile.classic import classic_attacks
from reliability.hostile.end_to_end import (
    accepted_by_policy,
    end_to_end_stack_args,
    hostile_urls_end_to_end,
    new_egress_log,
    read_egress_log,
)
from reliability.hostile.fuzz import fuzz_handler
from reliability.hostile.handler_suites import HandlerRun, run_handler_suites
from reliability.hostile.harness import (
    EGRESS_GUARD_DIR,
    EGRESS_LOG_ENV,
    ROOT,
    TOKEN,
    HandlerHarness,
    handler_harness,
)
from reliability.hostile.openapi_suite import schemathesis_suite
from reliability.hostile.ssrf import HOSTILE_URLS, REDIRECTS, EgressRecorder, ssrf_suite

__all__ = [
    "EGRESS_GUARD_DIR",
    "EGRESS_LOG_ENV",
    "HOSTILE_URLS",
    "REDIRECTS",
    "ROOT",
    "TOKEN",
    "EgressRecorder",
    "HandlerHarness",
    "HandlerRun",
    "accepted_by_policy",
    "classic_attacks",
    "end_to_end_stack_args",
    "fuzz_handler",
    "handler_harness",
    "hostile_urls_end_to_end",
    "is_loopback_host",
    "new_egress_log",
    "read_egress_log",
    "run_handler_suites",
    "schemathesis_suite",
    "ssrf_suite",
]
