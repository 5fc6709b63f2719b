"""Archive throughput through the local stack: `archive_recordings_per_second` at the stream's
ParallelizationFactor 1 and at the template's default, and `sweeper_drain_seconds_10k`.

One local stack (`LocalStack`, in this process: the real callback API, workers and pollers, one
moto_server) and one media server process serving a 5 MiB recording over HTTPS (a certificate
for `media.localhost` from a CA of the run, trusted by the archiver through `--media-ca-bundle`,
as the stack's own demo does) serve every run, so both factors meet the same moto, media server
and machine. ArchiveFunction's worker pool has as many processes as the default factor; the
factor-1 run uses one of them at a time.

A run of N: the stream mapping is held (disabled, records wait in the stream) while N signed
`SessionRecordingCompleted` callbacks (one per session, each its own recording) are posted
through the callback API; then it is released and the clock runs until the stream poller has
delivered all N records, each ARCHIVED (checked in the table afterwards). archive_recordings_
per_second = N / that time: the burst's drain rate, callbacks' ingestion excluded. Runs of the
two factors alternate (1, default, default, 1, ...) after a warm-up burst (every worker's cold
start, moto's first writes) that is not counted.

On this machine the loopback runs are bound by CPU (moto, one Python process, spends about
0.08 CPU s per recording; the details hold each process's share), so a larger factor gains
little there. The slow-media runs (`--slow N`, 200 by default) serve the same recording at an
internet download's pace (SLOW_MEDIA_SECONDS each, as from Plivo's servers), where the archive
waits on I/O as in AWS: `archive_recordings_per_second_slow_media` and `..._pf1` show what the
factor buys there.

sweeper_drain_seconds_10k: with the stream held, M Completed callbacks stay PENDING; one sweep
(SweeperFunction, SWEEP_GRACE_SECONDS=0) hands them to ArchiveWorkQueue and ArchiveWorkFunction
(SQS MaximumConcurrency emulated by the local stack) archives them; the time from the sweep's
start until all M are ARCHIVED, scaled linearly to 10,000 when M < 10,000 (labelled so in
`sweeper_drain_seconds_10k_method`: the drain is bound by the consumer's concurrency, so its
rate does not depend on the backlog's size once the queue is full).

The local stack is one machine (2 cores here): every archive process, moto and the media server
share them, so the speed-up a larger factor shows is bounded by the CPU, not by Lambda.

    .venv/bin/python bench/throughput.py [--quick] [--burst 2000] [--repeats 1] [--sweep 500]
        [--slow 200] [--slow-seconds 1.0]

Every full run (standalone, or `make bench`) keeps its figures in bench/throughput.json.
`--quick` (what `make bench QUICK=1` runs) starts nothing: it returns those figures, labelled
`throughput_source` (a 2,000-recording burst per factor takes minutes; the quick bench has
seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions"), str(ROOT / "cli")]

TOKEN = "bench-throughput-token-0123456789"  # noqa: S105 - a local dummy
MEDIA_HOST = "media.localhost"  # RFC 6761: loopback without a lookup (the stack's local mode)
RECORDING_BYTES = 5 * 1024 * 1024
KEYS = (
    "archive_recordings_per_second",
    "archive_recordings_per_second_pf1",
    "archive_parallelization_factor",
    "sweeper_drain_seconds_10k",
    "sweeper_drain_seconds_10k_method",
    "archive_recordings_per_second_slow_media",
    "archive_recordings_per_second_slow_media_pf1",
)
# The figures of the last full run (standalone or from bench/run.py): what --quick reports.
LAST_FULL_RUN = ROOT / "bench" / "throughput.json"
SENDERS = 4  # concurrent callback senders (the callback function is one worker process)
# The slow-media runs: each download takes this long (80 chunks), as from Plivo over the internet
# (issue 18: "a second or two"), so the archive waits on I/O instead of this machine's CPU.
SLOW_MEDIA_SECONDS = 1.0
STALL_SECONDS = 15.0  # the sweep run: no item archived this long and the queue empty: sweep again
MAX_SWEEPS = 5


def quiet_console() -> Any:
    """The stack's console, its last lines kept in memory (the bench prints its own)."""
    from recording_archive_cli.local.stack import Console

    class QuietConsole(Console):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []
            self._kept = threading.Lock()

        def say(self, message: str) -> None:
            with self._kept:
                self.lines.append(message)
                del self.lines[:-200]

        def plain(self, message: str) -> None:
            self.say(message)

    return QuietConsole()


