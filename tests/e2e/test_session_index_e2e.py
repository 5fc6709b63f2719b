"""Finding sessions on `recording-archive local` (issue 15, "Find"): two sessions with the same
From, posted as Plivo would, are both found by `sessions find --number` and both listed by
`sessions list --since 1h`; the command line never prints the number in full."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.local_stack import LocalStackProcess, post, run_cli
from tests.support.plivo import recording_event

pytestmark = pytest.mark.e2e

FROM = "+14155550123"


def test_two_sessions_with_the_same_from_are_found_and_listed(
    local_stack: LocalStackProcess,
) -> None:
    sessions = []
    for _ in range(2):
        params = recording_event("SessionRecordingInitiated", session_uuid=str(uuid.uuid4()))
        params["From"] = FROM
        params["To"] = f"+9198765{uuid.uuid4().int % 100000:05d}"
        assert post(local_stack, params)[0] == 200
        sessions.append(params["SessionUUID"])
    endpoint = ["--endpoint-url", local_stack.endpoint]

    for number in (FROM, FROM.lstrip("+")):
        found = run_cli("sessions", "find", "--number", number, *endpoint, "--json")
        assert found.returncode == 0, found.stderr
        answer = json.loads(found.stdout)
        assert set(sessions) <= {s["session_uuid"] for s in answer["sessions"]}
        assert answer["number"] == "***0123"
        assert "4155550123" not in found.stdout + found.stderr

    listed = run_cli("sessions", "list", "--since", "1h", *endpoint)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[0] for line in listed.stdout.splitlines()[3:] if line.strip()]
    # Newest first: the second session before the first.
    assert rows.index(sessions[1]) < rows.index(sessions[0])
    for session in sessions:
        line = next(line for line in listed.stdout.splitlines() if line.startswith(session))
        assert line.split()[-2:] == ["1", "NONE"]  # one event, no recording

    text = run_cli("sessions", "find", "--number", FROM, *endpoint)
    assert text.returncode == 0 and "***0123" in text.stdout and FROM not in text.stdout
