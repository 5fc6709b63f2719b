"""Template security: checkov's summary over template.yaml (its own tool environment), and
least privilege checked from the calls the code really makes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"


def checkov_summary() -> dict[str, Any]:
    if not CHECKOV.exists():
        return {"error": "checkov not installed: run `make tools`"}
    done = subprocess.run(
        [
            str(CHECKOV),
            "--file",
            str(ROOT / "template.yaml"),
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return {"error": f"checkov output not JSON (exit {done.returncode})"}
    if isinstance(report, list):
        report = report[0]
    summary = report.get("summary")
    if not isinstance(summary, dict):
        return {"error": f"checkov printed no summary (exit {done.returncode})"}
    skipped = report.get("results", {}).get("skipped_checks", []) or []
    return {
        "passed": summary.get("passed", 0),
        "failed": summary.get("failed", 0),
        "skipped": summary.get("skipped", 0),
        "skips_with_reason": sum(
            1 for s in skipped if (s.get("check_result") or {}).get("suppress_comment")
        ),
        "checkov_version": summary.get("checkov_version", ""),
    }


# Least privilege as tests/infra/test_permissions.py checks it: every AWS call the integration tests
# make each function do (recorded through botocore's events), plus what Lambda does with the role,
# evaluated against the function's role in template.yaml; and the roles' shape (own role, no
# managed policy, no wildcard resource) in test_template.py.
PERMISSION_TESTS = ("tests/integration", "tests/infra/test_permissions.py")
ROLE_SHAPE_TESTS = "role_is_the_functions_own or no_wildcard_resources or role_statements"
SUMMARY_ENV = "RECORDING_ARCHIVE_PERMISSION_SUMMARY"


def _pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-cov", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=ROOT,
        env=env,
    )


def _counts(stdout: str) -> dict[str, int]:
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|error)", stdout)}


def least_privilege() -> dict[str, Any]:
    """The recorded-calls check and the role-shape tests; their figures."""
    with tempfile.TemporaryDirectory() as tmp:
        summary_path = Path(tmp) / "permissions.json"
        calls = _pytest(*PERMISSION_TESTS, env={**os.environ, SUMMARY_ENV: str(summary_path)})
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {"error": f"the permission test wrote no summary (exit {calls.returncode})"}
    shape = _pytest("tests/infra/test_template.py", "-k", ROLE_SHAPE_TESTS)
    counts = _counts(shape.stdout)
    first = _counts(calls.stdout)
    both = {k: first.get(k, 0) + counts.get(k, 0) for k in ("passed", "failed", "error")}
    return {
        **summary,
        # Every test of both runs (the integration tests included: they produce the record).
        "tests_passed": both.get("passed", 0),
        "tests_failed": both.get("failed", 0) + both.get("error", 0),
        "calls_exit_status": calls.returncode,
        "shape_tests_passed": counts.get("passed", 0),
        "shape_tests_failed": counts.get("failed", 0) + counts.get("error", 0),
        "exit_status": calls.returncode or shape.returncode,
    }


def template_suite() -> dict[str, Any]:
    figures = checkov_summary()
    figures["least_privilege"] = least_privilege()
    figures["ok"] = template_passed(figures)
    return figures


def template_passed(f: dict[str, Any]) -> bool:
    lp = f.get("least_privilege", {})
    return bool(
        "error" not in f
        and f.get("failed") == 0
        and f.get("passed", 0) > 0
        and f.get("skipped") == f.get("skips_with_reason")
        and "error" not in lp
        and lp.get("exit_status") == 0
        and lp.get("recorded_calls", 0) > 0
        and lp.get("refused") == 0
        and lp.get("shape_tests_passed", 0) > 0
        and lp.get("shape_tests_failed") == 0
    )
