"""`python -m reliability`: run the suites, print the table, write reliability/results.json.

Exit status 1 if any figure that must hold does not (a 5xx, a lost event, a recording archived
other than once, a write from a rejected request, an outbound request to a refused host, a
leaked secret in a log line, a failed checkov check).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reliability import faults, hostile, load, signed_fuzz
from reliability.logscan import Secrets, scan
from reliability.stack import running_stack
from reliability.template_checks import template_suite
from tests.support.media_server import MediaServer

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "reliability" / "results.json"
SUITES = ("load", "faults", "hostile", "template")

FULL = {
    "sessions": 500,
    "calls": 6,
    "fuzz": 1500,
    "signed_fuzz": 2500,
    "schemathesis": 150,
    "kill_mib": 48,
    "per_phase": 20,
    "stalled": 3,
    "lost_answers": 20,
}
QUICK = {
    "sessions": 40,
    "calls": 3,
    "fuzz": 150,
    "signed_fuzz": 200,
    "schemathesis": 25,
    "kill_mib": 12,
    "per_phase": 6,
    "stalled": 1,
    "lost_answers": 4,
}


def machine() -> str:
    cpus = os.cpu_count()
    mem = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) // 1024 // 1024} GiB RAM"
    return f"{platform.platform()}, {cpus} CPUs{mem}, Python {platform.python_version()}"


def run_load_suite(size: dict[str, Any]) -> dict[str, Any]:
    with MediaServer() as media, running_stack() as stack:
        plan = load.plan_load(
            sessions=size["sessions"], calls=size["calls"], media_base=media.base_url
        )
        figures, secrets = load.run_load(stack, media, plan)
        logs = scan(stack.lines(), secrets)
    figures["log_lines_scanned"] = logs.lines
    figures["log_leaks"] = logs.count
    figures["log_leak_examples"] = logs.leaks[:5]
    figures["passed"] = load.load_passed(figures) and logs.count == 0 and logs.lines > 0
    return figures


def run_fault_suite(size: dict[str, Any]) -> dict[str, Any]:
    with MediaServer() as media:
        figures, secrets, lines = faults.run_faults(
            media,
            per_phase=size["per_phase"],
            stalled=size["stalled"],
            kill_size_mib=size["kill_mib"],
            lost=size["lost_answers"],
        )
    logs = scan(lines, secrets)
    figures["log_lines_scanned"] = logs.lines
    figures["log_leaks"] = logs.count
    figures["passed"] = faults_passed(figures) and logs.count == 0 and logs.lines > 0
    return figures


def faults_passed(f: dict[str, Any]) -> bool:
    t, m = f.get("table_outage", {}), f.get("media", {})
    k, b = f.get("kill_mid_upload", {}), f.get("partial_batch", {})
    return bool(
        t.get("answers_5xx") == 0
        and t.get("lost_events") == 0
        and t.get("queued_to_fallback", 0) > 0
        and t.get("stored_via_fallback_drain") == t.get("queued_to_fallback")
        and t.get("recordings_archived") == t.get("recordings")
        and m.get("outcomes")
        and all(o in ("archived once", "FAILED, no object") for o in m["outcomes"].values())
        and m.get("stream_gave_up_to_on_failure_queue")
        and m.get("recordings_failed_metric", 0) >= 1
        and m.get("incomplete_multipart_uploads") == 0
        and m.get("partial_objects") == 0
        and k.get("upload_in_progress_when_killed")
        and k.get("worker_pids_killed", 0) >= 1
        and k.get("status_after_kill") == "PENDING"
        and (k.get("sweep") or {}).get("archived") == 1
        and k.get("outcome") == "archived once by the sweeper"
        and b.get("stream_gave_up_before_the_batch")
        and b.get("only_the_failing_record_reported")
        and b.get("others_archived_once")
        and b.get("downloads_of_the_others_in_this_batch") == [1, 1, 1]
        and faults.lost_answers_passed(f.get("lost_answer", {}))
        and faults.lost_answers_passed(f.get("lost_answer_after_outages", {}))
        # on a fresh client every first-answer-lost callback is retried and a duplicate
        and f["lost_answer"]["first_answer_lost_by_sdk_retry"]
        == {
            "retried:duplicate": f["lost_answer"]["callbacks"]
            - f["lost_answer"]["callbacks_every_answer_lost"]
        }
    )


def run_hostile_suite(size: dict[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {"ssrf": hostile.ssrf_suite()}
    run = hostile.run_handler_suites(max_examples=size["fuzz"])
    figures.update(run.results)
    figures["handler"] = run.harness.figures()
    figures["signed_fuzz"] = signed_fuzz.run_signed_fuzz(max_examples=size["signed_fuzz"])
    secrets = run.harness.secrets
    lines = run.lines
    stack_secrets = Secrets()
    # The media policy of production (https, allow-listed names, public addresses only), not
    # the local mode's loopback allowance: the URLs below are judged as in AWS.
    egress_log = hostile.new_egress_log()
    with (
        contextlib.ExitStack() as cleanup,
        running_stack(*hostile.end_to_end_stack_args(egress_log)) as stack,
    ):
        cleanup.callback(shutil.rmtree, egress_log.parent, ignore_errors=True)
        stack_secrets.tokens.add(stack.token)
        figures["urls_end_to_end"] = hostile.hostile_urls_end_to_end(
            stack, stack_secrets, egress_log
        )
        figures["schemathesis"] = hostile.schemathesis_suite(
            stack, max_examples=size["schemathesis"], secrets=stack_secrets
        )
        stack_lines = stack.lines()
    logs = scan(lines, secrets)
    logs2 = scan(stack_lines, stack_secrets)
    signed_logs = figures["signed_fuzz"]  # scanned by the suite itself, with its signatures
    figures["log_lines_scanned"] = logs.lines + logs2.lines + signed_logs["log_lines_scanned"]
    figures["log_leaks"] = logs.count + logs2.count + signed_logs["log_leaks"]
    figures["log_leak_examples"] = (logs.leaks + logs2.leaks)[:5]
    s, h, sc, e2e, sf = (
        figures["ssrf"],
        figures["handler"],
        figures["schemathesis"],
        figures["urls_end_to_end"],
        figures["signed_fuzz"],
    )
    figures["inputs_tried"] = (
        h["inputs_tried"]
        + sf["inputs_tried"]
        + sc["inputs_tried"]
        + s["urls_tried"]
        + s["redirects_tried"]
        + e2e["urls_sent"]
    )
    figures["answers_5xx"] = h["answers_5xx"] + sc["answers_5xx"] + sf["answers_5xx"]
    figures["writes_from_rejected_requests"] = (
        h["writes_from_rejected_requests"] + sc["writes_from_rejected_requests"]
    )
    figures["outbound_requests_to_refused_hosts"] = (
        s["outbound_connections_to_refused_hosts"]
        + s["trap_requests"]
        + e2e["outbound_attempts_to_refused_hosts"]
    )
    figures["passed"] = bool(
        figures["answers_5xx"] == 0
        and figures["writes_from_rejected_requests"] == 0
        and figures["outbound_requests_to_refused_hosts"] == 0
        and figures["log_leaks"] == 0
        and not figures["fuzz"]["error"]
        and sf["passed"]
        and not h["failures"]
        and not sc["failures"]
        and not s["unexpected"]
        and s["urls_refused"] == s["urls_tried"]
        and s["dns_lookups_of_refused_hosts"] == 0
        # the recorders saw traffic: a zero above is a measurement, not a blind spot
        and s["outbound_connections_allowed_host_control"] >= 1
        and e2e["egress_guarded_processes"] >= 1
        and not e2e["hostile_urls_accepted_by_policy"]
        and e2e["objects_written"] == 0
        and e2e["stored_then_refused_by_archiver"].get("FAILED", 0)
        == e2e["stored_refusals_expected"]
    )
    return figures


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []

    def row(suite: str, name: str, value: Any) -> None:
        rows.append((suite, name, str(value)))

    if "load" in results:
        f = results["load"]
        row(
            "load",
            "callbacks sent (unique + duplicates)",
            f"{f['callbacks_sent']} ({f['unique_events']} + {f['duplicates_sent']}), "
            f"{f['sessions']} sessions, {f['concurrency']} senders",
        )
        row("load", "callbacks per second", f["callbacks_per_second"])
        row("load", "latency p50 / p99 (ms)", f"{f['latency_p50_ms']} / {f['latency_p99_ms']}")
        row("load", "5xx answers", f["answers_5xx"])
        row("load", "events stored = unique sent", f"{f['events_stored']} = {f['unique_events']}")
        row(
            "load",
            "recordings archived exactly once (bytes+SHA-256)",
            f"{f['archived_exactly_once']} / {f['recordings']} "
            f"({f['object_versions']} object versions)",
        )
        low, high = f["multipart_recordings_mib"]
        row(
            "load",
            f"multipart recordings ({low}-{high} MiB) archived exactly once",
            f"{f['multipart_archived_exactly_once']} / {f['multipart_recordings']}",
        )
        row("load", "incomplete multipart uploads", f["incomplete_multipart_uploads"])
        row("load", "time to archive the last recording (s)", f["archive_drain_seconds"])
    if "faults" in results:
        f = results["faults"]
        t = f.get("table_outage", {})
        if t:
            row(
                "faults",
                "table refused/stalled: callbacks, 5xx, queued, lost",
                f"{t['callbacks']}, {t['answers_5xx']}, {t['queued_to_fallback']}, "
                f"{t['lost_events']}",
            )
            row(
                "faults",
                "queued events drained into the table",
                f"{t['stored_via_fallback_drain']} / {t['queued_to_fallback']}",
            )
        m = f.get("media", {})
        for name, outcome in m.get("outcomes", {}).items():
            row("faults", f"media: {name}", outcome)
        if m:
            row("faults", "RecordingsFailed metric emitted", m["recordings_failed_metric"])
            row(
                "faults",
                "partial objects / incomplete uploads",
                f"{m['partial_objects']} / {m['incomplete_multipart_uploads']}",
            )
        k = f.get("kill_mid_upload", {})
        if k:
            row("faults", f"SIGKILL mid upload ({k['size_mib']} MiB)", k["outcome"])
        b = f.get("partial_batch", {})
        if b:
            row(
                "faults",
                "stream batch, one record failing",
                "only it reported" if b["only_the_failing_record_reported"] else "WRONG",
            )
        for name, when in (
            ("lost_answer", "fresh client"),
            ("lost_answer_after_outages", "after the outages"),
        ):
            la = f.get(name, {})
            if not la:
                continue
            row(
                "faults",
                f"table write applied, answer lost ({when}): callbacks, 200s, conflicts, 5xx",
                f"{la['callbacks']}, {la['answers_200']}, {la['conflicts']}, {la['answers_5xx']}",
            )
            row(
                "faults",
                "  answered duplicate / queued then drained as duplicate",
                f"{la['duplicates']} / {la['drained_as_duplicate']} "
                f"(attempts per write: {', '.join(la['sdk_attempts_per_put'])})",
            )
            by_retry = la.get("first_answer_lost_by_sdk_retry", {})
            row(
                "faults",
                "  first answer lost: SDK retried / retry refused by its quota",
                f"{sum(v for k, v in by_retry.items() if k.startswith('retried:'))} / "
                f"{sum(v for k, v in by_retry.items() if k.startswith('not_retried:'))}",
            )
            row(
                "faults",
                "  stored exactly once",
                f"{la['stored_exactly_once']} / {la['callbacks']}",
            )
    if "hostile" in results:
        f = results["hostile"]
        s = f["ssrf"]
        urls = s["urls_tried"] + s["redirects_tried"] + f["urls_end_to_end"]["urls_sent"]
        row(
            "hostile",
            "inputs tried",
            f"{f['inputs_tried']} (handler {f['handler']['inputs_tried']}, "
            f"SDK-signed {f['signed_fuzz']['inputs_tried']}, "
            f"schemathesis {f['schemathesis']['inputs_tried']}, URLs {urls})",
        )
        sf = f["signed_fuzz"]
        row(
            "hostile",
            "SDK-signed: 5xx, lost, raw values changed, refusals uncounted or undocumented",
            f"{sf['answers_5xx']}, {sf['lost']}, {sf['raw_value_mismatches']}, "
            f"{sf['refusals_not_counted']}, {sf['unexpected_answers']}",
        )
        row(
            "hostile",
            "SDK-signed: stored in the table / via the fallback queue; refused by reason",
            f"{sf['stored_in_table']} / {sf['stored_via_fallback_queue']}; "
            + ", ".join(f"{k} {v}" for k, v in sf["expected_outcomes"].items() if k != "200"),
        )
        row("hostile", "5xx answers", f["answers_5xx"])
        row("hostile", "writes from rejected requests", f["writes_from_rejected_requests"])
        row(
            "hostile", "outbound requests to refused hosts", f["outbound_requests_to_refused_hosts"]
        )
        row(
            "hostile",
            "log lines with a phone number, token or signature",
            f"{f['log_leaks']} of {f['log_lines_scanned']}",
        )
    for suite in ("load", "faults"):
        if suite in results:
            row(
                suite,
                "log lines with a phone number, token or signature",
                f"{results[suite]['log_leaks']} of {results[suite]['log_lines_scanned']}",
            )
    if "template" in results:
        c = results["template"]
        row(
            "template",
            "checkov passed / failed / skipped (with reason)",
            f"{c.get('passed')} / {c.get('failed')} / {c.get('skipped')} "
            f"({c.get('skips_with_reason')})",
        )
        lp = c.get("least_privilege", {})
        row(
            "template",
            "recorded AWS calls checked against each role: calls / refused / unjustified unused",
            f"{lp.get('recorded_calls')} / {lp.get('refused')} / {lp.get('unused_unjustified')}",
        )
        row(
            "template",
            "role-shape tests (own role, no managed policy, no wildcard) passed / failed",
            f"{lp.get('shape_tests_passed')} / {lp.get('shape_tests_failed')}",
        )
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    lines = [f"{'suite':<{w1}}  {'figure':<{w2}}  value", f"{'-' * w1}  {'-' * w2}  -----"]
    lines += [f"{a:<{w1}}  {b:<{w2}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (about 3 minutes)")
    parser.add_argument(
        "--only", default=",".join(SUITES), help=f"comma-separated suites ({','.join(SUITES)})"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    runners = {
        "load": run_load_suite,
        "faults": run_fault_suite,
        "hostile": run_hostile_suite,
        "template": lambda _size: template_suite(),
    }
    results: dict[str, Any] = {}
    started = time.monotonic()
    for suite in chosen:
        t0 = time.monotonic()
        print(f"reliability: {suite} ...", file=sys.stderr, flush=True)
        results[suite] = runners[suite](size)
        results[suite]["suite_seconds"] = round(time.monotonic() - t0, 1)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "make reliability" + (" (--quick)" if args.quick else ""),
        "sizes": size,
        "seconds": round(time.monotonic() - started, 1),
        "passed": all(r.get("ok", r.get("passed")) for r in results.values()),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n", "utf-8")
    print(table(results))
    print(
        f"\n{report['machine']} | {report['date']} | {report['seconds']} s | "
        f"{'PASSED' if report['passed'] else 'FAILED'} | written to "
        f"{args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}"
    )
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
