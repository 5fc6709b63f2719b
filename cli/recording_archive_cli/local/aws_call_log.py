"""Record every AWS API call a function's code makes, for the permission test.

moto enforces no IAM, so a call the deployed role refuses still succeeds in every local test
(../shared/TOOLING.md). This module records what the code really asks of AWS, and
tests/support/iam_policy.py checks each record against that function's role in template.yaml.

How: botocore emits `before-parameter-build.<service>.<operation>` with the caller's parameters
and the operation model before it serialises any request
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/events.html). `install()` makes
every botocore session created afterwards register `_on_call` for that event, so every client
(boto3's, Powertools' SecretsProvider's, the local event sources') is covered whoever made it.
Each call is attributed to a function by walking the calling thread's stack to a frame of a
`recording_archive.handlers.<module>` and mapping the module to a logical id through the
template's `Handler:`. The archiver uploads parts from its own pool (threads "s3-part_N"), where
no handler frame is on the stack: such a call is attributed to the handler(s) active in the
process's other threads at that moment. A call with no handler frame (test set-up, the operator
CLI, the local event sources' polling) is not a function's call and is not recorded.

Switched on by `RECORDING_ARCHIVE_AWS_CALL_LOG=<path>`: the test session sets it (and installs
the recorder in its own process), `recording-archive local`'s workers inherit it and install it in
each function's process (lambda_worker.py). Records are JSON lines appended with one write each
(O_APPEND), so several processes can share the file.

Each record names the function, the service's IAM prefix, the operation, the request parameters
that decide the IAM action and resource (bucket, key, VersionId present, table, index, queue,
secret, SSE-KMS key), and the function's template environment variables as the process had
them: the evaluator maps physical names back to the template's resources through them.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping
from functools import cache
from types import FrameType
from typing import Any

CALL_LOG_ENV = "RECORDING_ARCHIVE_AWS_CALL_LOG"
HANDLERS_PACKAGE = "recording_archive.handlers."
# Modules of the handlers package that are not a Lambda handler: the composition root builds
# collaborators whose calls belong to the handler further up the stack.
NOT_HANDLERS = frozenset({HANDLERS_PACKAGE + "wiring", HANDLERS_PACKAGE + "http_errors"})
# ThreadPoolExecutor prefix of RecordingStore's part uploads (dal/recording_store.py).
POOL_THREAD_PREFIXES = ("s3-part",)

# Request parameters recorded as given: they name the resource or change the IAM action.
_NAMED_PARAMS = (
    "Bucket",
    "Key",
    "TableName",
    "IndexName",
    "QueueUrl",
    "SecretId",
    "StreamArn",
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "KeyId",
)
# Request parameters whose presence alone matters (the value is not recorded).
_PRESENCE_PARAMS = ("VersionId", "Tagging", "UploadId")

_lock = threading.Lock()
_seen: set[str] = set()
_installed_path: list[str] = []


def enabled_path() -> str | None:
    """The call log named by the environment, if any."""
    return os.environ.get(CALL_LOG_ENV) or None


def inherited_environment() -> dict[str, str]:
    """The variable a child execution environment needs to keep recording (empty when off)."""
    path = enabled_path()
    return {CALL_LOG_ENV: path} if path else {}


@cache
def _handler_functions() -> dict[str, str]:
    """Handler module -> logical id, from the template's functions."""
    from recording_archive_cli.local.functions import function_ids, function_properties
    from recording_archive_cli.local.template import load_template

    template = load_template()
    out: dict[str, str] = {}
    for logical_id in function_ids(template):
        handler = str(function_properties(template, logical_id).get("Handler", ""))
        out[handler.rpartition(".")[0]] = logical_id
    return out


