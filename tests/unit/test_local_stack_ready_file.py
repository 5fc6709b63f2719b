"""`recording-archive local --ready-file PATH`: the machine-readable ready file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from recording_archive_cli.local.resources import DEFAULT_AUTH_ID, LocalResources
from recording_archive_cli.local.stack import (
    DEV_AUTH_TOKEN,
    READY_FILE_VERSION,
    LocalStack,
    write_ready_file,
)

RESOURCES = LocalResources(
    endpoint_url="http://127.0.0.1:4599",
    region="us-east-1",
    account_id="123456789012",
    table_name="local-RecordingEvents",
    stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
    bucket_name="local-archive",
    kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
    fallback_queue_url="http://127.0.0.1:4599/123456789012/fallback",
    fallback_dlq_url="http://127.0.0.1:4599/123456789012/fallback-dlq",
    archive_failure_queue_url="http://127.0.0.1:4599/123456789012/archive-failures",
    secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:s",
)


def stack(token: str) -> LocalStack:
    s = LocalStack(
        port=3999,
        aws_port=4599,
        template=None,
        verbose=False,
        sweep_interval=30.0,
        auth_token=token,
    )
    s.resources = RESOURCES
    return s


def test_ready_info_names_what_a_client_needs_and_never_the_token() -> None:
    info = stack("a-secret-token-of-mine").ready_info()
    assert info["version"] == READY_FILE_VERSION
    assert info["pid"] == os.getpid()
    assert (info["port"], info["aws_port"]) == (3999, 4599)
    assert info["callback_url"].startswith("http://127.0.0.1:3999/")
    assert info["aws_endpoint_url"] == RESOURCES.endpoint_url
    assert info["table"] == RESOURCES.table_name
    assert info["bucket"] == RESOURCES.bucket_name
    assert info["fallback_queue_url"] == RESOURCES.fallback_queue_url
    assert info["archive_failure_queue_url"] == RESOURCES.archive_failure_queue_url
    assert info["auth_id"] == DEFAULT_AUTH_ID
    assert info["auth_token_source"] == "env:PLIVO_AUTH_TOKEN"
    assert "a-secret-token-of-mine" not in json.dumps(info)


def test_default_token_is_named_as_the_default() -> None:
    info = stack(DEV_AUTH_TOKEN).ready_info()
    assert info["auth_token_source"] == "default"
    assert DEV_AUTH_TOKEN not in json.dumps(info)


def test_written_atomically_and_replaces_a_stale_file(tmp_path: Path) -> None:
    path = tmp_path / "ready.json"
    path.write_text("stale, not JSON")
    write_ready_file(path, {"version": 1, "table": "t"})
    assert json.loads(path.read_text()) == {"version": 1, "table": "t"}
    assert [p.name for p in tmp_path.iterdir()] == ["ready.json"]  # no temporary left behind
