"""`recording-archive console [--endpoint-url URL | --stack NAME] [--port 8080] [--open]
[--show-numbers]`: the recording console (package `recording_archive_cli.console`) on
127.0.0.1:PORT, with the operator's credentials (`--profile`, `--region`), until Ctrl-C or
SIGTERM. It prints `console: http://127.0.0.1:PORT/?token=TOKEN`, a token new at every launch;
`--open` opens that URL in the default browser. Phone numbers are masked unless
`--show-numbers`. Common options: `commands.options.common_options`.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import Any

from recording_archive_cli.commands.options import common_options, media_retry_option, port_number
from recording_archive_cli.operator.context import Ops

DEFAULT_PORT = 8080  # console.server's default, kept here so that --help imports no Werkzeug


def run_console(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    from recording_archive_cli.console.server import ConsoleServer

    server = ConsoleServer(Ops(args), port=args.port, show_numbers=args.show_numbers)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(server.line(), flush=True)
        print("Ctrl-C stops the console", flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(server.url)
        while not stop.wait(1.0):
            pass
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "console",
        parents=[common_options()],
        help="the recording console in a browser (127.0.0.1 only)",
        description=(
            "Serve the recording console on 127.0.0.1: sessions by day, search, the timeline, "
            "players, retry and verify. Prints its URL with a per-launch token."
        ),
    )
    parser.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})"
    )
    parser.add_argument("--open", action="store_true", help="open the console in the browser")
    parser.add_argument("--show-numbers", action="store_true", help="show phone numbers unmasked")
    media_retry_option(parser)
    parser.set_defaults(func=run_console)
