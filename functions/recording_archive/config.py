"""Settings of every function, validated once and read lazily.

Each function reads only the settings it needs (`CallbackSettings`, `ArchiveSettings`, ...), so a
missing variable fails the function that needs it, at its first invocation, with a clear message,
and never a function that does not. No silent defaults for resource names. Secrets never live
here: only the *id* of the Secrets Manager secret that holds them.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CALLBACK_PATH = "/callbacks/recording"
MAX_BODY_BYTES = 64 * 1024
DEFAULT_MEDIA_HOSTS = ("media.plivo.com", "*.media.plivo.com")


class _Settings(BaseModel):
    # defer_build: each function validates one settings class; building the validators of the
    # five classes at import cost every cold start about 15 ms (bench/README.md).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    @classmethod
    def from_env(cls) -> Self:
        # Environment variable names are the upper-case field names.
        fields = {
            name: os.environ[name.upper()]
            for name in cls.model_fields
            if os.environ.get(name.upper(), "") != ""
        }
        return cls.model_validate(fields)


class TableSettings(_Settings):
    events_table_name: Annotated[str, Field(min_length=3)]
    # Days to keep an event (DynamoDB TTL on ExpiresAt); 0 keeps events for ever.
    retention_days: Annotated[int, Field(ge=0)] = 0
    # Days the archive keeps a recording (ArchiveRetentionDays; 0: for ever). An event is never
    # given an ExpiresAt before its recording's (logic/retention.py).
    archive_retention_days: Annotated[int, Field(ge=0)] = 0
    # The session index (dal/session_index.py) the functions that store new events write: its
    # table and the KMS HMAC key of its number entries. No table (a stack from before the index):
    # events are stored without entries, which `index rebuild` adds later. A table without a key
    # (ReconcileFunction, whose events carry no phone field): an event with a number counts
    # IndexWriteFailed rather than losing its number entries silently.
    index_table_name: str = ""
    number_index_key_id: str = ""

    @model_validator(mode="after")
    def _index_complete(self) -> Self:
        if self.number_index_key_id and not self.index_table_name:
            raise ValueError("NUMBER_INDEX_KEY_ID is set without INDEX_TABLE_NAME")
        return self


class CallbackSettings(TableSettings):
    auth_secret_id: Annotated[str, Field(min_length=1)]
    fallback_queue_url: Annotated[str, Field(min_length=1)]
    # The callback URL exactly as configured in Plivo. Empty: derived from the API Gateway
    # request context (API id, stage) and the region, never from client-controlled headers.
    public_callback_url: str = ""
    aws_region: str = ""
    # Seconds the auth tokens are cached in the execution environment (Powertools Parameters).
    secret_max_age_seconds: Annotated[int, Field(ge=0)] = 300
    # Only the local stack sets this: a RecordingURL may then be http:// on a loopback host.
    media_allow_loopback: bool = False

    @field_validator("public_callback_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        # A malformed URL would make every signature check fail: refuse it at start-up instead.
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError("PUBLIC_CALLBACK_URL must be an absolute http(s) URL")
        return value


class ArchiveSettings(TableSettings):
    archive_bucket_name: Annotated[str, Field(min_length=3)]
    archive_kms_key_id: Annotated[str, Field(min_length=1)]
    # Account id expected to own the bucket; sent as ExpectedBucketOwner on every S3 call.
    archive_bucket_owner: Annotated[str, Field(pattern=r"^\d{12}$")]
    auth_secret_id: Annotated[str, Field(min_length=1)]
    # Comma-separated host names; "*.example.com" allows sub-domains of example.com.
    media_allowed_hosts: tuple[str, ...] = DEFAULT_MEDIA_HOSTS
    # Only the local stack sets this: http:// and loopback media hosts become allowed.
    media_allow_loopback: bool = False
    # "basic": send HTTP Basic auth (auth id and token from the secret) to the media host.
    media_auth: bool = False
    media_connect_timeout_seconds: Annotated[float, Field(gt=0)] = 3.0
    media_read_timeout_seconds: Annotated[float, Field(gt=0)] = 20.0
    # Total time spent retrying one download before the record is failed back to the stream.
    media_retry_budget_seconds: Annotated[float, Field(ge=0)] = 30.0
    # The whole download (retries and body) of one recording: inside the function's Timeout
    # (900 s in template.yaml, Lambda's maximum) with room for the last part and the index.
    media_total_timeout_seconds: Annotated[float, Field(gt=0, le=840)] = 600.0
    # Largest recording archived; a larger one is FAILED (alarm) before a byte is read. Plivo: a
    # long call's WAV is hundreds of MB (about 2 MB a minute in stereo).
    media_max_size_mib: Annotated[int, Field(ge=1, le=5 * 1024 * 1024)] = 2048
    # Local stack only (`recording-archive local --media-ca-bundle`): a PEM file of CA
    # certificates trusted in addition to the system's store. Deployed functions never set it.
    media_ca_bundle: str = ""
    part_size_mib: Annotated[int, Field(ge=5, le=512)] = 10
    upload_concurrency: Annotated[int, Field(ge=1, le=16)] = 4
    secret_max_age_seconds: Annotated[int, Field(ge=0)] = 300
    # An archive attempt stops its transfer (aborting the upload) when less than this is left
    # of the invocation; its claim's lease lasts the invocation's remaining time plus the slack
    # (logic/archive_recording.py). Tests lower both to make timeouts fast.
    archive_stop_margin_seconds: Annotated[float, Field(ge=0)] = 60.0
    archive_lease_slack_seconds: Annotated[float, Field(ge=0)] = 60.0
    # The attempts the automatic paths (the stream's ArchiveFunction and the work queue's
    # ArchiveWorkFunction) make in all before a recording is FAILED: one count for both, so the
    # stream's retries cannot take it past the limit. Reconcile and an operator's retry, which
    # archive FAILED recordings on purpose, are not capped by it.
    sweep_max_attempts: Annotated[int, Field(ge=1)] = 8
    # The EventBridge bus of the lifecycle events (EventBusName: a name or an ARN; the
    # template's default is the account's "default" bus). Required: no silent default.
    event_bus_name: Annotated[str, Field(min_length=1)]

    @field_validator("media_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(h.strip().lower() for h in value.split(",") if h.strip())
        return value

    @model_validator(mode="after")
    def _ca_bundle_local_only(self) -> Self:
        # Fail closed: an extra trust anchor in a deployed function would let whoever holds its
        # key impersonate the media host.
        if self.media_ca_bundle:
            if not self.media_allow_loopback:
                raise ValueError(
                    "MEDIA_CA_BUNDLE is for the local stack only (it needs "
                    "MEDIA_ALLOW_LOOPBACK=true); deployed functions trust the system's store"
                )
            path = self.media_ca_bundle
            if not (os.path.isfile(path) and os.access(path, os.R_OK)):
                raise ValueError("MEDIA_CA_BUNDLE must name a readable PEM file")
        return self


class SweeperSettings(TableSettings):
    """SweeperFunction: finds the PENDING items due and puts their keys on the work queue; it
    archives nothing itself (no bucket, key, secret or media settings)."""

    # An item pending for less than this is left to the stream-triggered archiver.
    sweep_grace_seconds: Annotated[int, Field(ge=0)] = 600
    archive_work_queue_url: Annotated[str, Field(min_length=1)]
    # How long a sweep's message stands for its item (logic/dispatch.py): no other sweep enqueues
    # the item again before then, unless an attempt reported meanwhile.
    sweep_enqueue_hold_seconds: Annotated[int, Field(ge=60)] = 3600
    # RecordingFailed of a completed event that cannot be archived at all.
    event_bus_name: Annotated[str, Field(min_length=1)]


class ArchiveWorkSettings(ArchiveSettings):
    """ArchiveWorkFunction: archives the items the sweeper put on the work queue."""

    # Claims only an item due this long ago (the sweeper's grace): a duplicate message of an
    # item backing off after a failed attempt does nothing.
    sweep_grace_seconds: Annotated[int, Field(ge=0)] = 600


class ReconcileSettings(ArchiveSettings):
    # ReconcileFunction asks Plivo for the sessions created in the last N hours.
    reconcile_window_hours: Annotated[int, Field(ge=1, le=24 * 90)] = 48
    plivo_api_base_url: Annotated[str, Field(min_length=8)] = "https://api.plivo.com"


@cache
def callback_settings() -> CallbackSettings:
    return CallbackSettings.from_env()


@cache
def table_settings() -> TableSettings:
    return TableSettings.from_env()


@cache
def archive_settings() -> ArchiveSettings:
    return ArchiveSettings.from_env()


@cache
def sweeper_settings() -> SweeperSettings:
    return SweeperSettings.from_env()


@cache
def archive_work_settings() -> ArchiveWorkSettings:
    return ArchiveWorkSettings.from_env()


@cache
def reconcile_settings() -> ReconcileSettings:
    return ReconcileSettings.from_env()
