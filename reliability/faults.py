"""Faults, each recovered without losing an event or a recording.

One local stack whose CallbackFunction reaches DynamoDB through a `FaultProxy`
(`--env CallbackFunction:AWS_ENDPOINT_URL_DYNAMODB=...`), with a short media retry budget and
read timeout for the archiver, and a loopback media server scripted with faults. Suites: the
table refusing then stalling writes, media faults, a worker killed mid-upload, a stream batch
with one failing record, table writes applied whose answers are lost. One module (over 500
lines) because the suites share that one stack, its proxy and the audit helpers above them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recording_archive_cli.plivo_sim import Callback, Recording, random_session
from reliability.callbacks import Sender, prepare
from reliability.logscan import Secrets
from reliability.stack import Stack, env_args, running_stack
from tests.support.media_server import (
    GeneratedBody,
    MediaServer,
    Reset,
    Stall,
    Status,
    Truncate,
    WrongLength,
)
from tests.support.net import free_port, wait_until
from tests.support.tcp_proxy import FaultProxy

MiB = 1024 * 1024


@dataclass
class Rig:
    """What every fault suite works with: the stack, the proxy in front of its AWS, the media
    server, a seeded random source and the secrets to look for in the logs."""

    stack: Stack
    proxy: FaultProxy
    media: MediaServer
    rng: random.Random
    secrets: Secrets


def fault_stack_args(proxy_url: str) -> list[str]:
    return [
        "--sweep-interval",
        "3600",  # the sweeps of this suite are run by hand (reliability.invoke), later
        *env_args(
            [
                ("CallbackFunction", "AWS_ENDPOINT_URL_DYNAMODB", proxy_url),
                ("ArchiveFunction", "MEDIA_RETRY_BUDGET_SECONDS", "3"),
                ("ArchiveFunction", "MEDIA_READ_TIMEOUT_SECONDS", "2"),
                ("ArchiveFunction", "PART_SIZE_MIB", "5"),
            ]
        ),
    ]


def item(stack: Stack, session: str, seq: int) -> dict[str, Any]:
    return stack.item(session, seq)


def gave_up(stack: Stack) -> int:
    """Stream records the local event source mapping sent to the on-failure queue so far."""
    total = 0
    for line in list(stack.proc.stdout):
        if "archive gave up on " in line:
            count = line.split("archive gave up on ", 1)[1].split(" ", 1)[0]
            total += int(count) if count.isdigit() else 1
    return total


def unarchived(stack: Stack, recordings: Sequence[Recording]) -> list[dict[str, Any]]:
    """What a recording not ARCHIVED left on its item: a failed run explains itself."""
    shown = ("ArchiveStatus", "ArchiveAttempts", "ArchiveLastError", "ArchiveLeaseUntil", "Source")
    rows = []
    for rec in recordings:
        found = item(stack, rec.session_uuid, rec.sequence)
        if found.get("ArchiveStatus", {}).get("S") != "ARCHIVED":
            row = {name: next(iter(found[name].values())) for name in shown if name in found}
            rows.append({"key": f"{rec.session_uuid}/{rec.sequence}", **row})
    return rows


def status_of(stack: Stack, rec: Recording) -> str | None:
    return item(stack, rec.session_uuid, rec.sequence).get("ArchiveStatus", {}).get("S")


def object_versions(stack: Stack, key: str) -> list[dict[str, Any]]:
    page = stack.client("s3").list_object_versions(Bucket=stack.bucket, Prefix=key)
    return [v for v in page.get("Versions", []) if v["Key"] == key]


def partial_objects(stack: Stack) -> int:
    """Object versions in the bucket that are not exactly an ARCHIVED item's object (its key,
    version and size): what a failed or killed upload would leave behind."""
    archived = {
        (i["ArchiveKey"]["S"], i.get("ArchiveVersionId", {}).get("S"), int(i["ArchiveSize"]["N"]))
        for i in stack.items()
        if i.get("ArchiveStatus", {}).get("S") == "ARCHIVED"
    }
    keys = {(k, s) for k, _, s in archived}
    page = stack.client("s3").list_object_versions(Bucket=stack.bucket)
    return sum(
        1
        for v in page.get("Versions", [])
        if (v["Key"], v["VersionId"], v["Size"]) not in archived
        and (v["Key"], v["Size"]) not in keys
    )


def verify_archived_once(stack: Stack, rec: Recording, body: GeneratedBody) -> str | None:
    """None if archived exactly once with the right bytes; else what is wrong."""
    it = item(stack, rec.session_uuid, rec.sequence)
    if it.get("ArchiveStatus", {}).get("S") != "ARCHIVED":
        return f"status {it.get('ArchiveStatus', {}).get('S')}"
    key = it["ArchiveKey"]["S"]
    versions = object_versions(stack, key)
    if len(versions) != 1:
        return f"{len(versions)} versions"
    data = stack.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    if len(data) != body.size or hashlib.sha256(data).hexdigest() != body.sha256_hex:
        return "bytes differ"
    return None


def worker_env(stack: Stack, logical_id: str) -> dict[str, str]:
    pids = stack.worker_pids(logical_id)
    if not pids:
        raise RuntimeError(f"no live worker of {logical_id}")
    raw = Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in raw if b"=" in e)


def run_invoke(
    stack: Stack, logical_id: str, *args: str, extra: dict[str, str] | None = None
) -> tuple[Any, list[str]]:
    """reliability.invoke in a child with the worker's environment: (result, log lines). A sweep
    also runs ArchiveWorkFunction's handler (the sweeper only enqueues): both environments."""
    env = worker_env(stack, logical_id)
    if logical_id == "SweeperFunction":
        env = {**worker_env(stack, "ArchiveWorkFunction"), **env}
    env = {**env, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path.cwd()), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "reliability.invoke", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    lines = done.stdout.splitlines() + done.stderr.splitlines()
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"reliability.invoke {args} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), lines


