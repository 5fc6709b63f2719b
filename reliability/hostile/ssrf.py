"""Suite 3: hostile RecordingURLs aimed at the archiver, in this process (outbound requests
counted by `EgressRecorder`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from reliability.egress_guard.sitecustomize import is_loopback_host

HOSTILE_URLS = [
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.169.254/latest/meta-data/",
    "https://[fd00:ec2::254]/latest/meta-data/",
    "https://[::ffff:169.254.169.254]/",
    "https://2852039166/",  # 169.254.169.254 as one number
    "https://0xa9.0xfe.0xa9.0xfe/",
    "https://0251.0376.0251.0376/",
    "https://127.0.0.1/x.mp3",
    "https://127.1/x.mp3",
    "https://localhost/x.mp3",
    "https://localhost./x.mp3",
    "https://10.0.0.1/x.mp3",
    "https://192.168.1.1/x.mp3",
    "https://[::1]/x.mp3",
    "http://media.plivo.com/v1/x.mp3",
    "https://media.plivo.com:8443/v1/x.mp3",
    "https://evil.example/x.mp3",
    "https://media.plivo.com.evil.example/x.mp3",
    "https://evilmedia.plivo.com/x.mp3",
    "https://media.plivo.co/x.mp3",
    "https://media.plivo.com@evil.example/x.mp3",
    "https://user:pass@media.plivo.com/x.mp3",
    "https://evil.example#@media.plivo.com/x.mp3",
    "https://evil.example\\@media.plivo.com/x.mp3",
    "https://media.plivo.com%2f@evil.example/x.mp3",
    "https://m\u0435dia.plivo.com/x.mp3",  # Cyrillic e
    "https://media.pliv\u043e.com/x.mp3",  # Cyrillic o
    "https://xn--mdia-8cd.plivo.com/x.mp3",
    "https://aps1.m\u0435dia.plivo.com/x.mp3",
    "https://media.plivo.com/" + "a" * 5000 + ".mp3",
    "https://" + "a." * 120 + "media.plivo.com/x.mp3",
    "file:///etc/passwd",
    "gopher://media.plivo.com/x",
    "ftp://media.plivo.com/x.mp3",
    "https://media.plivo.com\r\nHost: evil.example/x.mp3",
    "https://media.plivo.com /x.mp3",
]
REDIRECTS = [
    "https://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/latest/meta-data/",
    "https://evil.example/steal",
    "http://evil.example/steal",
    "https://10.0.0.1/x",
    "https://user:pw@media.plivo.com/x.mp3",
    "file:///etc/passwd",
    "https://xn--mdia-8cd.plivo.com/x.mp3",  # an IDN look-alike (a Location header is ASCII)
]


class EgressRecorder:
    """Every outbound TCP connection urllib3 opens, recorded. One to a loopback address goes
    where it was aimed (the suite's own servers are on loopback); any other is diverted to a
    loopback trap (nothing can leave the machine): the count of those is exact."""

    def __init__(self, trap_port: int) -> None:
        self.trap_port = trap_port
        self.attempts: list[tuple[str, int]] = []  # off loopback: diverted to the trap
        self.loopback: list[tuple[str, int]] = []  # on loopback: let through

    @contextlib.contextmanager
    def installed(self) -> Iterator[EgressRecorder]:
        import urllib3.util.connection as uconn
        from urllib3 import connection as conn_mod

        original = uconn.create_connection

        def recording(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
            host, port = str(address[0]), int(address[1])
            if is_loopback_host(host):
                self.loopback.append((host, port))
                return original(address, *args, **kwargs)
            self.attempts.append((host, port))
            return original(("127.0.0.1", self.trap_port), *args, **kwargs)

        saved = conn_mod.connection.create_connection  # type: ignore[attr-defined]
        conn_mod.connection.create_connection = recording  # type: ignore[attr-defined]
        try:
            yield self
        finally:
            conn_mod.connection.create_connection = saved  # type: ignore[attr-defined]


def ssrf_suite() -> dict[str, Any]:
    """The production policy (https, media.plivo.com and *.media.plivo.com, public addresses):
    every hostile URL refused before any connection; an allowed URL does connect (control).
    Then redirects off the list, followed by a loopback origin: refused, never requested."""
    from recording_archive.dal.media import MediaPolicy, MediaSource
    from recording_archive.models.errors import ArchiveError, MediaRefusedError
    from tests.support.media_server import MediaServer, Redirect

    PUBLIC = "93.184.215.14"  # any global unicast address: the recorder diverts it to the trap
    resolved: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return [PUBLIC]

    policy = MediaPolicy(
        allowed_hosts=("media.plivo.com", "*.media.plivo.com"),
        connect_timeout=1,
        read_timeout=1,
        retry_budget=0,
    )
    refused = 0
    unexpected: list[str] = []
    with MediaServer() as trap, MediaServer() as origin:
        egress = EgressRecorder(trap.port)
        with egress.installed():
            source = MediaSource(policy, resolver=resolver, sleep=lambda _s: None)
            for url in HOSTILE_URLS:
                try:
                    with source.open(url):
                        unexpected.append(f"opened {url[:80]}")
                except MediaRefusedError:
                    refused += 1
                except ArchiveError as exc:
                    unexpected.append(f"{url[:80]}: {type(exc).__name__} (not a refusal)")
            hostile_attempts = len(egress.attempts) + len(egress.loopback)
            hostile_lookups = list(resolved)
            # Control: an allowed URL is looked up and connected to (TLS to the trap then fails).
            seen = len(egress.attempts)
            with (
                contextlib.suppress(ArchiveError),
                source.open("https://media.plivo.com/v1/Account/MA/Recording/r.mp3"),
            ):
                pass
            control_attempts = len(egress.attempts) - seen
            # Redirects off the list, in the local mode (http on loopback allowed; the origin's
            # name resolves to the loopback origin, any other name to a public address the
            # recorder diverts): the redirect target is never looked up nor requested.
            redirect_lookups: list[str] = []

            def local_resolver(host: str, port: int) -> list[str]:
                if host == "media.test":
                    return ["127.0.0.1"]
                redirect_lookups.append(host)
                return [PUBLIC]

            local = MediaSource(
                MediaPolicy(
                    allowed_hosts=("media.test",),
                    allow_loopback=True,
                    connect_timeout=1,
                    read_timeout=1,
                    retry_budget=0,
                ),
                resolver=local_resolver,
                sleep=lambda _s: None,
            )
            seen = len(egress.attempts)
            seen_loopback = len(egress.loopback)
            redirect_refused = 0
            for n, location in enumerate(REDIRECTS):
                origin.add(f"/r{n}.mp3", b"", faults=[Redirect(location, times=None)])
                try:
                    with local.open(f"http://media.test:{origin.port}/r{n}.mp3"):
                        unexpected.append(f"redirect to {location} followed")
                except MediaRefusedError:
                    redirect_refused += 1
                except ArchiveError as exc:
                    unexpected.append(f"redirect to {location}: {type(exc).__name__}")
            redirect_attempts = (
                len(egress.attempts)
                - seen
                + sum(1 for a in egress.loopback[seen_loopback:] if a != ("127.0.0.1", origin.port))
            )
            origin_connections = sum(
                1 for a in egress.loopback[seen_loopback:] if a == ("127.0.0.1", origin.port)
            )
        redirect_requests = len(origin.requests)
        trap_requests = len(trap.requests)
    return {
        "urls_tried": len(HOSTILE_URLS),
        "urls_refused": refused,
        "redirects_tried": len(REDIRECTS),
        "redirects_refused": redirect_refused,
        "origin_requests_for_redirects": redirect_requests,
        # The recorder saw the origin's own connections: it was in place for the redirects.
        "origin_connections_recorded": origin_connections,
        "outbound_connections_to_refused_hosts": hostile_attempts + redirect_attempts,
        "dns_lookups_of_refused_hosts": len(hostile_lookups) + len(redirect_lookups),
        "outbound_connections_allowed_host_control": control_attempts,
        "trap_requests": trap_requests,
        "unexpected": unexpected,
    }
