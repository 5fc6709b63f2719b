"""`recording-archive local`, driven over HTTP as a user (and Plivo) would.

The callbacks here are signed with Plivo's own SDK (tests/support/plivo.py), not with the code
under test; the media is served by a loopback server of the test.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from tests.support.local_stack import (
    TOKEN,
    LocalStackProcess,
    bucket_name,
    ddb,
    post,
    run_cli,
    session_items,
    start_local,
    table_name,
)
from tests.support.media_server import MediaServer, wav_body
from tests.support.net import free_port, wait_until
from tests.support.plivo import AUTH_ID, recording_event
from tests.support.processes import alive, descendants, lambda_workers

pytestmark = pytest.mark.e2e

ARCHIVE_SECONDS = 30.0


def wait_archived(stack: LocalStackProcess, session_uuid: str, seq: int) -> dict[str, Any]:
    item: dict[str, Any] = {}

    def archived() -> bool:
        nonlocal item
        item = (
            ddb(stack)
            .get_item(
                TableName=table_name(stack),
                Key={"SessionUUID": {"S": session_uuid}, "SequenceNumber": {"N": str(seq)}},
                ConsistentRead=True,
            )
            .get("Item", {})
        )
        return item.get("ArchiveStatus", {}).get("S") == "ARCHIVED"

    if wait_until(archived, ARCHIVE_SECONDS, interval=0.25):
        return item
    raise AssertionError(f"not archived in {ARCHIVE_SECONDS} s: {item}\n{stack.output()}")


def test_ready_line_names_everything(local_stack: LocalStackProcess) -> None:
    ready = local_stack.wait_for(lambda line: line.startswith("ready:"))
    assert local_stack.callback_url in ready
    assert local_stack.endpoint in ready
    assert "| table local-" in ready
    assert "| bucket local-" in ready
    assert "token from $PLIVO_AUTH_TOKEN" in ready
    assert TOKEN not in local_stack.output()  # a token from the environment is never printed


def test_ready_file_is_written_when_ready_and_removed_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "ready.json"
    stack = start_local("--no-demo", "--ready-file", str(path))
    try:
        info = json.loads(path.read_text())
        assert info["pid"] == stack.proc.pid
        assert info["callback_url"] == stack.callback_url
        assert info["aws_endpoint_url"] == stack.endpoint
        assert (info["port"], info["aws_port"]) == (stack.port, stack.aws_port)
        assert info["table"].startswith("local-")
        assert info["bucket"].startswith("local-")
        assert info["auth_token_source"] == "env:PLIVO_AUTH_TOKEN"
        assert TOKEN not in path.read_text()
    finally:
        assert stack.stop(signal.SIGTERM) == 0
    assert not path.exists()


def test_signed_callbacks_are_stored_and_the_recording_archived(
    local_stack: LocalStackProcess, media: MediaServer
) -> None:
    session_uuid, recording_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    path = f"/v1/Account/{AUTH_ID}/Recording/{recording_uuid}.wav"
    body = media.add(path, wav_body(2.0), content_type="audio/wav")
    initiated = recording_event(
        "SessionRecordingInitiated",
        session_uuid=session_uuid,
        recording_uuid=recording_uuid,
        fmt=".wav",
    )
    completed = recording_event(
        "SessionRecordingCompleted",
        session_uuid=session_uuid,
        sequence=2,
        recording_uuid=recording_uuid,
        fmt=".wav",
        recording_url=media.url(path),
    )

    assert post(local_stack, initiated) == (
        200,
        {"status": "stored", "sessionUUID": session_uuid, "sequenceNumber": 1},
    )
    assert post(local_stack, completed)[0] == 200

    item = wait_archived(local_stack, session_uuid, 2)
    bucket, key = item["ArchiveBucket"]["S"], item["ArchiveKey"]["S"]
    assert bucket == bucket_name(local_stack)
    assert key.endswith(f"/{session_uuid}/{recording_uuid}.wav")
    s3 = boto3.client("s3", endpoint_url=local_stack.endpoint, region_name="us-east-1")
    stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == body.sha256_hex
    assert item["ArchiveSha256"]["S"] == body.sha256_hex
    assert int(item["ArchiveSize"]["N"]) == body.size
    assert "ArchiveQueue" not in item
    assert len(media.requests_for(path)) >= 1

    # One readable line per callback and per archive.
    local_stack.wait_for(
        lambda line: line.endswith(
            f"callback 200 stored SessionRecordingCompleted session={session_uuid} seq=2"
        )
    )
    local_stack.wait_for(
        lambda line: (
            f"archived s3://{bucket}/{key} size={body.size} sha256={body.sha256_hex}" in line
        )
    )
    assert "+14155550101" not in local_stack.output()
    assert [i["EventName"]["S"] for i in session_items(local_stack, session_uuid)] == [
        "SessionRecordingInitiated",
        "SessionRecordingCompleted",
    ]


def test_tampered_callback_is_refused_and_nothing_stored(local_stack: LocalStackProcess) -> None:
    session_uuid = str(uuid.uuid4())
    signed = recording_event("SessionRecordingCompleted", session_uuid=session_uuid, sequence=2)
    tampered = {**signed, "RecordingURL": "https://media.plivo.com/v1/Account/x/Recording/evil.mp3"}
    status, answer = post(local_stack, tampered, signed=signed)
    assert status == 403
    assert answer["error"] == "signature_invalid"
    status, _ = post(local_stack, signed, token="not-the-token")
    assert status == 403
    local_stack.wait_for(
        lambda line: "callback 403 signature_invalid" in line and session_uuid in line
    )
    assert session_items(local_stack, session_uuid) == []


def test_unsigned_callback_is_401_and_unknown_route_404(local_stack: LocalStackProcess) -> None:
    params = recording_event("SessionRecordingInitiated")
    request = urllib.request.Request(
        local_stack.callback_url,
        data=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{local_stack.port}/nothing", timeout=10)
    assert info.value.code == 404
    assert json.loads(info.value.read()) == {"message": "Not Found"}
    assert session_items(local_stack, params["SessionUUID"]) == []


def test_each_function_runs_with_its_own_environment(local_stack: LocalStackProcess) -> None:
    environments: dict[str, dict[str, str]] = {}
    for pid, cmdline in lambda_workers(local_stack.proc.pid).items():
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        handler = cmdline[cmdline.index(b"--handler") + 1].decode()
        environments[handler.split(".")[-2]] = dict(
            entry.decode().split("=", 1) for entry in raw.split(b"\0") if b"=" in entry
        )
    assert set(environments) == {
        "recording_callback",
        "archive_stream",
        "fallback_drain",
        "sweeper",
        "archive_work",
    }
    callback, archive = environments["recording_callback"], environments["archive_stream"]
    assert callback["PUBLIC_CALLBACK_URL"] == local_stack.callback_url
    assert callback["MEDIA_ALLOW_LOOPBACK"] == "true"
    assert callback["AWS_ENDPOINT_URL"] == local_stack.endpoint
    assert callback["POWERTOOLS_LOG_LEVEL"] == "WARNING"
    assert "ARCHIVE_BUCKET_NAME" not in callback
    assert "PLIVO_AUTH_TOKEN" not in callback  # the token lives in the secret only
    assert archive["ARCHIVE_BUCKET_NAME"] == bucket_name(local_stack)
    assert archive["MEDIA_ALLOW_LOOPBACK"] == "true"
    assert "FALLBACK_QUEUE_URL" not in archive
    assert "PUBLIC_CALLBACK_URL" not in archive
    assert "MEDIA_ALLOW_LOOPBACK" not in environments["fallback_drain"]
    assert environments["archive_work"]["SWEEP_MAX_ATTEMPTS"] == "8"
    assert environments["archive_work"]["MEDIA_ALLOW_LOOPBACK"] == "true"
    assert "ARCHIVE_BUCKET_NAME" not in environments["sweeper"]  # it archives nothing itself


def test_simulate_against_the_local_stack(
    local_stack: LocalStackProcess, media: MediaServer
) -> None:
    path = f"/v1/Account/{AUTH_ID}/Recording/simulated.wav"
    media.add(path, wav_body(1.0), content_type="audio/wav")
    for method in ("POST", "GET"):
        result = run_cli(
            "simulate",
            "--url",
            local_stack.callback_url,
            "--auth-token",
            TOKEN,
            "--sessions",
            "3",
            "--method",
            method,
            "--media-url",
            media.url(path),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "all 5 callbacks answered 200" in result.stdout
        assert result.stdout.count("SessionRecordingFailed") == 1


def test_simulate_with_a_wrong_token_fails(local_stack: LocalStackProcess) -> None:
    result = run_cli("simulate", "--url", local_stack.callback_url, "--auth-token", "wrong")
    assert result.returncode == 1
    assert "signature_invalid" in result.stdout
    assert "2 of 2 callbacks were not answered 200" in result.stdout


def second_local(port: int, aws_port: int) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "local", "--no-demo", "--port", str(port), "--aws-port", str(aws_port), timeout=30
    )


def test_second_instance_on_the_same_ports_fails_cleanly(local_stack: LocalStackProcess) -> None:
    result = second_local(local_stack.port, local_stack.aws_port)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{local_stack.port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = second_local(free_port(), local_stack.aws_port)
    assert result.returncode == 1
    assert f"port {local_stack.aws_port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    # The first instance is untouched.
    assert post(local_stack, recording_event("SessionRecordingInitiated"))[0] == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port"], "argument --port: expected one argument"),
        (["--port", "70000"], "port must be between 1 and 65535"),
        (["--aws-port", "x"], "not a port number: 'x'"),
        (["--sweep-interval", "0"], "must be more than 0 seconds"),
    ],
)
def test_bad_options_are_one_clear_message(args: list[str], message: str) -> None:
    result = run_cli("local", *args, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_template_that_does_not_parse_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "template.yaml"
    bad.write_text("Resources:\n  Table: [unclosed\n")
    result = run_cli("local", "--no-demo", "--template", str(bad), timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith(f"recording-archive: error: template: {bad}:")
    assert "Traceback" not in result.stderr
    missing = run_cli("local", "--template", str(tmp_path / "none.yaml"), timeout=30)
    assert missing.returncode == 1
    assert "template not found" in missing.stderr


def test_same_port_twice_is_refused() -> None:
    result = run_cli("local", "--port", "4000", "--aws-port", "4000", timeout=30)
    assert result.returncode == 1
    assert "--port and --aws-port must be different" in result.stderr


def test_demo_then_ctrl_c_stops_every_process() -> None:
    stack = start_local()  # with the demo
    try:
        stack.wait_for(lambda line: "(matches the served file)" in line, timeout=45)
        stack.wait_for(
            lambda line: (
                "demo:   seq=2 SessionRecordingCompleted" in line and "archive=ARCHIVED" in line
            )
        )
        children = descendants(stack.proc.pid)
        assert len(children) >= 5  # moto + four functions
    finally:
        status = stack.stop(signal.SIGINT)
    assert status == 0
    assert [pid for pid in children if alive(pid)] == []
    assert "Traceback" not in "\n".join(stack.stderr)
    assert stack.stdout[-1].endswith("stopping")


def test_sigterm_stops_every_process(local_stack: LocalStackProcess) -> None:
    # Last test of the module: it stops the shared instance.
    children = descendants(local_stack.proc.pid)
    assert len(children) >= 5
    assert local_stack.stop(signal.SIGTERM) == 0
    assert [pid for pid in children if alive(pid)] == []
    assert "Traceback" not in "\n".join(local_stack.stderr)
