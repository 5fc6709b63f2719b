"""Legal holds and erasure (`recording-archive hold`, `recording-archive erase`).

What a hold or an erase concerns (a `Scope`): the event items of the sessions (or the items that
carry one recording), the recordings they name, and the archive objects of those recordings: the
key the item records (ArchiveKey) and the key the archiver would write (`ArchiveJob.key`), so an
object stored by an attempt that never reported is found too. Every version and delete marker of
a key is listed (ListObjectVersions with the key as prefix, exact matches kept).

Hold: S3 Object Lock legal hold ON on every version (it protects a version from deletion by
anyone until released:
https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html#object-lock-legal-holds)
and the `LegalHold` marker on every item, whose ExpiresAt is removed while held (DynamoDB TTL
deletes only items that carry it), from the item's index entries too. Clear: legal hold OFF,
marker removed, ExpiresAt restored from the stack's EventRetentionDays / ArchiveRetentionDays
(`logic.retention.expires_at`).

Erase, in an order that lets a second run finish whatever a crash left: the items are deleted
last, so until then everything else can be computed from them again; the sessions and the
object keys are written first into an "erase.start" audit record, so even an erase by number
(whose index entries are gone by then) or one whose items are gone is resumed. Steps:
recordings at Plivo (with --include-source), every object version and delete marker
(BypassGovernanceRetention when the bucket has a default retention), RecordingErased per
recording, the index entries, the items; then the keys are listed again, and anything there
(an archive attempt that wrote meanwhile) fails the run without an "erase.done" record, so the
next run finishes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from recording_archive.models import item as f
from recording_archive_cli.errors import CLIError
from recording_archive_cli.operator.audit import mask_numbers
from recording_archive_cli.operator.context import Ops, now_iso

# How far back an erase run looks for erases that started and never finished. A crashed erase is
# normally run again within minutes; past this window, running the same erase again finishes it.
ERASE_RESUME_DAYS = 30
# DeleteObjects takes at most 1,000 keys per request.
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
_DELETE_BATCH = 1000


@contextmanager
def _reach(ops: Ops, what: str) -> Iterator[None]:
    """AWS and domain errors (an unavailable table, index, bus) as one-line CLIErrors."""
    from recording_archive.models.errors import RecordingArchiveError

    try:
        with ops.aws_errors(what):
            yield
    except RecordingArchiveError as exc:
        raise CLIError(f"{what}: {exc or type(exc).__name__}") from None


@dataclass
class Scope:
    """What a hold or an erase concerns."""

    sessions: list[str]
    items: list[dict[str, Any]]
    # (bucket, key) of every recording's archive object(s)
    keys: list[tuple[str, str]] = field(default_factory=list)
    # recording UUID -> (session UUID, bucket, key, version id) of its archived copy
    recordings: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)


def _object_keys(ops: Ops, item: Mapping[str, Any]) -> list[tuple[str, str]]:
    from recording_archive.logic.archive_recording import ArchiveJob, NotArchivableError

    keys: list[tuple[str, str]] = []
    if item.get(f.ARCHIVE_KEY):
        keys.append((str(item.get(f.ARCHIVE_BUCKET) or ops.names.bucket), str(item[f.ARCHIVE_KEY])))
    # Not a Completed event, or no date to derive a key from: only the recorded key.
    with suppress(NotArchivableError, ValueError):
        keys.append((ops.names.bucket, ArchiveJob.from_item(item).key))
    return keys


def _scope(ops: Ops, sessions: list[str], items: list[dict[str, Any]]) -> Scope:
    scope = Scope(sessions=sessions, items=items)
    for item in items:
        for key in _object_keys(ops, item):
            if key not in scope.keys:
                scope.keys.append(key)
        rid = item.get(f.RECORDING_UUID)
        if rid and item.get(f.EVENT_NAME) == f.EVENT_COMPLETED:
            scope.recordings.setdefault(
                str(rid),
                (
                    str(item[f.SESSION_UUID]),
                    str(item.get(f.ARCHIVE_BUCKET) or ""),
                    str(item.get(f.ARCHIVE_KEY) or ""),
                    str(item.get(f.ARCHIVE_VERSION_ID) or ""),
                ),
            )
    return scope


def session_scope(ops: Ops, session_uuids: Iterable[str]) -> Scope:
    sessions = list(dict.fromkeys(session_uuids))
    items: list[dict[str, Any]] = []
    with _reach(ops, "events table"):
        for session in sessions:
            items.extend(ops.index.session_events(session))
    return _scope(ops, sessions, items)


def recording_scope(ops: Ops, recording_uuid: str) -> Scope:
    with _reach(ops, "events table"):
        items = ops.index.find_recording(recording_uuid)
    sessions = list(dict.fromkeys(str(i[f.SESSION_UUID]) for i in items))
    return _scope(ops, sessions, items)


# --- objects -------------------------------------------------------------------------------------
def object_versions(ops: Ops, bucket: str, key: str) -> list[dict[str, Any]]:
    """Every version and delete marker of exactly `key`: {Key, VersionId, IsDeleteMarker}."""
    found: list[dict[str, Any]] = []
    pages = ops.s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, Prefix=key, ExpectedBucketOwner=ops.names.account_id
    )
    for page in pages:
        for kind, marker in (("Versions", False), ("DeleteMarkers", True)):
            for v in page.get(kind, []):
                if v["Key"] == key:
                    found.append(
                        {"Key": key, "VersionId": v["VersionId"], "IsDeleteMarker": marker}
                    )
    return found


def legal_hold_on(ops: Ops, bucket: str, key: str, version_id: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        answer = ops.s3.get_object_legal_hold(
            Bucket=bucket,
            Key=key,
            VersionId=version_id,
            ExpectedBucketOwner=ops.names.account_id,
        )
    except ClientError as exc:
        # S3 answers NoSuchObjectLockConfiguration for a version that never had a legal hold.
        if exc.response.get("Error", {}).get("Code") == "NoSuchObjectLockConfiguration":
            return False
        raise
    return bool(answer.get("LegalHold", {}).get("Status") == "ON")


def default_retention(ops: Ops, bucket: str) -> bool:
    """True when the bucket applies a default Object Lock retention to new objects."""
    from botocore.exceptions import ClientError

    try:
        config = ops.s3.get_object_lock_configuration(
            Bucket=bucket, ExpectedBucketOwner=ops.names.account_id
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ObjectLockConfigurationNotFoundError":
            return False
        raise
    return "Rule" in config.get("ObjectLockConfiguration", {})


# --- hold ----------------------------------------------------------------------------------------
def _key(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        f.SESSION_UUID: {"S": str(item[f.SESSION_UUID])},
        f.SEQUENCE_NUMBER: {"N": str(int(item[f.SEQUENCE_NUMBER]))},
    }


def _received_at(item: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(item[f.RECEIVED_AT]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None


def set_hold(ops: Ops, scope: Scope, *, on: bool, reason: str) -> dict[str, int]:
    """Legal hold ON/OFF on every version of the scope's objects and the marker on (or off) its
    items: counts of what was changed."""
    ddb = ops.client("dynamodb")
    counts = {
        "items": 0,
        "index_entries": 0,
        "object_versions": 0,
        "recordings": len(scope.recordings),
    }
    expiry: Any = None
    if not on:
        from recording_archive.logic.retention import expires_at

        event_days = int(ops.stack_parameter("EventRetentionDays"))
        archive_days = int(ops.stack_parameter("ArchiveRetentionDays"))

        def expiry(item: Mapping[str, Any]) -> int | None:
            received = _received_at(item)
            if received is None:
                return None
            value: int | None = expires_at(
                received, event_days=event_days, archive_days=archive_days
            )
            return value

    with _reach(ops, "legal hold"):
        for bucket, key in scope.keys:
            for version in object_versions(ops, bucket, key):
                if version["IsDeleteMarker"]:
                    continue  # a delete marker has no data to hold
                ops.s3.put_object_legal_hold(
                    Bucket=bucket,
                    Key=key,
                    VersionId=version["VersionId"],
                    LegalHold={"Status": "ON" if on else "OFF"},
                    ExpectedBucketOwner=ops.names.account_id,
                )
                counts["object_versions"] += 1
        names = {"#pk": f.SESSION_UUID, "#h": f.LEGAL_HOLD, "#e": f.EXPIRES_AT}
        for item in scope.items:
            kwargs: dict[str, Any] = {
                "TableName": ops.names.table,
                "Key": _key(item),
                "ConditionExpression": "attribute_exists(#pk)",
            }
            if on:
                kwargs["UpdateExpression"] = "SET #h = :h REMOVE #e"
                kwargs["ExpressionAttributeNames"] = names
                kwargs["ExpressionAttributeValues"] = {
                    ":h": {
                        "M": {
                            "Reason": {"S": mask_numbers(reason)},
                            "SetAt": {"S": now_iso()},
                            "SetBy": {"S": ops.caller_arn},
                        }
                    }
                }
            else:
                expires = expiry(item)
                if expires is None:
                    kwargs["UpdateExpression"] = "REMOVE #h, #e"
                    kwargs["ExpressionAttributeNames"] = names
                else:
                    kwargs["UpdateExpression"] = "REMOVE #h SET #e = :e"
                    kwargs["ExpressionAttributeNames"] = names
                    kwargs["ExpressionAttributeValues"] = {":e": {"N": str(expires)}}
            try:
                ddb.update_item(**kwargs)
            except ddb.exceptions.ConditionalCheckFailedException:
                continue  # deleted meanwhile (TTL): nothing to mark
            counts["items"] += 1
            # The item's index entries copy its ExpiresAt: held, they stay too (a held session
            # is still found by `sessions find`).
            expires = None if on else expiry(item)
            counts["index_entries"] += _set_entries_expiry(ops, ddb, item, expires)
    return counts


def _set_entries_expiry(ops: Ops, ddb: Any, item: Mapping[str, Any], expires: int | None) -> int:
    """ExpiresAt of the item's index entries set to `expires` (removed when None): how many."""
    changed = 0
    with _reach(ops, "session index"):
        keys = ops.session_index.entry_keys([item])
    for key in keys:
        kwargs: dict[str, Any] = {
            "TableName": ops.index_table,
            "Key": {"pk": {"S": key["pk"]}, "sk": {"S": key["sk"]}},
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": {"#e": f.EXPIRES_AT},
        }
        if expires is None:
            kwargs["UpdateExpression"] = "REMOVE #e"
        else:
            kwargs["UpdateExpression"] = "SET #e = :e"
            kwargs["ExpressionAttributeValues"] = {":e": {"N": str(expires)}}
        try:
            ddb.update_item(**kwargs)
        except ddb.exceptions.ConditionalCheckFailedException:
            continue  # not indexed (stored before the index existed): `index rebuild` adds it
        changed += 1
    return changed