def served_sessions(
    rng: random.Random, media: MediaServer, secrets: Secrets, count: int
) -> tuple[list[Callback], list[Recording]]:
    """At least `count` callbacks of one-call sessions (Initiated, Completed), each recording
    served by `media`; their phone numbers noted for the log scan."""
    cbs: list[Callback] = []
    recordings: list[Recording] = []
    while len(cbs) < count:
        more, recs, numbers = random_session(
            rng, calls=1, media_base=media.base_url, failed_rate=0.0
        )
        secrets.add_phones(numbers)
        for r in recs:
            media.add(r.path, GeneratedBody(r.size, r.seed))
        cbs += more
        recordings += recs
    return cbs, recordings


# --- 1. the table refusing, then stalling, writes -----------------------------------------
def table_outage(rig: Rig, *, per_phase: int = 10, stalled: int = 2) -> dict[str, Any]:
    stack, proxy, media, rng, secrets = rig.stack, rig.proxy, rig.media, rig.rng, rig.secrets
    sender = Sender(stack.callback_url)
    phases = [("pass", per_phase), ("refuse", per_phase), ("stall", stalled), ("pass", per_phase)]
    sent: list[Callback] = []
    recordings: list[Recording] = []
    answers: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    for mode, count in phases:
        proxy.set_mode(mode)
        cbs, recs = served_sessions(rng, media, secrets, count)
        recordings += recs

        def send(cb: Callback, mode: str = mode, lock: threading.Lock = lock) -> None:
            p = prepare(cb, stack.callback_url, stack.token)
            result = sender.send(p)
            with lock:
                secrets.signatures.add(p.signature)
                statuses[result.status] += 1
                status = json.loads(result.body).get("status") if result.status == 200 else None
                answers[f"{mode}:{status or result.status}"] += 1

        threads = [threading.Thread(target=send, args=(cb,)) for cb in cbs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent += cbs
    proxy.set_mode("pass")
    keys = {c.key for c in sent}

    def stored() -> set[tuple[str, int]]:
        return {(i["SessionUUID"]["S"], int(i["SequenceNumber"]["N"])) for i in stack.items()}

    wait_until(lambda: keys <= stored(), timeout=120, interval=1.0)
    items = {(i["SessionUUID"]["S"], int(i["SequenceNumber"]["N"])): i for i in stack.items()}
    from_fallback = sum(
        1 for k in keys if items.get(k, {}).get("Source", {}).get("S") == "fallback"
    )
    wait_until(
        lambda: all(status_of(stack, r) == "ARCHIVED" for r in recordings),
        timeout=120,
        interval=1.0,
    )
    archived = sum(status_of(stack, r) == "ARCHIVED" for r in recordings)
    return {
        "unarchived": unarchived(stack, recordings),
        "callbacks": len(sent),
        "answers": dict(sorted(answers.items())),
        "answers_5xx": sum(v for k, v in statuses.items() if k >= 500 or k == 0),
        "queued_to_fallback": sum(v for k, v in answers.items() if k.endswith(":queued")),
        "events_stored": len(keys & set(items)),
        "stored_via_fallback_drain": from_fallback,
        "lost_events": len(keys - set(items)),
        "recordings": len(recordings),
        "recordings_archived": archived,
        "proxy_connections": dict(proxy.connections),
    }


# --- 2. media faults ----------------------------------------------------------------------
MEDIA_FAULTS: dict[str, tuple[int, list[Any]]] = {
    "404 three times": (64 * 1024, [Status(404, times=3)]),
    "500 three times": (64 * 1024, [Status(500, times=3)]),
    "503 with Retry-After": (64 * 1024, [Status(503, headers=(("Retry-After", "1"),), times=2)]),
    "truncated body": (256 * 1024, [Truncate(100_000)]),
    "stalled body": (256 * 1024, [Stall(100_000, seconds=6)]),
    "reset mid-body": (256 * 1024, [Reset(50_000)]),
    "wrong Content-Length": (64 * 1024, [WrongLength(1000)]),
    "truncated multipart (12 MiB)": (12 * MiB, [Truncate(7 * MiB)]),
    "404 until the stream gave up, then back": (64 * 1024, [Status(404, times=None)]),
    "404 for ever": (64 * 1024, [Status(404, times=None)]),
}


def media_faults(rig: Rig) -> dict[str, Any]:
    stack, media, rng, secrets = rig.stack, rig.media, rig.rng, rig.secrets
    sender = Sender(stack.callback_url)
    cases: dict[str, tuple[Recording, GeneratedBody]] = {}
    for name, (size, faults) in MEDIA_FAULTS.items():
        cbs, recs, numbers = random_session(rng, calls=1, media_base=media.base_url, failed_rate=0)
        secrets.add_phones(numbers)
        rec = recs[0]
        body = GeneratedBody(size, rec.seed)
        media.add(rec.path, body, faults=faults)
        cases[name] = (rec, body)
        for cb in cbs:
            p = prepare(cb, stack.callback_url, stack.token)
            secrets.signatures.add(p.signature)
            assert sender.send(p).status == 200
    baseline = gave_up(stack)
    recovering = [n for n in cases if "404 for" not in n]
    wait_until(
        lambda: all(status_of(stack, cases[n][0]) == "ARCHIVED" for n in recovering),
        timeout=90,
        interval=1.0,
    )
    # The stream gives up on the persistent 404s (on-failure queue); the item stays PENDING.
    given_up = wait_until(lambda: gave_up(stack) >= baseline + 2, timeout=120, interval=1.0)
    late_rec, late_body = cases["404 until the stream gave up, then back"]
    media.add(late_rec.path, late_body)  # the source recovers
    # Later sweeps (the clock moved past the backoff): the recovered one is archived; the other
    # fails until the attempts run out, then FAILED with the RecordingsFailed metric.
    sweep_lines: list[str] = []
    sweeps: list[Any] = []
    for n in range(8):
        result, lines = run_invoke(
            stack,
            "SweeperFunction",
            "sweep",
            "--now-offset",
            str(86400 * (n + 1)),
            extra={"SWEEP_MAX_ATTEMPTS": "6", "MEDIA_RETRY_BUDGET_SECONDS": "1"},
        )
        sweeps.append(result)
        sweep_lines += lines
        if status_of(stack, cases["404 for ever"][0]) == "FAILED":
            break
    failed_metric = sum(
        1 for line in sweep_lines if '"RecordingsFailed"' in line and line.startswith('{"_aws"')
    )
    outcomes: dict[str, str] = {}
    for name, (rec, body) in cases.items():
        if name == "404 for ever":
            st = status_of(stack, rec)
            it = item(stack, rec.session_uuid, rec.sequence)
            key = it.get("ArchiveKey", {}).get("S") or ""
            outcomes[name] = (
                "FAILED, no object" if st == "FAILED" and not key else f"unexpected: {st} {key}"
            )
        else:
            problem = verify_archived_once(stack, rec, body)
            outcomes[name] = "archived once" if problem is None else f"unexpected: {problem}"
    uploads = stack.client("s3").list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    partial = partial_objects(stack)
    return {
        "outcomes": outcomes,
        "stream_gave_up_to_on_failure_queue": given_up,
        "sweeps": sweeps,
        "recordings_failed_metric": failed_metric,
        "incomplete_multipart_uploads": len(uploads),
        "partial_objects": partial,
        "sweep_log_lines": sweep_lines,
    }


# --- 3. SIGKILL of the archiving worker mid multipart upload ------------------------------
def kill_mid_upload(rig: Rig, *, size_mib: int = 48) -> dict[str, Any]:
    stack, media, rng, secrets = rig.stack, rig.media, rig.rng, rig.secrets
    s3 = stack.client("s3")
    before = {
        u["UploadId"] for u in s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    }
    cbs, recs, numbers = random_session(rng, calls=1, media_base=media.base_url, failed_rate=0)
    secrets.add_phones(numbers)
    rec = recs[0]
    body = GeneratedBody(size_mib * MiB, rec.seed)
    media.add(rec.path, body)
    sender = Sender(stack.callback_url)
    for cb in cbs:
        p = prepare(cb, stack.callback_url, stack.token)
        secrets.signatures.add(p.signature)
        assert sender.send(p).status == 200

    def uploading() -> bool:
        ups = s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
        return any(u["UploadId"] not in before for u in ups)

    started = wait_until(uploading, timeout=60, interval=0.05)
    killed = []
    if started:
        for pid in stack.worker_pids("ArchiveFunction"):
            with contextlib.suppress(ProcessLookupError):  # it may have ended meanwhile
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    mid_upload_status = status_of(stack, rec)
    # The killed attempt's claim holds the item until its lease runs out: the stream's retries
    # of the record find it held and leave it (no download, no give-up), so there is nothing to
    # wait for; the sweep below runs 30 days later, when the lease has run out and the killed
    # attempt is counted as abandoned.
    result, lines = run_invoke(
        stack,
        "SweeperFunction",
        "sweep",
        "--now-offset",
        str(30 * 86400),
        extra={"SWEEP_MAX_ATTEMPTS": "20"},
    )
    problem = verify_archived_once(stack, rec, body)
    if not killed or mid_upload_status != "PENDING" or (result or {}).get("archived") != 1:
        problem = problem or (
            f"not a recovery by the sweeper: killed {len(killed)} worker(s), status "
            f"{mid_upload_status} after the kill, sweep {result}"
        )
    orphans = [
        u
        for u in s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
        if u["UploadId"] not in before
    ]
    return {
        "size_mib": size_mib,
        "upload_in_progress_when_killed": started,
        "worker_pids_killed": len(killed),
        "status_after_kill": mid_upload_status,
        "sweep": result,
        "outcome": "archived once by the sweeper" if problem is None else f"unexpected: {problem}",
        # A SIGKILLed process cannot abort its upload: the bucket's lifecycle rule
        # AbortIncompleteMultipartUpload (1 day) removes it in S3; moto does not run lifecycles.
        "orphan_upload_of_killed_worker": len(orphans),
        "sweep_log_lines": lines,
    }


# --- 4. a stream batch in which one record fails ------------------------------------------
def partial_batch(rig: Rig) -> dict[str, Any]:
    """ArchiveFunction's handler on one stream batch of 4 Completed records, the second of
    which cannot be downloaded: only that one is reported; the others are archived once."""
    stack, media, rng, secrets = rig.stack, rig.media, rig.rng, rig.secrets
    sender = Sender(stack.callback_url)
    recs: list[Recording] = []
    bodies: dict[str, GeneratedBody] = {}
    baseline = gave_up(stack)
    for i in range(4):
        cbs, rs, numbers = random_session(rng, calls=1, media_base=media.base_url, failed_rate=0)
        secrets.add_phones(numbers)
        rec = rs[0]
        body = GeneratedBody(4096 + i, rec.seed)
        bodies[rec.path] = body
        # Until the batch below runs, every file is missing: the stream's own attempts fail.
        media.add(rec.path, body, faults=[Status(404, times=None)])
        for cb in cbs:
            p = prepare(cb, stack.callback_url, stack.token)
            secrets.signatures.add(p.signature)
            assert sender.send(p).status == 200
        recs.append(rec)
    wait_until(lambda: all(item(stack, r.session_uuid, r.sequence) for r in recs), timeout=30)
    # The event source mapping retries these records too: the files come back only once it has
    # given up on all four, so that what archives them below is the batch under test.
    stream_done = wait_until(lambda: gave_up(stack) >= baseline + 4, timeout=240, interval=1.0)
    for i, rec in enumerate(recs):
        if i != 1:
            media.add(rec.path, bodies[rec.path])
    records = []
    for n, rec in enumerate(recs):
        image = item(stack, rec.session_uuid, rec.sequence)
        records.append(
            {
                "eventID": f"rel-{n}",
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "Keys": {
                        "SessionUUID": image["SessionUUID"],
                        "SequenceNumber": image["SequenceNumber"],
                    },
                    "NewImage": image,
                    "SequenceNumber": f"{9000000 + n:021d}",
                    "SizeBytes": 1000,
                    "StreamViewType": "NEW_IMAGE",
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/x/stream/1",
            }
        )
    gets_before = Counter(r.path for r in media.requests)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"Records": records}, fh)
        event_path = fh.name
    try:
        result, lines = run_invoke(
            stack,
            "ArchiveFunction",
            "archive-batch",
            event_path,
            extra={"MEDIA_RETRY_BUDGET_SECONDS": "1"},
        )
    finally:
        Path(event_path).unlink(missing_ok=True)
    gets = Counter(r.path for r in media.requests) - gets_before
    reported = [f["itemIdentifier"] for f in result.get("batchItemFailures", [])]
    others_ok = all(
        verify_archived_once(stack, rec, bodies[rec.path]) is None
        for i, rec in enumerate(recs)
        if i != 1
    )
    return {
        "records": len(records),
        "stream_gave_up_before_the_batch": stream_done,
        "batch_item_failures": reported,
        "only_the_failing_record_reported": reported == [records[1]["dynamodb"]["SequenceNumber"]],
        "others_archived_once": others_ok,
        "downloads_of_the_others_in_this_batch": [
            gets[r.path] for i, r in enumerate(recs) if i != 1
        ],
        "log_lines": lines,
    }


