"""The `recording-archive` commands: one module per command group, each exposing
`register(subparsers)` (see `recording_archive_cli.main`). A command module parses its arguments
and formats its output; what a command does lives in `recording_archive_cli.local` (`local`) or
`recording_archive_cli.operator` (the operator commands), and `recording_archive_cli.plivo_sim`
(`simulate`).

Shared here: `options` (argparse types and option groups, each defined once) and `output`
(tables, JSON, progress bars). Command modules may import `operator`, `local`, `plivo_sim`,
`errors`; nothing imports a command module but `main`.
"""
