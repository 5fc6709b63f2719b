"""A local certificate authority (trustme) and the server-side TLS contexts the tests serve with.

    ca = LocalCA()
    media = MediaServer(tls=ca.server_context("media.localhost")).start()
    source = MediaSource(MediaPolicy(..., ca_bundle=str(ca.pem_file(tmp_path))))

Names under `.localhost` are loopback names (RFC 6761 section 6.3): the media source's loopback
mode connects them to 127.0.0.1 without a lookup, so a certificate issued for such a name is
checked against the URL's real host name, sent as SNI, with no resolver to fake.
"""

from __future__ import annotations

import datetime as dt
import ssl
import warnings
from pathlib import Path

import trustme


class LocalCA:
    def __init__(self) -> None:
        self.ca = trustme.CA()

    def pem_file(self, directory: Path, name: str = "local-ca.pem") -> Path:
        """The CA's certificate as a PEM file (what `--media-ca-bundle` takes)."""
        path = directory / name
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def server_context(
        self,
        *names: str,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        legacy_tls_only: bool = False,
    ) -> ssl.SSLContext:
        """A server context presenting a certificate for `names` issued by this CA. With
        `legacy_tls_only`, the server speaks TLS 1.0 and 1.1 only (OpenSSL 3 needs security
        level 0 for their SHA-1 handshake signatures)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if legacy_tls_only:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # the point of this server
                context.minimum_version = ssl.TLSVersion.TLSv1
                context.maximum_version = ssl.TLSVersion.TLSv1_1
        cert = self.ca.issue_cert(*names, not_before=not_before, not_after=not_after)
        cert.configure_cert(context)
        return context

    def legacy_client_context(self) -> ssl.SSLContext:
        """A client that trusts this CA and accepts TLS 1.0/1.1: shows a legacy server works."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
        self.ca.configure_trust(context)
        return context


def expired_window() -> tuple[dt.datetime, dt.datetime]:
    """A validity that ended yesterday."""
    now = dt.datetime.now(dt.UTC)
    return now - dt.timedelta(days=30), now - dt.timedelta(days=1)
