"""End-to-end fixtures: `recording-archive local` as a subprocess on free ports."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.moto_server import free_port

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


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class LocalStackProcess:
    proc: subprocess.Popen[str]
    port: int
    aws_port: int
    token: str
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

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
    """`recording-archive local` on free loopback ports, once its ready line is printed."""
    port = free_port()
    aws_port = aws_port or free_port()
    while aws_port == port:
        port = free_port()
    proc = subprocess.Popen(
        [*cli_command(), "local", "--port", str(port), "--aws-port", str(aws_port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PLIVO_AUTH_TOKEN": token},
    )
    stack = LocalStackProcess(proc, port, aws_port, token)
    try:
        stack.wait_for(lambda line: line.startswith("ready:"), timeout=READY_SECONDS)
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


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStackProcess]:
    """One `recording-archive local --no-demo` for the module's tests; stopped at the end."""
    stack = start_local("--no-demo", "--sweep-interval", "2")
    yield stack
    stop_tree(stack)
