"""Suite 5: hostile RecordingURLs end to end, through the endpoint to the local archiver (whose
worker runs under the egress guard)."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from reliability.hostile.harness import EGRESS_GUARD_DIR, EGRESS_LOG_ENV
from reliability.hostile.ssrf import HOSTILE_URLS
from reliability.logscan import Secrets
from tests.support.net import wait_until
from tests.support.plivo import recording_event


def accepted_by_policy() -> list[str]:
    """Those of HOSTILE_URLS the production policy does not refuse outright (whatever DNS
    says): each one is a finding. Every hostile URL must be refused before any lookup."""
    from recording_archive.dal.media import MediaPolicy, MediaSource
    from recording_archive.models.errors import MediaRefusedError, MediaUnavailableError

    def no_dns(host: str, port: int) -> list[str]:
        raise OSError("no DNS here")

    source = MediaSource(
        MediaPolicy(allowed_hosts=("media.plivo.com", "*.media.plivo.com")), resolver=no_dns
    )
    out = []
    for url in HOSTILE_URLS:
        try:
            source.check_url(url)
        except MediaRefusedError:
            continue
        except MediaUnavailableError:  # on the allow-list: it was looked up
            out.append(f"{url[:80]} (allowed, looked up)")
        else:  # accepted without a lookup (an IP literal)
            out.append(f"{url[:80]} (accepted)")
    return out


def end_to_end_stack_args(egress_log: Path) -> list[str]:
    """The extra `recording-archive local` arguments of `hostile_urls_end_to_end`'s stack: the
    production media policy (no loopback allowance), a short retry budget, and the egress guard
    in the ArchiveFunction worker (its PYTHONPATH and log; the package itself is installed)."""
    pythonpath = os.pathsep.join(
        p for p in (str(EGRESS_GUARD_DIR), os.environ.get("PYTHONPATH", "")) if p
    )
    pairs = [
        ("CallbackFunction", "MEDIA_ALLOW_LOOPBACK", "false"),
        ("ArchiveFunction", "MEDIA_ALLOW_LOOPBACK", "false"),
        ("ArchiveFunction", "MEDIA_RETRY_BUDGET_SECONDS", "2"),
        ("ArchiveFunction", "PYTHONPATH", pythonpath),
        ("ArchiveFunction", EGRESS_LOG_ENV, str(Path(egress_log).resolve())),
    ]
    out: list[str] = []
    for function, name, value in pairs:
        out += ["--env", f"{function}:{name}={value}"]
    return out


def new_egress_log() -> Path:
    """A fresh, empty path for the egress guard's log (the guard creates the file)."""
    return Path(tempfile.mkdtemp(prefix="reliability-egress-")) / "egress.jsonl"


def read_egress_log(egress_log: Path) -> list[dict[str, Any]]:
    try:
        text = Path(egress_log).read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"event": "refused", "unparsed": line[:200]})  # count it, to be safe
    return out


def hostile_urls_end_to_end(stack: Any, secrets: Secrets, egress_log: Path) -> dict[str, Any]:
    """Completed callbacks carrying HOSTILE_URLS, through the endpoint to the stack's archiver
    (started with `end_to_end_stack_args(egress_log)`: the production media policy, the egress
    guard): refused (422) by the endpoint, or stored and then FAILED by the archiver without a
    single lookup or connection off loopback; never an object."""
    from recording_archive_cli.plivo_sim import Callback
    from reliability.callbacks import Sender, prepare

    accepted = accepted_by_policy()
    sender = Sender(stack.callback_url)
    answers: Counter[int] = Counter()
    stored: list[tuple[str, int]] = []
    for url in HOSTILE_URLS:
        params = recording_event("SessionRecordingCompleted", sequence=2, recording_url=url)
        secrets.add_phones([params["From"], params["To"], params["VirtualNumber"]])
        p = prepare(Callback(params), stack.callback_url, stack.token)
        secrets.signatures.add(p.signature)
        result = sender.send(p)
        answers[result.status] += 1
        if result.status == 200:
            stored.append((params["SessionUUID"], 2))
    ddb = stack.client("dynamodb")

    def statuses(keys: list[tuple[str, int]]) -> list[str]:
        return [
            ddb.get_item(
                TableName=stack.table,
                ConsistentRead=True,
                Key={"SessionUUID": {"S": s}, "SequenceNumber": {"N": str(q)}},
            )
            .get("Item", {})
            .get("ArchiveStatus", {})
            .get("S", "")
            for s, q in keys
        ]

    # Every stored hostile URL must end FAILED (refused); one still pending after the wait
    # was not refused (it was looked up, retried, ...).
    wait_until(lambda: all(x == "FAILED" for x in statuses(stored)), timeout=120, interval=1)
    final = Counter(statuses(stored))
    objects = stack.client("s3").list_objects_v2(Bucket=stack.bucket).get("KeyCount", 0)
    log = read_egress_log(egress_log)
    refused = [e for e in log if e.get("event") != "installed"]
    guarded = {e.get("pid") for e in log if e.get("event") == "installed"}
    return {
        "urls_sent": len(HOSTILE_URLS),
        "answers": {str(k): v for k, v in sorted(answers.items())},
        "stored_then_refused_by_archiver": dict(final),
        "stored_refusals_expected": len(stored),
        "hostile_urls_accepted_by_policy": accepted,
        "objects_written": objects,
        "egress_guarded_processes": len(guarded),
        "outbound_attempts_to_refused_hosts": len(refused),
        "outbound_attempt_examples": refused[:5],
    }
