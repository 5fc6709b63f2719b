"""`make bench`: cold start, warm cost per callback, archive memory and time, artifact sizes.

Every figure is a median of repeated runs, every ratio is taken against a baseline measured in
the same run. What is measured, and against what (details in bench/README.md):

- cold_start_ratio_callback / _archive: a fresh runtime-Python process with only the built
  function directory on sys.path imports the handler and serves one real invocation (a signed
  callback; a stream batch with one small recording) against a moto_server on loopback, divided
  by the floor: a fresh process that imports boto3, creates its one client and makes the one
  essential call (put_item; GET from the media server + put_object).
- cold_start_ratio_*_required_floor: the same handlers against the work each is required to do
  with the libraries it is required to use and none of the project's code (lambda_child.py
  floor-callback-required / floor-archive-required); cold_start_ratio_required_floor and
  cold_start_ratio_archive_required_floor_vs_floor: that required work against the plain floor.
- warm_ratio_callback: mean time per signed callback through the warm handler (500 callbacks a
  run, 7 rounds), divided by the honest floor's: parse_qs + one HMAC + the same conditional
  put_item of the handler's own item, same server; the median of the rounds' ratios, the order
  of the runs turning each round. warm_ratio_callback_required_floor: against that floor plus
  the session index's BatchWriteItem, which issue 15 puts on the callback's path. Also
  measured (details only): the plain floor, whose put_item writes four attributes
  unconditionally.
- archive_peak_rss_mib_* / archive_time_ratio_1gib: bench/archive_upload.py (archiver vs boto3
  upload_fileobj with default settings into a separate moto_server), 3 interleaved pairs.
- artifact_mib_*: unzipped size of each built function directory.
- cost_usd_per_10k_sessions (+ _parts, storage_usd_per_month_per_10k_sessions): bench/cost.py
  priced with bench/prices.json, from the calls, item sizes, durations and log output of a
  session's two callbacks and one 5 MiB recording's archiving, measured here.

The built artifact targets arm64; on another machine its one native extension (pydantic_core) is
swapped for the same version's wheel for this machine, in a copy under bench/.work/; every other
file, including the bytecode, is the artifact's own.

    .venv/bin/python bench/run.py --build-dir .aws-sam/build [--quick]
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
sys.path[:0] = [str(ROOT), str(ROOT / "functions"), str(ROOT / "cli")]

MiB = 1024 * 1024
TOKEN = "bench-auth-token-0123456789abcdef"  # noqa: S105 - a local dummy
AUTH_ID = "MABENCHXXXXXXXXXXXXX"
CALLBACK_URL = "https://bench.example.com/callbacks/recording"
SMALL_RECORDING = 256 * 1024
# The cost model's recording (bench/prices.json "assumptions"): a 5-minute mp3.
SESSION_RECORDING = int(
    json.loads((ROOT / "bench" / "prices.json").read_text())["assumptions"]["recording_bytes"]
)
FUNCTIONS = {"callback": "CallbackFunction", "archive": "ArchiveFunction"}
KEYS = (
    "cold_start_ratio_callback",
    "cold_start_ratio_archive",
    "cold_start_ratio_callback_required_floor",
    "cold_start_ratio_required_floor",
    "cold_start_ratio_archive_required_floor",
    "cold_start_ratio_archive_required_floor_vs_floor",
    "warm_ratio_callback",
    "warm_ratio_callback_required_floor",
    "archive_peak_rss_mib_100mib",
    "archive_peak_rss_mib_1gib",
    "archive_time_ratio_1gib",
    "artifact_mib_callback",
    "artifact_mib_archive",
    "cost_usd_per_10k_sessions",
    "archive_recordings_per_second",
    "archive_recordings_per_second_pf1",
    "archive_recordings_per_second_slow_media",
    "archive_recordings_per_second_slow_media_pf1",
    "sweeper_drain_seconds_10k",
)


def runtime_python(template: Path) -> str:
    import re

    match = re.search(r"Runtime:\s*python(3\.\d+)", template.read_text(encoding="utf-8"))
    version = match.group(1) if match else "3.13"
    exe = shutil.which(f"python{version}")
    if exe is None:
        raise SystemExit(f"python{version} (the functions' runtime) is not on PATH")
    # The interpreter itself, not a launcher such as a pyenv shim (a shell script that would add
    # its own start-up time to every measured process).
    real = subprocess.run(
        [exe, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, check=True
    )
    return real.stdout.strip()


def _dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MiB


def native_twin(build_dir: Path, function: str, python: str, variant: str, overlay: bool) -> Path:
    """A copy of the built function runnable on this machine (see the module docstring).

    variant "source" drops the bytecode (what `sam build` alone ships); overlay replaces our
    package with the working tree's (to measure a code change without a full rebuild).
    """
    src = build_dir / function
    if not (src / "recording_archive").is_dir():
        raise SystemExit(f"{src} is not a built function: run `make build` first")
    dest = WORK / f"native-{variant}" / function
    # The same build (its .built stamp) made into the same variant: the copy is reused.
    built = src.parent / ".built"
    stamp = f"{built.stat().st_mtime_ns if built.exists() else 'none'}:{variant}:{overlay}"
    marker = dest / ".bench-twin"
    if not overlay and built.exists() and marker.is_file() and marker.read_text("utf-8") == stamp:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, symlinks=True)
    if overlay:
        shutil.rmtree(dest / "recording_archive")
        shutil.copytree(
            ROOT / "functions" / "recording_archive",
            dest / "recording_archive",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    host_tag = f"{platform.machine()}-linux"
    if not list((dest / "pydantic_core").glob(f"_pydantic_core.*{host_tag}*")):
        dist = next(dest.glob("pydantic_core-*.dist-info"))
        version = dist.name.removeprefix("pydantic_core-").removesuffix(".dist-info")
        wheels = WORK / f"pydantic_core-{version}-{platform.machine()}"
        if not wheels.exists():
            subprocess.run(
                [
                    *(python, "-m", "pip", "install", "--quiet", "--no-deps"),
                    *("--only-binary=:all:", "--target", str(wheels), f"pydantic-core=={version}"),
                ],
                check=True,
            )
        shutil.rmtree(dest / "pydantic_core")
        shutil.copytree(wheels / "pydantic_core", dest / "pydantic_core")
    if variant == "source":
        for cache in list(dest.rglob("__pycache__")):
            shutil.rmtree(cache)
    else:
        # Only what was replaced above needs compiling; the rest keeps the artifact's bytecode.
        for pkg in ("pydantic_core", "recording_archive"):
            subprocess.run(
                [
                    *(python, "-m", "compileall", "-q"),
                    *("--invalidation-mode", "unchecked-hash", str(dest / pkg)),
                ],
                check=True,
            )
    marker.write_text(stamp, encoding="utf-8")
    return dest


def handler_item(event: dict[str, Any]) -> dict[str, Any]:
    """The typed item the callback handler writes for this event, built by the project's code."""
    from recording_archive.dal.events_table import serialize_item
    from recording_archive.logic.callback_request import decode_request, validate_callback
    from recording_archive.logic.store_callback import build_item

    body = event["body"]
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    headers = {k.lower(): v for k, v in event["headers"].items()}
    request = decode_request("POST", headers, raw, "")
    callback = validate_callback(request, allow_loopback_http=True)
    item = build_item(callback, request, received_at=datetime.now(UTC), retention_days=0)
    return serialize_item(item)


