"""`LocalStack`: the whole system on this machine (what `recording-archive local` runs; its
options and signal handling: `recording_archive_cli.commands.local`).

1. moto_server, a separate process on 127.0.0.1:`--aws-port` (default 4566), is the local AWS;
2. the template's table (key schema, GSIs, stream), bucket, KMS key, queues and auth secret are
   created in it from `template.yaml` itself (`resources`);
3. the five functions run their real handlers, each in its own process with its own environment
   (`lambda_worker`): the template's variables resolved to the local resources, plus
   AWS_ENDPOINT_URL (the moto endpoint), dummy credentials, the region,
   PUBLIC_CALLBACK_URL=http://127.0.0.1:{port}/callbacks/recording and MEDIA_ALLOW_LOOPBACK=true
   (loopback media hosts are allowed in this local mode only), MEDIA_CA_BUNDLE for the two
   archivers (stream, work queue) when `--media-ca-bundle` is given or the demo runs (`tls`);
   POWERTOOLS_LOG_LEVEL=WARNING and no EMF metric output unless `--verbose`;
4. the callback API listens on 127.0.0.1:`--port` (default 3000, `http_api`);
5. the stream, the fallback queue, a short sweep schedule and the sweep's work queue drive the
   other functions
   (`event_sources`);
6. unless `--no-demo`, the demo plays one session (`demo`).

The auth token is `$PLIVO_AUTH_TOKEN`, or the development default `local-dev-auth-token`
(printed in the ready line; a token from the environment is never printed). `ready_info` is
what `--ready-file PATH` holds (written atomically once the stack is ready, removed when it
stops): programs read that file, never the human `ready:` line. `stop` ends every process the
stack started. A port in use or a template that does not parse is a CLIError or TemplateError
(one line on stderr, exit status 1).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from recording_archive.models import item as fields
from recording_archive_cli.errors import CLIError
from recording_archive_cli.local.moto import MotoProcess, base_env
from recording_archive_cli.local.tls import MediaTrust

DEV_AUTH_TOKEN = "local-dev-auth-token"  # noqa: S105 - a documented, local-only default
TOKEN_ENV = "PLIVO_AUTH_TOKEN"  # noqa: S105 - a variable name, not a token
DEFAULT_PORT = 3000
DEFAULT_AWS_PORT = 4566
DEFAULT_SWEEP_INTERVAL = 30.0
READY_FILE_VERSION = 1
REGION = "us-east-1"
STACK_NAME = "local"
CALLBACK_ID = "CallbackFunction"
ARCHIVE_ID = "ArchiveFunction"
DRAIN_ID = "FallbackDrainFunction"
SWEEPER_ID = "SweeperFunction"
ARCHIVE_WORK_ID = "ArchiveWorkFunction"
FUNCTIONS = (CALLBACK_ID, ARCHIVE_ID, DRAIN_ID, SWEEPER_ID, ARCHIVE_WORK_ID)


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


# ------------------------------------------------------------------------------------------
# Environments
# ------------------------------------------------------------------------------------------


def runtime_env(
    *,
    endpoint_url: str,
    region: str,
    function_name: str,
    memory_mb: int,
    verbose: bool,
) -> dict[str, str]:
    """The variables Lambda's runtime sets, pointed at the local endpoint."""
    env = base_env()
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
    if logical_id in (CALLBACK_ID, ARCHIVE_ID, ARCHIVE_WORK_ID):
        overrides["MEDIA_ALLOW_LOOPBACK"] = "true"
    if media_ca_bundle is not None and logical_id in (ARCHIVE_ID, ARCHIVE_WORK_ID):
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
    # `--parallelization-factor`: the stream mapping's ParallelizationFactor instead of the
    # template's (the bench compares 1 with the default); None: the template's.
    parallelization_factor: int | None = None

    def __post_init__(self) -> None:
        self.moto: MotoProcess | None = None
        self.api: Any = None
        self.workers: dict[str, Any] = {}
        self.pollers: list[threading.Thread] = []
        self.resources: Any = None
        self.session: Any = None
        self.media_trust = MediaTrust()
        self.stream_mapping: Any = None

    @property
    def callback_url(self) -> str:
        from recording_archive.config import CALLBACK_PATH

        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    def start(self) -> None:
        from recording_archive_cli.local.functions import function_properties
        from recording_archive_cli.local.http_api import CallbackApi, http_api_routes, port_is_free
        from recording_archive_cli.local.template import load_template

        if self.port == self.aws_port:
            raise CLIError("--port and --aws-port must be different ports")
        template = load_template(self.template)
        for logical_id in FUNCTIONS:
            function_properties(template, logical_id)  # TemplateError when it is missing
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
        self.stream_mapping = self._stream_mapping(template)
        self._start_workers(template)
        if self.stop_event.is_set():
            return
        self.api.account_id = self.resources.account_id
        self.api.start()
        self._start_event_sources(template)

    def _create_resources(self) -> None:
        import boto3

        from recording_archive_cli.local.intrinsics import LocalResourceError
        from recording_archive_cli.local.resources import DEFAULT_AUTH_ID, create_local_resources

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

    def _stream_mapping(self, template: dict[str, Any]) -> Any:
        from recording_archive_cli.local.event_sources import stream_mapping
        from recording_archive_cli.local.filters import stream_filter_patterns
        from recording_archive_cli.local.template import TemplateError

        try:
            return stream_mapping(
                template,
                ARCHIVE_ID,
                stream_filter_patterns(ARCHIVE_ID, self.template),
                parallelization=self.parallelization_factor,
            )
        except TemplateError as exc:
            raise CLIError(str(exc)) from None

    def _concurrency(self, logical_id: str) -> int:
        """Execution environments a function needs locally: one per concurrent batch of its
        event source (the stream's ParallelizationFactor, one shard read at a time)."""
        from recording_archive_cli.local.event_sources import sqs_maximum_concurrency
        from recording_archive_cli.local.template import load_template

        if logical_id == ARCHIVE_ID:
            return int(self.stream_mapping.parallelization_factor)
        if logical_id == ARCHIVE_WORK_ID:
            # The SQS event source's ScalingConfig MaximumConcurrency (ArchiveWorkConcurrency).
            return sqs_maximum_concurrency(load_template(self.template), logical_id) or 1
        return 1

    def _start_workers(self, template: dict[str, Any]) -> None:
        from recording_archive_cli.local.functions import (
            function_environment,
            function_handler,
            function_setting,
        )
        from recording_archive_cli.local.intrinsics import LocalResourceError
        from recording_archive_cli.local.lambda_worker import (
            LambdaWorker,
            LambdaWorkerPool,
            WorkerError,
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

            settings: dict[str, Any] = {
                "timeout_seconds": function_setting(template, logical_id, "Timeout", 3),
                "memory_mb": memory,
                "function_name": name,
                "function_arn": self._function_arn(logical_id),
                "show_line": None if self.verbose else _not_metrics,
            }

            def make(
                _index: int,
                args: tuple[str, str, dict[str, str]] = (logical_id, handler, full_env),
                settings: dict[str, Any] = settings,
            ) -> LambdaWorker:
                return LambdaWorker(*args, **settings)

            size = self._concurrency(logical_id)
            self.workers[logical_id] = make(0) if size == 1 else LambdaWorkerPool(size, make)
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
        from recording_archive_cli.local.event_sources import (
            QueuePoller,
            SchedulePoller,
            StreamPoller,
            sqs_batch_size,
        )

        r = self.resources
        mapping = self.stream_mapping
        # What every poller gets: the local endpoint, and the stack's stop event and console.
        aws: dict[str, Any] = {"session": self.session, "endpoint_url": r.endpoint_url}
        shared: dict[str, Any] = {
            "region": r.region,
            "stop": self.stop_event,
            "say": self.console.say,
        }
        self.pollers = [
            StreamPoller(
                **aws,
                **shared,
                stream_arn=r.stream_arn,
                mapping=mapping,
                invoke=self.workers[ARCHIVE_ID].invoke,
                failure_queue_url=r.archive_failure_queue_url,
                function_arn=self._function_arn(ARCHIVE_ID),
                on_delivered=self._log_archived,
            ),
            QueuePoller(
                **aws,
                **shared,
                queue_url=r.fallback_queue_url,
                batch_size=sqs_batch_size(template, DRAIN_ID),
                invoke=self.workers[DRAIN_ID].invoke,
            ),
            SchedulePoller(
                **shared,
                interval=self.sweep_interval,
                account_id=r.account_id,
                rule_arn=f"arn:aws:events:{r.region}:{r.account_id}:rule/{STACK_NAME}-Sweep",
                invoke=self.workers[SWEEPER_ID].invoke,
            ),
            # The sweeper's work queue -> ArchiveWorkFunction.
            QueuePoller(
                **aws,
                **shared,
                queue_url=r.archive_work_queue_url,
                batch_size=sqs_batch_size(template, ARCHIVE_WORK_ID),
                invoke=self.workers[ARCHIVE_WORK_ID].invoke,
                max_concurrency=self._concurrency(ARCHIVE_WORK_ID),
                what="archive work",
                done="archive work: {count} message(s) processed",
            ),
        ]
        for poller in self.pollers:
            poller.start()

    # --- one-line logs ----------------------------------------------------------------------
    def _log_exchange(self, exchange: Any) -> None:
        from recording_archive_cli.local.http_api import describe

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

            session = text(fields.SESSION_UUID)
            seq = text(fields.SEQUENCE_NUMBER)
            if text(fields.ARCHIVE_STATUS) == fields.ArchiveStatus.ARCHIVED:
                self.console.say(
                    f"archived s3://{text(fields.ARCHIVE_BUCKET)}/{text(fields.ARCHIVE_KEY)}"
                    f" size={text(fields.ARCHIVE_SIZE)} sha256={text(fields.ARCHIVE_SHA256)}"
                )
            else:
                self.console.say(
                    f"archive {text(fields.ARCHIVE_STATUS) or 'not done'} session={session} "
                    f"seq={seq} attempts={text(fields.ARCHIVE_ATTEMPTS) or 0} "
                    f"error={text(fields.ARCHIVE_LAST_ERROR)}"
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

    def ready_info(self) -> dict[str, Any]:
        """What `--ready-file` holds: everything a client needs to use this stack, no secret.

        `auth_token_source` says where the token comes from ("default": the documented
        development token; "env:PLIVO_AUTH_TOKEN": the caller's own), never the token itself.
        """
        from recording_archive_cli.local.resources import DEFAULT_AUTH_ID

        r = self.resources
        return {
            "version": READY_FILE_VERSION,
            "pid": os.getpid(),
            "port": self.port,
            "aws_port": self.aws_port,
            "callback_url": self.callback_url,
            "aws_endpoint_url": r.endpoint_url,
            "region": r.region,
            "account_id": r.account_id,
            "stack_name": r.stack_name,
            "table": r.table_name,
            "stream_arn": r.stream_arn,
            "bucket": r.bucket_name,
            "kms_key_arn": r.kms_key_arn,
            "fallback_queue_url": r.fallback_queue_url,
            "fallback_dlq_url": r.fallback_dlq_url,
            "archive_failure_queue_url": r.archive_failure_queue_url,
            "archive_work_queue_url": r.archive_work_queue_url,
            # Where the local rule `local-lifecycle-events` forwards the lifecycle events.
            "lifecycle_events_queue_url": r.lifecycle_events_queue_url,
            "secret_arn": r.secret_arn,
            "auth_id": DEFAULT_AUTH_ID,
            "auth_token_source": (
                "default" if self.auth_token == DEV_AUTH_TOKEN else f"env:{TOKEN_ENV}"
            ),
        }

    def run_demo(self) -> None:
        from recording_archive_cli.local.demo import run_demo
        from recording_archive_cli.local.resources import DEFAULT_AUTH_ID

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


def write_ready_file(path: Path, info: dict[str, Any]) -> None:
    """Write `info` as JSON to `path` atomically: a reader sees no file or the whole file."""
    path = path.resolve()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