# --- 5. a table write applied whose answer is lost ----------------------------------------
PUT_ITEM = b"DynamoDB_20120810.PutItem"  # the X-Amz-Target header of a PutItem request


def lost_answers(rig: Rig, *, count: int = 10, all_lost: int = 2) -> dict[str, Any]:
    """The callback function's PutItem reaches the table and is applied; its answer is lost on
    the way back (the proxy resets the connection). What the function then writes again meets
    its own item and must be a duplicate: never a conflict, never a 5xx, stored once.

    First `all_lost` callbacks lose the answer of every attempt: this measures how many attempts
    the function's client makes, and each is answered 200 "queued" (the fallback queue), whose
    drain then meets the item (a duplicate). Then `count` callbacks lose only the first answer:
    with an SDK that retries, the retry meets the item (answered "duplicate"); with one attempt
    per write, the same as above ("queued", then drained as a duplicate).

    botocore's standard retry mode also keeps a per-client retry quota (500 tokens; a retry costs
    14, 5 after throttling, and an answer that needed no retry gives 1 back: botocore 1.44,
    retries/quota.py and retries/standard.py RetryQuotaChecker).
    After the outages of the suites before this one the callback function's client may have
    spent it, and then makes no retry: the callback is answered "queued" and drained as a
    duplicate, which is as safe. The proxy counts the PutItem requests of every callback, so each
    is judged by what the SDK did: a retry must be answered "duplicate", no retry "queued"."""
    stack, proxy, media, rng, secrets = rig.stack, rig.proxy, rig.media, rig.rng, rig.secrets
    sender = Sender(stack.callback_url)
    log_start = len(stack.lines())
    lost_start = proxy.answers_lost
    cbs, recordings = served_sessions(rng, media, secrets, count + all_lost)
    answers: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    attempts: Counter[int] = Counter()  # PutItem requests of one callback whose answer was lost
    applied = 0  # callbacks that lost at least one answer
    retried: Counter[str] = Counter()  # first-answer-lost callbacks: retried or not, answer
    for n, cb in enumerate(cbs):
        # One at a time, so that every loss belongs to the callback being sent.
        phase = "every_answer_lost" if n < all_lost else "first_answer_lost"
        before, matched_before = proxy.answers_lost, proxy.requests_matched
        proxy.lose_answers(PUT_ITEM, 100 if n < all_lost else 1)  # 100: more than any SDK makes
        p = prepare(cb, stack.callback_url, stack.token)
        secrets.signatures.add(p.signature)
        result = sender.send(p)
        proxy.lose_answers(b"", 0)
        applied += proxy.answers_lost > before
        if n < all_lost:
            attempts[proxy.answers_lost - before] += 1
        statuses[result.status] += 1
        status = json.loads(result.body).get("status") if result.status == 200 else None
        answers[f"{phase}:{status or result.status}"] += 1
        if n >= all_lost:
            sdk = "retried" if proxy.requests_matched - matched_before > 1 else "not_retried"
            retried[f"{sdk}:{status or result.status}"] += 1
    keys = {c.key for c in cbs}
    queued = sum(v for k, v in answers.items() if k.endswith(":queued"))

    sessions = {c.params["SessionUUID"] for c in cbs}

    def drained(outcome: str) -> int:
        """The drain's log lines for these callbacks ("fallback event stored|duplicate")."""
        return sum(
            f"fallback event {outcome}" in line and any(s in line for s in sessions)
            for line in stack.lines()[log_start:]
        )

    wait_until(lambda: drained("duplicate") + drained("stored") >= queued, timeout=120)
    wait_until(
        lambda: all(status_of(stack, r) == "ARCHIVED" for r in recordings),
        timeout=120,
        interval=1.0,
    )
    stored = {
        (i["SessionUUID"]["S"], int(i["SequenceNumber"]["N"])): i
        for i in stack.items()
        if (i["SessionUUID"]["S"], int(i["SequenceNumber"]["N"])) in keys
    }
    lines = stack.lines()[log_start:]
    return {
        "callbacks": len(cbs),
        "callbacks_every_answer_lost": all_lost,
        # measured by the proxy on the every-answer-lost callbacks: {attempts: callbacks}
        "sdk_attempts_per_put": {str(k): v for k, v in sorted(attempts.items())},
        "answers_lost_by_proxy": proxy.answers_lost - lost_start,
        "callbacks_whose_answer_was_lost": applied,
        "answers": dict(sorted(answers.items())),
        # first-answer-lost callbacks by what the SDK did (retried, or not: its retry quota
        # spent) and what was answered
        "first_answer_lost_by_sdk_retry": dict(sorted(retried.items())),
        "answers_200": statuses.get(200, 0),
        "duplicates": sum(v for k, v in answers.items() if k.endswith(":duplicate")),
        "queued": queued,
        "drained_as_duplicate": drained("duplicate"),
        "drained_as_stored": drained("stored"),  # would mean the lost write was not applied
        "conflicts": sum(v for k, v in answers.items() if k.endswith(":conflict"))
        + sum(1 for i in stored.values() if "ConflictingPayloads" in i),
        "conflict_metrics": sum('"CallbackConflict"' in line for line in lines),
        "answers_5xx": sum(v for k, v in statuses.items() if k >= 500 or k == 0),
        "stored_exactly_once": len(stored),
        "lost_events": len(keys - set(stored)),
        "recordings": len(recordings),
        "recordings_archived_once": sum(
            verify_archived_once(stack, r, GeneratedBody(r.size, r.seed)) is None
            for r in recordings
        ),
    }


