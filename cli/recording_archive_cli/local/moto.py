"""moto_server, the local AWS: `python -m moto.server` on 127.0.0.1:port, and the environment a
process of the local stack inherits (`base_env`: enough to run Python, nothing that configures
AWS)."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from recording_archive_cli.errors import CLIError

MOTO_START_SECONDS = 30.0
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")
_INHERITED_PREFIXES = ("COVERAGE_", "COV_CORE_")


def base_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith(_INHERITED_PREFIXES)})
    return env


class MotoProcess:
    """`python -m moto.server` on 127.0.0.1:port, in its own process group (Ctrl-C in the
    terminal reaches us, and we stop it last, after the functions that use it)."""

    def __init__(self, port: int, *, verbose: bool) -> None:
        self.port = port
        self.verbose = verbose
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=20)
        self._reader: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**base_env(), "MOTO_PORT": str(self.port)},
            process_group=0,
        )
        self._reader = threading.Thread(target=self._drain, name="moto-output", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + MOTO_START_SECONDS
        while time.monotonic() < deadline and not stop.is_set():
            if self.proc.poll() is not None:
                self._reader.join(timeout=2)
                last = self._tail[-1] if self._tail else f"exit status {self.proc.returncode}"
                raise CLIError(f"moto_server on 127.0.0.1:{self.port} did not start: {last}")
            try:
                with urllib.request.urlopen(  # noqa: S310 - our own loopback URL
                    f"{self.endpoint_url}/moto-api/data.json", timeout=1
                ) as response:
                    response.read()
            except (urllib.error.URLError, OSError):
                stop.wait(0.2)
            else:
                return
        if not stop.is_set():
            raise CLIError(f"moto_server did not answer on 127.0.0.1:{self.port} in time")

    def _drain(self) -> None:
        assert self.proc is not None  # noqa: S101
        assert self.proc.stdout is not None  # noqa: S101
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._tail.append(line)
            if self.verbose:
                print(f"moto: {line}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
