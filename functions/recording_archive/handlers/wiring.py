"""The one composition root: every handler, and the operator CLI, get their collaborators here.

Built lazily and once per execution environment (never at import time): settings (config.py),
AWS clients (dal/aws.py), the secret's cached value (Powertools Parameters) and the
collaborators below. Handlers take optional collaborator arguments for tests and default to
these factories; the callback route (`recording_callback.receive_callback`, called with the
request only) reads `callback_dependencies()` (tests set theirs with
`set_callback_dependencies`).

`reset()` forgets everything cached here and below (settings, clients, the secret's value,
collaborators): tests call it after changing the environment or an endpoint, instead of
clearing private caches.

The operator CLI has clients and resource names of its own (a profile, an endpoint, a stack's
outputs) rather than settings from the environment; it uses the same assembly through
`parse_credentials`, `event_store`, `archive_index`, `plivo_api`, `media_policy_from` and
`assemble_archiver`.

This module may import from every layer; nothing but handlers and the CLI imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from recording_archive import config
from recording_archive.config import (
    ArchiveSettings,
    ArchiveWorkSettings,
    CallbackSettings,
    ReconcileSettings,
    SweeperSettings,
    TableSettings,
)
from recording_archive.dal import aws
from recording_archive.dal.auth_secret import PlivoCredentials, load_credentials, parse_credentials
from recording_archive.logic.ports import EventStore, Fallback
from recording_archive.models.archive import ArchiveTarget
from recording_archive.models.plivo import PlivoAuthError

# The implementations are imported where they are built: each function imports only what it
# uses (the callback never loads the media, S3 or Plivo clients: cold start, bench/README.md).
if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from recording_archive.dal.archive_index import ArchiveIndex
    from recording_archive.dal.events_table import RecordingEventStore
    from recording_archive.dal.lifecycle_events import LifecycleEvents
    from recording_archive.dal.media import MediaPolicy
    from recording_archive.dal.plivo_api import PlivoApi
    from recording_archive.dal.session_index import SessionIndex
    from recording_archive.dal.work_queue import ArchiveWorkQueue
    from recording_archive.logic.archive_recording import Archiver, LifecycleNotices

__all__ = [
    "ArchiveTarget",
    "ArchiveWorkCollaborators",
    "CallbackDependencies",
    "PlivoCredentials",
    "SweeperCollaborators",
    "archive_index",
    "archive_work_collaborators",
    "archiver",
    "assemble_archiver",
    "build_archiver",
    "callback_dependencies",
    "credentials",
    "event_store",
    "lifecycle_events",
    "lifecycle_events_on",
    "media_policy",
    "media_policy_from",
    "parse_credentials",
    "plivo_api",
    "reconcile_collaborators",
    "reset",
    "session_index",
    "session_index_from",
    "set_callback_dependencies",
    "sweeper_collaborators",
]

MiB = 1024 * 1024


# --- assembly (no caching: the CLI and the cached factories below share it) --------------------
def event_store(client: DynamoDBClient, table_name: str) -> RecordingEventStore:
    from recording_archive.dal.events_table import RecordingEventStore

    return RecordingEventStore(client, table_name)


def archive_index(client: DynamoDBClient, table_name: str) -> ArchiveIndex:
    from recording_archive.dal.archive_index import ArchiveIndex

    return ArchiveIndex(client, table_name)


def session_index_from(
    client: DynamoDBClient, table_name: str, kms_client: Any, number_key_id: str
) -> SessionIndex:
    """The session index on `table_name`, its numbers blinded with `number_key_id` (an HMAC key;
    empty: day entries only, and an event with a number fails with NumberKeyUnavailableError).
    `kms_client`: a client, or a function that creates one when the first number is blinded."""
    from recording_archive.dal.session_index import NumberBlinder, SessionIndex

    blinder = NumberBlinder(kms_client, number_key_id) if number_key_id else None
    return SessionIndex(client, table_name, blinder)


def lifecycle_events_on(client: Any, bus_name: str) -> LifecycleEvents:
    """The lifecycle events publisher on `bus_name` with an EventBridge client (the CLI's)."""
    from recording_archive.dal.lifecycle_events import LifecycleEvents

    return LifecycleEvents(client, bus_name)


def plivo_api(creds: PlivoCredentials, base_url: str) -> PlivoApi:
    """A Plivo REST client on the secret's auth id and first token (PlivoAuthError without)."""
    from recording_archive.dal.plivo_api import PlivoApi

    if not creds.auth_id or not creds.auth_tokens:
        raise PlivoAuthError("the auth secret holds no Plivo auth id and token")
    return PlivoApi(creds.auth_id, creds.auth_tokens[0], base_url=base_url)


def media_policy_from(
    *,
    allowed_hosts: tuple[str, ...],
    allow_loopback: bool,
    creds: PlivoCredentials | None,
    **limits: Any,
) -> MediaPolicy:
    """The media policy; `creds` given (MEDIA_AUTH) sends the auth id and first token as Basic
    auth. `limits`: MediaPolicy's timeouts and sizes (its defaults otherwise)."""
    from recording_archive.dal.media import MediaPolicy

    basic_auth = None
    if creds is not None and creds.auth_id and creds.auth_tokens:
        basic_auth = (creds.auth_id, creds.auth_tokens[0])
    return MediaPolicy(
        allowed_hosts=allowed_hosts,
        allow_loopback=allow_loopback,
        basic_auth=basic_auth,
        **limits,
    )


def assemble_archiver(
    *,
    index: RecordingEventStore,
    policy: MediaPolicy,
    s3: S3Client,
    target: ArchiveTarget,
    part_size: int | None = None,
    concurrency: int | None = None,
    **options: Any,
) -> Archiver:
    """An Archiver from its parts; `options`: Archiver's keyword options (max_attempts, ...).
    Without `part_size` and `concurrency`, RecordingStore's defaults."""
    from recording_archive.dal.media import MediaSource
    from recording_archive.dal.recording_store import RecordingStore
    from recording_archive.logic.archive_recording import Archiver

    recordings = RecordingStore(s3)
    if part_size is not None and concurrency is not None:
        recordings = RecordingStore(s3, part_size=part_size, concurrency=concurrency)
    return Archiver(
        index=index,
        media=MediaSource(policy),
        recordings=recordings,
        target=target,
        **options,
    )


# --- from the function's settings ----------------------------------------------------------------
def indexed_store(settings: TableSettings) -> EventStore:
    """The events table; with the session index configured, one that also writes the entries of
    every new event (logic/store_callback.IndexedEventStore)."""
    store = event_store(aws.dynamodb_client(), settings.events_table_name)
    index = _session_index(settings)
    if index is None:
        return store
    from recording_archive.logic.store_callback import IndexedEventStore

    return IndexedEventStore(store, index)


def _session_index(settings: TableSettings) -> SessionIndex | None:
    if not settings.index_table_name:
        return None
    # The factory, not a client: a callback without a phone field never creates a KMS client.
    return session_index_from(
        aws.dynamodb_client(),
        settings.index_table_name,
        aws.kms_client,
        settings.number_index_key_id,
    )


def credentials(settings: CallbackSettings | ArchiveSettings) -> PlivoCredentials:
    """The secret's credentials (Powertools caches the value for SECRET_MAX_AGE_SECONDS)."""
    return load_credentials(settings.auth_secret_id, max_age=settings.secret_max_age_seconds)


def media_policy(settings: ArchiveSettings) -> MediaPolicy:
    return media_policy_from(
        allowed_hosts=settings.media_allowed_hosts,
        allow_loopback=settings.media_allow_loopback,
        creds=credentials(settings) if settings.media_auth else None,
        connect_timeout=settings.media_connect_timeout_seconds,
        read_timeout=settings.media_read_timeout_seconds,
        retry_budget=settings.media_retry_budget_seconds,
        ca_bundle=settings.media_ca_bundle or None,
        max_bytes=settings.media_max_size_mib * MiB,
        max_seconds=settings.media_total_timeout_seconds,
    )


def build_archiver(settings: ArchiveSettings, *, max_attempts: int | None = None) -> Archiver:
    return assemble_archiver(
        index=event_store(aws.dynamodb_client(), settings.events_table_name),
        policy=media_policy(settings),
        s3=aws.s3_client(),
        target=ArchiveTarget(
            bucket=settings.archive_bucket_name,
            kms_key_id=settings.archive_kms_key_id,
            bucket_owner=settings.archive_bucket_owner,
        ),
        part_size=settings.part_size_mib * MiB,
        concurrency=settings.upload_concurrency,
        max_attempts=max_attempts,
        stop_margin_seconds=settings.archive_stop_margin_seconds,
        lease_slack_seconds=settings.archive_lease_slack_seconds,
        events=lifecycle_events(settings.event_bus_name),
    )


# --- cached, one per handler ---------------------------------------------------------------------
@dataclass(frozen=True)
class CallbackDependencies:
    settings: CallbackSettings
    store: EventStore
    fallback: Fallback
    credentials: Callable[[], PlivoCredentials]


# The one cached value a test may replace (set_callback_dependencies).
_callback: dict[str, CallbackDependencies] = {}


def callback_dependencies() -> CallbackDependencies:
    """CallbackFunction's collaborators (or those a test set)."""
    if "deps" not in _callback:
        from recording_archive.dal.fallback_queue import FallbackQueue

        settings = config.callback_settings()
        _callback["deps"] = CallbackDependencies(
            settings=settings,
            store=indexed_store(settings),
            fallback=FallbackQueue(aws.sqs_client, settings.fallback_queue_url),
            credentials=lambda: credentials(settings),
        )
    return _callback["deps"]


def set_callback_dependencies(deps: CallbackDependencies | None) -> None:
    """Tests: the collaborators the next callbacks use (None: the default ones again)."""
    _callback.clear()
    if deps is not None:
        _callback["deps"] = deps


@cache
def table_store() -> EventStore:
    """FallbackDrainFunction's table (with the session index, when configured)."""
    return indexed_store(config.table_settings())


@cache
def session_index() -> SessionIndex | None:
    """The session index of the function's settings; None when the stack has none."""
    return _session_index(config.table_settings())


@cache
def lifecycle_events(bus_name: str) -> LifecycleEvents:
    """The archive functions' lifecycle events (EVENT_BUS_NAME): RecordingArchived and
    RecordingFailed, published by every Archiver they build."""
    return lifecycle_events_on(aws.events_client(), bus_name)


@cache
def archiver() -> Archiver:
    """ArchiveFunction's archiver (at most SWEEP_MAX_ATTEMPTS attempts, the work queue's
    included: its retries race the work queue's once a lease runs out)."""
    settings = config.archive_settings()
    return build_archiver(settings, max_attempts=settings.sweep_max_attempts)


@dataclass(frozen=True)
class SweeperCollaborators:
    settings: SweeperSettings
    items: RecordingEventStore
    queue: ArchiveWorkQueue
    notices: LifecycleNotices


@cache
def sweeper_collaborators() -> SweeperCollaborators:
    """SweeperFunction's settings, table, work queue and lifecycle notices (it archives nothing:
    no S3, media or secret)."""
    from recording_archive.dal.work_queue import ArchiveWorkQueue
    from recording_archive.logic.archive_recording import LifecycleNotices

    settings = config.sweeper_settings()
    store = event_store(aws.dynamodb_client(), settings.events_table_name)
    return SweeperCollaborators(
        settings=settings,
        items=store,
        queue=ArchiveWorkQueue(aws.sqs_client, settings.archive_work_queue_url),
        notices=LifecycleNotices(store, lifecycle_events(settings.event_bus_name)),
    )


@dataclass(frozen=True)
class ArchiveWorkCollaborators:
    settings: ArchiveWorkSettings
    items: RecordingEventStore
    archiver: Archiver


@cache
def archive_work_collaborators() -> ArchiveWorkCollaborators:
    """ArchiveWorkFunction's settings, table and archiver (at most SWEEP_MAX_ATTEMPTS attempts,
    as the sweeper's were)."""
    settings = config.archive_work_settings()
    return ArchiveWorkCollaborators(
        settings=settings,
        items=event_store(aws.dynamodb_client(), settings.events_table_name),
        archiver=build_archiver(settings, max_attempts=settings.sweep_max_attempts),
    )


@cache
def reconcile_collaborators() -> tuple[ReconcileSettings, ArchiveIndex]:
    """ReconcileFunction's settings and table (its Plivo client and archiver are built per
    invocation: the secret may have been rotated)."""
    settings = config.reconcile_settings()
    return settings, archive_index(aws.dynamodb_client(), settings.events_table_name)


def reset() -> None:
    """Forget every cached setting, client, secret value and collaborator (tests)."""
    from aws_lambda_powertools.utilities import parameters

    set_callback_dependencies(None)
    for fn in (
        table_store,
        session_index,
        archiver,
        sweeper_collaborators,
        archive_work_collaborators,
        reconcile_collaborators,
    ):
        fn.cache_clear()
    lifecycle_events.cache_clear()
    for settings in (
        config.callback_settings,
        config.table_settings,
        config.archive_settings,
        config.sweeper_settings,
        config.archive_work_settings,
        config.reconcile_settings,
    ):
        settings.cache_clear()
    aws.reset_clients()
    clear_secret_cache: Callable[[], None] = parameters.clear_caches
    clear_secret_cache()


# --- SnapStart (template parameter SnapStart) ---------------------------------------------------
def after_restore() -> None:
    """Run when Lambda resumes an execution environment from the version's snapshot.

    Many environments resume from one snapshot, so whatever init left in memory is shared by all
    of them (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html). Nothing here
    is created at import (clients, settings and the secret are built at first use), but should
    anything have been, it is dropped: clients, their connections and credentials, the secret's
    cached value. The `random` module's state (botocore's retry jitter) is seeded again from the
    OS, so that restored environments do not retry in step. Our own jitter and ids use
    SystemRandom and uuid4 (os.urandom), which a snapshot does not repeat.
    """
    import random

    random.seed()
    reset()


def register_snapstart_hooks() -> bool:
    """Register `after_restore` with Lambda's runtime hooks (each handler module calls this at
    import). `snapshot_restore_py` ships with Lambda's Python runtimes
    (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html); without it
    (outside Lambda) no snapshot is ever restored: False, nothing to register."""
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-untyped]
    except ImportError:
        return False
    if not _snapstart_registered:
        register_after_restore(after_restore)
        _snapstart_registered.append(True)
    return True


_snapstart_registered: list[bool] = []
