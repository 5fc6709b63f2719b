"""`hold`, `erase` and `audit` against the local stack's resources in moto (real boto3, the real
callback and sweeper handlers writing the events, the index and the archive), through
`recording_archive_cli.main.main` as on the command line."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from recording_archive.dal.session_index import SessionIndex
from recording_archive.logic.retention import expires_at
from recording_archive.models.errors import SessionIndexUnavailableError
from recording_archive_cli.main import main
from recording_archive_cli.operator import compliance
from recording_archive_cli.operator.audit import AuditLog, mask_numbers
from recording_archive_cli.operator.context import Ops
from tests.support.lifecycle_queue import receive_lifecycle_events
from tests.support.operator_stack import Stack, deployed_stack

OTHER = "+14155550177"  # a caller of its own (the simulated sessions share +14155550101)


class World:
    """What the archive holds about one session: items, object versions and markers, index
    entries."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def items(self, session: str) -> list[dict[str, Any]]:
        return [i for i in self.stack.items() if i["SessionUUID"]["S"] == session]

    def versions(self, session: str) -> list[dict[str, Any]]:
        answer = self.stack.s3.list_object_versions(Bucket=self.stack.res.bucket_name)
        return [
            v
            for kind in ("Versions", "DeleteMarkers")
            for v in answer.get(kind, [])
            if f"/{session}/" in v["Key"]
        ]

    def index_entries(self, session: str) -> list[dict[str, Any]]:
        table = f"{self.stack.res.stack_name}-IndexTable"
        items = self.stack.ddb.scan(TableName=table, ConsistentRead=True)["Items"]
        return [i for i in items if i.get("SessionUUID", {}).get("S") == session]

    def legal_hold(self, version: dict[str, Any], status: str) -> None:
        """Set a version's legal hold directly in S3 (as someone in the console would)."""
        self.stack.s3.put_object_legal_hold(
            Bucket=self.stack.res.bucket_name,
            Key=version["Key"],
            VersionId=version["VersionId"],
            LegalHold={"Status": status},
        )

    def snapshot(self, session: str) -> tuple[Any, ...]:
        return (
            sorted(json.dumps(i, sort_keys=True) for i in self.items(session)),
            sorted(v["VersionId"] for v in self.versions(session)),
            sorted(json.dumps(i, sort_keys=True) for i in self.index_entries(session)),
        )


@pytest.fixture
def world(stack: Stack) -> World:
    return World(stack)


def _holds(stack: Stack, session: str) -> list[str]:
    out = []
    for v in World(stack).versions(session):
        if "IsLatest" in v and "Size" in v:  # a version, not a marker
            try:
                hold = stack.s3.get_object_legal_hold(
                    Bucket=stack.res.bucket_name, Key=v["Key"], VersionId=v["VersionId"]
                )["LegalHold"]["Status"]
            except stack.s3.exceptions.ClientError:
                hold = "NONE"
            out.append(hold)
    return out


def _audit(stack: Stack) -> list[dict[str, Any]]:
    rc, records = stack.cli_json("audit", "--since", "1h")
    assert rc == 0
    return list(records)


