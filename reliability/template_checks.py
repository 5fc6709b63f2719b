"""Template security: checkov's summary over template.yaml (its own tool environment)."""

from __future__ import annotations

import json
import subprocess
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
    summary = report.get("summary", {})
    skipped = report.get("results", {}).get("skipped_checks", []) or []
    return {
        "passed": summary.get("passed", 0),
        "failed": summary.get("failed", 0),
        "skipped": summary.get("skipped", 0),
        "skips_with_reason": sum(
            1 for s in skipped if (s.get("check_result") or {}).get("suppress_comment")
        ),
        "checkov_version": summary.get("checkov_version", ""),
        "least_privilege_test": "tests/infra/test_template.py (each role's actions and resources)",
    }
