"""`recording-archive local` (what `make run` runs): the whole system on this machine.

1. moto_server, a separate process on 127.0.0.1:`--aws-port` (default 4566), is the local AWS;
2. the template's table (key schema, GSIs, stream), bucket, KMS key, queues and auth secret are
   created in it from `template.yaml` itself (`local_resources`);
3. the four functions run their real handlers, each in its own process with its own environment
   (`lambda_worker`): the template's variables resolved to the local resources, plus
   AWS_ENDPOINT_URL (the moto endpoint), dummy credentials, the region,
   PUBLIC_CALLBACK_URL=http://127.0.0.1:{port}/callbacks/recording and MEDIA_ALLOW_LOOPBACK=true
   (loopback media hosts are allowed in this local mode only), MEDIA_CA_BUNDLE for the archiver
   and the sweeper when `--media-ca-bundle` is given or the demo runs (`local_tls`);
   POWERTOOLS_LOG_LEVEL=WARNING and no EMF metric output unless `--verbose`;
4. the callback API listens on 127.0.0.1:`--port` (default 3000, `api_adapter`);
5. the stream, the fallback queue and a short sweep schedule drive the other functions
   (`event_sources`);
6. unless `--no-demo`, the demo plays one session (`demo`).

The auth token is `$PLIVO_AUTH_TOKEN`, or the development default `local-dev-auth-token`
(printed in the ready line; a token from the environment is never printed). Runs until Ctrl-C
or SIGTERM, then stops every process it started. A port in use, a bad option or a template that
does not parse is one line on stderr and exit status 1 (argparse's usage errors: 2).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from recording_archive_cli.errors import CLIError
from recording_archive_cli.local_tls import MediaTrust, ca_bundle_file

DEV_AUTH_TOKEN = "local-dev-auth-token"  # noqa: S105 - a documented, local-only default
TOKEN_ENV = "PLIVO_AUTH_TOKEN"  # noqa: S105 - a variable name, not a token
DEFAULT_PORT = 3000
DEFAULT_AWS_PORT = 4566
DEFAULT_SWEEP_INTERVAL = 30.0
MOTO_START_SECONDS = 30.0
REGION = "us-east-1"
STACK_NAME = "local"
CALLBACK_ID = "CallbackFunction"
ARCHIVE_ID = "ArchiveFunction"
DRAIN_ID = "FallbackDrainFunction"
SWEEPER_ID = "SweeperFunction"
FUNCTIONS = (CALLBACK_ID, ARCHIVE_ID, DRAIN_ID, SWEEPER_ID)
# What a worker inherits from this process: enough to run Python, nothing that configures AWS.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")
_INHERITED_PREFIXES = ("COVERAGE_", "COV_CORE_")


class Console:
    """One line per event on stdout, time-stamped, never interleaved."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def say(self, message: str) -> None:
        with self._lock:
            print(f"{datetime.now():%H:%M:%S} {message}", flush=True)

    def plain(self, message: str) -> None:
        with self._lock:
            print(message, flush=True)


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {value}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


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
    parser.set_defaults(func=run)


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


# ------------------------------------------------------------------------------------------
# moto_server
# ------------------------------------------------------------------------------------------


