"""What the operator commands do, apart from their arguments and output (`commands/`).

`context.Ops`: one run's view of a stack (local or deployed), its clients, and collaborators
assembled by the functions' composition root (`recording_archive.handlers.wiring`), never a
copy of it. `archive`: read, verify, download and re-archive recordings. `plivo_source`:
reconcile with Plivo and purge recordings from it.

May import `recording_archive` (the functions' package), `recording_archive_cli.errors` and
`recording_archive_cli.local.resources` (the local stack's resource names); never `commands`.
"""