class Delivered:
    """Counts the records the stream poller delivered (processed without failure)."""

    def __init__(self) -> None:
        self.count = 0
        self._cond = threading.Condition()

    def __call__(self, records: list[dict[str, Any]]) -> None:
        with self._cond:
            self.count += len(records)
            self._cond.notify_all()

    def wait_for(self, total: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.count < total:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 1.0))
        return True


def tree_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process and every process below it, by
    role: moto, the media server, each function's workers, this process (the callback API,
    the pollers): what a recording costs this machine, and where."""
    from tests.support.processes import descendants

    ticks = os.sysconf("SC_CLK_TCK")
    roles: dict[str, float] = {}
    for pid in {os.getpid(), *descendants(os.getpid())}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if pid == os.getpid():
            role = "stack_process"
        elif "moto" in argv:
            role = "moto"
        elif "media_server" in argv:
            role = "media_server"
        elif "--function-name" in argv:
            role = argv.split("--function-name\0", 1)[1].split("\0", 1)[0]
        else:
            role = "other"
        roles[role] = roles.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return roles


class Harness:
    def __init__(self, work: Path, slow_seconds: float = SLOW_MEDIA_SECONDS) -> None:
        self.work = work
        self.slow_seconds = slow_seconds
        self.media: subprocess.Popen[str] | None = None
        self.stack: Any = None

    def start(self) -> None:
        from recording_archive_cli.local.event_sources import StreamPoller
        from recording_archive_cli.local.stack import LocalStack
        from tests.support.net import free_port

        ca_file = self.work / "media-ca.pem"
        self.media = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.support.media_server", "--port", "0"),
                *("--generated", f"/session.mp3:{RECORDING_BYTES}:7"),
                # The same recording at an internet download's pace (slow_seconds).
                *("--generated", f"/slow.mp3:{RECORDING_BYTES}:7"),
                *("--drip", f"/slow.mp3:{self.slow_seconds / 80:.4f}:{RECORDING_BYTES // 80}"),
                *("--tls-name", MEDIA_HOST, "--ca-file", str(ca_file)),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.media.stdout is not None
        base = self.media.stdout.readline().strip()  # https://127.0.0.1:PORT
        self.media_url = f"https://{MEDIA_HOST}:{base.rsplit(':', 1)[1]}/session.mp3"
        self.slow_media_url = self.media_url.replace("/session.mp3", "/slow.mp3")
        port = free_port()
        aws_port = free_port()
        while aws_port == port:
            aws_port = free_port()
        self.stack = LocalStack(
            port=port,
            aws_port=aws_port,
            template=None,
            verbose=False,
            sweep_interval=10**6,  # the bench runs the sweeper itself
            auth_token=TOKEN,
            console=quiet_console(),
            # Due at once: the sweep (and the work consumer's due check) need not wait 600 s.
            extra_env={
                "SweeperFunction": {"SWEEP_GRACE_SECONDS": "0"},
                "ArchiveWorkFunction": {"SWEEP_GRACE_SECONDS": "0"},
            },
            media_ca_bundle=ca_file,
        )
        self.stack.start()
        self.poller = next(p for p in self.stack.pollers if isinstance(p, StreamPoller))
        self.default_factor = int(self.poller.mapping.parallelization_factor)
        self.delivered = Delivered()
        # Counted here instead of the stack's one-line log (a get_item per record: not AWS's).
        self.poller.on_delivered = self.delivered
        self.poller.held.set()
        self.ddb = self.stack.session.client(
            "dynamodb", endpoint_url=self.stack.resources.endpoint_url
        )

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
        if self.media is not None:
            self.media.terminate()
            try:
                self.media.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.media.kill()
                self.media.wait()

    # -- callbacks ----------------------------------------------------------------------------
    def post_completed(self, count: int, media_url: str = "") -> list[str]:
        """`count` signed Completed callbacks (one session each); their SessionUUIDs."""
        from recording_archive_cli.plivo_sim import prepare, project_signer, session_callbacks
        from reliability.callbacks import Sender

        sender = Sender(self.stack.callback_url)
        url = media_url or self.media_url
        callbacks = [session_callbacks(media_url=url)[-1] for _ in range(count)]

        def send(callback: Any) -> int:
            prepared = prepare(callback, self.stack.callback_url, TOKEN, signer=project_signer)
            return sender.send(prepared).status

        with ThreadPoolExecutor(SENDERS) as pool:
            statuses = list(pool.map(send, callbacks))
        refused = [s for s in statuses if s != 200]
        if refused:
            raise SystemExit(f"{len(refused)} callback(s) not accepted: {sorted(set(refused))}")
        return [c.session_uuid for c in callbacks]

    def archived(self, sessions: list[str]) -> int:
        """How many of these sessions' Completed items are ARCHIVED (consistent reads)."""
        return sum(1 for item in self.items(sessions) if self.status(item) == "ARCHIVED")

    @staticmethod
    def status(item: dict[str, Any]) -> str:
        return str(item.get("ArchiveStatus", {}).get("S", ""))

    def items(self, sessions: list[str]) -> list[dict[str, Any]]:
        """These sessions' Completed items: status, attempts, last error (consistent reads)."""
        from recording_archive.models import item as fields

        table = self.stack.resources.table_name
        found: list[dict[str, Any]] = []
        for start in range(0, len(sessions), 100):
            keys = [
                {"SessionUUID": {"S": s}, "SequenceNumber": {"N": "2"}}
                for s in sessions[start : start + 100]
            ]
            names = (
                fields.ARCHIVE_STATUS,
                fields.ARCHIVE_ATTEMPTS,
                fields.ARCHIVE_LAST_ERROR,
                fields.ARCHIVE_DUE_AT,
                "ArchiveEnqueuedUntil",
            )
            request: dict[str, Any] = {
                table: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": ", ".join(names),
                }
            }
            while request:
                answer = self.ddb.batch_get_item(RequestItems=request)
                found.extend(answer["Responses"].get(table, []))
                request = answer.get("UnprocessedKeys") or {}
        return found

    # -- one stream run -----------------------------------------------------------------------
    def stream_run(self, factor: int, count: int, *, slow: bool = False) -> dict[str, Any]:
        self.poller.held.set()
        self.poller.mapping = replace(self.poller.mapping, parallelization_factor=factor)
        started = time.perf_counter()
        sessions = self.post_completed(count, self.slow_media_url if slow else "")
        ingest = time.perf_counter() - started
        target = self.delivered.count + count
        workers = self.stack.workers["ArchiveFunction"]
        if hasattr(workers, "peak_concurrency"):
            workers.peak_concurrency = 0
        cpu = tree_cpu_seconds()
        released = time.perf_counter()
        self.poller.held.clear()
        # Generous: far above the slowest rate seen (about 1 recording per second per process).
        if not self.delivered.wait_for(target, timeout=120 + 2.0 * count):
            raise SystemExit(f"pf {factor}: {self.delivered.count}/{target} delivered in time")
        seconds = time.perf_counter() - released
        after = tree_cpu_seconds()
        cpu_by_role = {
            role: round((after[role] - cpu.get(role, 0.0)) / count, 4)
            for role in sorted(after)
            if after[role] - cpu.get(role, 0.0) > 0
        }
        load = os.getloadavg()[0]
        self.poller.held.set()
        # A record the function returned without archiving (an attempt that failed, recorded
        # on the item and backed off for the sweeper) is not counted as archived.
        items = self.items(sessions)
        archived = sum(1 for item in items if self.status(item) == "ARCHIVED")
        left = [
            {k: next(iter(v.values())) for k, v in item.items()}
            for item in items
            if self.status(item) != "ARCHIVED"
        ]
        return {
            "factor": factor,
            "media": f"{self.slow_seconds} s per download" if slow else "loopback, full speed",
            "recordings": count,
            "archived": archived,
            "left_to_the_sweeper": left[:20],
            "seconds": round(seconds, 2),
            "per_second": round(archived / seconds, 2),
            "ingest_seconds": round(ingest, 2),
            # Invocations seen in flight at once (ArchiveFunction's worker pool).
            "peak_concurrency": getattr(workers, "peak_concurrency", 1),
            # CPU of this stack's processes per recording, and the machine's load meanwhile
            # (other work on the machine takes CPU from the stack).
            "cpu_seconds_per_recording": round(sum(cpu_by_role.values()), 3),
            "cpu_seconds_per_recording_by_process": cpu_by_role,
            "load_average_1m": round(load, 2),
        }

    # -- the sweeper's drain ------------------------------------------------------------------
    def sweep_run(self, count: int) -> dict[str, Any]:
        from recording_archive_cli.local.event_sources import SchedulePoller

        if "ArchiveWorkFunction" not in self.stack.workers:
            return {"error": "no ArchiveWorkFunction in the local stack"}
        self.poller.held.set()
        sessions = self.post_completed(count)
        # Due by the sweep's own clock (whole seconds): with no grace, an item received in the
        # sweep's second would not be due yet.
        time.sleep(2)
        schedule = next(p for p in self.stack.pollers if isinstance(p, SchedulePoller))
        sqs = self.stack.session.client("sqs", endpoint_url=self.stack.resources.endpoint_url)
        queue = self.stack.resources.archive_work_queue_url

        def queue_empty() -> bool:
            names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=names)
            return all(int(attrs["Attributes"][n]) == 0 for n in names)

        started = time.perf_counter()
        # A sweep stops early when its invocation runs low on time; the next one continues
        # (every SweepSchedule in AWS): here the next sweep starts as soon as the queue is empty.
        sweeps = [schedule.tick()]
        deadline = started + float(os.environ.get("BENCH_SWEEP_TIMEOUT", 120 + 1.0 * count))
        done = last = 0
        progress = started
        while time.perf_counter() < deadline and done < count:
            time.sleep(0.5)
            done = self.archived(sessions)
            if done > last:
                last, progress = done, time.perf_counter()
            elif time.perf_counter() - progress > STALL_SECONDS and queue_empty():
                if len(sweeps) >= MAX_SWEEPS:
                    break  # no progress with an empty queue, sweep after sweep: stuck
                sweeps.append(schedule.tick())
        seconds = progress - started
        result: dict[str, Any] = {
            "pending": count,
            "archived": done,
            "seconds": round(seconds, 2),
            "per_second": round(done / seconds, 2) if seconds > 0 else 0.0,
            "sweeps": sweeps,
        }
        if done < count:
            # What the items left behind look like (for whoever debugs the work queue path).
            result["not_archived"] = [
                {k: next(iter(v.values())) for k, v in item.items()}
                for item in self.items(sessions)
                if self.status(item) != "ARCHIVED"
            ][:10]
        return result