def lost_answers_passed(f: dict[str, Any]) -> bool:
    if not f or len(f["sdk_attempts_per_put"]) != 1:
        return False
    sdk_retries = int(next(iter(f["sdk_attempts_per_put"]))) > 1
    first_lost = f["callbacks"] - f["callbacks_every_answer_lost"]
    by_retry = f["first_answer_lost_by_sdk_retry"]
    return bool(
        f["callbacks_whose_answer_was_lost"] == f["callbacks"]  # the fault was applied
        and f["answers_200"] == f["callbacks"]
        # the retry of the SDK meets its own item, or else the drain's write does
        and f["duplicates"] == (by_retry.get("retried:duplicate", 0) if sdk_retries else 0)
        # a retry meets its own item; without one, the fallback queue keeps the event
        and by_retry.get("retried:duplicate", 0) + by_retry.get("not_retried:queued", 0)
        == first_lost
        and f["queued"] == f["callbacks"] - f["duplicates"]
        and f["drained_as_duplicate"] == f["queued"]
        and f["drained_as_stored"] == 0
        and f["conflicts"] == 0
        and f["conflict_metrics"] == 0
        and f["answers_5xx"] == 0
        and f["stored_exactly_once"] == f["callbacks"]
        and f["lost_events"] == 0
        and f["recordings_archived_once"] == f["recordings"]
    )


