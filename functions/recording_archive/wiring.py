"""Builds the archiver's collaborators from settings, once per execution environment."""

from __future__ import annotations

from recording_archive.config import ArchiveSettings
from recording_archive.dal.auth_secret import load_credentials
from recording_archive.dal.aws import dynamodb_client, s3_client
from recording_archive.dal.events_table import RecordingEventStore
from recording_archive.dal.media_source import MediaPolicy, MediaSource
from recording_archive.dal.recording_store import RecordingStore
from recording_archive.logic.archive_recording import Archiver, ArchiveTarget

MiB = 1024 * 1024


def media_policy(settings: ArchiveSettings) -> MediaPolicy:
    basic_auth = None
    if settings.media_auth:
        creds = load_credentials(settings.auth_secret_id, max_age=settings.secret_max_age_seconds)
        if creds.auth_id and creds.auth_tokens:
            basic_auth = (creds.auth_id, creds.auth_tokens[0])
    return MediaPolicy(
        allowed_hosts=settings.media_allowed_hosts,
        allow_loopback=settings.media_allow_loopback,
        connect_timeout=settings.media_connect_timeout_seconds,
        read_timeout=settings.media_read_timeout_seconds,
        retry_budget=settings.media_retry_budget_seconds,
        basic_auth=basic_auth,
        ca_bundle=settings.media_ca_bundle or None,
        max_bytes=settings.media_max_size_mib * MiB,
        max_seconds=settings.media_total_timeout_seconds,
    )


def build_archiver(settings: ArchiveSettings, *, max_attempts: int | None = None) -> Archiver:
    return Archiver(
        index=RecordingEventStore(dynamodb_client(), settings.events_table_name),
        media=MediaSource(media_policy(settings)),
        recordings=RecordingStore(
            s3_client(),
            part_size=settings.part_size_mib * MiB,
            concurrency=settings.upload_concurrency,
        ),
        target=ArchiveTarget(
            bucket=settings.archive_bucket_name,
            kms_key_id=settings.archive_kms_key_id,
            bucket_owner=settings.archive_bucket_owner,
        ),
        max_attempts=max_attempts,
        stop_margin_seconds=settings.archive_stop_margin_seconds,
        lease_slack_seconds=settings.archive_lease_slack_seconds,
    )