def _say(run: dict[str, Any]) -> None:
    print(
        f"  pf {run['factor']} ({run['media']}): {run['archived']}/{run['recordings']} archived "
        f"in {run['seconds']} s = {run['per_second']}/s (ingest {run['ingest_seconds']} s, in "
        f"flight {run['peak_concurrency']}, {run['cpu_seconds_per_recording']} CPU s per "
        f"recording, load {run['load_average_1m']})",
        flush=True,
    )


def measure(
    burst: int,
    repeats: int,
    sweep: int,
    warmup: int,
    slow_burst: int = 0,
    *,
    slow_seconds: float = SLOW_MEDIA_SECONDS,
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    harness = Harness(work, slow_seconds)
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    slow_runs: list[dict[str, Any]] = []
    try:
        harness.start()
        default = harness.default_factor
        print(
            f"throughput: stack up in {time.perf_counter() - started:.1f} s, default pf {default}"
        )
        if burst or slow_burst:
            harness.stream_run(default, warmup)  # every worker's cold start; not counted
        order = [1, default] if default != 1 else [1]
        for repeat in range(repeats if burst or slow_burst else 0):
            for factor in order if repeat % 2 == 0 else order[::-1]:
                if burst:
                    runs.append(harness.stream_run(factor, burst))
                    _say(runs[-1])
                if slow_burst:
                    slow_runs.append(harness.stream_run(factor, slow_burst, slow=True))
                    _say(slow_runs[-1])
        sweep_result: dict[str, Any] = (
            harness.sweep_run(sweep) if sweep else {"error": "not run (--sweep 0)"}
        )
        print(f"  sweep: {sweep_result}", flush=True)
    finally:
        harness.stop()
    results: dict[str, Any] = {"archive_parallelization_factor": default}
    if runs:
        per = {f: [r["per_second"] for r in runs if r["factor"] == f] for f in {1, default}}
        results["archive_recordings_per_second"] = round(statistics.median(per[default]), 2)
        results["archive_recordings_per_second_pf1"] = round(statistics.median(per[1]), 2)
    if slow_runs:
        slow = {f: [r["per_second"] for r in slow_runs if r["factor"] == f] for f in {1, default}}
        results["archive_recordings_per_second_slow_media"] = round(
            statistics.median(slow[default]), 2
        )
        results["archive_recordings_per_second_slow_media_pf1"] = round(
            statistics.median(slow[1]), 2
        )
    if sweep_result.get("archived"):
        n, done = sweep_result["pending"], sweep_result["archived"]
        scaled = sweep_result["seconds"] * 10_000 / done
        results["sweeper_drain_seconds_10k"] = round(scaled, 1)
        results["sweeper_drain_seconds_10k_method"] = (
            "measured"
            if done >= 10_000
            else f"extrapolated linearly from {done} pending items drained in "
            f"{sweep_result['seconds']} s"
            + (f" ({n - done} of {n} left PENDING: see throughput_details)" if done < n else "")
        )
    else:
        results["sweeper_drain_seconds_10k"] = None
        results["sweeper_drain_seconds_10k_method"] = f"not measured: {sweep_result['error']}"
    results["throughput_details"] = {
        "runs": runs,
        "slow_media_runs": slow_runs,
        "sweep": sweep_result,
        "burst": burst,
        "recording_bytes": RECORDING_BYTES,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return results


def last_full_run(results_file: Path = LAST_FULL_RUN) -> dict[str, Any]:
    """The figures of the last full run (bench/throughput.json), labelled, for a quick bench."""
    try:
        previous = json.loads(results_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    found = {k: previous[k] for k in KEYS if k in previous}
    burst = (previous.get("throughput_details") or {}).get("burst", "?")
    found["throughput_source"] = (
        f"copied from the last full run ({results_file.name}, {previous.get('date', '?')}, "
        f"bursts of {burst}): not measured by this bench run (--quick or --reuse-throughput)"
        if found
        else "not measured (--quick) and no full run recorded yet"
    )
    return found


def full_run(
    burst: int = 2000,
    repeats: int = 1,
    sweep: int = 500,
    warmup: int = 40,
    slow: int = 200,
    *,
    slow_seconds: float = SLOW_MEDIA_SECONDS,
) -> dict[str, Any]:
    """Measure, and keep the figures in bench/throughput.json (what --quick reports)."""
    results = measure(burst, repeats, sweep, warmup, slow, slow_seconds=slow_seconds)
    results["throughput_source"] = "measured"
    results["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    # A run of some parts only (--burst 0, --slow 0, --sweep 0) keeps the others' last figures.
    try:
        kept = json.loads(LAST_FULL_RUN.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        kept = {}
    fresh = {k: v for k, v in results.pop("throughput_details").items() if v not in ([], None, 0)}
    details = {**kept.get("throughput_details", {}), **fresh}
    if not sweep and "sweeper_drain_seconds_10k" in kept:
        results.pop("sweeper_drain_seconds_10k", None)
        results.pop("sweeper_drain_seconds_10k_method", None)
        details["sweep"] = kept.get("throughput_details", {}).get("sweep")
    skipped = [
        name
        for name, count in (("stream bursts", burst), ("slow-media bursts", slow), ("sweep", sweep))
        if not count
    ]
    if skipped and kept:
        # Which figures this run measured, and which it kept from an earlier one.
        results["throughput_source"] = (
            f"measured on {results['date']} except the {', '.join(skipped)}: kept from the run "
            f"of {kept.get('date', '?')}"
        )
    merged = {**kept, **results, "throughput_details": details}
    LAST_FULL_RUN.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    return merged


def throughput(quick: bool) -> dict[str, Any]:
    """What bench/run.py merges into its results (--quick: the last full run's, labelled)."""
    if quick:
        return last_full_run()
    results = full_run()  # the details stay in bench/throughput.json
    return {k: results[k] for k in (*KEYS, "throughput_source") if k in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the last full run's figures")
    parser.add_argument("--burst", type=int, default=2000, help="recordings per run (2000)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each factor (1)")
    parser.add_argument("--sweep", type=int, default=500, help="pending items swept (500)")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument(
        "--slow", type=int, default=200, help="recordings per slow-media run (200; 0: none)"
    )
    parser.add_argument(
        "--slow-seconds",
        type=float,
        default=SLOW_MEDIA_SECONDS,
        help=f"seconds each slow-media download takes ({SLOW_MEDIA_SECONDS})",
    )
    parser.add_argument("--output", default=None, help="also write the figures to this file")
    # A full run writes bench/throughput.json; --quick reads it.
    args = parser.parse_args()
    started = time.perf_counter()
    if args.quick:
        results = last_full_run()
    else:
        results = full_run(
            args.burst,
            args.repeats,
            args.sweep,
            args.warmup,
            args.slow,
            slow_seconds=args.slow_seconds,
        )
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    print(f"throughput: {time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
