"""openapi.json, the endpoint's published description, is what the Powertools resolver renders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_openapi_is_up_to_date() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from gen_openapi import render
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert (ROOT / "openapi.json").read_text("utf-8") == render(), (
        "openapi.json is stale: run python scripts/gen_openapi.py"
    )


def test_check_mode_of_the_script_passes() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_openapi.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr


def test_every_answer_of_the_route_is_described() -> None:
    spec = json.loads((ROOT / "openapi.json").read_text("utf-8"))
    path = spec["paths"]["/callbacks/recording"]
    assert set(path) == {"get", "post"}
    assert set(path["post"]["responses"]) == {
        "200",
        "400",
        "401",
        "403",
        "405",
        "413",
        "415",
        "422",
        "503",
    }
    assert set(path["get"]["responses"]) == {"200", "400", "401", "403", "405", "413", "422", "503"}
    body = path["post"]["requestBody"]["content"]
    assert set(body) == {"application/x-www-form-urlencoded", "application/json"}
    headers = {p["name"] for p in path["post"]["parameters"] if p["in"] == "header"}
    assert {"X-Plivo-Signature-V3", "X-Plivo-Signature-V3-Nonce"} <= headers
    query = {p["name"] for p in path["get"]["parameters"] if p["in"] == "query"}
    assert {"SessionUUID", "SequenceNumber", "EventName", "RecordingURL"} <= query
