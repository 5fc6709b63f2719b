"""ReconcileFunction: archives the recordings Plivo holds whose callbacks never arrived.

Trigger: a schedule, disabled unless the stack parameter ReconcileEnabled is "true". Settings:
those of ArchiveFunction plus RECONCILE_WINDOW_HOURS (sessions created in the last N hours, default
48) and PLIVO_API_BASE_URL (default https://api.plivo.com). The Plivo auth id and the first auth
token of the auth secret authenticate the REST calls. RETENTION_DAYS and ARCHIVE_RETENTION_DAYS
give a reconciled event its ExpiresAt; EVENT_BUS_NAME receives RecordingArchived / RecordingFailed.
Permissions: events:PutEvents on that bus; secretsmanager:GetSecretValue on the auth secret;
dynamodb:Query/GetItem/PutItem/UpdateItem on the table; the archiver's S3 and KMS actions on
recordings/*; dynamodb:BatchWriteItem on the session index (INDEX_TABLE_NAME: the day entry of
each reconciled event; its payload, Plivo's Recording resource, has no phone field, so no number
key is configured or granted).
Semantics: `logic.reconcile` (idempotent: the same recording always gets the same reconciled
event key, puts are conditional, ARCHIVED items are skipped). Retryable archive failures stay
PENDING for the sweeper. No credentials, wrong credentials or Plivo unavailable: the invocation
fails (Lambda Errors metric), nothing is written. It stops early when time runs short; the next
run continues (already archived recordings are skipped).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from recording_archive.handlers import wiring
from recording_archive.logic.archive_recording import seconds_left
from recording_archive.logic.reconcile import PROBLEMS, Reconciler
from recording_archive.observability import logger, metrics

# Leave time to finish the recording in progress (a large file can take minutes).
_STOP_WHEN_REMAINING_MS = 5 * 60 * 1000


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, index = wiring.reconcile_collaborators()
    reconciler = Reconciler(
        wiring.plivo_api(wiring.credentials(settings), settings.plivo_api_base_url),
        index,
        wiring.build_archiver(settings),
        retention_days=settings.retention_days,
        archive_retention_days=settings.archive_retention_days,
        entries=wiring.session_index(),
    )
    until = datetime.now(UTC)
    since = until - timedelta(hours=settings.reconcile_window_hours)
    report = reconciler.run(
        since,
        until,
        should_stop=lambda: context.get_remaining_time_in_millis() < _STOP_WHEN_REMAINING_MS,
        time_left=seconds_left(context.get_remaining_time_in_millis),
    )
    counts = report.counts()
    for name, value in counts.items():
        metrics.add_metric(name=f"Reconcile_{name}", unit=MetricUnit.Count, value=value)
    reconciled = sum(1 for e in report.entries if e.reconciled_event)
    metrics.add_metric(name="RecordingsReconciled", unit=MetricUnit.Count, value=reconciled)
    problems = [
        {"session_uuid": e.session_uuid, "recording_uuid": e.recording_uuid, "action": e.action}
        for e in report.entries
        if e.action in PROBLEMS
    ]
    logger.info(
        "reconcile done",
        extra={
            "since": since.isoformat(),
            "until": until.isoformat(),
            "sessions": report.sessions,
            "counts": counts,
            "complete": report.complete,
            "problems": problems[:50],
        },
    )
    return {"sessions": report.sessions, "counts": counts, "complete": report.complete}
