"""What the operator commands share: where the stack is, its clients, output and progress.

Where the stack is (exactly one of):
- `--endpoint-url URL`: the local stack (`recording-archive local`, moto). Its resources are
  found by the names `local_resources` gives them for the stack name "local": table
  `local-EventsTable`, bucket `local-archivebucket`, secret `local-AuthSecret`, key alias
  `alias/local-data`. Loopback media URLs are allowed, as in the local functions.
- `--stack NAME`: a deployed stack; names from its CloudFormation outputs EventsTableName,
  ArchiveBucketName, AuthSecretArn and DataKeyArn, and the media settings from its parameters
  MediaAllowedHosts and MediaAuth.
`--profile` and `--region` choose the AWS credentials and region as usual. The Plivo REST API is
`--plivo-api-url` (default `$PLIVO_API_URL`, else https://api.plivo.com), with the auth id and
first token of the stack's auth secret.

Output: a readable table by default, `--json` for scripts; progress bars on stderr when it is a
terminal. The functions' JSON logs go to stderr (warnings and errors only, unless `--verbose`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, TextIO

from recording_archive_cli.errors import CLIError

LOCAL_STACK = "local"
PLIVO_URL_ENV = "PLIVO_API_URL"
DEFAULT_PLIVO_URL = "https://api.plivo.com"
MEDIA_RETRY_BUDGET = 30.0
REQUIRED_OUTPUTS = ("EventsTableName", "ArchiveBucketName", "AuthSecretArn", "DataKeyArn")
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


# --- arguments -----------------------------------------------------------------------------------
def duration(text: str) -> timedelta:
    """`90s`, `30m`, `48h`, `7d`, `2w`, or combinations such as `1d12h`."""
    value = text.strip().lower()
    if not value or _DURATION.sub("", value):
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (use e.g. 90s, 30m, 48h, 7d, 2w, 1d12h)"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(value))
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the duration must be positive")
    return timedelta(seconds=seconds)


def identifier(text: str) -> str:
    if not _ID.match(text):
        raise argparse.ArgumentTypeError(f"not a Plivo id: {text!r}")
    return text


def common_options() -> argparse.ArgumentParser:
    """The options every operator command takes (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    where = parent.add_argument_group("where the archive is (one of)")
    where.add_argument(
        "--endpoint-url", help="the local stack's AWS endpoint, e.g. http://127.0.0.1:4566"
    )
    where.add_argument("--stack", help="a deployed stack's name (CloudFormation outputs)")
    parent.add_argument("--profile", help="AWS profile")
    parent.add_argument("--region", help="AWS region")
    parent.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    parent.add_argument("--verbose", action="store_true", help="the functions' INFO logs on stderr")
    return parent


def media_retry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--media-retry-budget",
        type=float,
        default=MEDIA_RETRY_BUDGET,
        metavar="SECONDS",
        help=f"time spent retrying one recording's download ({MEDIA_RETRY_BUDGET:g} s)",
    )


def plivo_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plivo-api-url",
        default=os.environ.get(PLIVO_URL_ENV) or DEFAULT_PLIVO_URL,
        help=f"Plivo's REST API base URL (default ${PLIVO_URL_ENV} or {DEFAULT_PLIVO_URL})",
    )