def handler_index_entries(event: dict[str, Any], endpoint: str, res: Any) -> list[dict[str, Any]]:
    """The typed session index entries the callback handler writes for this event, built by the
    project's code (its NumberBlinder asks the local KMS for the MACs, as the handler does)."""
    from recording_archive.dal.events_table import deserialize_item

    index = _session_index(endpoint, res.index_table_name, res.number_index_key_arn)
    return list(index.typed_entries(deserialize_item(handler_item(event))))


@functools.cache
def _session_index(endpoint: str, table: str, key_arn: str) -> Any:
    import boto3

    from recording_archive.dal.session_index import NumberBlinder, SessionIndex

    client = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    return SessionIndex(
        boto3.client("dynamodb", **client),
        table,
        NumberBlinder(boto3.client("kms", **client), key_arn),
    )


def signed_callback(
    media_url: str,
    event_name: str = "SessionRecordingCompleted",
    recording: str = "small.mp3",
    duration: str = "15",
) -> dict[str, Any]:
    from tests.support.callback_flow import signed_form_event
    from tests.support.plivo import recording_event

    params = recording_event(
        event_name, recording_url=f"{media_url}/{recording}", duration=duration
    )
    return signed_form_event(params, TOKEN, url=CALLBACK_URL)


def session_of(event: dict[str, Any]) -> str:
    """The SessionUUID of a signed callback event (form body)."""
    return str(base64.b64decode(event["body"]).decode().split("SessionUUID=")[1].split("&")[0])