@cache
def _environment_names(logical_id: str) -> tuple[str, ...]:
    """The variables the template sets for the function (Globals included)."""
    from recording_archive_cli.local.functions import function_properties
    from recording_archive_cli.local.template import load_template

    template = load_template()
    globals_env = ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    props = function_properties(template, logical_id)
    names = set(globals_env.get("Variables") or {}) | set(
        (props.get("Environment") or {}).get("Variables") or {}
    )
    return tuple(sorted(names))


def _handler_module(frame: FrameType | None) -> str | None:
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if isinstance(name, str) and name.startswith(HANDLERS_PACKAGE) and name not in NOT_HANDLERS:
            return name
        frame = frame.f_back
    return None


def _active_handlers() -> list[str]:
    """Handler modules on the stack of any thread of this process, right now."""
    found = {_handler_module(frame) for frame in sys._current_frames().values()}
    return sorted(m for m in found if m)


def attribute() -> tuple[str | None, list[str]]:
    """(handler module of this call or None, candidate modules when it is a pool thread)."""
    module = _handler_module(sys._getframe(1))
    if module is not None:
        return module, [module]
    if threading.current_thread().name.startswith(POOL_THREAD_PREFIXES):
        active = _active_handlers()
        if len(active) == 1:
            return active[0], active
        if active:
            return None, active
    return None, []


def call_record(
    logical_ids: list[str], service: str, iam_prefix: str, operation: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON-able record of one call (also used by the tests to build synthetic calls)."""
    named = {k: params[k] for k in _NAMED_PARAMS if isinstance(params.get(k), str)}
    present = sorted(k for k in _PRESENCE_PARAMS if params.get(k))
    if "RequestItems" in params and isinstance(params["RequestItems"], Mapping):
        named["TableNames"] = sorted(params["RequestItems"])
    if iam_prefix == "events" and isinstance(params.get("Entries"), list):
        # PutEvents names its bus per entry; an entry without one goes to the default bus.
        named["EventBusNames"] = sorted(
            {str(e.get("EventBusName") or "default") for e in params["Entries"]}
        )
    environment: dict[str, str] = {}
    for logical_id in logical_ids:
        for name in _environment_names(logical_id):
            if name in os.environ:
                environment[name] = os.environ[name]
    return {
        "functions": logical_ids,
        "service": service,
        "iam_prefix": iam_prefix,
        "operation": operation,
        "params": named,
        "present": present,
        "environment": environment,
    }


def _write(path: str, record: Mapping[str, Any]) -> None:
    line = json.dumps(record, sort_keys=True)
    with _lock:
        if line in _seen:
            return
        _seen.add(line)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _on_call(params: Mapping[str, Any], model: Any, **_kwargs: Any) -> None:
    path = enabled_path()
    if not path:
        return
    module, candidates = attribute()
    modules = [module] if module else candidates
    if not modules:
        return
    functions = _handler_functions()
    logical_ids = sorted({functions.get(m, f"<unknown handler module {m}>") for m in modules})
    service_model = model.service_model
    record = call_record(
        logical_ids,
        service_model.service_name,
        service_model.signing_name,
        model.name,
        params,
    )
    if module is None:
        record["ambiguous"] = True
    _write(path, record)


def _register(session: Any) -> None:
    session.register("before-parameter-build", _on_call, unique_id="recording-archive-call-log")


def install() -> bool:
    """Record the calls of every botocore session created from now on (and boto3's default).

    Idempotent; returns False (and does nothing) when CALL_LOG_ENV is not set.
    """
    path = enabled_path()
    if not path:
        return False
    if _installed_path:
        return True
    import boto3
    import botocore.session

    original_init = botocore.session.Session.__init__

    def init_and_register(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        _register(self)

    botocore.session.Session.__init__ = init_and_register  # type: ignore[method-assign]
    if boto3.DEFAULT_SESSION is not None:
        _register(boto3.DEFAULT_SESSION._session)
    _installed_path.append(path)
    return True


def read_records(path: str) -> list[dict[str, Any]]:
    """Every record of a call log (a missing file: none)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []
