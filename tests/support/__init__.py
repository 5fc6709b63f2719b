"""Every helper shared by the tests, reliability/ and bench/: the one place outside a test
package that they import from tests/ (nothing imports a test module or a conftest).

- net.py              free_port, wait_until, wait_http (loopback ports, bounded polling)
- processes.py        process trees (/proc), the local stack's function workers
- local_stack.py      `recording-archive local` as a subprocess, ready through its --ready-file
- moto_server.py      a moto server on loopback; moto_resources.py tokens, secret, items, reset
- tcp_proxy.py        a TCP proxy that passes, refuses, stalls or loses answers (faults)
- media_server.py     the scripted media host; media_client.py, tls.py its clients and CAs
- fake_plivo_api.py   Plivo's REST API; plivo.py Plivo's SDK signatures and callback events
- http_events.py, callback_flow.py, lambda_context.py, streams.py   Lambda events and contexts
- signed_fuzz/        signed fuzzing (specs, requests, properties, the run)
- iam_policy.py       calls made vs the roles in template.yaml; logs.py captured log lines
- worker_handlers.py  handlers a LambdaWorker child imports by name (test_lambda_worker.py)

May import: the project's packages (recording_archive, recording_archive_cli) and each other.
"""