# --- hold ----------------------------------------------------------------------------------------
def test_hold_set_and_clear_a_session(
    stack: Stack, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, rec, _ = stack.session()
    stack.sweep()
    for seq in (1, 2):  # as if EventRetentionDays were set when they were stored
        stack.ddb.update_item(
            TableName=stack.res.table_name,
            Key={"SessionUUID": {"S": session}, "SequenceNumber": {"N": str(seq)}},
            UpdateExpression="SET ExpiresAt = :e",
            ExpressionAttributeValues={":e": {"N": "1900000000"}},
        )
    rc, out, _ = stack.cli(
        "hold", "set", "--session", session, "--reason", "dispute +1 415 555 0101"
    )
    assert rc == 0, out
    entries = len(world.index_entries(session))
    assert entries >= 4  # a day entry and a number entry per event at least
    assert f"2 event item(s) ({entries} index entries), 1 object version(s) of 1 recording" in out
    assert _holds(stack, session) == ["ON"]
    assert all("ExpiresAt" not in e for e in world.index_entries(session))
    for item in world.items(session):
        assert "ExpiresAt" not in item
        hold = item["LegalHold"]["M"]
        assert hold["Reason"]["S"] == "dispute ***0101"
        assert hold["SetBy"]["S"].startswith("arn:aws:")

    # Released with the stack's retention: 30 days of events, archive kept for ever.
    params = {"EventRetentionDays": "30", "ArchiveRetentionDays": "0"}
    monkeypatch.setattr(Ops, "stack_parameter", lambda self, key: params[key])
    rc, out, _ = stack.cli("hold", "clear", "--session", session, "--reason", "settled")
    assert rc == 0 and "released" in out
    assert _holds(stack, session) == ["OFF"]
    for item in world.items(session):
        assert "LegalHold" not in item
        received = datetime.fromisoformat(item["ReceivedAt"]["S"].replace("Z", "+00:00"))
        assert int(item["ExpiresAt"]["N"]) == expires_at(received, event_days=30, archive_days=0)
    expiry = {i["ExpiresAt"]["N"] for i in world.items(session)}
    assert {i["ExpiresAt"]["N"] for i in world.index_entries(session)} <= expiry
    assert all("ExpiresAt" in i for i in world.index_entries(session))

    records = _audit(stack)
    assert [r["action"] for r in records] == ["hold.set", "hold.clear"]
    assert records[0]["targets"] == {"session_uuid": session, "recordings": [rec]}
    assert records[0]["counts"] == {
        "items": 2,
        "index_entries": entries,
        "object_versions": 1,
        "recordings": 1,
    }
    assert records[0]["reason"] == "dispute ***0101"
    assert records[1]["reason"] == "settled"
    assert all(r["actor"].startswith("arn:aws:") for r in records)


def test_hold_a_recording_not_yet_archived_says_so(stack: Stack, world: World) -> None:
    session, rec, _ = stack.session()
    rc, doc = stack.cli_json("hold", "set", "--recording", rec, "--reason", "claim 17")
    assert rc == 0
    assert doc["not_archived"] == [rec] and doc["counts"]["object_versions"] == 0
    assert doc["targets"] == {"recording_uuid": rec, "sessions": [session], "recordings": [rec]}
    assert all("LegalHold" in i for i in world.items(session))


def test_hold_errors(stack: Stack) -> None:
    rc, _, err = stack.cli("hold", "set", "--session", "no-such-session", "--reason", "x")
    assert rc == 1 and "no events of session no-such-session" in err
    with pytest.raises(SystemExit) as exc:
        stack.cli("hold", "set", "--session", "s", "--reason", "   ")
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        stack.cli("hold", "set", "--reason", "why")  # neither --session nor --recording
    assert _audit(stack) == []


# --- erase ---------------------------------------------------------------------------------------
def test_erase_refused_while_held_nothing_deleted(stack: Stack, world: World) -> None:
    a, _, _ = stack.session()
    stack.sweep()
    before = world.snapshot(a)
    assert stack.cli("hold", "set", "--session", a, "--reason", "litigation")[0] == 0
    held = world.snapshot(a)
    rc, _, err = stack.cli("erase", "--session", a, "--yes")
    assert rc == 1 and "refused, nothing deleted" in err
    assert world.snapshot(a) == held
    assert stack.cli("hold", "clear", "--session", a, "--reason", "done")[0] == 0
    assert world.snapshot(a)[1:] == before[1:]

    # An object version held directly in S3 (no item marker) refuses the erase as well.
    (version,) = world.versions(a)
    world.legal_hold(version, "ON")
    rc, _, err = stack.cli("erase", "--session", a, "--yes")
    assert rc == 1 and f"version {version['VersionId']}" in err
    assert len(world.items(a)) == 2
    assert not [r for r in _audit(stack) if r["action"].startswith("erase")]


def test_erase_dry_run_changes_nothing(stack: Stack, world: World) -> None:
    a, _, _ = stack.session()
    stack.sweep()
    before = world.snapshot(a)
    rc, doc = stack.cli_json("erase", "--session", a, "--dry-run")
    assert rc == 0
    assert doc["would_delete"] == {
        "sessions": 1,
        "items": 2,
        "recordings": 1,
        "object_versions": 1,
        "delete_markers": 0,
        "index_entries": len(before[2]),
    }
    assert world.snapshot(a) == before
    assert _audit(stack) == []


def test_erase_leaves_nothing_of_a_and_b_untouched(stack: Stack, world: World) -> None:
    a, rec_a, _ = stack.session()
    b, _, _ = stack.session()
    stack.sweep()
    # A second version and a delete marker on A's key: every one of them must go.
    (version,) = world.versions(a)
    stack.s3.put_object(Bucket=stack.res.bucket_name, Key=version["Key"], Body=b"manual copy")
    stack.s3.delete_object(Bucket=stack.res.bucket_name, Key=version["Key"])
    assert len(world.versions(a)) == 3
    assert world.index_entries(a) and world.index_entries(b)
    b_before = world.snapshot(b)

    rc, out, _ = stack.cli("erase", "--session", a, "--yes")
    assert rc == 0, out
    assert world.items(a) == [] and world.versions(a) == [] and world.index_entries(a) == []
    assert world.snapshot(b) == b_before
    assert "the recordings at Plivo are not deleted" in out
    assert stack.plivo.deleted == []
    events = receive_lifecycle_events(stack.res.endpoint_url, stack.res.lifecycle_events_queue_url)
    erased = [e["detail"] for e in events if e["detail-type"] == "RecordingErased"]
    assert erased == [
        {
            "SessionUUID": a,
            "RecordingUUID": rec_a,
            "Bucket": stack.res.bucket_name,
            "Key": version["Key"],
            "VersionId": version["VersionId"],
        }
    ]

    start, done = (r for r in _audit(stack) if r["action"].startswith("erase"))
    assert start["action"] == "erase.start" and start["targets"]["sessions"] == [a]
    assert done["targets"]["start_id"] == start["id"]
    assert done["counts"]["object_versions"] == 2 and done["counts"]["delete_markers"] == 1
    assert done["counts"]["items"] == 2

    # Idempotent: nothing left, nothing written.
    rc, out, _ = stack.cli("erase", "--session", a, "--yes")
    assert rc == 0 and "nothing to erase" in out
    assert len(_audit(stack)) == 2
    assert rec_a not in json.dumps(world.snapshot(b))


def test_erase_bypasses_a_default_governance_retention(stack: Stack, world: World) -> None:
    # ObjectLockRetentionDays > 0: every archived version is locked in GOVERNANCE mode.
    stack.s3.put_object_lock_configuration(
        Bucket=stack.res.bucket_name,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    a, _, _ = stack.session()
    stack.sweep()
    (version,) = world.versions(a)
    with pytest.raises(stack.s3.exceptions.ClientError, match="AccessDenied"):
        stack.s3.delete_object(
            Bucket=stack.res.bucket_name, Key=version["Key"], VersionId=version["VersionId"]
        )
    rc, _out, err = stack.cli("erase", "--session", a, "--yes")
    assert rc == 0, err
    assert world.versions(a) == [] and world.items(a) == []


def test_erase_by_number_with_the_source(stack: Stack, world: World) -> None:
    a, rec_a, _ = stack.session(from_number=OTHER)
    c, rec_c, _ = stack.session(from_number=OTHER)
    b, _, _ = stack.session()
    stack.sweep()
    b_before = world.snapshot(b)
    rc, out, err = stack.cli(
        "erase", "--number", OTHER, "--include-source", "--yes",
        "--plivo-api-url", stack.plivo.base_url,
    )  # fmt: skip
    assert rc == 0, err
    for s in (a, c):
        assert world.items(s) == [] and world.versions(s) == [] and world.index_entries(s) == []
    assert world.snapshot(b) == b_before
    assert sorted(stack.plivo.deleted) == sorted([rec_a, rec_c])
    dump = json.dumps(_audit(stack))
    digits = "".join(ch for ch in OTHER if ch.isdigit())
    assert digits not in dump and OTHER not in dump and digits not in out
    assert '"number": "***0177"' in dump


def test_erase_asks_on_a_terminal_and_refuses_without_one(
    stack: Stack, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, _ = stack.session()
    stack.sweep()
    rc, _, err = stack.cli("erase", "--session", a, stdin="y\n")  # a pipe, not a terminal
    assert rc == 1 and "without --yes" in err

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty("n\n"))
    rc, _, err = stack.cli("erase", "--session", a)
    assert rc == 1 and "aborted" in err and len(world.items(a)) == 2
    monkeypatch.setattr("sys.stdin", Tty("y\n"))
    rc, _, _ = stack.cli("erase", "--session", a)
    assert rc == 0 and world.items(a) == []


def test_erase_resumes_after_a_crash(
    stack: Stack, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, _ = stack.session()
    c, _, _ = stack.session(from_number=OTHER)
    stack.sweep()

    def crash(self: SessionIndex, keys: Any) -> int:
        raise SessionIndexUnavailableError("index table unreachable")

    # The objects are deleted, then the index step fails: the items are still there.
    with monkeypatch.context() as mp:
        mp.setattr(SessionIndex, "delete_entries", crash)
        rc, _, err = stack.cli("erase", "--session", a, "--yes")
    assert rc == 1 and "index table unreachable" in err
    assert world.versions(a) == [] and len(world.items(a)) == 2 and world.index_entries(a)
    (start,) = _audit(stack)
    assert start["action"] == "erase.start"

    rc, doc = stack.cli_json("erase", "--session", c, "--dry-run")
    assert rc == 0 and doc["unfinished"] == [start["id"]]
    assert len(world.items(a)) == 2  # a dry run finishes nothing either

    # The next erase (of another session) finishes A's first.
    rc, out, _ = stack.cli("erase", "--session", c, "--yes")
    assert rc == 0, out
    assert f"finished unfinished erase {start['id']}" in out
    for s in (a, c):
        assert world.items(s) == [] and world.versions(s) == [] and world.index_entries(s) == []
    actions = [(r["action"], r["targets"].get("start_id")) for r in _audit(stack)]
    assert actions[0] == ("erase.start", None)
    assert ("erase.done", start["id"]) in actions
    assert [a for a, _ in actions].count("erase.done") == 2


def test_erase_refused_while_an_archive_attempt_holds_a_recording(
    stack: Stack, world: World
) -> None:
    a, rec, _ = stack.session()
    lease = int(datetime.now(UTC).timestamp()) + 600
    stack.ddb.update_item(
        TableName=stack.res.table_name,
        Key={"SessionUUID": {"S": a}, "SequenceNumber": {"N": "2"}},
        UpdateExpression="SET ArchiveLeaseUntil = :l",
        ExpressionAttributeValues={":l": {"N": str(lease)}},
    )
    rc, _, err = stack.cli("erase", "--session", a, "--yes")
    assert rc == 1 and f"archive attempt is running for recording {rec}" in err
    assert len(world.items(a)) == 2 and _audit(stack) == []


def test_a_hold_set_during_the_erase_stops_it_and_the_next_run_finishes(
    stack: Stack, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, _ = stack.session()
    stack.sweep()
    (version,) = world.versions(a)
    world.legal_hold(version, "ON")
    # The hold arrives after the plan looked (the plan sees none): S3 itself refuses.
    with monkeypatch.context() as mp:
        mp.setattr(compliance, "legal_hold_on", lambda *_: False)
        rc, _, err = stack.cli("erase", "--session", a, "--yes")
    assert rc == 1 and "AccessDenied" in err and "run erase again" in err
    assert len(world.items(a)) == 2 and len(world.versions(a)) == 1
    (start,) = _audit(stack)
    # Held now: the next run refuses to finish it; released, the next run does.
    rc, _, err = stack.cli("erase", "--session", a, "--yes")
    assert rc == 1 and "refused, nothing deleted" in err
    world.legal_hold(version, "OFF")
    rc, out, err = stack.cli("erase", "--session", a, "--yes")
    assert rc == 0, err
    assert f"finished unfinished erase {start['id']}" in out
    assert world.items(a) == [] and world.versions(a) == []


def test_an_object_written_during_the_erase_keeps_it_unfinished(
    stack: Stack, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, _ = stack.session()
    stack.sweep()
    (version,) = world.versions(a)
    original = SessionIndex.delete_entries

    def archive_meanwhile(self: SessionIndex, keys: Any) -> int:
        stack.s3.put_object(Bucket=stack.res.bucket_name, Key=version["Key"], Body=b"late")
        return original(self, keys)

    with monkeypatch.context() as mp:
        mp.setattr(SessionIndex, "delete_entries", archive_meanwhile)
        rc, _, err = stack.cli("erase", "--session", a, "--yes")
    assert rc == 1 and "not finished, found again after deleting" in err
    assert f"s3://{stack.res.bucket_name}/{version['Key']}" in err
    assert [r["action"] for r in _audit(stack)] == ["erase.start"]
    # The items are gone, the sessions are in the start record: the next run finishes it.
    assert world.items(a) == []
    rc, _out, err = stack.cli("erase", "--session", a, "--yes")
    assert rc == 0, err
    assert world.versions(a) == []
    assert [r["action"] for r in _audit(stack)] == ["erase.start", "erase.done"]


def test_a_deployed_stack_names_the_audit_table_in_its_outputs(stack: Stack) -> None:
    res = stack.res
    outputs = {
        "EventsTableName": res.table_name,
        "ArchiveBucketName": res.bucket_name,
        "AuthSecretArn": res.secret_arn,
        "DataKeyArn": res.kms_key_arn,
        "FallbackQueueUrl": res.fallback_queue_url,
        "ArchiveFailureQueueUrl": res.archive_failure_queue_url,
        "IndexTableName": f"{res.stack_name}-IndexTable",
        "NumberIndexKeyArn": f"alias/{res.stack_name}-number-index",
    }
    deployed_stack(res, "old", outputs)
    deployed_stack(res, "prod", {**outputs, "AuditTableName": f"{res.stack_name}-AuditTable"})
    a, _, _ = stack.session()
    stack.capsys.readouterr()
    # AWS_ENDPOINT_URL (the `aws` fixture) points boto3 at moto: no --endpoint-url.
    assert main(["hold", "set", "--session", a, "--reason", "r", "--stack", "prod"]) == 0
    assert "held" in stack.capsys.readouterr().out
    assert main(["audit", "--stack", "prod", "--json"]) == 0
    (record,) = json.loads(stack.capsys.readouterr().out)
    assert record["action"] == "hold.set"
    assert main(["erase", "--session", a, "--dry-run", "--stack", "prod"]) == 1
    assert "refused, nothing deleted: 2 held" in stack.capsys.readouterr().err
    assert main(["hold", "clear", "--session", a, "--reason", "r", "--stack", "prod"]) == 0
    stack.capsys.readouterr()
    assert main(["erase", "--session", a, "--dry-run", "--stack", "prod", "--json"]) == 0
    assert json.loads(stack.capsys.readouterr().out)["waiting_messages"]["fallback queue"] == 0
    assert main(["audit", "--stack", "old"]) == 1
    assert "stack 'old' has no output AuditTableName" in stack.capsys.readouterr().err


def test_erase_says_what_it_cannot_reach(stack: Stack) -> None:
    a, _, _ = stack.session()
    sqs = boto3.client("sqs", endpoint_url=stack.res.endpoint_url)
    sqs.send_message(QueueUrl=stack.res.fallback_queue_url, MessageBody="{}")
    sqs.send_message(QueueUrl=stack.res.fallback_dlq_url, MessageBody="{}")
    rc, doc = stack.cli_json("erase", "--session", a, "--dry-run")
    assert rc == 0
    assert doc["waiting_messages"] == {
        "fallback queue": 1,
        "fallback dead-letter queue": 1,
        "archive failure queue": 0,
    }
    rc, out, _ = stack.cli("erase", "--session", a, "--yes")
    assert rc == 0
    assert "1 in the fallback queue, 1 in the fallback dead-letter queue" in out
    assert "run erase again after the drain" in out


# --- audit ---------------------------------------------------------------------------------------
def test_downloads_urls_and_retries_are_audited(stack: Stack, tmp_path: Any) -> None:
    session, rec, _ = stack.session()
    stack.sweep()
    assert stack.cli("recordings", "get", rec, "--url")[0] == 0
    assert stack.cli("recordings", "get", rec, "--download", str(tmp_path / "r.wav"))[0] == 0
    assert stack.cli("recordings", "retry", rec)[0] == 0
    records = _audit(stack)
    assert [r["action"] for r in records] == [
        "recording.url",
        "recording.download",
        "recording.retry",
    ]
    assert records[0]["targets"]["recording_uuid"] == rec
    assert records[0]["targets"]["session_uuid"] == session
    assert records[0]["counts"] == {"expires_in": 300}
    assert records[2]["counts"] == {"already_archived": 1}
    rc, out, _ = stack.cli("audit", "--since", "1h")
    assert rc == 0 and "recording.download" in out and "3 record(s)" in out


def test_audit_window_and_errors(stack: Stack) -> None:
    log = AuditLog(stack.ddb, f"{stack.res.stack_name}-AuditTable")
    record = log.write("hold.set", actor="arn:aws:iam::123:user/x", targets={"session_uuid": "s"})
    assert record["AuditDay"] == datetime.now(UTC).strftime("%Y-%m-%d")
    with pytest.raises(ValueError, match="unknown audit action"):
        log.write("erase.everything", actor="a", targets={})
    with pytest.raises(ValueError, match="phone fields: From"):
        log.write("hold.set", actor="a", targets={"From": "+14155550101"})
    rc, records = stack.cli_json("audit", "--until", "2020-01-01T00:00:00Z")
    assert rc == 0 and records == []
    with pytest.raises(SystemExit):
        stack.cli("audit", "--until", "yesterday")
    with pytest.raises(SystemExit):
        stack.cli("audit", "--since", "4000d")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call +1 (415) 555-0101 disputed", "call ***0101 disputed"),
        ("14155550101", "***0101"),
        ("ticket 1234567 of 2026-12-03", "ticket 1234567 of 2026-12-03"),
    ],
)
def test_numbers_in_free_text_are_masked(text: str, masked: str) -> None:
    assert mask_numbers(text) == masked
