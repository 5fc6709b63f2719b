"""`ConsoleServer`: the console on 127.0.0.1:PORT in a thread of its own, stopped cleanly.

The server is Werkzeug's threaded WSGI server (the one moto_server runs here too): one
operator on loopback, a request per thread. Its request log is off: request lines carry the
`?token=` of the first visit, and nothing may print the token but the console line itself.
"""

from __future__ import annotations

import secrets
import socket
import threading
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server

from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.context import Ops

HOST = "127.0.0.1"
DEFAULT_PORT = 8080  # also commands/console.py (no Werkzeug import for --help)


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        return


class ConsoleServer:
    def __init__(self, ops: Ops, *, port: int = DEFAULT_PORT, show_numbers: bool = False) -> None:
        self.ops = ops
        self.port = port
        self.show_numbers = show_numbers
        self.token = secrets.token_urlsafe(32)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The URL to open, with this launch's token."""
        return f"http://{HOST}:{self.port}/?token={self.token}"

    def line(self) -> str:
        return f"console: {self.url}"

    def start(self) -> None:
        """Find the stack (CLIError when it is not there), bind the port, serve in a thread."""
        from recording_archive_cli.console.app import Console, create_app, media_origin

        ops = self.ops
        _ = ops.names, ops.index  # fail here, not on the first page, when the stack is absent
        console = Console(
            ops,
            port=self.port,
            token=self.token,
            show_numbers=self.show_numbers,
            media_origin=media_origin(ops),
        )
        # Bound here, not by Werkzeug: its server prints and exits the process when the port is
        # taken; ours is a one-line CLIError (and, in `local`, stops the stack cleanly).
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, self.port))
            listener.listen(128)
            self._server = make_server(
                HOST,
                self.port,
                create_app(console),
                threaded=True,
                request_handler=_QuietHandler,
                fd=listener.fileno(),
            )
        except OSError as exc:
            raise CLIError(
                f"console: port {self.port} on {HOST} is not available ({exc.strerror or exc}): "
                "choose another port"
            ) from None
        finally:
            listener.close()  # the server holds its own duplicate of the socket
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="console", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the port; safe to call twice."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
