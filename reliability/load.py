"""Load: many signed callbacks from concurrent senders, then a full audit of table and bucket.

Sessions of several calls (Initiated + Completed, or Failed), each Completed pointing at its own
recording on a loopback media server; a share of the callbacks is sent twice; the order is
shuffled (so within each session too). A share of the recordings (5 %, at least one) is larger
than the archiver's part size (12-40 MiB against PART_SIZE_MIB 10, or 5 in the fault stack), so
multipart uploads run under the same concurrency. The audit reads every item and every object
version back: events stored = unique events sent, each recording archived once (one object, one
version, size and SHA-256 of the source; a large one as a multipart object), and no multipart
upload left incomplete.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from recording_archive_cli.plivo_sim import Callback, Prepared, Recording, random_session
from reliability.callbacks import Result, Sender, percentile, prepare
from reliability.logscan import Secrets
from reliability.stack import Stack
from tests.support.media_server import GeneratedBody, MediaServer
from tests.support.net import wait_until

MiB = 1024 * 1024
LARGE_MIB = (12, 40)  # above PART_SIZE_MIB (default 10): uploaded in 2-8 parts


@dataclass
class LoadPlan:
    callbacks: list[Callback]  # unique events
    recordings: list[Recording]
    sends: list[Callback]  # what is sent, duplicates included, in send order
    secrets: Secrets = field(default_factory=Secrets)
    large: set[str] = field(default_factory=set)  # paths of the multipart-sized recordings
    sessions: int = 0
    concurrency: int = 8  # senders at once
    archive_timeout: float = 600.0  # seconds to wait for every recording after the last answer


def plan_load(
    *,
    sessions: int,
    calls: int,
    media_base: str,
    duplicate_rate: float = 0.2,
    failed_rate: float = 0.1,
    large_share: float = 0.05,
    seed: int = 20261120,
) -> LoadPlan:
    rng = random.Random(seed)
    callbacks: list[Callback] = []
    recordings: list[Recording] = []
    secrets = Secrets()
    for i in range(sessions):
        # Most sessions post forms, as Plivo does for voice callbacks; some JSON, some GET.
        method, ctype = (
            ("GET", "form") if i % 10 == 9 else ("POST", "json" if i % 10 == 8 else "form")
        )
        cbs, recs, numbers = random_session(
            rng,
            calls=calls,
            media_base=media_base,
            failed_rate=failed_rate,
            method=method,
            content_type=ctype,
        )
        callbacks += cbs
        recordings += recs
        secrets.add_phones(numbers)
    large: set[str] = set()
    if recordings and large_share > 0:
        for rec in rng.sample(recordings, max(1, round(large_share * len(recordings)))):
            rec.size = rng.randrange(LARGE_MIB[0] * MiB, LARGE_MIB[1] * MiB + 1)
            large.add(rec.path)
    sends = list(callbacks)
    sends += [c for c in callbacks if rng.random() < duplicate_rate]
    rng.shuffle(sends)
    return LoadPlan(callbacks, recordings, sends, secrets, large, sessions)


def send_all(
    sender: Sender,
    url: str,
    token: str,
    sends: Sequence[Callback],
    *,
    concurrency: int,
    secrets: Secrets,
) -> tuple[list[Result], float]:
    """Send every callback from `concurrency` threads; (results, wall seconds)."""
    results: list[Result | None] = [None] * len(sends)
    next_index = iter(range(len(sends)))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            p: Prepared = prepare(sends[i], url, token)
            with lock:
                secrets.signatures.add(p.signature)
            results[i] = sender.send(p)

    threads = [threading.Thread(target=worker, name=f"sender-{n}") for n in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in results if r is not None], time.perf_counter() - start


def audit_recordings(
    stack: Stack,
    recordings: Sequence[Recording],
    bodies: dict[str, GeneratedBody],
    large: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Every recording: its item ARCHIVED, exactly one object version, size and SHA-256 right;
    each of the `large` ones (paths) a multipart object (S3's ETag of a multipart upload ends
    in "-<number of parts>")."""
    s3 = stack.client("s3")
    versions: Counter[str] = Counter()
    kwargs: dict[str, Any] = {"Bucket": stack.bucket, "Prefix": "recordings/"}
    for _ in range(100_000):
        page = s3.list_object_versions(**kwargs)
        for v in page.get("Versions", []):
            versions[v["Key"]] += 1
        if not page.get("IsTruncated"):
            break
        kwargs["KeyMarker"] = page["NextKeyMarker"]
        kwargs["VersionIdMarker"] = page["NextVersionIdMarker"]
    uploads = s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    ok, problems = 0, []
    large_ok, multipart_objects = 0, 0
    for rec in recordings:
        item = stack.item(rec.session_uuid, rec.sequence)
        status = item.get("ArchiveStatus", {}).get("S")
        key = item.get("ArchiveKey", {}).get("S", "")
        body = bodies[rec.path]
        if status != "ARCHIVED" or versions.get(key, 0) != 1:
            # Enough to tell a slow drain (an attempt's lease, a backoff) from a defect.
            state = {
                name: next(iter(item[name].values()))
                for name in ("ArchiveAttempts", "ArchiveLastError", "ArchiveDueAt")
                if name in item
            }
            state["lease"] = "ArchiveLeaseUntil" in item
            said = [line[:300] for line in stack.lines() if rec.recording_uuid in line][-3:]
            problems.append(
                f"{rec.recording_uuid}: status={status} versions={versions.get(key, 0)} "
                f"{json.dumps(state)} log={json.dumps(said)}"
            )
            continue
        head = s3.head_object(Bucket=stack.bucket, Key=key)
        multipart = "-" in head["ETag"]
        multipart_objects += multipart
        obj = s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
        digest = hashlib.sha256(obj).hexdigest()
        if (
            len(obj) != body.size
            or head["ContentLength"] != body.size
            or digest != body.sha256_hex
            or item.get("ArchiveSha256", {}).get("S") != body.sha256_hex
        ):
            problems.append(f"{rec.recording_uuid}: bytes or SHA-256 differ")
            continue
        if rec.path in large and not multipart:
            problems.append(f"{rec.recording_uuid}: {body.size} bytes not uploaded in parts")
            continue
        ok += 1
        large_ok += rec.path in large
    expected_keys = len(recordings)
    return {
        "recordings": len(recordings),
        "archived_exactly_once": ok,
        "objects": len(versions),
        "object_versions": sum(versions.values()),
        "extra_objects": max(0, len(versions) - expected_keys),
        "incomplete_multipart_uploads": len(uploads),
        "multipart_recordings": sum(r.path in large for r in recordings),
        "multipart_recordings_mib": list(LARGE_MIB),
        "multipart_archived_exactly_once": large_ok,
        "multipart_objects": multipart_objects,
        "problems": problems[:20],
    }


