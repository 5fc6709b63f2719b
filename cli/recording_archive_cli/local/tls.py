"""TLS for the local stack's media: the demo's own CA, and `--media-ca-bundle`.

Deployed, the archiver trusts the system's certificate store and nothing else. Locally, the media
host is a server on 127.0.0.1 with a certificate no public CA signed, so `recording-archive local`
gives the archive-side functions (ArchiveFunction, SweeperFunction) one PEM file in
`MEDIA_CA_BUNDLE`, trusted in addition to the system's store: the certificates of
`--media-ca-bundle PATH`, plus the CA the demo generates for its media server (trustme) when the
demo runs. The functions refuse that variable unless MEDIA_ALLOW_LOOPBACK is on, which only this
local mode sets.
"""

from __future__ import annotations

import argparse
import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The demo's media host: a name under .localhost (RFC 6761 section 6.3) that the archiver's
# loopback mode connects to 127.0.0.1, so the certificate is checked against a real host name.
DEMO_MEDIA_HOST = "media.localhost"


class TLSServerMixin:
    """For a socketserver server: with `tls` set, each accepted connection is wrapped in TLS in
    its own thread (a handshake in the accept loop would let one slow client stall every other),
    and a failed handshake is reported to `on_tls_failure` instead of a traceback."""

    tls: ssl.SSLContext | None = None

    def on_tls_failure(self, reason: str) -> None:
        return

    def finish_request(self, request: Any, client_address: Any) -> None:
        parent: Any = super()
        if self.tls is None:
            parent.finish_request(request, client_address)
            return
        request.settimeout(10)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except OSError as exc:  # ssl.SSLError included: refused certificate, wrong version...
            self.on_tls_failure(str(getattr(exc, "reason", None) or type(exc).__name__))
            return
        try:
            conn.settimeout(None)
            parent.finish_request(conn, client_address)
        finally:
            conn.close()


def ca_bundle_file(text: str) -> Path:
    """argparse type of `--media-ca-bundle`: a readable PEM file holding a CA certificate."""
    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    try:
        store = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        store.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"not a PEM file of CA certificates: {text}") from exc
    if not store.get_ca_certs():
        raise argparse.ArgumentTypeError(f"no CA certificate in {text}")
    return path


@dataclass
class MediaTrust:
    """The bundle the archive-side functions trust, and the demo's CA (None without the demo)."""

    bundle: Path | None = None
    demo_ca: Any = None  # trustme.CA
    _directory: Path | None = field(default=None, repr=False)

    @classmethod
    def prepare(cls, user_bundle: Path | None, *, demo: bool) -> MediaTrust:
        if user_bundle is None and not demo:
            return cls()
        directory = Path(tempfile.mkdtemp(prefix="recording-archive-tls-"))
        pems: list[bytes] = []
        if user_bundle is not None:
            pems.append(user_bundle.read_bytes())
        demo_ca = None
        if demo:
            import trustme  # a CLI dependency; imported only when the demo runs

            demo_ca = trustme.CA(organization_name="recording-archive local demo")
            pems.append(demo_ca.cert_pem.bytes())
        bundle = directory / "media-ca-bundle.pem"
        bundle.write_bytes(b"\n".join(p.rstrip(b"\n") + b"\n" for p in pems))
        return cls(bundle=bundle, demo_ca=demo_ca, _directory=directory)

    def demo_server_context(self) -> ssl.SSLContext | None:
        """The demo media server's context: a certificate for DEMO_MEDIA_HOST from the demo CA."""
        if self.demo_ca is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.demo_ca.issue_cert(DEMO_MEDIA_HOST).configure_cert(context)
        return context

    def cleanup(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
