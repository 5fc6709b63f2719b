"""The operations dashboard (template.yaml OperationsDashboard): its body is valid JSON once
CloudFormation substitutes it, every metric of the project's namespace it shows is one the code
emits (a renamed metric would leave an empty graph nobody notices), and every function's Lambda
metrics are on it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from recording_archive.observability import NAMESPACE, SERVICE
from recording_archive_cli.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions" / "recording_archive"
_SUB = re.compile(r"\$\{([A-Za-z0-9:.]+)\}")
# How the code names a metric: add_metric(name="X"), single_metric(name="X") and the callback's
# _count("X", ...).
_EMITTED = re.compile(r'(?:\bname="([A-Za-z]+)"|\b_count\(\s*"([A-Za-z]+)")')
_SEARCH_NAME = re.compile(r'MetricName="([A-Za-z]+)"')


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    resource = template["Resources"]["OperationsDashboard"]
    body = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(template["Resources"]) | {"AWS::Region", "AWS::StackName"}
    unknown = {m for m in _SUB.findall(body) if m.split(".")[0] not in names}
    assert not unknown, f"the dashboard refers to what the template does not have: {unknown}"
    return dict(json.loads(_SUB.sub(lambda m: f"<{m.group(1)}>", body)))


def _emitted_metrics() -> set[str]:
    found: set[str] = set()
    for path in FUNCTIONS_DIR.rglob("*.py"):
        for a, b in _EMITTED.findall(path.read_text(encoding="utf-8")):
            found.add(a or b)
    return found


def _metrics(dashboard: dict[str, Any]) -> list[list[Any]]:
    return [m for w in dashboard["widgets"] for m in w["properties"]["metrics"]]


def test_the_dashboard_exists_only_when_enabled(template: dict[str, Any]) -> None:
    assert template["Resources"]["OperationsDashboard"]["Condition"] == "HasDashboard"
    assert template["Conditions"]["HasDashboard"] == {
        "Fn::Equals": [{"Ref": "DashboardEnabled"}, "true"]
    }
    assert template["Parameters"]["DashboardEnabled"]["Default"] == "true"


def test_every_project_metric_shown_is_emitted_by_the_code(dashboard: dict[str, Any]) -> None:
    emitted = _emitted_metrics()
    assert {"CallbackAccepted", "RecordingsArchived", "OldestPendingAgeSeconds"} <= emitted
    shown: set[str] = set()
    for metric in _metrics(dashboard):
        if isinstance(metric[0], dict):  # a SEARCH expression
            expression = metric[0]["expression"]
            assert f"{{{NAMESPACE}," in expression
            shown.update(_SEARCH_NAME.findall(expression))
        elif metric[0] == NAMESPACE:
            assert metric[2:4] == ["service", SERVICE]  # Powertools' default dimension
            shown.add(metric[1])
    assert shown - emitted == set()
    # What the issue asks to see: callbacks by event, rejections, lag, bytes, failures, conflicts.
    assert {
        "CallbackAccepted",
        "CallbackRejected",
        "OldestPendingAgeSeconds",
        "ArchivedBytes",
        "RecordingsFailed",
        "CallbackConflict",
        "ArchiveConflicts",
    } <= shown


def test_every_function_has_its_errors_and_duration_on_it(
    template: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    functions = {
        name
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    assert len(functions) >= 5
    for lambda_metric in ("Errors", "Duration", "Throttles"):
        on_it = {
            m[3].strip("<>")
            for m in _metrics(dashboard)
            if m[:3] == ["AWS/Lambda", lambda_metric, "FunctionName"]
        }
        assert on_it == functions, lambda_metric


def test_the_queues_are_on_it(template: dict[str, Any], dashboard: dict[str, Any]) -> None:
    queues = {n for n, r in template["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    shown = {m[3].strip("<>").split(".")[0] for m in _metrics(dashboard) if m[0] == "AWS/SQS"}
    assert shown == queues


def test_widgets_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: set[tuple[int, int]] = set()
    for w in dashboard["widgets"]:
        assert w["x"] + w["width"] <= 24
        mine = {
            (x, y)
            for x in range(w["x"], w["x"] + w["width"])
            for y in range(w["y"], w["y"] + w["height"])
        }
        assert not cells & mine, w["properties"]["title"]
        cells |= mine
