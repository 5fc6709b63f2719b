"""`recording-archive local` (what `make run` runs): its options, and running the stack until
Ctrl-C or SIGTERM. What it runs: `recording_archive_cli.local.stack`.

`--ready-file PATH`: once the stack is ready, what a client needs (see
`LocalStack.ready_info`, and `console_port`) is written there as JSON, atomically, and removed
when the stack stops.

`--console-port PORT` (8080; 0: none): the recording console (`recording_archive_cli.console`)
against this stack, served from this process on a thread of its own once the stack is ready; its
`console: http://127.0.0.1:PORT/?token=...` line follows the ready line.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from recording_archive_cli.commands.options import port_number, positive_seconds
from recording_archive_cli.local.stack import (
    DEFAULT_AWS_PORT,
    DEFAULT_PORT,
    DEFAULT_SWEEP_INTERVAL,
    DEV_AUTH_TOKEN,
    FUNCTIONS,
    TOKEN_ENV,
    LocalStack,
    write_ready_file,
)
from recording_archive_cli.local.tls import ca_bundle_file

CONSOLE_PORT = 8080
CONSOLE_RETRY_BUDGET = 10.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "local",
        help="run the whole system on this machine (moto as local AWS), with a demo",
        description=(
            "Run the callback API, the archiver, the fallback drain and the sweeper locally, "
            "against a moto server, with the resources of template.yaml. Ctrl-C stops it."
        ),
    )
    parser.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help="callback API port (3000)"
    )
    parser.add_argument(
        "--aws-port",
        type=port_number,
        default=DEFAULT_AWS_PORT,
        help="port of the local AWS endpoint, moto_server (4566)",
    )
    parser.add_argument("--no-demo", action="store_true", help="do not play the demo session")
    parser.add_argument(
        "--sweep-interval",
        type=positive_seconds,
        default=DEFAULT_SWEEP_INTERVAL,
        help="seconds between SweeperFunction runs (30)",
    )
    parser.add_argument(
        "--template", type=Path, default=None, help="SAM template (default: template.yaml)"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the functions' own JSON logs and metrics, and moto's request log",
    )
    parser.add_argument(
        "--env",
        type=function_env_override,
        action="append",
        default=[],
        metavar="FUNCTION:NAME=VALUE",
        help=(
            "set an environment variable of one function, after the template's (repeatable; "
            "e.g. SweeperFunction:SWEEP_GRACE_SECONDS=0, or CallbackFunction:"
            "AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:PORT for fault injection)"
        ),
    )
    parser.add_argument(
        "--media-ca-bundle",
        type=ca_bundle_file,
        default=None,
        metavar="PATH",
        help=(
            "PEM file of CA certificates the archiver trusts, in this local mode only, in "
            "addition to the system's store (an HTTPS media server of your own)"
        ),
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        default=None,
        metavar="PATH",
        help=(
            "when the stack is ready, write what a client needs (callback URL, AWS endpoint, "
            "resource names, ports, pid; never the token) to PATH as JSON; removed on exit"
        ),
    )
    parser.add_argument(
        "--console-port",
        type=console_port,
        default=CONSOLE_PORT,
        metavar="PORT",
        help=f"port of the recording console on 127.0.0.1 ({CONSOLE_PORT}); 0: no console",
    )
    parser.add_argument(
        "--parallelization-factor",
        type=parallelization_factor_arg,
        default=None,
        metavar="N",
        help=(
            "ArchiveFunction's stream ParallelizationFactor (1-10: concurrent batches per "
            "shard), instead of the template's"
        ),
    )
    parser.set_defaults(func=run)


def parallelization_factor_arg(text: str) -> int:
    from recording_archive_cli.local.event_sources import MAX_PARALLELIZATION_FACTOR

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARALLELIZATION_FACTOR:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_PARALLELIZATION_FACTOR}: {text!r}")
    return value


def console_port(text: str) -> int:
    """A port number, or 0 for no console."""
    return 0 if text.strip() == "0" else port_number(text)


def start_console(stack: LocalStack, port: int) -> Any:
    """The recording console against this stack (`recording_archive_cli.console`), in this
    process, on a thread of its own; None when `--console-port 0`."""
    if not port:
        return None
    from recording_archive_cli.console.server import ConsoleServer
    from recording_archive_cli.operator.context import Ops

    args = argparse.Namespace(
        endpoint_url=stack.resources.endpoint_url,
        stack=None,
        profile=None,
        region=stack.resources.region,
        # An operator's retry from a page waits for the media at most this long.
        media_retry_budget=CONSOLE_RETRY_BUDGET,
    )
    server = ConsoleServer(Ops(args), port=port)
    server.start()
    return server


def function_env_override(text: str) -> tuple[str, str, str]:
    """`FUNCTION:NAME=VALUE` -> (logical id, name, value); the function must be one of ours."""
    function, sep, assignment = text.partition(":")
    name, eq, value = assignment.partition("=")
    if not sep or not eq or not name.strip():
        raise argparse.ArgumentTypeError(f"expected FUNCTION:NAME=VALUE, got {text!r}")
    if function not in FUNCTIONS:
        raise argparse.ArgumentTypeError(
            f"unknown function {function!r}: one of {', '.join(FUNCTIONS)}"
        )
    return function, name.strip(), value


def env_overrides(items: list[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for function, name, value in items:
        out.setdefault(function, {})[name] = value
    return out


def run(args: argparse.Namespace) -> int:
    stack = LocalStack(
        port=args.port,
        aws_port=args.aws_port,
        template=args.template,
        verbose=args.verbose,
        sweep_interval=args.sweep_interval,
        auth_token=os.environ.get(TOKEN_ENV) or DEV_AUTH_TOKEN,
        extra_env=env_overrides(getattr(args, "env", None) or []),
        media_ca_bundle=getattr(args, "media_ca_bundle", None),
        demo=not args.no_demo,
        parallelization_factor=getattr(args, "parallelization_factor", None),
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stack.stop_event.set()

    ready_file: Path | None = None
    console: Any = None
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack.console.say(
            f"starting: moto_server on 127.0.0.1:{args.aws_port}, the template's resources, "
            "four functions"
        )
        stack.start()
        if stack.stop_event.is_set():
            return 0
        console = start_console(stack, getattr(args, "console_port", 0))
        ready_file = getattr(args, "ready_file", None)
        if ready_file is not None:
            info = stack.ready_info()
            info["console_port"] = console.port if console is not None else None
            write_ready_file(ready_file, info)
        stack.console.plain(stack.ready_line())
        if console is not None:
            stack.console.plain(console.line())
        stack.console.say("Ctrl-C stops every process started here")
        if not args.no_demo:
            stack.run_demo()
        while not stack.stop_event.wait(1.0):
            pass
        stack.console.say("stopping")
        return 0
    finally:
        if console is not None:
            console.stop()
        stack.stop()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
