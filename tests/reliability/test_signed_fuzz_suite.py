"""The `make reliability` signed-fuzz suite's own wiring, on a small run: its figures, its
`passed` verdict and its log scan (the properties: tests/integration/test_signed_fuzz.py)."""

from __future__ import annotations

import pytest

from reliability.signed_fuzz import run_signed_fuzz

pytestmark = pytest.mark.slow


def test_small_run_passes_with_every_figure_accounted_for() -> None:
    figures = run_signed_fuzz(max_examples=40)
    assert figures["passed"], figures
    assert figures["inputs_tried"] >= 40
    assert figures["answers_5xx"] == figures["lost"] == figures["raw_value_mismatches"] == 0
    # The table's own count is the cases stored in it: nothing lost, nothing written beside.
    assert figures["table_items_and_queued_messages_at_end"] == figures["stored_in_table"] > 0
    assert figures["stored_via_fallback_queue"] > 0
    assert figures["log_lines_scanned"] > 0 and figures["log_leaks"] == 0