class MotoProcess:
    """`python -m moto.server` on 127.0.0.1:port, in its own process group (Ctrl-C in the
    terminal reaches us, and we stop it last, after the functions that use it)."""

    def __init__(self, port: int, *, verbose: bool) -> None:
        self.port = port
        self.verbose = verbose
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=20)
        self._reader: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**_base_env(), "MOTO_PORT": str(self.port)},
            process_group=0,
        )
        self._reader = threading.Thread(target=self._drain, name="moto-output", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + MOTO_START_SECONDS
        while time.monotonic() < deadline and not stop.is_set():
            if self.proc.poll() is not None:
                self._reader.join(timeout=2)
                last = self._tail[-1] if self._tail else f"exit status {self.proc.returncode}"
                raise CLIError(f"moto_server on 127.0.0.1:{self.port} did not start: {last}")
            try:
                with urllib.request.urlopen(  # noqa: S310 - our own loopback URL
                    f"{self.endpoint_url}/moto-api/data.json", timeout=1
                ) as response:
                    response.read()
            except (urllib.error.URLError, OSError):
                stop.wait(0.2)
            else:
                return
        if not stop.is_set():
            raise CLIError(f"moto_server did not answer on 127.0.0.1:{self.port} in time")

    def _drain(self) -> None:
        assert self.proc is not None  # noqa: S101
        assert self.proc.stdout is not None  # noqa: S101
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._tail.append(line)
            if self.verbose:
                print(f"moto: {line}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# ------------------------------------------------------------------------------------------
# Environments
# ------------------------------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith(_INHERITED_PREFIXES)})
    return env


def runtime_env(
    *,
    endpoint_url: str,
    region: str,
    function_name: str,
    memory_mb: int,
    verbose: bool,
) -> dict[str, str]:
    """The variables Lambda's runtime sets, pointed at the local endpoint."""
    env = _base_env()
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if not verbose:
        env["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        env["POWERTOOLS_METRICS_DISABLED"] = "true"
    return env


def _not_metrics(line: str) -> bool:
    """False for an EMF metrics document (Powertools prints them on stdout, for CloudWatch)."""
    return not line.startswith('{"_aws":')


def local_overrides(
    logical_id: str, callback_url: str, *, media_ca_bundle: Path | None = None
) -> dict[str, str]:
    """What this local mode changes in a function's template environment."""
    overrides: dict[str, str] = {}
    if logical_id == CALLBACK_ID:
        overrides["PUBLIC_CALLBACK_URL"] = callback_url
    if logical_id in (CALLBACK_ID, ARCHIVE_ID, SWEEPER_ID):
        overrides["MEDIA_ALLOW_LOOPBACK"] = "true"
    if media_ca_bundle is not None and logical_id in (ARCHIVE_ID, SWEEPER_ID):
        overrides["MEDIA_CA_BUNDLE"] = str(media_ca_bundle)  # the functions that download
    return overrides


# ------------------------------------------------------------------------------------------
# The stack
# ------------------------------------------------------------------------------------------


@dataclass
class LocalStack:
    port: int
    aws_port: int
    template: Path | None
    verbose: bool
    sweep_interval: float
    auth_token: str
    console: Console = field(default_factory=Console)
    # `--env`: per-function variables set after the template's (tests and fault injection).
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    stop_event: threading.Event = field(default_factory=threading.Event)
    # `--media-ca-bundle`; and whether the demo (HTTPS media, its own CA) will run.
    media_ca_bundle: Path | None = None
    demo: bool = False

    def __post_init__(self) -> None:
        self.moto: MotoProcess | None = None
        self.api: Any = None
        self.workers: dict[str, Any] = {}
        self.pollers: list[threading.Thread] = []
        self.resources: Any = None
        self.session: Any = None
        self.media_trust = MediaTrust()

    @property
    def callback_url(self) -> str:
        from recording_archive.config import CALLBACK_PATH

        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    def start(self) -> None:
        from recording_archive_cli.api_adapter import CallbackApi, http_api_routes, port_is_free
        from recording_archive_cli.cfn import load_template

        if self.port == self.aws_port:
            raise CLIError("--port and --aws-port must be different ports")
        template = load_template(self.template)
        for logical_id in FUNCTIONS:
            resource = template["Resources"].get(logical_id) or {}
            if resource.get("Type") != "AWS::Serverless::Function":
                raise CLIError(f"template: no AWS::Serverless::Function named {logical_id}")
        routes = http_api_routes(template, CALLBACK_ID)
        # Bind the callback port first and keep it: a second instance stops here, before it
        # starts anything.
        self.api = CallbackApi(
            self.port,
            routes=routes,
            account_id="",
            # Late-bound: the workers start after the port is taken.
            invoke=lambda event: self.workers[CALLBACK_ID].invoke(event),  # noqa: PLW0108
            on_exchange=self._log_exchange,
        )
        if not port_is_free(self.aws_port):
            raise CLIError(
                f"port {self.aws_port} on 127.0.0.1 is already in use (another "
                "`recording-archive local`?): choose another --aws-port"
            )
        self.moto = MotoProcess(self.aws_port, verbose=self.verbose)
        self.moto.start(self.stop_event)
        if self.stop_event.is_set():
            return
        self._create_resources()
        self.media_trust = MediaTrust.prepare(self.media_ca_bundle, demo=self.demo)
        self._start_workers(template)
        if self.stop_event.is_set():
            return
        self.api.account_id = self.resources.account_id
        self.api.start()
        self._start_event_sources(template)

    def _create_resources(self) -> None:
        import boto3

        from recording_archive_cli.local_resources import (
            DEFAULT_AUTH_ID,
            LocalResourceError,
            create_local_resources,
        )

        assert self.moto is not None  # noqa: S101
        try:
            self.resources = create_local_resources(
                self.moto.endpoint_url,
                auth_tokens=[self.auth_token],
                auth_id=DEFAULT_AUTH_ID,
                region=REGION,
                stack_name=STACK_NAME,
                template_path=self.template,
            )
        except LocalResourceError as exc:
            raise CLIError(f"creating the template's resources locally: {exc}") from None
        self.session = boto3.session.Session(
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto accepts any credentials
        )

    def _function_arn(self, logical_id: str) -> str:
        r = self.resources
        return f"arn:aws:lambda:{r.region}:{r.account_id}:function:{STACK_NAME}-{logical_id}"

    def _start_workers(self, template: dict[str, Any]) -> None:
        from recording_archive_cli.event_sources import function_setting
        from recording_archive_cli.lambda_worker import LambdaWorker, WorkerError
        from recording_archive_cli.local_resources import (
            LocalResourceError,
            function_environment,
            function_handler,
        )

        for logical_id in FUNCTIONS:
            name = f"{STACK_NAME}-{logical_id}"
            memory = function_setting(template, logical_id, "MemorySize", 128)
            try:
                env = function_environment(
                    logical_id,
                    self.resources,
                    overrides=local_overrides(
                        logical_id, self.callback_url, media_ca_bundle=self.media_trust.bundle
                    ),
                    template_path=self.template,
                )
                handler = function_handler(logical_id, self.template)
            except LocalResourceError as exc:
                raise CLIError(f"template: {exc}") from None
            full_env = runtime_env(
                endpoint_url=self.resources.endpoint_url,
                region=self.resources.region,
                function_name=name,
                memory_mb=memory,
                verbose=self.verbose,
            )
            full_env.update(env)
            if not self.verbose:
                full_env["POWERTOOLS_LOG_LEVEL"] = "WARNING"
            full_env.update(self.extra_env.get(logical_id, {}))
            self.workers[logical_id] = LambdaWorker(
                logical_id,
                handler,
                full_env,
                timeout_seconds=function_setting(template, logical_id, "Timeout", 3),
                memory_mb=memory,
                function_name=name,
                function_arn=self._function_arn(logical_id),
                show_line=None if self.verbose else _not_metrics,
            )
        # Start the four cold starts in parallel.
        errors: list[str] = []

        def start(worker: Any) -> None:
            try:
                worker.start()
            except WorkerError as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=start, args=(w,)) for w in self.workers.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise CLIError(errors[0])

    def _start_event_sources(self, template: dict[str, Any]) -> None:
        from recording_archive_cli.event_sources import (
            QueuePoller,
            SchedulePoller,
            StreamPoller,
            sqs_batch_size,
            stream_mapping,
        )
        from recording_archive_cli.local_resources import stream_filter_patterns

        r = self.resources
        mapping = stream_mapping(
            template, ARCHIVE_ID, stream_filter_patterns(ARCHIVE_ID, self.template)
        )
        self.pollers = [
            StreamPoller(
                session=self.session,
                endpoint_url=r.endpoint_url,
                stream_arn=r.stream_arn,
                region=r.region,
                mapping=mapping,
                invoke=self.workers[ARCHIVE_ID].invoke,
                failure_queue_url=r.archive_failure_queue_url,
                function_arn=self._function_arn(ARCHIVE_ID),
                on_delivered=self._log_archived,
                stop=self.stop_event,
                say=self.console.say,
            ),
            QueuePoller(
                session=self.session,
                endpoint_url=r.endpoint_url,
                queue_url=r.fallback_queue_url,
                region=r.region,
                batch_size=sqs_batch_size(template, DRAIN_ID),
                invoke=self.workers[DRAIN_ID].invoke,
                stop=self.stop_event,
                say=self.console.say,
            ),
            SchedulePoller(
                interval=self.sweep_interval,
                account_id=r.account_id,
                region=r.region,
                rule_arn=f"arn:aws:events:{r.region}:{r.account_id}:rule/{STACK_NAME}-Sweep",
                invoke=self.workers[SWEEPER_ID].invoke,
                stop=self.stop_event,
                say=self.console.say,
            ),
        ]
        for poller in self.pollers:
            poller.start()

    # --- one-line logs ----------------------------------------------------------------------
    def _log_exchange(self, exchange: Any) -> None:
        from recording_archive_cli.api_adapter import describe

        self.console.say(describe(exchange))

    def _log_archived(self, records: list[dict[str, Any]]) -> None:
        ddb = self.session.client("dynamodb", endpoint_url=self.resources.endpoint_url)
        for record in records:
            keys = (record.get("dynamodb") or {}).get("Keys") or {}
            try:
                item = ddb.get_item(
                    TableName=self.resources.table_name, Key=keys, ConsistentRead=True
                ).get("Item", {})
            except Exception as exc:  # noqa: BLE001 - a log line must never stop the poller
                self.console.say(f"archive status unknown: {type(exc).__name__}")
                continue

            def text(name: str, item: dict[str, Any] = item) -> str:
                value = item.get(name) or {}
                return str(next(iter(value.values()), "")) if value else ""

            session = text("SessionUUID")
            seq = text("SequenceNumber")
            if text("ArchiveStatus") == "ARCHIVED":
                self.console.say(
                    f"archived s3://{text('ArchiveBucket')}/{text('ArchiveKey')} "
                    f"size={text('ArchiveSize')} sha256={text('ArchiveSha256')}"
                )
            else:
                self.console.say(
                    f"archive {text('ArchiveStatus') or 'not done'} session={session} seq={seq} "
                    f"attempts={text('ArchiveAttempts') or 0} error={text('ArchiveLastError')}"
                )

    # --- ready, demo, wait ----------------------------------------------------------------
    def ready_line(self) -> str:
        r = self.resources
        token = (
            f"{self.auth_token} (development default; set {TOKEN_ENV} to use yours)"
            if self.auth_token == DEV_AUTH_TOKEN
            else f"from ${TOKEN_ENV} ({len(self.auth_token)} characters)"
        )
        return (
            f"ready: callbacks {self.callback_url} | aws {r.endpoint_url} | "
            f"table {r.table_name} | bucket {r.bucket_name} | token {token}"
        )

    def run_demo(self) -> None:
        from recording_archive_cli.demo import run_demo
        from recording_archive_cli.local_resources import DEFAULT_AUTH_ID

        run_demo(
            callback_url=self.callback_url,
            auth_token=self.auth_token,
            auth_id=DEFAULT_AUTH_ID,
            table=self.resources.table_name,
            session=self.session,
            endpoint_url=self.resources.endpoint_url,
            say=self.console.say,
            stop=self.stop_event,
            tls=self.media_trust.demo_server_context(),
        )

    def stop(self) -> None:
        """Stop everything this stack started, in reverse order; safe to call twice."""
        self.stop_event.set()
        if self.api is not None:
            self.api.stop()
            self.api = None
        for poller in self.pollers:
            poller.join(timeout=5)
        for worker in self.workers.values():
            worker.stop()
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        self.media_trust.cleanup()

    def child_pids(self) -> list[int]:
        pids = [pid for w in self.workers.values() for pid in w.pids]
        if self.moto is not None and self.moto.proc is not None:
            pids.append(self.moto.proc.pid)
        return pids


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
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stack.stop_event.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack.console.say(
            f"starting: moto_server on 127.0.0.1:{args.aws_port}, the template's resources, "
            "four functions"
        )
        stack.start()
        if stack.stop_event.is_set():
            return 0
        stack.console.plain(stack.ready_line())
        stack.console.say("Ctrl-C stops every process started here")
        if not args.no_demo:
            stack.run_demo()
        while not stack.stop_event.wait(1.0):
            pass
        stack.console.say("stopping")
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