def function_memory_mb(template: Path) -> dict[str, int]:
    """Each function's configured MemorySize (template.yaml, Globals included): what Lambda
    bills GB-seconds at."""
    from recording_archive_cli.local.functions import function_ids, function_setting
    from recording_archive_cli.local.template import load_template

    loaded = load_template(template)
    return {f: function_setting(loaded, f, "MemorySize", 128) for f in function_ids(loaded)}


def function_timeouts_ms(template: Path) -> dict[str, int]:
    """Each function's Timeout (template.yaml, Globals included) in ms: the bench's Lambda
    context starts with that much time left, as Lambda's does (the archiver refuses to start a
    transfer it could not finish before its stop margin)."""
    from recording_archive_cli.local.functions import function_ids, function_setting
    from recording_archive_cli.local.template import load_template

    loaded = load_template(template)
    return {f: function_setting(loaded, f, "Timeout", 3) * 1000 for f in function_ids(loaded)}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.build_dir = Path(args.build_dir).resolve()
        self.python = runtime_python(self.build_dir / "template.yaml")
        self.timeouts_ms = function_timeouts_ms(ROOT / "template.yaml")
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))
        self.procs: list[subprocess.Popen[str]] = []

    # -- servers and resources ----------------------------------------------------------------
    def start(self) -> None:
        from recording_archive_cli.local.functions import function_environment
        from recording_archive_cli.local.resources import create_local_resources
        from tests.support.net import free_port, wait_http

        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        base_env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        base_env.pop("AWS_PROFILE", None)
        os.environ.update({k: base_env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
        os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
        venv_bin = Path(sys.executable).parent
        self.procs.append(
            subprocess.Popen(
                [str(venv_bin / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=base_env,
            )
        )
        media = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.support.media_server", "--port", "0"),
                *("--generated", f"/small.mp3:{SMALL_RECORDING}:5"),
                *("--generated", f"/session.mp3:{SESSION_RECORDING}:7"),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=base_env,
        )
        self.procs.append(media)
        assert media.stdout is not None
        self.media_url = media.stdout.readline().strip()
        wait_http(f"{self.endpoint}/moto-api/data.json")
        self.res = create_local_resources(self.endpoint, auth_tokens=[TOKEN], auth_id=AUTH_ID)
        child_env = {
            k: v for k, v in base_env.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))
        }
        child_env |= {"AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1"}
        self.env = {
            name: child_env
            | function_environment(
                logical_id,
                self.res,
                overrides={"PUBLIC_CALLBACK_URL": CALLBACK_URL, "MEDIA_ALLOW_LOOPBACK": "true"},
            )
            for name, logical_id in FUNCTIONS.items()
        }
        self.floor_env = child_env

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- one child ----------------------------------------------------------------------------
    def child(self, mode: str, function_dir: Path, event: Any, env: dict[str, str], *extra: str):
        event_file = self.tmp / f"{uuid.uuid4().hex}.json"
        out_file = event_file.with_suffix(".out")
        event_file.write_text(json.dumps(event), encoding="utf-8")
        cmd = [self.python, "-I", "-B", str(ROOT / "bench" / "lambda_child.py"), mode]
        cmd += ["--build-dir", str(function_dir), "--event", str(event_file)]
        function = "ArchiveFunction" if "archive" in mode else "CallbackFunction"
        cmd += ["--remaining-ms", str(self.timeouts_ms[function])]
        cmd += ["--out", str(out_file), *extra]
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        wall = (time.perf_counter() - started) * 1000
        if proc.returncode != 0 or not out_file.exists():
            sys.stderr.write(proc.stderr[-4000:] + proc.stdout[-2000:])
            raise SystemExit(f"bench child {mode} failed")
        result: dict[str, Any] = json.loads(out_file.read_text(encoding="utf-8"))
        result["process_ms"] = wall
        # What the function wrote to its log (JSON log lines, EMF metrics): CloudWatch Logs.
        result["log_bytes"] = len(proc.stdout.encode("utf-8")) + len(proc.stderr.encode("utf-8"))
        event_file.unlink()
        out_file.unlink()
        return result

    # -- cold start ---------------------------------------------------------------------------
    def cold(self, dirs: dict[str, Path], reps: int) -> dict[str, Any]:
        from tests.support.streams import stream_records

        runs: dict[str, list[dict[str, Any]]] = {
            k: []
            for k in (
                "callback",
                "floor-callback",
                "floor-callback-required",
                "archive",
                "floor-archive",
                "floor-archive-required",
            )
        }
        # Each callback run stores a new SessionRecordingCompleted event; its stream record is
        # then the batch one archive run archives (a new recording each time, never a 412).
        sessions: list[str] = []
        required_sessions: list[str] = []
        for i in range(reps):
            runs["floor-callback"].append(
                self.child(
                    "floor-callback",
                    dirs["callback"],
                    {},
                    self.floor_env,
                    "--table",
                    self.res.table_name,
                    "--key",
                    f"floor-{i}-{uuid.uuid4()}",
                )
            )
            required = signed_callback(self.media_url)
            required_sessions.append(session_of(required))
            runs["floor-callback-required"].append(
                self.child(
                    "floor-callback-required",
                    dirs["callback"],
                    required | {"benchItem": handler_item(required)},
                    self.env["callback"],
                    *("--table", self.res.table_name, "--url", CALLBACK_URL),
                )
            )
            event = signed_callback(self.media_url)
            sessions.append(session_of(event))
            runs["callback"].append(
                self.child("cold-callback", dirs["callback"], event, self.env["callback"])
            )
        records = stream_records(self.endpoint, self.res.stream_arn)
        by_session = {
            r["dynamodb"]["Keys"]["SessionUUID"]["S"]: r
            for r in records
            if r["eventName"] == "INSERT"
        }
        for i, session in enumerate(sessions):
            runs["floor-archive"].append(
                self.child(
                    "floor-archive",
                    dirs["archive"],
                    {},
                    self.floor_env,
                    "--bucket",
                    self.res.bucket_name,
                    "--url",
                    f"{self.media_url}/small.mp3",
                    "--key",
                    f"floor/{i}-{uuid.uuid4()}.mp3",
                )
            )
            batch = {"Records": [by_session[session]]}
            runs["archive"].append(
                self.child("cold-archive", dirs["archive"], batch, self.env["archive"])
            )
            required_batch = {"Records": [by_session[required_sessions[i]]]}
            runs["floor-archive-required"].append(
                self.child(
                    "floor-archive-required", dirs["archive"], required_batch, self.env["archive"]
                )
            )
        med = {
            name: {
                k: statistics.median(r[k] for r in rs)
                for k in ("import_ms", "invoke_ms", "total_ms", "process_ms", "peak_rss_mib")
            }
            | {"total_ms_range": [min(r["total_ms"] for r in rs), max(r["total_ms"] for r in rs)]}
            for name, rs in runs.items()
        }
        return {
            "cold": med,
            "cold_start_ratio_callback": med["callback"]["total_ms"]
            / med["floor-callback"]["total_ms"],
            "cold_start_ratio_archive": med["archive"]["total_ms"]
            / med["floor-archive"]["total_ms"],
            # The callback against the work it is required to do with the libraries it is
            # required to use (lambda_child.py floor-callback-required): the project's own cost.
            "cold_start_ratio_callback_required_floor": med["callback"]["total_ms"]
            / med["floor-callback-required"]["total_ms"],
            # That required work against the plain floor: what the libraries and calls cost.
            "cold_start_ratio_required_floor": med["floor-callback-required"]["total_ms"]
            / med["floor-callback"]["total_ms"],
            "cold_start_ratio_archive_required_floor": med["archive"]["total_ms"]
            / med["floor-archive-required"]["total_ms"],
            "cold_start_ratio_archive_required_floor_vs_floor": med["floor-archive-required"][
                "total_ms"
            ]
            / med["floor-archive"]["total_ms"],
        }

    # -- warm ---------------------------------------------------------------------------------
    def warm(self, dirs: dict[str, Path], count: int, reps: int) -> dict[str, Any]:
        warmup = 20
        modes = ("warm-floor", "warm-floor-item", "warm-floor-required", "warm-callback")
        means: dict[str, list[float]] = {mode: [] for mode in modes}
        for rep in range(reps):
            # Fresh events for every run: each callback is a new event (stored, not duplicate).
            # The order turns by one each round, so that no mode always runs first or last
            # (a load change between runs would otherwise favour one of them).
            for mode in modes[rep % len(modes) :] + modes[: rep % len(modes)]:
                events = [signed_callback(self.media_url) for _ in range(count + warmup)]
                if mode in ("warm-floor-item", "warm-floor-required"):
                    events = [event | {"benchItem": handler_item(event)} for event in events]
                if mode == "warm-floor-required":
                    events = [
                        event
                        | {"benchIndex": handler_index_entries(event, self.endpoint, self.res)}
                        for event in events
                    ]
                env = self.env["callback"] if mode == "warm-callback" else self.floor_env
                result = self.child(
                    mode,
                    dirs["callback"],
                    events,
                    env,
                    "--table",
                    self.res.table_name,
                    "--token",
                    TOKEN,
                    "--url",
                    CALLBACK_URL,
                    "--warmup",
                    str(warmup),
                    "--index-table",
                    self.res.index_table_name,
                )
                means[mode].append(result["mean_ms"])
        handler = statistics.median(means["warm-callback"])
        floor = statistics.median(means["warm-floor"])
        floor_item = statistics.median(means["warm-floor-item"])
        floor_required = statistics.median(means["warm-floor-required"])

        def ratio(floor_mode: str) -> float:
            """Median of each round's ratio: a round's runs are minutes apart, not the bench."""
            return statistics.median(
                h / f for h, f in zip(means["warm-callback"], means[floor_mode], strict=True)
            )

        return {
            "warm": {
                "handler_ms": handler,
                "floor_ms": floor,
                "floor_same_item_ms": floor_item,
                "floor_required_ms": floor_required,
                # The handler against the plain floor (four attributes, no condition): what the
                # item's size and condition add on top of the handler's own code.
                "ratio_plain_floor": ratio("warm-floor"),
                "ratios_per_round": [
                    round(h / f, 3)
                    for h, f in zip(means["warm-callback"], means["warm-floor-item"], strict=True)
                ],
                "callbacks": count,
                "runs": reps,
            },
            # Issue 17: against the honest floor, the same conditional write of the handler's
            # own item; the handler's code, libraries and other calls (the session index) are
            # what remains.
            "warm_ratio_callback": ratio("warm-floor-item"),
            # Against the work issue 15 adds to the callback's path: the same item write and
            # the session index's entries (one BatchWriteItem; the MACs are cached once warm).
            "warm_ratio_callback_required_floor": ratio("warm-floor-required"),
        }

    # -- cost of a session ---------------------------------------------------------------
    def cost(self, dirs: dict[str, Path], cold_med: dict[str, Any], callback_ms: float):
        """Measure what one session makes the functions do, and price it (bench/cost.py).

        The two callbacks of a session (Initiated, Completed) with their AWS calls counted; the
        Completed one's recording (SESSION_RECORDING bytes) archived by a cold child, calls
        counted, and by a warm child (one warm-up record, then three timed): the archiver's
        duration. The archived item is read back for its size. Callback duration: the warm
        bench's mean per callback; init: a cold run's total less the warm duration.
        """
        import boto3

        from bench.cost import (
            FunctionRun,
            SessionMeasurements,
            item_size,
            load_prices,
            per_sessions,
            session_cost,
            storage_per_month,
        )
        from tests.support.streams import stream_records

        prices = load_prices()
        memory = function_memory_mb(ROOT / "template.yaml")
        counted: dict[str, dict[str, Any]] = {}
        for name in ("SessionRecordingInitiated", "SessionRecordingCompleted"):
            event = signed_callback(self.media_url, name, "session.mp3", "300")
            counted[name] = self.child(
                "cold-callback", dirs["callback"], event, self.env["callback"], "--count-calls"
            )
            counted[name]["session"] = session_of(event)
        # Four more Completed events for the warm archiver, stored by one warm callback child.
        more = [signed_callback(self.media_url, recording="session.mp3") for _ in range(4)]
        self.child("warm-callback", dirs["callback"], more, self.env["callback"], "--warmup", "0")
        records = {
            r["dynamodb"]["Keys"]["SessionUUID"]["S"]: r
            for r in stream_records(self.endpoint, self.res.stream_arn)
            if r["eventName"] == "INSERT"
        }
        completed = records[counted["SessionRecordingCompleted"]["session"]]
        cold_archive = self.child(
            "cold-archive",
            dirs["archive"],
            {"Records": [completed]},
            self.env["archive"],
            "--count-calls",
        )
        batches = [{"Records": [records[session_of(e)]]} for e in more]
        warm_archive = self.child("warm-archive", dirs["archive"], batches, self.env["archive"])
        archive_ms = statistics.median(warm_archive["durations_ms"])
        ddb = boto3.client("dynamodb", endpoint_url=self.endpoint, region_name="us-east-1")
        archived = ddb.get_item(
            TableName=self.res.table_name, Key=completed["dynamodb"]["Keys"], ConsistentRead=True
        )["Item"]
        callback_init = cold_med["callback"]["total_ms"] - callback_ms
        callbacks = [
            FunctionRun(
                calls=run["calls"],
                duration_ms=callback_ms,
                init_ms=max(0.0, callback_init),
                memory_mb=memory["CallbackFunction"],
                log_bytes=run["log_bytes"],
            )
            for run in counted.values()
        ]
        archive = FunctionRun(
            calls=cold_archive["calls"],
            duration_ms=archive_ms,
            init_ms=max(0.0, cold_archive["total_ms"] - archive_ms),
            memory_mb=memory["ArchiveFunction"],
            log_bytes=cold_archive["log_bytes"],
        )
        measured = SessionMeasurements(callbacks=callbacks, archive=archive, archived_item=archived)
        per_10k = per_sessions(session_cost(measured, prices))
        stored_items = [
            item_size(c["item"])
            for r in counted.values()
            for c in r["calls"]
            if c["operation"] == "PutItem" and c.get("table") == self.res.table_name
        ]
        index_items = [
            item_size(i)
            for r in counted.values()
            for c in r["calls"]
            if c["operation"] == "BatchWriteItem"
            for i in c["items"]
        ]
        # What stays stored: the Initiated event, the Completed event as archived, the index
        # entries of both.
        storage = storage_per_month(
            prices,
            recording_bytes=SESSION_RECORDING,
            item_bytes=[*stored_items[:1], item_size(archived), *index_items],
        )
        return {
            "cost_usd_per_10k_sessions": per_10k.pop("total"),
            "cost_usd_per_10k_sessions_parts": per_10k,
            "storage_usd_per_month_per_10k_sessions": {
                k: round(v * 10_000, 2) for k, v in storage.items()
            },
            "details": {
                "prices_as_of": prices["as_of"],
                "memory_mb": {
                    "callback": memory["CallbackFunction"],
                    "archive": memory["ArchiveFunction"],
                },
                "callback_ms": round(callback_ms, 2),
                "callback_init_ms": round(callback_init, 1),
                "archive_ms_5mib": [round(d, 1) for d in warm_archive["durations_ms"]],
                "archive_init_ms": round(archive.init_ms, 1),
                "peak_rss_mib": {
                    "callback": max(r["peak_rss_mib"] for r in counted.values()),
                    "archive_cold": cold_archive["peak_rss_mib"],
                    "archive_warm": warm_archive["peak_rss_mib"],
                },
                "item_bytes": {
                    "callbacks": stored_items,
                    "archived": item_size(archived),
                    "index_entries": index_items,
                },
                "log_bytes": {
                    "callbacks": [r["log_bytes"] for r in counted.values()],
                    "archive": cold_archive["log_bytes"],
                },
                "calls": {
                    name: _call_counts(run["calls"])
                    for name, run in (*counted.items(), ("archive", cold_archive))
                },
            },
        }


def _call_counts(calls: list[dict[str, Any]]) -> dict[str, int]:
    from collections import Counter

    counts = Counter(f"{c['service']}:{c['operation']}" for c in calls)
    return dict(sorted(counts.items()))


def archive_upload(quick: bool) -> dict[str, Any]:
    """bench/archive_upload.py in its own process (it starts its own moto_server)."""
    out = WORK / "archive_upload.json"
    cmd = [sys.executable, str(ROOT / "bench" / "archive_upload.py"), "--output", str(out)]
    # Quick: 100 MiB only, two interleaved pairs (a smoke run within its minute; the committed
    # figures come from the full run's three pairs of each size).
    subprocess.run(cmd + (["--quick", "--reps", "2"] if quick else []), check=True, cwd=ROOT)
    return dict(json.loads(out.read_text(encoding="utf-8")))


def table(results: dict[str, Any]) -> str:
    goals = {
        "cold_start_ratio_callback": "<= 1.3",
        "cold_start_ratio_archive": "<= 1.3",
        "cold_start_ratio_callback_required_floor": "",
        "cold_start_ratio_required_floor": "",
        "cold_start_ratio_archive_required_floor": "",
        "cold_start_ratio_archive_required_floor_vs_floor": "",
        "warm_ratio_callback": "<= 1.15",
        "warm_ratio_callback_required_floor": "",
        "archive_peak_rss_mib_100mib": "<= 128",
        "archive_peak_rss_mib_1gib": "<= 128, flat",
        "archive_time_ratio_1gib": "<= 1.0",
        "artifact_mib_callback": "",
        "artifact_mib_archive": "",
        "cost_usd_per_10k_sessions": "",
        "archive_recordings_per_second": "> pf1 (default factor)",
        "archive_recordings_per_second_pf1": "",
        "archive_recordings_per_second_slow_media": "> pf1 (slowed downloads)",
        "archive_recordings_per_second_slow_media_pf1": "",
        "sweeper_drain_seconds_10k": "",
    }
    lines = [f"{'figure':<40} {'value':>9}  goal", "-" * 62]
    for key in KEYS:
        if key in results:
            lines.append(f"{key:<40} {results[key]:>9}  {goals[key]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default=str(ROOT / ".aws-sam" / "build"))
    parser.add_argument("--quick", action="store_true", help="fewer runs, 100 MiB file only")
    parser.add_argument(
        "--only", choices=["all", "cold", "warm", "archive", "size", "throughput"], default="all"
    )
    parser.add_argument(
        "--variant",
        choices=["bytecode", "source"],
        default="bytecode",
        help="source: the artifact without its bytecode (what sam build alone ships)",
    )
    parser.add_argument(
        "--overlay-source",
        action="store_true",
        help="use the working tree's recording_archive instead of the built one",
    )
    parser.add_argument("--reps", type=int, default=0, help="cold start runs (default 11/5)")
    parser.add_argument("--callbacks", type=int, default=0, help="warm callbacks (2000/300)")
    parser.add_argument(
        "--reuse-throughput",
        action="store_true",
        help="take the throughput figures from bench/throughput.json (its ~20-minute run skipped)",
    )
    parser.add_argument("--output", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args()
    reps = args.reps or (3 if args.quick else 11)
    callbacks = args.callbacks or (100 if args.quick else 500)
    warm_runs = 1 if args.quick else 7
    WORK.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    details: dict[str, Any] = {}
    started = time.monotonic()
    # Seconds from the start at the end of each phase (details.json: where a run's time goes).
    phases: dict[str, float] = {}
    bench = Bench(args)
    if args.only in ("all", "size"):
        for name, function in FUNCTIONS.items():
            results[f"artifact_mib_{name}"] = round(_dir_mib(bench.build_dir / function), 1)
    if args.only in ("all", "cold", "warm"):
        dirs = {
            name: native_twin(
                bench.build_dir, function, bench.python, args.variant, args.overlay_source
            )
            for name, function in FUNCTIONS.items()
        }
        try:
            bench.start()
            phases["start"] = time.monotonic() - started
            if args.only in ("all", "cold"):
                cold = bench.cold(dirs, reps)
                phases["cold"] = time.monotonic() - started
                details["cold_ms_medians"] = cold.pop("cold")
                results |= {k: round(v, 2) for k, v in cold.items()}
            if args.only in ("all", "warm"):
                warm = bench.warm(dirs, callbacks, warm_runs)
                details["warm_ms_per_callback"] = warm.pop("warm")
                results |= {k: round(v, 2) for k, v in warm.items()}
                phases["warm"] = time.monotonic() - started
            if args.only == "all":
                cost = bench.cost(
                    dirs,
                    details["cold_ms_medians"],
                    details["warm_ms_per_callback"]["handler_ms"],
                )
                details["cost"] = cost.pop("details")
                results |= cost
                phases["cost"] = time.monotonic() - started
        finally:
            bench.stop()
    if args.only in ("all", "archive"):
        upload = archive_upload(args.quick)
        details["archive_upload"] = upload
        phases["archive"] = time.monotonic() - started
        for key in ("archive_peak_rss_mib_100mib", "archive_peak_rss_mib_1gib"):
            if key in upload:
                results[key] = upload[key]
        if "archive_time_ratio_1gib" in upload:
            results["archive_time_ratio_1gib"] = upload["archive_time_ratio_1gib"]
    if args.only in ("all", "throughput"):  # bench/throughput.py (--quick: last full run's)
        from bench.throughput import throughput

        results |= throughput(args.quick or args.reuse_throughput)
        phases["throughput"] = time.monotonic() - started

    print()
    print(table(results))
    for name, med in details.get("cold_ms_medians", {}).items():
        print(
            f"  cold {name:<24} import {med['import_ms']:7.1f} ms  invoke {med['invoke_ms']:7.1f}"
            f" ms  total {med['total_ms']:7.1f} ms  (process {med['process_ms']:7.1f} ms)"
        )
    if "warm_ms_per_callback" in details:
        w = details["warm_ms_per_callback"]
        print(f"  warm handler {w['handler_ms']:.3f} ms/callback, floor {w['floor_ms']:.3f} ms")
        print(
            f"  floor writing the handler's own item {w['floor_same_item_ms']:.3f} ms "
            f"(warm_ratio_callback's floor); handler / plain floor = {w['ratio_plain_floor']:.2f}"
        )
    if "cost_usd_per_10k_sessions_parts" in results:
        parts = results["cost_usd_per_10k_sessions_parts"]
        print(
            "  cost per 10,000 sessions (USD): " + ", ".join(f"{k} {v}" for k, v in parts.items())
        )
        storage = results["storage_usd_per_month_per_10k_sessions"]
        print(
            "  storage per month, 10,000 sessions (USD): "
            + ", ".join(f"{k} {v}" for k, v in storage.items())
        )
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "runtime_python": subprocess.run(
            [bench.python, "-c", "import sys; print(sys.version.split()[0])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        "variant": args.variant + (" +overlay" if args.overlay_source else ""),
        "quick": args.quick,
        "cold_runs": reps,
        "seconds": round(time.monotonic() - started, 1),
        "phase_end_seconds": {k: round(v, 1) for k, v in phases.items()},
    }
    (WORK / "details.json").write_text(
        json.dumps({"meta": meta, "results": results, **details}, indent=2) + "\n", "utf-8"
    )
    # Only a full run writes the committed figures: a quick run is a smoke test of the bench
    # (fewer runs, no 1 GiB case), its figures in details.json.
    full = not args.quick and args.variant == "bytecode" and not args.overlay_source
    if args.only == "all" and full:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        # One run writes both committed files: bench/archive_upload.json holds the raw figures
        # (medians, ranges) that results.json's archive keys are taken from.
        upload_out = Path(args.output).with_name("archive_upload.json")
        upload_out.write_text(json.dumps(details["archive_upload"], indent=2) + "\n", "utf-8")
        print(
            f"wrote {args.output} and {upload_out.name} ({meta['seconds']} s);"
            f" details in {WORK / 'details.json'}"
        )
    elif args.only in ("throughput", "archive") and full:
        # These two phases have their own committed files (bench/throughput.json, written by
        # bench/throughput.py; bench/archive_upload.json, written here): a run of one of them
        # alone (for throughput, measured or --reuse-throughput) updates that file and
        # results.json's copy of its figures, and leaves every other figure as it is.
        out = Path(args.output)
        kept = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
        out.write_text(json.dumps(kept | results, indent=2) + "\n", encoding="utf-8")
        if args.only == "archive":
            upload_out = out.with_name("archive_upload.json")
            upload_out.write_text(json.dumps(details["archive_upload"], indent=2) + "\n", "utf-8")
        print(f"updated the {args.only} figures of {args.output} ({meta['seconds']} s)")
    else:
        kind = "quick" if args.quick else "partial"
        print(f"{kind} run: details in {WORK / 'details.json'} ({meta['seconds']} s)")


if __name__ == "__main__":
    main()
