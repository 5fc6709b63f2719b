"""One operator command run's view of the stack: where it is, its clients and collaborators.

Where the stack is (exactly one of):
- `--endpoint-url URL`: the local stack (`recording-archive local`, moto). Its resources are
  found by the names `local.resources` gives them for the stack name "local": table
  `local-EventsTable`, bucket `local-archivebucket`, secret `local-AuthSecret`, key alias
  `alias/local-data`. Loopback media URLs are allowed, as in the local functions.
- `--stack NAME`: a deployed stack; names from its CloudFormation outputs EventsTableName,
  ArchiveBucketName, AuthSecretArn and DataKeyArn, and the media settings from its parameters
  MediaAllowedHosts and MediaAuth.
`--profile` and `--region` choose the AWS credentials and region as usual. The Plivo REST API is
`--plivo-api-url`, with the auth id and first token of the stack's auth secret.

The collaborators (archive index, Plivo client, media policy, archiver) and the secret's rule
come from the functions' composition root, `recording_archive.handlers.wiring`: the CLI only
supplies its own clients and the stack's names. The functions' JSON logs go to stderr (warnings
and errors only, unless `--verbose`: `runtime_logs`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from recording_archive_cli.errors import CLIError

LOCAL_STACK = "local"
MEDIA_RETRY_BUDGET = 30.0
REQUIRED_OUTPUTS = ("EventsTableName", "ArchiveBucketName", "AuthSecretArn", "DataKeyArn")


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


def _wiring() -> Any:
    """The composition root, imported on first use (it imports boto3 and Powertools)."""
    from recording_archive.handlers import wiring

    return wiring


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
        # local.resources names a resource "{stack}-{LogicalId}" (buckets in lower case).
        from recording_archive_cli.local.resources import BUCKET_ID, SECRET_ID, TABLE_ID

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

    @cached_property
    def _stack_description(self) -> tuple[dict[str, str], dict[str, str]]:
        """The deployed stack's (outputs, parameters)."""
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
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        params = {
            p["ParameterKey"]: p.get("ParameterValue", "") for p in stacks[0].get("Parameters", [])
        }
        return outputs, params

    def stack_output(self, key: str) -> str:
        """An output of the deployed stack (CLIError when the stack has none by that name: a
        stack deployed before the feature that added it)."""
        value = self._stack_description[0].get(key)
        if not value:
            raise CLIError(
                f"stack {self.stack!r} has no output {key}: deploy this version of the template"
            )
        return value

    def stack_parameter(self, key: str) -> str:
        """A template parameter's value: the deployed stack's, or for the local stack (and a
        stack deployed before the parameter existed) the template's default."""
        if not self.endpoint_url:
            value = self._stack_description[1].get(key)
            if value is not None:
                return value
        from recording_archive_cli.local.template import template_at

        default = template_at(None)["Parameters"].get(key, {}).get("Default")
        if default is None:
            raise CLIError(f"the template has no parameter {key} with a default")
        return str(default)

    @cached_property
    def caller_arn(self) -> str:
        """Who runs this command (STS GetCallerIdentity): the actor of audit records."""
        with self.aws_errors("sts"):
            return str(self.client("sts").get_caller_identity()["Arn"])

    @cached_property
    def audit(self) -> Any:
        """The audit log (operator/audit.py): table `local-AuditTable`, or output AuditTableName."""
        from recording_archive_cli.operator.audit import AuditLog

        table = (
            f"{LOCAL_STACK}-AuditTable"
            if self.endpoint_url
            else self.stack_output("AuditTableName")
        )
        return AuditLog(self.client("dynamodb"), table)

    def _stack_names(self) -> Names:
        name = str(self.stack)
        outputs, params = self._stack_description
        with self.aws_errors(f"stack {name}"):
            account = self.client("sts").get_caller_identity()["Account"]
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

    # --- collaborators: assembled by the functions' composition root ------------------------
    @cached_property
    def index(self) -> Any:
        return _wiring().archive_index(self.client("dynamodb"), self.names.table)

    @cached_property
    def s3(self) -> Any:
        # SigV4: KMS-encrypted objects (and their presigned URLs) need it.
        return self.client("s3", signature_version="s3v4")

    @cached_property
    def credentials(self) -> Any:
        """The stack's auth secret, read by the secret's own rule (`parse_credentials`)."""
        with self.aws_errors("auth secret"):
            raw = self.client("secretsmanager").get_secret_value(SecretId=self.names.secret)
        try:
            data = json.loads(raw.get("SecretString") or "")
        except ValueError:
            data = None
        creds = _wiring().parse_credentials(data)
        if not creds.auth_id or not creds.auth_tokens:
            raise CLIError(
                f"no Plivo credentials: the auth secret {self.names.secret} holds no auth id and "
                "token"
            )
        return creds

    @cached_property
    def plivo(self) -> Any:
        from recording_archive.dal.plivo_api import PlivoApiError

        try:
            return _wiring().plivo_api(self.credentials, self.args.plivo_api_url)
        except PlivoApiError as exc:
            raise CLIError(exc.message) from None

    @cached_property
    def archiver(self) -> Any:
        wiring = _wiring()
        names = self.names
        policy = wiring.media_policy_from(
            allowed_hosts=names.media_allowed_hosts,
            allow_loopback=names.local,
            creds=self.credentials if names.media_auth else None,
            retry_budget=getattr(self.args, "media_retry_budget", MEDIA_RETRY_BUDGET),
        )
        return wiring.assemble_archiver(
            index=self.index,
            policy=policy,
            s3=self.s3,
            target=wiring.ArchiveTarget(
                bucket=names.bucket, kms_key_id=names.kms_key, bucket_owner=names.account_id
            ),
            # An operator's retry or reconcile announces what it archives, as the functions do.
            events=self.lifecycle_events,
        )

    @cached_property
    def lifecycle_events(self) -> Any:
        """The lifecycle events publisher (dal/lifecycle_events.py) on the stack's bus: the
        parameter EventBusName (the local stack: the template's default, the account's default
        bus, where `local-lifecycle-events` forwards to the queue `local-LifecycleEvents`)."""
        return _wiring().lifecycle_events_on(
            self.client("events"), self.stack_parameter("EventBusName")
        )

    # --- the session index (sessions list / find, index rebuild, erase) -----------------------
    @cached_property
    def index_table(self) -> str:
        """The session index table: `local-IndexTable`, or the stack's output IndexTableName."""
        if self.endpoint_url:
            return f"{LOCAL_STACK}-IndexTable"
        return self.stack_output("IndexTableName")

    @cached_property
    def number_index_key(self) -> str:
        """The index's HMAC key: alias `alias/local-number-index`, or output NumberIndexKeyArn."""
        if self.endpoint_url:
            return f"alias/{LOCAL_STACK}-number-index"
        return self.stack_output("NumberIndexKeyArn")

    @cached_property
    def session_index(self) -> Any:
        """The functions' SessionIndex on the operator's clients (dal/session_index.py)."""
        return _wiring().session_index_from(
            self.client("dynamodb"), self.index_table, self.client("kms"), self.number_index_key
        )
