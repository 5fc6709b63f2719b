"""Signed fuzzing, large: callbacks of any shape signed by Plivo's own SDK, through the real
CallbackFunction handler (in this process, moto over HTTP), each checked for its documented
answer, for being stored exactly once (table, or the fallback queue while the table is down)
with every attribute as received, and for each refusal being counted in `CallbackRejected`.

The generator and the properties are `tests/support/signed_fuzz.py`, which `make test` runs
with a few hundred cases (tests/integration/test_signed_fuzz.py). Figures: inputs tried, answers,
5xx, lost (a 200 not stored exactly once), raw-value mismatches, uncounted refusals, and at the
end the table's own count against the cases stored (nothing written beside them).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from reliability.hostile.handler_suites import capture_logs, log_lines
from reliability.hostile.harness import TOKEN, handler_harness
from reliability.logscan import scan
from tests.support import signed_fuzz as sf


def run_signed_fuzz(*, max_examples: int) -> dict[str, Any]:
    """The suite's figures (`passed` included), its logs scanned for secrets."""
    out = io.StringIO()
    with (
        capture_logs() as buffer,
        contextlib.redirect_stderr(out),
        handler_harness() as harness,
    ):
        harness.secrets.add_phones(["+14155550101", "+919876543210"])
        target = sf.HandlerTarget(
            harness.endpoint_url,
            harness.resources.table_name,
            harness.resources.fallback_queue_url,
            TOKEN,
        )
        figures = sf.run(target, max_examples=max_examples)
        table_items = harness.writes()  # items in the table + messages left in the queue
    harness.secrets.signatures |= target.signatures
    logs = scan(log_lines(buffer) + out.getvalue().splitlines(), harness.secrets)
    result = figures.as_dict()
    result["table_items_and_queued_messages_at_end"] = table_items
    result["log_lines_scanned"] = logs.lines
    result["log_leaks"] = logs.count
    result["log_leak_examples"] = logs.leaks[:5]
    result["passed"] = bool(
        figures.error is None
        and not figures.failures
        and result["answers_5xx"] == 0
        and figures.lost == 0
        and figures.raw_mismatches == 0
        and figures.unexpected_answers == 0
        and figures.refusals_not_counted == 0
        and figures.inputs >= max_examples
        and figures.stored_in_table > 0
        and figures.stored_via_queue > 0
        # every stored case is in the table once, nothing else is, and the queue was emptied
        and table_items == figures.stored_in_table
        and logs.count == 0
        and logs.lines > 0
    )
    return result