# --- erase ---------------------------------------------------------------------------------------
@dataclass
class ErasePlan:
    scope: Scope
    versions: dict[tuple[str, str], list[dict[str, Any]]]
    index_keys: list[dict[str, str]]
    held: list[str]  # what is held, as "session S: item seq N" / "s3://b/k version V"
    busy: list[str]  # recordings an archive attempt holds right now

    def counts(self) -> dict[str, int]:
        every = [v for vs in self.versions.values() for v in vs]
        return {
            "sessions": len(self.scope.sessions),
            "items": len(self.scope.items),
            "recordings": len(self.scope.recordings),
            "object_versions": sum(1 for v in every if not v["IsDeleteMarker"]),
            "delete_markers": sum(1 for v in every if v["IsDeleteMarker"]),
            "index_entries": len(self.index_keys),
        }


def object_uris(scope: Scope) -> list[str]:
    """The scope's object keys as s3:// URIs (kept in the "erase.start" record: once the items
    are deleted, they are the only way back to the objects)."""
    return [f"s3://{bucket}/{key}" for bucket, key in scope.keys]


def _parse_uri(uri: str) -> tuple[str, str] | None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return (bucket, key) if uri.startswith("s3://") and bucket and key else None


def plan_erase(ops: Ops, sessions: Iterable[str], objects: Iterable[str] = ()) -> ErasePlan:
    """What an erase of the sessions (and of the `objects`, s3:// URIs of a start record) would
    delete, what is held, what is being archived."""
    scope = session_scope(ops, sessions)
    for uri in objects:
        parsed = _parse_uri(str(uri))
        if parsed is not None and parsed not in scope.keys:
            scope.keys.append(parsed)
    held: list[str] = []
    busy: list[str] = []
    now = int(datetime.now(UTC).timestamp())
    for item in scope.items:
        if item.get(f.LEGAL_HOLD):
            held.append(f"session {item[f.SESSION_UUID]} event {item[f.SEQUENCE_NUMBER]}")
        lease = item.get(f.ARCHIVE_LEASE_UNTIL)
        if lease is not None and int(lease) > now:
            busy.append(f"recording {item.get(f.RECORDING_UUID)} (until {int(lease)})")
    versions: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with _reach(ops, "archive bucket"):
        for bucket, key in scope.keys:
            versions[(bucket, key)] = object_versions(ops, bucket, key)
            for v in versions[(bucket, key)]:
                if not v["IsDeleteMarker"] and legal_hold_on(ops, bucket, key, v["VersionId"]):
                    held.append(f"s3://{bucket}/{key} version {v['VersionId']}")
    with _reach(ops, "session index"):
        index_keys = ops.session_index.entry_keys(scope.items) if scope.items else []
    return ErasePlan(scope, versions, list(index_keys), held, busy)


