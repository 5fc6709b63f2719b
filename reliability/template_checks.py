"""Template security: checkov's summary over template.yaml (its own tool environment)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
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


# The tests of tests/infra/test_template.py that hold each role to the actions its function
# uses, on its own resources, with no wildcard resource and no managed policy.
LEAST_PRIVILEGE_TESTS = "role_grants_exactly or role_is_the_functions_own or no_wildcard_resources"


def least_privilege() -> dict[str, Any]:
    """Run the least-privilege tests on template.yaml; their pass and fail counts."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--no-cov",
            "tests/infra/test_template.py",
            "-k",
            LEAST_PRIVILEGE_TESTS,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|error)", done.stdout)}
    return {
        "tests_passed": counts.get("passed", 0),
        "tests_failed": counts.get("failed", 0) + counts.get("error", 0),
        "exit_status": done.returncode,
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
        and lp.get("exit_status") == 0
        and lp.get("tests_passed", 0) > 0
        and lp.get("tests_failed") == 0
    )
