"""`recording-archive local` with its media over HTTPS: the demo's own CA, and
`--media-ca-bundle PATH` for a media server of the user's (here: the test's, with a CA of its
own). Both go through the archiver's production path: SNI, certificate and host name verified."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.local_stack import TOKEN, run_cli, start_local
from tests.support.media_server import MediaServer, wav_body
from tests.support.plivo import AUTH_ID
from tests.support.tls import LocalCA

pytestmark = pytest.mark.e2e

HOST = "media.localhost"


def test_demo_and_a_given_ca_bundle_both_archive_over_https(tmp_path: Path) -> None:
    ca = LocalCA()
    pem = ca.pem_file(tmp_path)
    with MediaServer(tls=ca.server_context(HOST)) as media:
        path = f"/v1/Account/{AUTH_ID}/Recording/given-ca.wav"
        body = media.add(path, wav_body(1.0), content_type="audio/wav")
        stack = start_local("--media-ca-bundle", str(pem))  # with the demo
        try:
            # The demo: its recording served over HTTPS with the demo CA's certificate.
            stack.wait_for(lambda line: "(matches the served file)" in line, timeout=45)
            line = stack.wait_for(lambda line: "demo: downloaded over HTTPS" in line)
            assert line.endswith(f"1 TLS handshake(s), SNI {HOST}")
            assert "at https://media.localhost:" in stack.output()

            # The test's own HTTPS server, trusted only through --media-ca-bundle.
            result = run_cli(
                *("simulate", "--url", stack.callback_url, "--auth-token", TOKEN),
                *("--sessions", "1", "--media-url", media.url(path, host=HOST)),
            )
            assert result.returncode == 0, result.stdout + result.stderr
            stack.wait_for(
                lambda line: f"size={body.size} sha256={body.sha256_hex}" in line, timeout=45
            )
            assert media.sni_names[:1] == [HOST]
            assert media.tls_failures == []
            assert len(media.requests_for(path)) >= 1
        finally:
            status = stack.stop(signal.SIGINT)
        assert status == 0
        assert "Traceback" not in "\n".join(stack.stderr)
