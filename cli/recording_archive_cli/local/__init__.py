"""The local emulator: the whole system on this machine, with moto as the local AWS; also the
infrastructure of the integration, end-to-end, reliability and benchmark runs.

`stack` (what `recording-archive local` runs) composes the rest: `template` (read the SAM
template), `intrinsics` (resolve its intrinsic functions), `resources` (create its stateful
resources in moto), `functions` (a function's properties, settings, environment and handler),
`filters` (the stream's FilterCriteria), `moto` (moto_server), `lambda_worker` (one process per
function), `http_api` (API Gateway HTTP API in front of the callback function),
`event_sources` (stream, queue and schedule pollers), `demo`, `tls`, `aws_call_log`, `wav`.

May import `recording_archive` (the functions' package), `recording_archive_cli.errors` and
`recording_archive_cli.plivo_sim`; never the operator code (`recording_archive_cli.operator`,
`recording_archive_cli.commands`).
"""