def execute_erase(ops: Ops, plan: ErasePlan, *, include_source: bool) -> dict[str, Any]:
    """Delete what the plan names, items last; counts and what is left (`left`: keys with a
    version or marker still there after the deletion)."""
    done: dict[str, Any] = {
        "source_deleted": 0,
        "source_already_gone": 0,
        "object_versions": 0,
        "delete_markers": 0,
        "events_published": 0,
        "index_entries": 0,
        "items": 0,
    }
    scope = plan.scope
    if include_source:
        from recording_archive_cli.operator.plivo_source import delete_at_source, plivo_errors

        with plivo_errors(), _reach(ops, "Plivo source"):
            for rid in scope.recordings:
                outcome = delete_at_source(ops, rid)
                done["source_deleted" if outcome == "deleted" else "source_already_gone"] += 1
    with _reach(ops, "archive bucket"):
        buckets = {b for b, _ in scope.keys}
        bypass = {b: default_retention(ops, b) for b in buckets}
        for (bucket, key), _ in plan.versions.items():
            # Listed again: a resumed run or an archive attempt since the plan may differ.
            for batch in _batches(object_versions(ops, bucket, key), _DELETE_BATCH):
                kwargs: dict[str, Any] = {
                    "Bucket": bucket,
                    "Delete": {
                        "Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in batch],
                        "Quiet": True,
                    },
                    "ExpectedBucketOwner": ops.names.account_id,
                }
                if bypass[bucket]:
                    kwargs["BypassGovernanceRetention"] = True
                errors = ops.s3.delete_objects(**kwargs).get("Errors", [])
                if errors:
                    first = errors[0]
                    raise CLIError(
                        f"erase: s3://{bucket}/{first.get('Key')} version "
                        f"{first.get('VersionId')}: {first.get('Code')}: {first.get('Message')} "
                        f"({len(errors)} not deleted; run erase again)"
                    )
                for v in batch:
                    done["delete_markers" if v["IsDeleteMarker"] else "object_versions"] += 1
    if scope.recordings:
        with _reach(ops, "lifecycle events"):
            for rid, (session, bucket, key, version) in scope.recordings.items():
                detail = {"SessionUUID": session, "RecordingUUID": rid}
                if bucket and key:
                    detail.update({"Bucket": bucket, "Key": key})
                if version:
                    detail["VersionId"] = version
                ops.lifecycle_events.publish("RecordingErased", detail)
                done["events_published"] += 1
    with _reach(ops, "session index"):
        if scope.items:
            done["index_entries"] = ops.session_index.delete_entries(
                ops.session_index.entry_keys(scope.items)
            )
    with _reach(ops, "events table"):
        ddb = ops.client("dynamodb")
        for item in scope.items:
            ddb.delete_item(TableName=ops.names.table, Key=_key(item))
            done["items"] += 1
        left_items = sum(len(ops.index.session_events(s)) for s in scope.sessions)
    with _reach(ops, "archive bucket"):
        left = [
            f"s3://{bucket}/{key}"
            for bucket, key in scope.keys
            if object_versions(ops, bucket, key)
        ]
    if left_items:
        left.append(f"{left_items} event item(s) stored since the erase began")
    done["left"] = left
    return done