def run_faults(
    media: MediaServer,
    *,
    per_phase: int = 10,
    stalled: int = 2,
    kill_size_mib: int = 48,
    lost: int = 10,
    include: Sequence[str] = ("lost_answer", "table", "media", "kill", "batch", "lost_answer"),
    seed: int = 7,
) -> tuple[dict[str, Any], Secrets, list[str]]:
    rng = random.Random(seed)
    secrets = Secrets()
    aws_port = free_port()
    proxy = FaultProxy(aws_port).start()
    figures: dict[str, Any] = {}
    extra_lines: list[str] = []
    try:
        with running_stack(*fault_stack_args(proxy.url), aws_port=aws_port) as stack:
            secrets.tokens.add(stack.token)
            rig = Rig(stack, proxy, media, rng, secrets)
            if "lost_answer" in include:  # first, on a fresh client: the SDK retries
                figures["lost_answer"] = lost_answers(rig, count=lost)
            if "table" in include:
                figures["table_outage"] = table_outage(rig, per_phase=per_phase, stalled=stalled)
            if "media" in include:
                figures["media"] = media_faults(rig)
                extra_lines += figures["media"].pop("sweep_log_lines")
            if "kill" in include:
                figures["kill_mid_upload"] = kill_mid_upload(rig, size_mib=kill_size_mib)
                extra_lines += figures["kill_mid_upload"].pop("sweep_log_lines")
            if "batch" in include:
                figures["partial_batch"] = partial_batch(rig)
                extra_lines += figures["partial_batch"].pop("log_lines")
            if list(include).count("lost_answer") > 1:
                # again after the outages, which spent the client's retry quota
                figures["lost_answer_after_outages"] = lost_answers(rig, count=lost)
            extra_lines += stack.lines()
    finally:
        proxy.stop()
    return figures, secrets, extra_lines