# --- output --------------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """Decimals as numbers, sets as sorted lists: JSON-ready."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if c is None else str(plain(c))) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in [list(headers), *cells]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(plain(data), indent=2, sort_keys=True, default=str), flush=True)
    else:
        print(text, flush=True)


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        width: int = 30,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._width = width

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if not self._enabled:
            return
        if self.total:
            filled = min(self._width, self._width * self.done // self.total)
            bar = "#" * filled + "-" * (self._width - filled)
            text = f"\r{self.label} [{bar}] {self.done}/{self.total}"
        else:
            text = f"\r{self.label} {self.done}"
        self._stream.write(f"{text} {note[:40]}".ljust(self._width + 60))
        self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()


@contextmanager
def runtime_logs(verbose: bool) -> Iterator[None]:
    """The functions' Logger writes to stderr (not stdout: it is the command's output) and only
    warnings unless verbose; their metrics are dropped (nothing publishes them here)."""
    from recording_archive.observability import logger, metrics

    handler = logger.logger_handler
    old_stream = (
        handler.setStream(sys.stderr) if isinstance(handler, logging.StreamHandler) else None
    )
    old_level = logger.log_level
    logger.setLevel("INFO" if verbose else "WARNING")
    try:
        yield
    finally:
        logger.setLevel(old_level)
        if old_stream is not None and isinstance(handler, logging.StreamHandler):
            handler.setStream(old_stream)
        metrics.clear_metrics()


def drop_metrics() -> None:
    """Metrics accumulate per archive; a CLI run never publishes them."""
    from recording_archive.observability import metrics

    metrics.clear_metrics()


def now_iso(moment: datetime | None = None) -> str:
    from recording_archive.logic.store_callback import iso

    return iso(moment or datetime.now(UTC))


# --- the stack -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Names:
    table: str
    bucket: str
    secret: str
    kms_key: str
    account_id: str
    region: str
    local: bool
    media_allowed_hosts: tuple[str, ...]
    media_auth: bool


def _aws_message(exc: BaseException) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return " ".join(str(exc).split())


class Ops:
    """Clients and collaborators for one command run, built lazily."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        endpoint = getattr(args, "endpoint_url", None)
        stack = getattr(args, "stack", None)
        if endpoint and stack:
            raise CLIError(
                "pass either --endpoint-url (local stack) or --stack (deployed), not both"
            )
        if not endpoint and not stack:
            raise CLIError("pass --endpoint-url URL (local stack) or --stack NAME (deployed stack)")
        self.endpoint_url: str | None = endpoint
        self.stack: str | None = stack

    # --- sessions and clients ------------------------------------------------------------------
    @cached_property
    def session(self) -> Any:
        import boto3
        from botocore.exceptions import BotoCoreError

        session: Any
        try:
            session = boto3.session.Session(
                profile_name=self.args.profile, region_name=self.args.region
            )
        except BotoCoreError as exc:  # ProfileNotFound and friends
            raise CLIError(_aws_message(exc)) from None
        if self.endpoint_url and session.get_credentials() is None:
            # The local endpoint (moto) accepts any credentials.
            session = boto3.session.Session(
                region_name=self.args.region or "us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",  # noqa: S106
            )
        if session.region_name is None:
            if not self.endpoint_url:
                raise CLIError("no AWS region: pass --region or set AWS_REGION")
            session = boto3.session.Session(profile_name=self.args.profile, region_name="us-east-1")
        return session

    def client(self, service: str, **config_options: Any) -> Any:
        from botocore.config import Config

        config = Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"mode": "standard", "max_attempts": 5},
            **config_options,
        )
        return self.session.client(service, endpoint_url=self.endpoint_url, config=config)

    @contextmanager
    def aws_errors(self, what: str) -> Iterator[None]:
        """AWS failures as one-line CLIErrors."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        try:
            yield
        except NoCredentialsError:
            raise CLIError(
                "no AWS credentials: configure a profile (--profile) or environment credentials"
            ) from None
        except EndpointConnectionError:
            where = self.endpoint_url or "AWS"
            raise CLIError(f"{what}: cannot reach {where}") from None
        except (ClientError, BotoCoreError) as exc:
            raise CLIError(f"{what}: {_aws_message(exc)}") from None

    @cached_property
    def names(self) -> Names:
        return self._local_names() if self.endpoint_url else self._stack_names()

    def _local_names(self) -> Names:
        # local_resources names a resource "{stack}-{LogicalId}" (buckets in lower case).
        from recording_archive_cli.local_resources import BUCKET_ID, SECRET_ID, TABLE_ID

        table, bucket = f"{LOCAL_STACK}-{TABLE_ID}", f"{LOCAL_STACK}-{BUCKET_ID}".lower()
        hint = f"no local stack at {self.endpoint_url} (is `recording-archive local` running?)"
        from botocore.exceptions import ClientError

        with self.aws_errors("local stack"):
            try:
                self.client("dynamodb").describe_table(TableName=table)
                self.client("s3").head_bucket(Bucket=bucket)
                secret = self.client("secretsmanager").describe_secret(
                    SecretId=f"{LOCAL_STACK}-{SECRET_ID}"
                )["ARN"]
                key = self.client("kms").describe_key(KeyId=f"alias/{LOCAL_STACK}-data")
            except ClientError as exc:
                raise CLIError(f"{hint}: {_aws_message(exc)}") from None
            account = self.client("sts").get_caller_identity()["Account"]
        from recording_archive.config import DEFAULT_MEDIA_HOSTS

        return Names(
            table=table,
            bucket=bucket,
            secret=secret,
            kms_key=key["KeyMetadata"]["Arn"],
            account_id=str(account),
            region=str(self.session.region_name),
            local=True,
            media_allowed_hosts=DEFAULT_MEDIA_HOSTS,
            media_auth=False,
        )

    def _stack_names(self) -> Names:
        from botocore.exceptions import ClientError

        name = str(self.stack)
        with self.aws_errors(f"stack {name}"):
            try:
                stacks = self.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ValidationError":
                    raise CLIError(
                        f"no stack named {name!r} in {self.session.region_name}"
                    ) from None
                raise
            account = self.client("sts").get_caller_identity()["Account"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        params = {
            p["ParameterKey"]: p.get("ParameterValue", "") for p in stacks[0].get("Parameters", [])
        }
        missing = [o for o in REQUIRED_OUTPUTS if not outputs.get(o)]
        if missing:
            raise CLIError(
                f"stack {name!r} is not a recording archive stack (no output {', '.join(missing)})"
            )
        from recording_archive.config import DEFAULT_MEDIA_HOSTS

        hosts = tuple(
            h.strip().lower() for h in params.get("MediaAllowedHosts", "").split(",") if h.strip()
        )
        return Names(
            table=outputs["EventsTableName"],
            bucket=outputs["ArchiveBucketName"],
            secret=outputs["AuthSecretArn"],
            kms_key=outputs["DataKeyArn"],
            account_id=str(account),
            region=str(self.session.region_name),
            local=False,
            media_allowed_hosts=hosts or DEFAULT_MEDIA_HOSTS,
            media_auth=params.get("MediaAuth", "").lower() == "true",
        )

    # --- collaborators -------------------------------------------------------------------------
    @cached_property
    def index(self) -> Any:
        from recording_archive.dal.archive_index import ArchiveIndex

        return ArchiveIndex(self.client("dynamodb"), self.names.table)

    @cached_property
    def s3(self) -> Any:
        # SigV4: KMS-encrypted objects (and their presigned URLs) need it.
        return self.client("s3", signature_version="s3v4")

    @cached_property
    def credentials(self) -> Any:
        from recording_archive.dal.auth_secret import PlivoCredentials

        with self.aws_errors("auth secret"):
            raw = self.client("secretsmanager").get_secret_value(SecretId=self.names.secret)
        try:
            data = json.loads(raw.get("SecretString") or "")
        except ValueError:
            data = None
        if isinstance(data, dict) and "auth_tokens" not in data and "auth_token" in data:
            data = {**data, "auth_tokens": [data["auth_token"]]}
        creds = PlivoCredentials.model_validate(data) if isinstance(data, dict) else None
        if creds is None or not creds.auth_id or not creds.auth_tokens:
            raise CLIError(
                f"no Plivo credentials: the auth secret {self.names.secret} holds no auth id and "
                "token"
            )
        return creds

    @cached_property
    def plivo(self) -> Any:
        from recording_archive.dal.plivo_api import PlivoApi, PlivoApiError

        creds = self.credentials
        try:
            return PlivoApi(creds.auth_id, creds.auth_tokens[0], base_url=self.args.plivo_api_url)
        except PlivoApiError as exc:
            raise CLIError(exc.message) from None

    @cached_property
    def archiver(self) -> Any:
        from recording_archive.dal.media_source import MediaPolicy, MediaSource
        from recording_archive.dal.recording_store import RecordingStore
        from recording_archive.logic.archive_recording import Archiver, ArchiveTarget

        names = self.names
        auth = None
        if names.media_auth:
            creds = self.credentials
            auth = (creds.auth_id, creds.auth_tokens[0])
        policy = MediaPolicy(
            allowed_hosts=names.media_allowed_hosts,
            allow_loopback=names.local,
            basic_auth=auth,
            retry_budget=getattr(self.args, "media_retry_budget", MEDIA_RETRY_BUDGET),
        )
        return Archiver(
            index=self.index,
            media=MediaSource(policy),
            recordings=RecordingStore(self.s3),
            target=ArchiveTarget(
                bucket=names.bucket, kms_key_id=names.kms_key, bucket_owner=names.account_id
            ),
        )