def _batches(values: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def unfinished_erases(ops: Ops) -> list[dict[str, Any]]:
    """ "erase.start" records of the last ERASE_RESUME_DAYS with no "erase.done" naming them."""
    since = datetime.now(UTC) - timedelta(days=ERASE_RESUME_DAYS)
    with _reach(ops, "audit table"):
        records = ops.audit.records(since)
    finished = {
        str((r.get("Targets") or {}).get("start_id"))
        for r in records
        if r.get("Action") == "erase.done"
    }
    return [r for r in records if r.get("Action") == "erase.start" and r["AuditId"] not in finished]


def waiting_messages(ops: Ops) -> dict[str, int]:
    """Approximate message counts of the queues an erase cannot reach into: the fallback queue
    (callbacks not yet in the table), its dead-letter queue, and the archive failure queue."""
    import json

    sqs = ops.client("sqs")
    counts: dict[str, int] = {}
    with _reach(ops, "queues"):
        if ops.endpoint_url:
            from recording_archive_cli.local.resources import (
                ARCHIVE_FAILURE_QUEUE_ID,
                FALLBACK_QUEUE_ID,
            )

            fallback = sqs.get_queue_url(QueueName=f"local-{FALLBACK_QUEUE_ID}")["QueueUrl"]
            failure = sqs.get_queue_url(QueueName=f"local-{ARCHIVE_FAILURE_QUEUE_ID}")["QueueUrl"]
        else:
            fallback = ops.stack_output("FallbackQueueUrl")
            failure = ops.stack_output("ArchiveFailureQueueUrl")
        attrs = sqs.get_queue_attributes(QueueUrl=fallback, AttributeNames=["All"])["Attributes"]
        queues = {"fallback queue": fallback, "archive failure queue": failure}
        redrive = attrs.get("RedrivePolicy")
        if redrive:
            dlq_name = json.loads(redrive)["deadLetterTargetArn"].rsplit(":", 1)[-1]
            queues["fallback dead-letter queue"] = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
        for label, url in queues.items():
            a = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            counts[label] = sum(int(v) for v in a.values())
    return counts
