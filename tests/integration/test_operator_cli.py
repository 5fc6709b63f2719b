"""The operator commands against the local stack's resources in moto, and a fake Plivo REST API.

Callbacks go through the real CallbackFunction handler (signed like Plivo), archiving through the
real SweeperFunction handler, media comes from a scripted server on loopback, and the commands run
through `recording_archive_cli.main.main` exactly as on the command line.

One module (over 500 lines): the commands share the `Stack` harness
(tests/support/operator_stack.py: resources, fake Plivo, media, handlers).
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from recording_archive.dal.plivo_api import recording_id_from_url
from recording_archive.handlers import reconcile as reconcile_handler
from recording_archive.handlers import wiring
from recording_archive.logic.reconcile import reconcile_sequence_number
from recording_archive_cli.local.resources import DEFAULT_AUTH_ID
from recording_archive_cli.main import main
from recording_archive_cli.plivo_sim import EVENT_COMPLETED, EVENT_INITIATED
from tests.support.lambda_context import FakeLambdaContext
from tests.support.media_server import Status
from tests.support.moto_resources import set_secret
from tests.support.net import free_port
from tests.support.operator_stack import Stack, deployed_stack


# --- reconcile: the key scenario -----------------------------------------------------------------
def test_reconcile_archives_exactly_the_dropped_recordings_then_does_nothing(
    stack: Stack,
) -> None:
    complete_a = stack.session()
    no_completed = stack.session(drop=(EVENT_COMPLETED,))
    complete_b = stack.session()
    nothing = stack.session(drop=(EVENT_INITIATED, EVENT_COMPLETED))
    unrecorded = stack.plivo.add_session()
    stack.plivo.add_unrecorded_call(unrecorded)
    assert stack.sweep() == {"archived": 2}
    assert len(stack.versions()) == 2

    # Dry run: reports, writes nothing.
    items_before = stack.items()
    rc, report = stack.cli_json("reconcile", "--since", "2h", "--dry-run")
    assert rc == 0
    assert report["counts"] == {"already_archived": 2, "would_archive": 2}
    assert {e["recording_uuid"] for e in report["entries"] if e["action"] == "would_archive"} == {
        no_completed[1],
        nothing[1],
    }
    assert stack.items() == items_before
    assert len(stack.versions()) == 2

    rc, report = stack.cli_json("reconcile", "--since", "2h")
    assert rc == 0
    assert report["sessions"] == 5
    assert report["counts"] == {"already_archived": 2, "archived": 2}
    reconciled = {e["recording_uuid"]: e for e in report["entries"] if e["action"] == "archived"}
    assert set(reconciled) == {no_completed[1], nothing[1]}
    for session_uuid, rec, data in (no_completed, nothing):
        seq = reconcile_sequence_number(rec)
        assert seq < 0 and reconciled[rec]["sequence_number"] == seq
        assert reconciled[rec]["reconciled_event"] is True
        item = stack.item(session_uuid, seq)
        assert item["Source"] == {"S": "reconcile"}
        assert item["EventName"] == {"S": "SessionRecordingCompleted"}
        assert item["RecordingUUID"] == {"S": rec}
        assert item["ArchiveStatus"] == {"S": "ARCHIVED"}
        assert "ArchiveQueue" not in item
        obj = stack.s3.get_object(Bucket=stack.res.bucket_name, Key=item["ArchiveKey"]["S"])
        assert obj["Body"].read() == data
        assert item["ArchiveSha256"] == {"S": hashlib.sha256(data).hexdigest()}
        assert item["ArchiveKey"]["S"].endswith(f"/{session_uuid}/{rec}.wav")
    # The Initiated event of the session whose Completed callback was lost is still there.
    assert stack.item(no_completed[0], 1)["EventName"] == {"S": "SessionRecordingInitiated"}
    for session_uuid, _, _ in (complete_a, complete_b):
        assert not [
            i
            for i in stack.items()
            if i["SessionUUID"]["S"] == session_uuid and int(i["SequenceNumber"]["N"]) < 0
        ]
    assert len(stack.versions()) == 4

    # Second run: nothing to do, nothing written, no media fetched, no recording looked up.
    items_before, media_before = stack.items(), len(stack.media.requests)
    recording_gets = len(stack.plivo.requests_to("/Recording/"))
    rc, out, _ = stack.cli("reconcile", "--since", "2h")
    assert rc == 0
    assert "4 already_archived" in out
    assert stack.items() == items_before
    assert len(stack.versions()) == 4
    assert len(stack.media.requests) == media_before
    assert len(stack.plivo.requests_to("/Recording/")) == recording_gets


def test_reconcile_archives_a_pending_callback_event_without_a_new_event(stack: Stack) -> None:
    session_uuid, _, _ = stack.session()  # stored, never archived (no sweep)
    rc, report = stack.cli_json("reconcile", "--since", "1h")
    assert rc == 0
    [entry] = report["entries"]
    assert entry["action"] == "archived"
    assert entry["sequence_number"] == 2 and entry["reconciled_event"] is False
    assert stack.item(session_uuid, 2)["ArchiveStatus"] == {"S": "ARCHIVED"}
    assert all(int(i["SequenceNumber"]["N"]) > 0 for i in stack.items())
    assert stack.plivo.requests_to("/Recording/") == []


def test_reconcile_survives_a_429_and_a_503(stack: Stack) -> None:
    stack.session(drop=(EVENT_COMPLETED,))
    stack.plivo.fail(429, retry_after="0", path_contains="/Masking/Session/")
    stack.plivo.fail(503, path_contains="/Recording/")
    rc, report = stack.cli_json("reconcile", "--since", "1h")
    assert rc == 0
    assert report["counts"] == {"archived": 1}
    assert len(stack.plivo.requests_to("/Recording/")) == 2


def test_reconcile_reports_a_recording_it_cannot_archive(stack: Stack) -> None:
    session_uuid, rec, _ = stack.session(
        drop=(EVENT_INITIATED, EVENT_COMPLETED), media_url="https://files.example.com/r.wav"
    )
    rc, out, _ = stack.cli("reconcile", "--since", "1h")
    assert rc == 1
    assert "failed" in out and "not on the allow-list" in out
    seq = reconcile_sequence_number(rec)
    item = stack.item(session_uuid, seq)
    assert item["ArchiveStatus"] == {"S": "FAILED"}

    rc, failed = stack.cli_json("recordings", "failed")
    assert rc == 0
    assert [(f["recording_uuid"], f["attempts"], f["source"]) for f in failed] == [
        (rec, 1, "reconcile")
    ]
    assert "MediaRefusedError" in failed[0]["last_error"]

    rc, retried = stack.cli_json("recordings", "retry", "--failed")
    assert rc == 1
    assert [r["outcome"] for r in retried] == ["failed"]


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ({"auth_id": DEFAULT_AUTH_ID, "auth_tokens": []}, "no Plivo credentials"),
        ({"auth_id": DEFAULT_AUTH_ID, "auth_tokens": ["wrong"]}, "Plivo refused the credentials"),
    ],
)
def test_reconcile_credential_errors_are_one_line(
    stack: Stack, secret: dict[str, Any], message: str
) -> None:
    stack.session(drop=(EVENT_COMPLETED,))
    items_before = stack.items()
    set_secret(stack.res, secret)
    rc, out, err = stack.cli("reconcile", "--since", "1h")
    assert rc == 1
    assert out == ""
    assert message in err and len(err.strip().splitlines()) == 1
    assert "wrong" not in err
    assert stack.items() == items_before


def test_reconcile_handler_shares_the_logic(stack: Stack) -> None:
    session_uuid, rec, _ = stack.session(drop=(EVENT_COMPLETED,))
    env = stack.function_env(
        "ReconcileFunction",
        MEDIA_ALLOW_LOOPBACK="true",
        PLIVO_API_BASE_URL=stack.plivo.base_url,
    )
    assert env["RECONCILE_WINDOW_HOURS"] == "48"
    wiring.reset()
    result = reconcile_handler.lambda_handler({}, FakeLambdaContext())
    assert result == {"sessions": 1, "counts": {"archived": 1}, "complete": True}
    assert stack.item(session_uuid, reconcile_sequence_number(rec))["ArchiveStatus"] == {
        "S": "ARCHIVED"
    }
    # The reconciled event has its day entry in the session index (issue 15).
    entries = stack.ddb.scan(TableName=stack.res.index_table_name)["Items"]
    suffix = f"#{session_uuid}#{reconcile_sequence_number(rec)}"
    assert [e["pk"]["S"][:4] for e in entries if e["sk"]["S"].endswith(suffix)] == ["DAY#"]
    assert reconcile_handler.lambda_handler({}, FakeLambdaContext())["counts"] == {
        "already_archived": 1
    }


# --- sessions, recordings, verify ----------------------------------------------------------------
def test_sessions_show_lists_events_in_order_with_phones_masked(stack: Stack) -> None:
    session_uuid, rec, _ = stack.session()
    stack.sweep()
    rc, out, _ = stack.cli("sessions", "show", session_uuid)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == f"session {session_uuid}"
    assert "SessionRecordingInitiated" in lines[3] and "SessionRecordingCompleted" in lines[4]
    assert "ARCHIVED" in lines[4] and rec in lines[4]

    rc, doc = stack.cli_json("sessions", "show", session_uuid)
    assert [e["SequenceNumber"] for e in doc["events"]] == [1, 2]
    assert doc["events"][1]["Payload"]["From"] == "***0101"
    assert "RawBody" not in doc["events"][1]
    assert "+14155550101" not in json.dumps(doc)

    rc, out, err = stack.cli("sessions", "show", str(uuid.uuid4()))
    assert rc == 1 and out == "" and "no events for session" in err


def test_recordings_get_details_url_and_download(stack: Stack, tmp_path: Path) -> None:
    session_uuid, rec, data = stack.session()
    stack.sweep()
    rc, details = stack.cli_json("recordings", "get", rec)
    assert rc == 0
    assert details["session_uuid"] == session_uuid and details["size"] == len(data)
    assert details["sha256"] == hashlib.sha256(data).hexdigest()

    rc, out, _ = stack.cli("recordings", "get", rec, "--url", "--expires", "120")
    assert rc == 0
    url = out.strip()
    assert url.startswith(stack.res.endpoint_url) and "X-Amz-Expires=120" in url
    with urllib.request.urlopen(url, timeout=10) as resp:  # moto, on loopback
        assert resp.read() == data

    target = tmp_path / "rec.wav"
    rc, out, _ = stack.cli("recordings", "get", rec, "--download", str(target))
    assert rc == 0 and "verified" in out
    assert target.read_bytes() == data
    rc, _, err = stack.cli("recordings", "get", rec, "--download", str(target))
    assert rc == 1 and "exists" in err

    stack.update(session_uuid, 2, ArchiveSha256="0" * 64)
    other = tmp_path / "other.wav"
    rc, _, err = stack.cli("recordings", "get", rec, "--download", str(other))
    assert rc == 1 and "does not match the index" in err
    assert not other.exists() and not (tmp_path / "other.wav.part").exists()

    rc, _, err = stack.cli("recordings", "get", str(uuid.uuid4()))
    assert rc == 1 and "no recording" in err


def test_recordings_get_of_a_pending_recording(stack: Stack) -> None:
    _, rec, _ = stack.session()
    rc, out, _ = stack.cli("recordings", "get", rec)
    assert rc == 1 and "not archived yet (PENDING)" in out
    rc, _, err = stack.cli("recordings", "get", rec, "--url")
    assert rc == 1 and "is not archived (PENDING)" in err


def test_recordings_pending_and_retry(stack: Stack) -> None:
    session_uuid, rec, _ = stack.session()
    rc, pending = stack.cli_json("recordings", "pending")
    assert rc == 0
    assert [(p["session_uuid"], p["recording_uuid"], p["attempts"]) for p in pending] == [
        (session_uuid, rec, 0)
    ]
    rc, out, _ = stack.cli("recordings", "pending")
    assert "1 pending" in out and rec in out

    rc, retried = stack.cli_json("recordings", "retry", rec)
    assert rc == 0 and [r["outcome"] for r in retried] == ["archived"]
    assert stack.item(session_uuid, 2)["ArchiveStatus"] == {"S": "ARCHIVED"}
    rc, retried = stack.cli_json("recordings", "retry", rec)
    assert rc == 0 and [r["outcome"] for r in retried] == ["already_archived"]
    assert len(stack.versions()) == 1
    rc, pending = stack.cli_json("recordings", "pending")
    assert pending == []

    rc, retried = stack.cli_json("recordings", "retry", "no-such-recording")
    assert rc == 1 and retried[0]["outcome"] == "not_found"
    rc, _, err = stack.cli("recordings", "retry")
    assert rc == 1 and "--failed" in err


def test_retry_of_unavailable_media_leaves_it_pending(stack: Stack) -> None:
    session_uuid, rec, _ = stack.session()
    path = f"/v1/Account/{DEFAULT_AUTH_ID}/Recording/{rec}.wav"
    stack.media.add(path, b"x", faults=[Status(503, times=None)])
    stack.update(session_uuid, 2, ArchiveStatus="FAILED", ArchiveQueue="FAILED")
    rc, retried = stack.cli_json("recordings", "retry", "--failed", "--media-retry-budget", "0.3")
    assert rc == 1
    assert retried[0]["outcome"] == "retry_later"
    assert "MediaUnavailableError" in retried[0]["detail"]
    assert stack.item(session_uuid, 2)["ArchiveStatus"] == {"S": "PENDING"}


def test_verify_detects_mismatch_and_missing_objects(stack: Stack) -> None:
    first = stack.session()
    second = stack.session()
    third = stack.session()
    stack.sweep()
    rc, out, _ = stack.cli("verify")
    assert rc == 0 and "3 archived objects checked, 0 problem(s)" in out

    stack.update(first[0], 2, ArchiveSha256="f" * 64)
    item = stack.item(second[0], 2)
    stack.s3.delete_object(
        Bucket=stack.res.bucket_name,
        Key=item["ArchiveKey"]["S"],
        VersionId=item["ArchiveVersionId"]["S"],
    )
    rc, doc = stack.cli_json("verify")
    assert rc == 1
    status = {r["recording_uuid"]: r["status"] for r in doc["results"]}
    assert status == {first[1]: "sha256_mismatch", second[1]: "missing", third[1]: "ok"}

    # --since: only objects archived recently are checked.
    stack.update(first[0], 2, ArchivedAt="2020-01-01T00:00:00.000Z")
    stack.update(second[0], 2, ArchivedAt="2020-01-01T00:00:00.000Z")
    rc, out, _ = stack.cli("verify", "--since", "1h")
    assert rc == 0 and "1 archived objects checked, 0 problem(s)" in out


# --- purge-source --------------------------------------------------------------------------------
def test_purge_source_deletes_only_verified_old_recordings(stack: Stack) -> None:
    old = stack.session()
    tampered = stack.session()
    recent = stack.session()
    stack.sweep()
    for session_uuid, _, _ in (old, tampered):
        stack.update(session_uuid, 2, ArchivedAt="2020-01-01T00:00:00.000Z")
    stack.update(tampered[0], 2, ArchiveSha256="e" * 64)

    rc, doc = stack.cli_json("purge-source", "--archived-before", "7d", "--dry-run")
    assert rc == 1  # the tampered one cannot be verified
    assert {r["recording_uuid"]: r["outcome"] for r in doc["results"]} == {
        old[1]: "would_delete",
        tampered[1]: "not_verified",
    }
    assert stack.plivo.deleted == []

    rc, _, err = stack.cli("purge-source", "--archived-before", "7d", stdin="n\n")
    assert rc == 1 and "aborted" in err
    assert stack.plivo.deleted == []

    rc, out, _ = stack.cli("purge-source", "--archived-before", "7d", stdin="y\n")
    assert rc == 1
    assert stack.plivo.deleted == [old[1]]
    assert "SourceDeletedAt" in stack.item(old[0], 2)
    assert "SourceDeletedAt" not in stack.item(tampered[0], 2)
    assert recent[1] not in out

    deletes = len(stack.plivo.requests_to("/Recording/", method="DELETE"))
    rc, doc = stack.cli_json("purge-source", "--archived-before", "7d", "--yes")
    assert {r["recording_uuid"]: r["outcome"] for r in doc["results"]} == {
        old[1]: "already_deleted",
        tampered[1]: "not_verified",
    }
    assert len(stack.plivo.requests_to("/Recording/", method="DELETE")) == deletes


def test_purge_source_recording_already_gone_from_plivo(stack: Stack) -> None:
    session_uuid, rec, _ = stack.session()
    stack.sweep()
    stack.update(session_uuid, 2, ArchivedAt="2020-01-01T00:00:00.000Z")
    stack.plivo.recordings.pop(rec)
    rc, doc = stack.cli_json("purge-source", "--archived-before", "1d", "--yes")
    assert rc == 0
    assert [r["outcome"] for r in doc["results"]] == ["already_gone"]
    assert "SourceDeletedAt" in stack.item(session_uuid, 2)


# --- where the stack is ---------------------------------------------------------------------------
def test_deployed_stack_names_come_from_its_outputs(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    session_uuid, rec, _ = stack.session()
    deployed_stack(
        stack.res,
        "prod-archive",
        {
            "EventsTableName": stack.res.table_name,
            "ArchiveBucketName": stack.res.bucket_name,
            "AuthSecretArn": stack.res.secret_arn,
            "DataKeyArn": stack.res.kms_key_arn,
        },
    )
    deployed_stack(stack.res, "other", {"EventsTableName": stack.res.table_name})
    capsys.readouterr()
    # AWS_ENDPOINT_URL (set by the `aws` fixture) points boto3 at moto: no --endpoint-url.
    assert main(["sessions", "show", session_uuid, "--stack", "prod-archive", "--json"]) == 0
    assert [e["RecordingUUID"] for e in json.loads(capsys.readouterr().out)["events"]] == [rec, rec]

    assert main(["recordings", "pending", "--stack", "nope"]) == 1
    assert "no stack named 'nope'" in capsys.readouterr().err
    assert main(["recordings", "pending", "--stack", "other"]) == 1
    err = capsys.readouterr().err
    assert "not a recording archive stack" in err and "ArchiveBucketName" in err


def test_where_errors_are_one_line(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--endpoint-url", aws]) == 1  # moto without the local stack
    assert "no local stack at" in capsys.readouterr().err
    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["recordings", "pending", "--endpoint-url", dead]) == 1
    assert f"cannot reach {dead}" in capsys.readouterr().err
    assert main(["verify", "--endpoint-url", aws, "--stack", "x"]) == 1
    assert "not both" in capsys.readouterr().err


def test_reconciled_key_never_collides_with_plivo_sequence_numbers() -> None:
    ids = [str(uuid.uuid4()) for _ in range(2000)]
    numbers = [reconcile_sequence_number(i) for i in ids]
    assert all(-(2**48) <= n <= -1 for n in numbers)
    assert len(set(numbers)) == len(numbers)
    assert reconcile_sequence_number(ids[0]) == numbers[0]
    assert (
        recording_id_from_url(f"https://api.plivo.com/v1/Account/MA/Recording/{ids[0]}/") == ids[0]
    )
