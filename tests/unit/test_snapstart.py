"""SnapStart: the handlers register the after-restore hook; the hook forgets what init made."""

from __future__ import annotations

import random

import pytest
import snapshot_restore_py

from recording_archive.dal import aws
from recording_archive.handlers import archive_stream, recording_callback, wiring


def _run_after_restore_hooks() -> None:
    """What Lambda's runtime does when it resumes an environment from the snapshot."""
    for func, args, kwargs in snapshot_restore_py.get_after_restore():
        func(*args, **kwargs)


def test_both_handlers_register_the_hook_once() -> None:
    assert recording_callback.lambda_handler and archive_stream.lambda_handler  # imported
    hooks = [func for func, _, _ in snapshot_restore_py.get_after_restore()]
    assert hooks.count(wiring.after_restore) == 1
    assert wiring.register_snapstart_hooks() is True  # again: still once
    hooks = [func for func, _, _ in snapshot_restore_py.get_after_restore()]
    assert hooks.count(wiring.after_restore) == 1


def test_without_the_runtime_library_nothing_is_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import raises ImportError
    assert wiring.register_snapstart_hooks() is False


def test_restore_drops_clients_settings_and_collaborators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("EVENTS_TABLE_NAME", "events")
    monkeypatch.setenv("AUTH_SECRET_ID", "secret")
    monkeypatch.setenv("FALLBACK_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/q")
    before = aws.dynamodb_client()
    settings = wiring.config.table_settings()
    marker = object()
    wiring.set_callback_dependencies(marker)  # type: ignore[arg-type]
    _run_after_restore_hooks()
    assert aws.dynamodb_client() is not before
    assert wiring.config.table_settings() is not settings
    assert wiring.callback_dependencies() is not marker
    wiring.reset()


def test_restore_seeds_random_again() -> None:
    """Environments resumed from one snapshot must not share the PRNG state (botocore jitter)."""
    random.seed(1234)
    snapshot_state = random.getstate()
    _run_after_restore_hooks()
    assert random.getstate() != snapshot_state
