"""The demo of `recording-archive local`: one masking session, from callbacks to the archive.

A small media server on 127.0.0.1 (a free port) plays Plivo's media host: it serves a generated
WAV file (a few seconds of a 440 Hz tone) at `/v1/Account/{auth_id}/Recording/{uuid}.wav`, over
HTTPS as Plivo does, with a certificate for `media.localhost` from a CA the local stack generated
and gave the archiver (`tls`): the download takes the production path (SNI, certificate
and host name verified, TLS 1.2 or later), and the demo checks that it was an HTTPS one. The
simulated Plivo (`plivo_sim`, the same code as `recording-archive simulate`) posts the signed
`SessionRecordingInitiated` and `SessionRecordingCompleted` callbacks to the local callback API;
the demo prints each answer, waits for the stream-triggered archiver, then prints the archived
object (S3 URI, size, SHA-256, checked against the served file) and the session's timeline as
stored in the table.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from recording_archive.models import item as fields
from recording_archive_cli.local.tls import DEMO_MEDIA_HOST, TLSServerMixin
from recording_archive_cli.local.wav import tone_wav
from recording_archive_cli.plivo_sim import send_callback, session_callbacks

DEMO_SECONDS = 3
ARCHIVE_WAIT_SECONDS = 60.0


class MediaServer:
    """Serves fixed bytes at registered paths on 127.0.0.1; 404 elsewhere. With `tls`, over
    HTTPS (the handshake in each connection's thread), recording each handshake's SNI name."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> None:
        self._files: dict[str, tuple[bytes, str]] = {}
        self.requests: list[str] = []
        self.sni_names: list[str | None] = []
        self.tls = tls
        media = self
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: media.sni_names.append(name)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                media.requests.append(path)
                found = media._files.get(path)
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, content_type = found
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(TLSServerMixin, ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return

        self._httpd = Server((host, port), Handler)
        self._httpd.tls = tls
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def add(self, path: str, data: bytes, content_type: str = "audio/wav") -> str:
        self._files[path] = (data, content_type)
        if self.tls is not None:
            return f"https://{DEMO_MEDIA_HOST}:{self.port}{path}"
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> MediaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _typed(value: Any) -> Any:
    """A DynamoDB attribute value ({"S": ...}) as plain text."""
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.values()))
    return value


def session_timeline(ddb: Any, table: str, session_uuid: str) -> list[dict[str, Any]]:
    """The session's items, by sequence number, as plain values."""
    response = ddb.query(
        TableName=table,
        KeyConditionExpression=f"{fields.SESSION_UUID} = :s",
        ExpressionAttributeValues={":s": {"S": session_uuid}},
        ConsistentRead=True,
    )
    return [{k: _typed(v) for k, v in item.items()} for item in response.get("Items", [])]


def wait_for_archive(
    ddb: Any,
    table: str,
    session_uuid: str,
    sequence: int,
    *,
    timeout: float = ARCHIVE_WAIT_SECONDS,
    stop: threading.Event | None = None,
) -> dict[str, Any] | None:
    """The item once ArchiveStatus is ARCHIVED or FAILED; None at the deadline or on stop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = ddb.get_item(
            TableName=table,
            Key={
                fields.SESSION_UUID: {"S": session_uuid},
                fields.SEQUENCE_NUMBER: {"N": str(sequence)},
            },
            ConsistentRead=True,
        ).get("Item")
        if item and _typed(item.get(fields.ARCHIVE_STATUS)) in (
            fields.ArchiveStatus.ARCHIVED,
            fields.ArchiveStatus.FAILED,
        ):
            return {k: _typed(v) for k, v in item.items()}
        if stop is not None and stop.wait(0.25):
            return None
        if stop is None:
            time.sleep(0.25)
    return None


def run_demo(
    *,
    callback_url: str,
    auth_token: str,
    auth_id: str,
    table: str,
    session: Any,
    endpoint_url: str,
    say: Callable[[str], None],
    stop: threading.Event | None = None,
    tls: ssl.SSLContext | None = None,
) -> bool:
    """Play the demo; True when the recording was archived with the served bytes (and, with
    `tls`, fetched over HTTPS with the media host's name as SNI)."""
    audio = tone_wav(DEMO_SECONDS)
    audio_sha = hashlib.sha256(audio).hexdigest()
    media = MediaServer(tls=tls).start()
    try:
        recording_uuid = str(uuid.uuid4())
        media_url = media.add(f"/v1/Account/{auth_id}/Recording/{recording_uuid}.wav", audio)
        say(
            f"demo: media server serves {len(audio)} bytes of WAV (440 Hz tone) at {media_url}"
            + (" (certificate from the local stack's demo CA)" if tls is not None else "")
        )
        callbacks = session_callbacks(
            auth_id=auth_id,
            media_url=media_url,
            duration_seconds=DEMO_SECONDS,
            recording_uuid=recording_uuid,
        )
        for callback in callbacks:
            answer = send_callback(callback_url, auth_token, callback)
            status = "no answer" if answer.status is None else str(answer.status)
            say(
                f"demo: POST {callback.event_name} seq={callback.sequence} -> {status} "
                f"{' '.join(answer.body.split())}"
            )
            if not answer.ok:
                say("demo: the callback was not accepted; stopping the demo")
                return False
        session_uuid = callbacks[-1].session_uuid
        ddb = session.client("dynamodb", endpoint_url=endpoint_url)
        say("demo: waiting for the archiver (table stream -> ArchiveFunction -> S3)...")
        item = wait_for_archive(ddb, table, session_uuid, int(callbacks[-1].sequence), stop=stop)
        if item is None:
            if stop is None or not stop.is_set():
                say(f"demo: not archived within {ARCHIVE_WAIT_SECONDS:g} s")
            return False
        if item.get(fields.ARCHIVE_STATUS) != fields.ArchiveStatus.ARCHIVED:
            say(f"demo: archive FAILED: {item.get(fields.ARCHIVE_LAST_ERROR, '?')}")
            return False
        matches = item.get(fields.ARCHIVE_SHA256) == audio_sha
        say(
            f"demo: archived s3://{item.get(fields.ARCHIVE_BUCKET)}/"
            f"{item.get(fields.ARCHIVE_KEY)} size={item.get(fields.ARCHIVE_SIZE)} "
            f"sha256={item.get(fields.ARCHIVE_SHA256)} "
            f"({'matches' if matches else 'DOES NOT MATCH'} the served file)"
        )
        if tls is not None:
            over_tls = bool(media.requests) and media.sni_names[:1] == [DEMO_MEDIA_HOST]
            say(
                f"demo: downloaded over HTTPS: {len(media.sni_names)} TLS handshake(s), "
                f"SNI {', '.join(str(n) for n in media.sni_names) or 'none'}"
            )
            matches = matches and over_tls
        say(f"demo: timeline of session {session_uuid}:")
        for event in session_timeline(ddb, table, session_uuid):
            archive = event.get(fields.ARCHIVE_STATUS)
            say(
                f"demo:   seq={event.get(fields.SEQUENCE_NUMBER)} "
                f"{event.get(fields.EVENT_NAME)} received={event.get(fields.RECEIVED_AT)} "
                f"source={event.get(fields.SOURCE)}" + (f" archive={archive}" if archive else "")
            )
        return matches
    finally:
        media.stop()
