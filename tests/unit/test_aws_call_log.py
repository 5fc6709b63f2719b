"""The call recorder of the permission test: what it records, and to which function.

The conftest installed the recorder for the session; each test here points it at a file of its
own, so the session's record (checked by tests/infra/test_permissions.py) never sees these calls.
Clients are stubbed (botocore's Stubber): `before-parameter-build` fires before the stub answers.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from recording_archive_cli.local import aws_call_log


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv(aws_call_log.CALL_LOG_ENV, str(path))
    monkeypatch.setenv("ARCHIVE_BUCKET_NAME", "local-archivebucket")
    monkeypatch.setenv("MEDIA_AUTH", "false")
    return path


def as_module(module: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` re-created with the globals of `module`, as if it were defined there."""
    code = fn.__code__
    namespace = {**fn.__globals__, "__name__": module}
    return type(fn)(code, namespace, fn.__name__, fn.__defaults__, fn.__closure__)


def tag_version(s3: Any, key: str) -> None:
    s3.put_object_tagging(
        Bucket="local-archivebucket",
        Key=key,
        VersionId="v1",
        Tagging={"TagSet": [{"Key": "sha256", "Value": "00"}]},
    )


def stubbed_s3() -> tuple[Any, Stubber]:
    s3 = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(s3)
    stubber.activate()
    return s3, stubber


def stubbed_tagging() -> tuple[Any, str]:
    """A stubbed S3 client that answers one PutObjectTagging, and a fresh recording key."""
    s3, stubber = stubbed_s3()
    stubber.add_response("put_object_tagging", {})
    return s3, f"recordings/{uuid.uuid4()}.mp3"


def test_a_handlers_call_is_recorded_with_its_function_and_parameters(log: Path) -> None:
    s3, key = stubbed_tagging()
    as_module("recording_archive.handlers.archive_work", tag_version)(s3, key)
    (record,) = aws_call_log.read_records(str(log))
    assert record["functions"] == ["ArchiveWorkFunction"]
    assert (record["service"], record["iam_prefix"], record["operation"]) == (
        "s3",
        "s3",
        "PutObjectTagging",
    )
    assert record["params"] == {"Bucket": "local-archivebucket", "Key": key}
    assert record["present"] == ["Tagging", "VersionId"]
    # The function's template variables as the process had them (not other variables).
    assert record["environment"]["ARCHIVE_BUCKET_NAME"] == "local-archivebucket"
    assert record["environment"]["MEDIA_AUTH"] == "false"
    assert "FALLBACK_QUEUE_URL" not in record["environment"]


def test_a_call_outside_any_handler_is_not_recorded(log: Path) -> None:
    tag_version(*stubbed_tagging())
    assert aws_call_log.read_records(str(log)) == []


def _in_thread(name: str, target: Callable[[], None]) -> None:
    """Run `target` (defined outside any handler module) in a thread named `name`; wait."""
    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join()


def tag_in_archive_thread(thread_name: str, s3: Any, key: str) -> None:
    """`tag_version` in a thread named `thread_name`, started from ArchiveFunction's handler."""
    as_module("recording_archive.handlers.archive_stream", _in_thread)(
        thread_name, partial(tag_version, s3, key)
    )


def test_a_part_upload_thread_is_attributed_to_the_active_handler(log: Path) -> None:
    s3, key = stubbed_tagging()

    # The handler's thread waits while a pool thread makes the call, as RecordingStore does.
    tag_in_archive_thread("s3-part_0", s3, key)
    (record,) = aws_call_log.read_records(str(log))
    assert record["functions"] == ["ArchiveFunction"]
    assert "ambiguous" not in record


def test_another_thread_without_a_handler_frame_is_not_recorded(log: Path) -> None:
    s3, key = stubbed_tagging()

    tag_in_archive_thread("test-helper", s3, key)
    assert aws_call_log.read_records(str(log)) == []


def test_a_pool_call_with_two_handlers_active_names_both(log: Path) -> None:
    s3, key = stubbed_tagging()
    inside, release = threading.Event(), threading.Event()

    def other_handler() -> None:
        inside.set()
        release.wait(10)

    other = threading.Thread(
        target=as_module("recording_archive.handlers.sweeper", other_handler), name="other"
    )
    other.start()
    try:
        assert inside.wait(10)
        tag_in_archive_thread("s3-part_1", s3, key)
    finally:
        release.set()
        other.join()
    (record,) = aws_call_log.read_records(str(log))
    assert record["functions"] == ["ArchiveFunction", "SweeperFunction"]
    assert record["ambiguous"] is True


def test_the_worker_environment_carries_the_log_only_when_on(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert aws_call_log.inherited_environment() == {aws_call_log.CALL_LOG_ENV: str(log)}
    monkeypatch.delenv(aws_call_log.CALL_LOG_ENV)
    assert aws_call_log.inherited_environment() == {}
    assert aws_call_log.install() is False
