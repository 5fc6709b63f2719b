"""Media over real TLS: the production download path (vetted address, SNI, certificate and host
name verified by OpenSSL, TLS 1.2 or later) against HTTPS servers on loopback with certificates
from a local CA (trustme).

The hosts are names under `.localhost` (RFC 6761): the media source's loopback mode connects
them to 127.0.0.1 itself, so no resolver is faked and the TLS layer sees the URL's real host
name. The servers record the SNI name of every handshake and every failed handshake, so a test
shows the client really sent the name, and that a refused certificate stopped the download
before any HTTP request (and any credential) left the client.

The second half runs the real path: a signed callback into the real CallbackFunction handler,
the table's stream (moto), the real ArchiveFunction handler with MEDIA_CA_BUNDLE, S3 in moto.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from recording_archive.dal.media import MediaPolicy, MediaSource
from recording_archive.handlers import archive_stream, wiring
from recording_archive.models.errors import MediaUnavailableError
from recording_archive_cli.local.filters import event_matches_filters, stream_filter_patterns
from recording_archive_cli.local.resources import LocalResources
from tests.support.callback_flow import post_signed_callback
from tests.support.lambda_context import FakeLambdaContext
from tests.support.media_client import FakeClock, drain
from tests.support.media_server import GeneratedBody, MediaServer, Redirect, Status, wav_body
from tests.support.moto_resources import TOKEN
from tests.support.plivo import AUTH_ID, recording_event
from tests.support.streams import stream_records
from tests.support.tls import LocalCA, expired_window

HOST = "media.localhost"
REGIONAL = "aps1.media.localhost"
AUTH = ("MAXXXXXXXXXXXXXXXXXX", "auth-token-1")
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA()


@pytest.fixture
def ca_file(ca: LocalCA, tmp_path: Path) -> Path:
    return ca.pem_file(tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def https_server(context: ssl.SSLContext) -> MediaServer:
    return MediaServer(tls=context).start()


@pytest.fixture
def servers() -> Iterator[list[MediaServer]]:
    started: list[MediaServer] = []
    yield started
    for server in started:
        server.stop()


def serve(servers: list[MediaServer], context: ssl.SSLContext) -> MediaServer:
    server = https_server(context)
    servers.append(server)
    return server


def source(ca_file: Path | None, clock: FakeClock, **kw: Any) -> MediaSource:
    policy: dict[str, Any] = {
        "allowed_hosts": (HOST, f"*.{HOST}"),
        "allow_loopback": True,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "ca_bundle": str(ca_file) if ca_file else None,
    }
    policy.update(kw)
    return MediaSource(MediaPolicy(**policy), sleep=clock.sleep, clock=clock)


# --- accepted ------------------------------------------------------------------------------------
def test_certificate_for_the_url_host_is_accepted_with_sni(
    ca: LocalCA, ca_file: Path, clock: FakeClock, servers: list[MediaServer]
) -> None:
    media = serve(servers, ca.server_context(HOST))
    body = media.add("/r.wav", wav_body(1.0), content_type="audio/wav", basic_auth=AUTH)
    url = media.url("/r.wav", host=HOST)
    assert url.startswith(f"https://{HOST}:")
    with source(ca_file, clock, basic_auth=AUTH).open(url) as stream:
        assert drain(stream) == (body.size, body.sha256_hex)
    assert media.sni_names == [HOST]  # the URL's host name, sent as SNI
    assert media.tls_failures == []
    assert media.requests[0].headers["host"] == f"{HOST}:{media.port}"
    assert media.requests[0].authorization is not None  # only ever sent inside TLS


def test_system_store_alone_does_not_trust_a_local_ca(
    ca: LocalCA, clock: FakeClock, servers: list[MediaServer]
) -> None:
    # The deployed configuration (no bundle): the same server is refused. This is what makes
    # the accepted case above prove that the bundle, and only it, was trusted in addition.
    media = serve(servers, ca.server_context(HOST))
    media.add("/r.wav", b"audio")
    with (
        pytest.raises(MediaUnavailableError, match="unable to get local issuer certificate"),
        source(None, clock).open(media.url("/r.wav", host=HOST)),
    ):
        pytest.fail("opened")
    assert media.requests == []


# --- refused -------------------------------------------------------------------------------------
def _other_name(ca: LocalCA) -> ssl.SSLContext:
    return ca.server_context("other.localhost")


def _untrusted_issuer(ca: LocalCA) -> ssl.SSLContext:
    return LocalCA().server_context(HOST)


def _expired(ca: LocalCA) -> ssl.SSLContext:
    not_before, not_after = expired_window()
    return ca.server_context(HOST, not_before=not_before, not_after=not_after)


REFUSED = {
    "another-name": (_other_name, "not valid for the host name"),
    "untrusted-issuer": (_untrusted_issuer, "unable to get local issuer certificate"),
    "expired": (_expired, "certificate has expired"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_certificates_are_refused_before_any_request(
    ca: LocalCA, ca_file: Path, clock: FakeClock, servers: list[MediaServer], case: str
) -> None:
    make_context, reason = REFUSED[case]
    media = serve(servers, make_context(ca))
    media.add("/r.wav", b"audio", basic_auth=AUTH)
    with (
        pytest.raises(MediaUnavailableError, match=reason) as info,
        source(ca_file, clock, basic_auth=AUTH).open(media.url("/r.wav", host=HOST)),
    ):
        pytest.fail("opened")
    assert "TLS certificate was refused" in str(info.value)
    assert media.sni_names == [HOST]  # the handshake was attempted with the right name...
    assert len(media.handshake_failures()) == 1  # ...and the client aborted it
    assert media.requests == []  # no request, no credentials sent
    assert clock.sleeps == []  # a certificate does not change in seconds: not retried


def test_tls_below_1_2_is_refused(
    ca: LocalCA, ca_file: Path, clock: FakeClock, servers: list[MediaServer]
) -> None:
    media = serve(servers, ca.server_context(HOST, legacy_tls_only=True))
    media.add("/r.wav", b"audio")
    # The server does speak TLS 1.1 with a certificate the bundle trusts: a client that allows
    # it completes the handshake, so the refusal below is the version, nothing else.
    with (
        socket.create_connection(("127.0.0.1", media.port), timeout=5) as raw,
        ca.legacy_client_context().wrap_socket(raw, server_hostname=HOST) as legacy,
    ):
        assert legacy.version() == "TLSv1.1"
    with (
        pytest.raises(MediaUnavailableError, match=r"TLS handshake failed \(\w+\)"),
        source(ca_file, clock, retry_budget=0).open(media.url("/r.wav", host=HOST)),
    ):
        pytest.fail("opened")
    assert media.requests == []
    assert len(media.handshake_failures()) == 1


# --- redirects and keep-alive --------------------------------------------------------------------
def test_redirect_from_one_allowed_https_host_to_another(
    ca: LocalCA, ca_file: Path, clock: FakeClock, servers: list[MediaServer]
) -> None:
    regional = serve(servers, ca.server_context(REGIONAL))
    body = regional.add("/cdn/r.mp3", GeneratedBody(300_000, seed=2))
    target = regional.url("/cdn/r.mp3", host=REGIONAL)
    media = serve(servers, ca.server_context(HOST))
    media.add("/r.mp3", b"", faults=[Redirect(target, code=302)], basic_auth=AUTH)
    with source(ca_file, clock, basic_auth=AUTH).open(media.url("/r.mp3", host=HOST)) as stream:
        assert stream.final_url == target
        assert drain(stream) == (body.size, body.sha256_hex)
    assert media.sni_names == [HOST]
    assert regional.sni_names == [REGIONAL]  # each hop verified against its own name
    assert regional.requests[0].authorization is None  # credentials stay with the first host


def test_redirect_to_a_host_whose_certificate_names_another_is_refused(
    ca: LocalCA, ca_file: Path, clock: FakeClock, servers: list[MediaServer]
) -> None:
    impostor = serve(servers, ca.server_context(HOST))  # valid, but not for REGIONAL
    impostor.add("/cdn/r.mp3", b"audio")
    media = serve(servers, ca.server_context(HOST))
    target = impostor.url("/cdn/r.mp3", host=REGIONAL)
    media.add("/r.mp3", b"", faults=[Redirect(target, code=302)])
    with (
        pytest.raises(MediaUnavailableError, match="not valid for the host name"),
        source(ca_file, clock).open(media.url("/r.mp3", host=HOST)),
    ):
        pytest.fail("opened")
    assert impostor.sni_names == [REGIONAL]
    assert impostor.requests == []


def test_retries_and_later_downloads_reuse_one_tls_connection(
    ca: LocalCA, ca_file: Path, clock: FakeClock, servers: list[MediaServer]
) -> None:
    media = serve(servers, ca.server_context(HOST))
    first = media.add("/a.mp3", GeneratedBody(200_000, seed=1), faults=[Status(404, times=2)])
    second = media.add("/b.mp3", GeneratedBody(150_000, seed=2))
    src = source(ca_file, clock)
    for path, body in (("/a.mp3", first), ("/b.mp3", second)):
        with src.open(media.url(path, host=HOST)) as stream:
            assert drain(stream) == (body.size, body.sha256_hex)
    assert len(media.requests) == 4  # 404, 404, 200, 200
    assert media.connections == 1
    assert media.sni_names == [HOST]  # one handshake for all four


# --- the real archive path ---------------------------------------------------------------------
class ArchivePath:
    """Callback handler -> table -> stream -> ArchiveFunction handler -> S3, all against moto."""

    def __init__(self, resources: LocalResources, function_env: Any, ca_file: Path) -> None:
        self.res = resources
        self.function_env = function_env
        self.ca_file = ca_file
        self.s3 = boto3.client("s3", endpoint_url=resources.endpoint_url)
        self.ddb = boto3.client("dynamodb", endpoint_url=resources.endpoint_url)

    def completed(self, media: MediaServer, body: Any, *, ext: str = "wav") -> dict[str, str]:
        params = recording_event("SessionRecordingCompleted", sequence=2, fmt=f".{ext}")
        path = f"/v1/Account/{AUTH_ID}/Recording/{params['RecordingUUID']}.{ext}"
        media.add(path, body, content_type="audio/wav" if ext == "wav" else "audio/mpeg")
        params["RecordingURL"] = media.url(path, host=HOST)
        self.function_env("CallbackFunction", MEDIA_ALLOW_LOOPBACK="true")
        assert post_signed_callback(params, TOKEN) == 200
        return params

    def run_archiver(self, **env: str) -> dict[str, Any]:
        self.function_env(
            "ArchiveFunction",
            MEDIA_ALLOW_LOOPBACK="true",
            MEDIA_CA_BUNDLE=str(self.ca_file),
            MEDIA_RETRY_BUDGET_SECONDS="0.5",
            **env,
        )
        wiring.reset()
        patterns = stream_filter_patterns("ArchiveFunction")
        records = [
            r
            for r in stream_records(self.res.endpoint_url, self.res.stream_arn)
            if event_matches_filters(r, patterns)
        ]
        assert len(records) == 1
        result: dict[str, Any] = archive_stream.lambda_handler(
            {"Records": records}, FakeLambdaContext()
        )
        return result

    def item(self, params: dict[str, str]) -> dict[str, Any]:
        key = {"SessionUUID": {"S": params["SessionUUID"]}, "SequenceNumber": {"N": "2"}}
        item: dict[str, Any] = self.ddb.get_item(
            TableName=self.res.table_name, Key=key, ConsistentRead=True
        )["Item"]
        return item

    def versions(self) -> list[dict[str, Any]]:
        listed = self.s3.list_object_versions(Bucket=self.res.bucket_name)
        return [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]

    def incomplete_uploads(self) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = self.s3.list_multipart_uploads(
            Bucket=self.res.bucket_name
        ).get("Uploads", [])
        return uploads


@pytest.fixture
def archive(resources: LocalResources, function_env: Any, ca_file: Path) -> Iterator[ArchivePath]:
    yield ArchivePath(resources, function_env, ca_file)
    wiring.reset()


def test_recording_served_over_https_is_archived(
    ca: LocalCA, archive: ArchivePath, servers: list[MediaServer]
) -> None:
    media = serve(servers, ca.server_context(HOST))
    audio = wav_body(1.0)
    params = archive.completed(media, audio)
    assert archive.run_archiver() == {"batchItemFailures": []}
    item = archive.item(params)
    assert item["ArchiveStatus"] == {"S": "ARCHIVED"}
    assert item["ArchiveSha256"] == {"S": audio.sha256_hex}
    obj = archive.s3.get_object(Bucket=archive.res.bucket_name, Key=item["ArchiveKey"]["S"])
    assert obj["Body"].read() == audio.data
    assert media.sni_names == [HOST]


def test_multipart_recording_over_one_tls_connection(
    ca: LocalCA, archive: ArchivePath, servers: list[MediaServer]
) -> None:
    media = serve(servers, ca.server_context(HOST))
    body = GeneratedBody(12 * MiB, seed=6)
    params = archive.completed(media, body, ext="mp3")
    assert archive.run_archiver(PART_SIZE_MIB="5") == {"batchItemFailures": []}
    item = archive.item(params)
    assert item["ArchiveSha256"] == {"S": body.sha256_hex}
    assert item["ArchiveSize"] == {"N": str(12 * MiB)}
    assert media.connections == 1  # three parts streamed from one TLS connection
    assert media.sni_names == [HOST]
    assert archive.incomplete_uploads() == []


REFUSED_ON_THE_ARCHIVE_PATH = {
    **{name: make for name, (make, _) in REFUSED.items()},
    "tls-1.1": lambda ca: ca.server_context(HOST, legacy_tls_only=True),
}


@pytest.mark.parametrize("case", list(REFUSED_ON_THE_ARCHIVE_PATH))
def test_refused_tls_archives_nothing(
    ca: LocalCA, archive: ArchivePath, servers: list[MediaServer], case: str
) -> None:
    media = serve(servers, REFUSED_ON_THE_ARCHIVE_PATH[case](ca))
    params = archive.completed(media, GeneratedBody(12 * MiB, seed=7), ext="mp3")
    result = archive.run_archiver(PART_SIZE_MIB="5")
    assert len(result["batchItemFailures"]) == 1  # retried later (the stream, the sweeper)
    item = archive.item(params)
    assert item["ArchiveStatus"] == {"S": "PENDING"}
    assert "MediaUnavailableError" in item["ArchiveLastError"]["S"]
    assert "TLS" in item["ArchiveLastError"]["S"]
    assert archive.versions() == []  # no object, no version, no delete marker
    assert archive.incomplete_uploads() == []
    assert media.requests == []
    assert media.handshake_failures()  # the handshakes were made, and refused
