"""Reconcile logic paths that need no AWS (in-memory ports), and the CLI's small helpers."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from recording_archive.logic.archive_recording import ArchiveJob, ArchiveOutcome
from recording_archive.logic.reconcile import (
    Action,
    Reconciler,
    reconcile_sequence_number,
    reconciled_item,
)
from recording_archive.models.errors import MediaUnavailableError
from recording_archive.models.item import PutOutcome
from recording_archive.models.plivo import (
    Interaction,
    MaskingSession,
    PlivoAuthError,
    PlivoNotFoundError,
    RecordingResource,
)
from recording_archive_cli.commands.options import duration
from recording_archive_cli.commands.output import Progress, table

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START_MS = int(datetime(2026, 11, 20, 11, 0, tzinfo=UTC).timestamp() * 1000)
RESOURCE_URL = "https://api.plivo.com/v1/Account/MA1/Recording/{}/"


def interaction(rid: str | None) -> Interaction:
    url = RESOURCE_URL.format(rid) if rid else None
    raw = {"type": "call", "recording_resource_url": url}
    return Interaction("call", "", "", url, raw)


def recording(rid: str, fmt: str = "mp3") -> RecordingResource:
    raw = {
        "api_id": "changes-every-call",
        "recording_id": rid,
        "recording_url": f"https://media.plivo.com/v1/Account/MA1/Recording/{rid}.{fmt}",
        "monthly_recording_storage_amount": 0.0008,
    }
    return RecordingResource(
        rid,
        raw["recording_url"],  # type: ignore[arg-type]
        fmt,
        "call-1",
        "2026-11-20 11:00:12.5+00:00",
        Decimal("12000.00000"),
        Decimal(START_MS),
        Decimal(START_MS + 12000),
        raw,
    )


class FakePlivo:
    def __init__(
        self, sessions: dict[str, list[Interaction]], missing: frozenset[str] = frozenset()
    ) -> None:
        self.sessions = sessions
        self.missing = missing
        self.recording_calls: list[str] = []

    def list_sessions(
        self, created_from: datetime, created_to: datetime, *, status: str = "all"
    ) -> Iterator[dict[str, Any]]:
        assert status == "all"
        for uuid in self.sessions:
            yield {"session_uuid": uuid}

    def get_session(self, session_uuid: str) -> MaskingSession:
        if session_uuid == "gone":
            raise PlivoNotFoundError("Plivo: not found")
        if session_uuid == "auth":
            raise PlivoAuthError("Plivo refused the credentials")
        return MaskingSession(
            session_uuid, "expired", "", True, "mp3", tuple(self.sessions[session_uuid]), {}
        )

    def get_recording(self, recording_id: str) -> RecordingResource:
        self.recording_calls.append(recording_id)
        if recording_id in self.missing:
            raise PlivoNotFoundError("Plivo: not found")
        return recording(recording_id, "ogg" if recording_id == "odd" else "mp3")


class MemoryIndex:
    def __init__(self) -> None:
        self.items: dict[tuple[str, int], dict[str, Any]] = {}
        self.failures: list[tuple[str, int, str]] = []

    def session_events(self, session_uuid: str) -> list[dict[str, Any]]:
        return [v for (s, _), v in sorted(self.items.items()) if s == session_uuid]

    def put_new(self, item: Any) -> PutOutcome:
        key = (item["SessionUUID"], item["SequenceNumber"])
        if key in self.items:
            return PutOutcome.DUPLICATE
        self.items[key] = dict(item)
        return PutOutcome.STORED

    def get(self, session_uuid: str, sequence_number: int) -> dict[str, Any] | None:
        return self.items.get((session_uuid, sequence_number))

    def record_failure(
        self, session_uuid: str, sequence_number: int, *, error: str, next_due_at: int, failed: bool
    ) -> int | None:
        self.failures.append((session_uuid, sequence_number, error))
        self.items[(session_uuid, sequence_number)]["ArchiveStatus"] = "FAILED"
        return 1


class MemoryArchiver:
    def __init__(
        self, index: MemoryIndex, fail: bool = False, outcome: ArchiveOutcome | None = None
    ) -> None:
        self.index = index
        self.fail = fail
        self.outcome = outcome  # an attempt that did nothing (its claim refused)
        self.jobs: list[ArchiveJob] = []
        self.time_left: list[Any] = []

    def archive(self, job: ArchiveJob, *, time_left: Any = None) -> ArchiveOutcome:
        self.jobs.append(job)
        self.time_left.append(time_left)
        if self.fail:
            raise MediaUnavailableError("HTTP 503")
        if self.outcome is not None:
            return self.outcome
        self.index.items[(job.session_uuid, job.sequence_number)]["ArchiveStatus"] = "ARCHIVED"
        return ArchiveOutcome.ARCHIVED


@pytest.mark.parametrize(
    ("outcome", "action", "detail"),
    [
        (ArchiveOutcome.IN_PROGRESS, Action.IN_PROGRESS, "another archive attempt holds it"),
        (ArchiveOutcome.NOT_DUE, Action.IN_PROGRESS, "another archive attempt holds it"),
        (ArchiveOutcome.GONE, Action.ERROR, "the event is no longer in the table"),
    ],
)
def test_attempts_that_did_nothing_are_problems_not_archived(
    outcome: ArchiveOutcome, action: Action, detail: str
) -> None:
    index = MemoryIndex()
    archiver = MemoryArchiver(index, outcome=outcome)
    report = run(FakePlivo({"s1": [interaction("r1")]}), index, archiver, time_left=lambda: 42.0)
    [entry] = report.entries
    assert (entry.action, entry.detail) == (action, detail)
    assert not report.ok
    # The invocation's remaining time reaches the archive attempt (its transfer deadline).
    assert [t() for t in archiver.time_left] == [42.0]


def run(plivo: FakePlivo, index: MemoryIndex, archiver: MemoryArchiver, **kw: Any) -> Any:
    reconciler = Reconciler(plivo, index, archiver, now=lambda: NOW, retention_days=30)
    return reconciler.run(NOW - timedelta(hours=1), NOW, **kw)


def test_reconciled_item_shape() -> None:
    item = reconciled_item(
        "s1", interaction("r1"), recording("r1"), received_at=NOW, retention_days=2
    )
    assert item["SequenceNumber"] == reconcile_sequence_number("r1") < 0
    assert item["Source"] == "reconcile"
    assert item["EventName"] == "SessionRecordingCompleted"
    assert item["ArchiveStatus"] == item["ArchiveQueue"] == "PENDING"
    assert item["RecordingExt"] == "mp3"
    assert item["RecordingDurationSeconds"] == 12
    assert item["RecordingStartTime"] == "2026-11-20T11:00:00.000Z"
    assert item["EventTime"] == item["RecordingEndTime"] == "2026-11-20T11:00:12.000Z"
    assert item["ExpiresAt"] == int((NOW + timedelta(days=2)).timestamp())
    # Never before its recording (logic/retention.py): ArchiveRetentionDays 90 keeps it 91 days.
    kept = reconciled_item(
        "s1",
        interaction("r1"),
        recording("r1"),
        received_at=NOW,
        retention_days=2,
        archive_retention_days=90,
    )
    assert kept["ExpiresAt"] == int((NOW + timedelta(days=91)).timestamp())
    assert "api_id" not in item["Payload"]["Recording"]
    assert item["Payload"]["Recording"]["monthly_recording_storage_amount"] == Decimal("0.0008")
    job = ArchiveJob.from_item(item)
    assert job.key == "recordings/2026/11/20/s1/r1.mp3"


def test_errors_per_session_and_recording_are_reported_not_raised() -> None:
    plivo = FakePlivo(
        {
            "gone": [],
            "s1": [interaction("gone-rec"), interaction(None)],
            "s2": [Interaction("call", "", "", "https://x/Call/1/", {})],
        },
        missing=frozenset({"gone-rec"}),
    )
    index = MemoryIndex()
    report = run(plivo, index, MemoryArchiver(index))
    assert [(e.session_uuid, e.action, e.detail) for e in report.entries] == [
        ("gone", Action.ERROR, "Plivo: not found"),
        ("s1", Action.ERROR, "recording no longer on Plivo"),
        ("s2", Action.ERROR, "unrecognised recording_resource_url"),
    ]
    assert not report.ok
    assert index.items == {}


def test_auth_errors_stop_the_run() -> None:
    index = MemoryIndex()
    with pytest.raises(PlivoAuthError):
        run(FakePlivo({"auth": []}), index, MemoryArchiver(index))


def test_retryable_failure_stays_pending_and_unknown_format_fails() -> None:
    plivo = FakePlivo({"s1": [interaction("r1")], "s2": [interaction("odd")]})
    index = MemoryIndex()
    report = run(plivo, index, MemoryArchiver(index, fail=True))
    actions = {e.recording_uuid: e.action for e in report.entries}
    assert actions == {"r1": Action.RETRY_LATER, "odd": Action.FAILED}
    assert index.get("s1", reconcile_sequence_number("r1"))["ArchiveStatus"] == "PENDING"
    assert index.failures[0][2].startswith("NotArchivable")


def test_dry_run_and_stop_early() -> None:
    plivo = FakePlivo({"s1": [interaction("r1"), interaction("r1")], "s2": [interaction("r2")]})
    index = MemoryIndex()
    archiver = MemoryArchiver(index)
    report = run(plivo, index, archiver, dry_run=True)
    assert [(e.recording_uuid, e.action, e.reconciled_event) for e in report.entries] == [
        ("r1", Action.WOULD_ARCHIVE, True),
        ("r2", Action.WOULD_ARCHIVE, True),
    ]
    assert index.items == {} and archiver.jobs == []
    stopped = run(plivo, index, archiver, should_stop=lambda: True)
    assert stopped.complete is False and stopped.sessions == 0 and not stopped.ok


def test_second_run_skips_archived_without_asking_plivo_for_the_recording() -> None:
    plivo = FakePlivo({"s1": [interaction("r1")]})
    index = MemoryIndex()
    archiver = MemoryArchiver(index)
    assert run(plivo, index, archiver).counts() == {"archived": 1}
    assert run(plivo, index, archiver).counts() == {"already_archived": 1}
    assert plivo.recording_calls == ["r1"]
    assert len(archiver.jobs) == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("48h", 172800),
        ("7d", 604800),
        ("2w", 1209600),
        ("1d12h", 129600),
    ],
)
def test_duration(text: str, seconds: int) -> None:
    assert duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "48", "h", "1x", "-1h", "0s", "1h 2m"])
def test_bad_duration(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


def test_table_and_progress() -> None:
    assert table(("a", "bb"), [(1, None), (Decimal("2.5"), "x")]).splitlines() == [
        "a    bb",
        "---  --",
        "1",
        "2.5  x",
    ]
    out = io.StringIO()
    bar = Progress("verify", 4, stream=out, enabled=True, width=4)
    bar.update(note="ok")
    bar.update(3)
    bar.close()
    assert "\rverify [#---] 1/4 ok" in out.getvalue()
    assert "\rverify [####] 4/4" in out.getvalue()
    assert out.getvalue().endswith("\n")
    quiet = io.StringIO()
    hidden = Progress("x", stream=quiet)  # not a terminal: nothing drawn
    hidden.update()
    hidden.close()
    assert quiet.getvalue() == "" and hidden.done == 1
