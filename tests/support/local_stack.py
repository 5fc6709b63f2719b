"""`recording-archive local` as a subprocess on free loopback ports, for e2e tests and reliability.

`start_local` returns once the stack has written its machine-readable ready file
(`--ready-file`; its JSON is `LocalStackProcess.ready`); `stop_tree` stops it and every process
it started. `post`, `ddb`, `table_name` and `bucket_name` drive and read a running stack.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import boto3

from tests.support.net import free_port
from tests.support.plivo import AUTH_ID, recording_event, sdk_signature
from tests.support.processes import alive, descendants

if TYPE_CHECKING:
    from tests.support.media_server import Body, Fault, MediaServer

TOKEN = "e2e-auth-token-0123456789abcdef"
READY_SECONDS = 60.0


def cli_command() -> list[str]:
    """The installed `recording-archive` console script of this virtual environment."""
    script = Path(sys.executable).parent / "recording-archive"
    if script.exists():
        return [str(script)]
    found = shutil.which("recording-archive")
    if found:
        return [found]
    return [sys.executable, "-m", "recording_archive_cli.main"]


def run_cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@dataclass
class LocalStackProcess:
    proc: subprocess.Popen[str]
    port: int
    aws_port: int
    token: str
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    # The JSON of its --ready-file (cli/recording_archive_cli/local/stack.py, `ready_info`):
    # table, bucket, callback_url, aws_endpoint_url, queue URLs, ...
    ready: dict[str, Any] = field(default_factory=dict)
    ready_dir: Path | None = None  # a temporary directory of ours, removed by stop_tree

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    def _read(self, stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._lock:
                sink.append(line.rstrip("\n"))
                self._lock.notify_all()

    @property
    def callback_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/callbacks/recording"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.aws_port}"

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._lock:
            while True:
                for line in self.stdout[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.stdout)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and seen == len(self.stdout)):
                    raise AssertionError(
                        "expected line not printed; output:\n"
                        + "\n".join([*self.stdout, "--- stderr ---", *self.stderr[-30:]])
                    )
                self._lock.wait(min(remaining, 0.5))

    def wait_ready_file(self, path: Path, timeout: float) -> dict[str, Any]:
        """The ready file's JSON once it exists (it is written atomically), or AssertionError
        with the output if the process ends or `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while True:
            with suppress(FileNotFoundError):
                info: dict[str, Any] = json.loads(path.read_text())
                return info
            if self.proc.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.2)  # let the reader threads take the last lines
                with self._lock:
                    raise AssertionError(
                        "ready file not written; output:\n"
                        + "\n".join([*self.stdout, "--- stderr ---", *self.stderr[-30:]])
                    )
            time.sleep(0.05)

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.stdout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in descendants(self.proc.pid):
                os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
            raise


def start_local(*extra: str, token: str = TOKEN, aws_port: int | None = None) -> LocalStackProcess:
    """`recording-archive local` on free loopback ports, once it has written its ready file
    (`--ready-file`, a temporary one unless `extra` names one); `stack.ready` holds its JSON."""
    port = free_port()
    aws_port = aws_port or free_port()
    while aws_port == port:
        port = free_port()
    args = list(extra)
    if "--console-port" not in args:
        # The console's default port (8080) is one port for every stack: tests ask for it.
        args += ["--console-port", "0"]
    ready_dir: Path | None = None
    if "--ready-file" in args:
        ready_file = Path(args[args.index("--ready-file") + 1])
    else:
        ready_dir = Path(tempfile.mkdtemp(prefix="ra-local-ready-"))
        ready_file = ready_dir / "ready.json"
        args += ["--ready-file", str(ready_file)]
    proc = subprocess.Popen(
        [*cli_command(), "local", "--port", str(port), "--aws-port", str(aws_port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PLIVO_AUTH_TOKEN": token},
    )
    stack = LocalStackProcess(proc, port, aws_port, token, ready_dir=ready_dir)
    try:
        stack.ready = stack.wait_ready_file(ready_file, timeout=READY_SECONDS)
    except AssertionError:
        stop_tree(stack)
        raise
    return stack


def stop_tree(stack: LocalStackProcess) -> None:
    """Stop the stack (SIGTERM), then SIGKILL whatever it started that outlived it."""
    children = descendants(stack.proc.pid)
    with suppress(subprocess.TimeoutExpired):
        stack.stop(signal.SIGTERM, timeout=20)
    for pid in children:
        if alive(pid):
            with suppress(ProcessLookupError):  # it ended between the check and the kill
                os.kill(pid, signal.SIGKILL)
    if stack.ready_dir is not None:
        shutil.rmtree(stack.ready_dir, ignore_errors=True)


def ddb(stack: LocalStackProcess) -> Any:
    return boto3.client("dynamodb", endpoint_url=stack.endpoint, region_name="us-east-1")


def post_completed(
    stack: LocalStackProcess,
    media: MediaServer,
    body: Body | bytes,
    *,
    session_uuid: str | None = None,
    fmt: str = ".mp3",
    content_type: str = "audio/mpeg",
    faults: tuple[Fault, ...] = (),
) -> tuple[str, str]:
    """Serve `body` as a new recording on `media` (with `faults`) and post its signed
    SessionRecordingCompleted (sequence 2) to the stack, answered 200: (session, recording)."""
    recording = str(uuid.uuid4())
    path = f"/v1/Account/{AUTH_ID}/Recording/{recording}{fmt}"
    media.add(path, body, content_type=content_type, faults=faults)
    completed = recording_event(
        "SessionRecordingCompleted",
        session_uuid=session_uuid,
        sequence=2,
        recording_uuid=recording,
        recording_url=media.url(path),
        fmt=fmt,
    )
    assert post(stack, completed)[0] == 200
    return completed["SessionUUID"], recording


def post(
    stack: LocalStackProcess,
    params: dict[str, str],
    *,
    token: str = TOKEN,
    signed: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST `params` form-encoded, signed over `signed` (default: the same params)."""
    nonce = str(uuid.uuid4().int)[:20]
    signature = sdk_signature(token, "POST", stack.callback_url, signed or params, nonce)
    request = urllib.request.Request(
        stack.callback_url,
        data=urlencode(params).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Plivo-Signature-V3": signature,
            "X-Plivo-Signature-V3-Nonce": nonce,
            **(headers or {}),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def table_name(stack: LocalStackProcess) -> str:
    return str(stack.ready["table"])


def bucket_name(stack: LocalStackProcess) -> str:
    return str(stack.ready["bucket"])


def session_items(stack: LocalStackProcess, session_uuid: str) -> list[dict[str, Any]]:
    """The session's event items (typed DynamoDB JSON), SequenceNumber order, read consistently."""
    items: list[dict[str, Any]] = ddb(stack).query(
        TableName=table_name(stack),
        KeyConditionExpression="SessionUUID = :s",
        ExpressionAttributeValues={":s": {"S": session_uuid}},
        ConsistentRead=True,
    )["Items"]
    return items
