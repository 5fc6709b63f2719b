"""What importing each latency-bound handler loads (cold start: bench/README.md "Import time").

Each check runs in a fresh interpreter, as Lambda's init does: a module imported by the test
session itself would hide an import the handler makes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _modules_after_import(module: str) -> set[str]:
    code = (
        "import json, sys; "
        f"sys.path.insert(0, {str(ROOT / 'functions')!r}); "
        f"import {module}; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


@pytest.fixture(scope="module")
def callback_modules() -> set[str]:
    return _modules_after_import("recording_archive.handlers.recording_callback")


@pytest.fixture(scope="module")
def archive_modules() -> set[str]:
    return _modules_after_import("recording_archive.handlers.archive_stream")


@pytest.mark.parametrize(
    "module",
    [
        # The resolver package imports every resolver (AppSync: asyncio): the handler routes its
        # one path itself; only scripts/gen_openapi.py loads the resolver.
        "aws_lambda_powertools.event_handler",
        "asyncio",
        # The data classes package imports every event class of every service: the callback
        # reads its one event shape through handlers/http_api_event.py.
        "aws_lambda_powertools.utilities.data_classes",
        # The archiver's collaborators: never needed to store a callback.
        "recording_archive.dal.media",
        "recording_archive.dal.recording_store",
        "recording_archive.logic.archive_recording",
        "recording_archive.dal.plivo_api",
    ],
)
def test_the_callback_does_not_import(callback_modules: set[str], module: str) -> None:
    assert module not in callback_modules


@pytest.mark.parametrize(
    "module",
    [
        # Powertools' batch imports its parser models when pydantic is already loaded
        # (batch/types.py: `"pydantic" in sys.modules`); the handler imports batch first.
        "aws_lambda_powertools.utilities.parser",
        "aws_lambda_powertools.event_handler",
        # Clients and the media stack are made at the first record, not at import.
        "boto3",
        "recording_archive.dal.plivo_api",
    ],
)
def test_the_archiver_does_not_import(archive_modules: set[str], module: str) -> None:
    assert module not in archive_modules


def test_the_probe_sees_what_a_handler_imports(
    callback_modules: set[str], archive_modules: set[str]
) -> None:
    assert "aws_lambda_powertools.utilities.batch" in archive_modules
    assert "aws_lambda_powertools.utilities.data_classes" in archive_modules
    assert "recording_archive.handlers.http_api_event" in callback_modules
