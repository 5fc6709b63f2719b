"""A real moto server on loopback, for tests that make real boto3 calls over HTTP."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

from tests.support.net import free_port


@contextmanager
def running_moto_server() -> Iterator[str]:
    """Start moto on 127.0.0.1 on a free port; yield its endpoint URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def reset_moto(endpoint_url: str) -> None:
    """Clear every resource of the server (moto's own reset API)."""
    req = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()