def archived_count(stack: Stack, recordings: Sequence[Recording]) -> int:
    n = 0
    for rec in recordings:
        item = stack.item(rec.session_uuid, rec.sequence, projection="ArchiveStatus")
        n += item.get("ArchiveStatus", {}).get("S") == "ARCHIVED"
    return n


def run_load(stack: Stack, media: MediaServer, plan: LoadPlan) -> tuple[dict[str, Any], Secrets]:
    """Send `plan` (plan_load, on `media.base_url`), wait for the archive, count and audit."""
    concurrency, archive_timeout = plan.concurrency, plan.archive_timeout
    bodies: dict[str, GeneratedBody] = {}
    for rec in plan.recordings:
        bodies[rec.path] = media.add(rec.path, GeneratedBody(rec.size, rec.seed))  # type: ignore[assignment]
    plan.secrets.tokens.add(stack.token)
    sender = Sender(stack.callback_url)
    results, wall = send_all(
        sender,
        stack.callback_url,
        stack.token,
        plan.sends,
        concurrency=concurrency,
        secrets=plan.secrets,
    )
    statuses = Counter(r.status for r in results)
    statuses[0] += len(plan.sends) - len(results)  # a sender thread that died: no answer
    latencies = [r.seconds for r in results]
    # Archiving continues after the last answer: wait (bounded) for every recording.
    archive_start = time.perf_counter()
    wait_until(
        lambda: archived_count(stack, plan.recordings) == len(plan.recordings),
        timeout=archive_timeout,
        interval=2.0,
    )
    archive_wait = time.perf_counter() - archive_start
    items = stack.items()
    stored_keys = {(i["SessionUUID"]["S"], int(i["SequenceNumber"]["N"])) for i in items}
    unique_keys = {c.key for c in plan.callbacks}
    media_gets = Counter(r.path for r in media.requests)
    figures = {
        "sessions": plan.sessions,
        "unique_events": len(plan.callbacks),
        "callbacks_sent": len(plan.sends),
        "duplicates_sent": len(plan.sends) - len(plan.callbacks),
        "concurrency": concurrency,
        "wall_seconds": round(wall, 2),
        "callbacks_per_second": round(len(plan.sends) / wall, 1),
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "latency_max_ms": round(max(latencies) * 1000, 1),
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "answers_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "no_answer": statuses.get(0, 0),
        "answers_received": len(results),
        # A keep-alive connection found closed is re-opened and the request sent again once:
        # the event is idempotent, and the resend is counted here rather than hidden.
        "resent_after_connection_error": sum(r.resent for r in results),
        "events_stored": len(items),
        "events_stored_equal_unique_sent": stored_keys == unique_keys,
        "archive_drain_seconds": round(archive_wait, 1),
        "media_downloads_max_per_recording": max(media_gets.values(), default=0),
        **audit_recordings(stack, plan.recordings, bodies, plan.large),
    }
    return figures, plan.secrets


def load_passed(figures: dict[str, Any]) -> bool:
    return (
        figures["answers_5xx"] == 0
        and figures["no_answer"] == 0
        and figures["answers_received"] == figures["callbacks_sent"]
        and figures["events_stored_equal_unique_sent"]
        and figures["events_stored"] == figures["unique_events"]
        and figures["archived_exactly_once"] == figures["recordings"]
        and figures["object_versions"] == figures["recordings"]
        and figures["incomplete_multipart_uploads"] == 0
        and figures["multipart_recordings"] >= 1
        and figures["multipart_archived_exactly_once"] == figures["multipart_recordings"]
    )
