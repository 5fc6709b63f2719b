"""`recording-archive`: the command-line entry point.

Each command group lives in its own module under `commands/`, which exposes
`register(subparsers)`: it adds its subparser and sets `func` (a function of the parsed
arguments returning the exit status) with `set_defaults`. Adding a command is adding its module
to `COMMAND_MODULES`.

Errors the user can fix are one line on stderr and a non-zero exit status, never a traceback:
`CLIError`, an unreadable template (`TemplateError`), a local resource problem and `OSError`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from recording_archive_cli.errors import CLIError

PROG = "recording-archive"
COMMAND_MODULES: list[str] = [
    "recording_archive_cli.commands.local",
    "recording_archive_cli.commands.simulate",
    "recording_archive_cli.commands.sessions",
    "recording_archive_cli.commands.index",
    "recording_archive_cli.commands.recordings",
    "recording_archive_cli.commands.verify",
    "recording_archive_cli.commands.reconcile",
    "recording_archive_cli.commands.purge_source",
    "recording_archive_cli.commands.hold",
    "recording_archive_cli.commands.erase",
    "recording_archive_cli.commands.audit",
    "recording_archive_cli.commands.console",
]


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Plivo recording archive: run it locally, smoke-test and operate it.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def _error(message: str) -> None:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    from recording_archive_cli.local.intrinsics import LocalResourceError
    from recording_archive_cli.local.template import TemplateError

    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except CLIError as exc:
        _error(exc.message)
        return exc.exit_code
    except (TemplateError, LocalResourceError) as exc:
        _error(f"template: {exc}")
        return 1
    except OSError as exc:
        _error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
