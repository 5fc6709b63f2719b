"""Benchmark: the archiving process's memory and wall time, ours vs boto3 upload_fileobj.

Starts a separate `moto_server` process and the media server (tests/support/media_server.py) in
another process, both on 127.0.0.1, then for each file size runs, each in a fresh child process:
- `archive`:  MediaSource.open(url) -> RecordingStore.put_stream (project defaults),
- `baseline`: urllib3 GET (preload_content=False) -> boto3 `upload_fileobj` with default settings,
and records the child's peak RSS (VmHWM read by the child at its end) and wall time (from opening
the URL to the upload's return). moto keeps uploaded bodies in its own process: only the
archiving child is measured. The parent checks that every stored object's SHA-256 equals the
source's.

    .venv/bin/python bench/archive_upload.py                 # 100 MiB and 1 GiB, 3 runs each
    .venv/bin/python bench/archive_upload.py --quick         # 100 MiB, 3 runs
    .venv/bin/python bench/archive_upload.py --reps 5        # more runs

Runs are interleaved (archive, baseline, archive, baseline, ...) so that a change of load on the
machine hits both; every figure is the median of the runs, with its range (min, max) beside it,
and the time ratio is the median of each pair's ratio. Writes bench/.work/archive_upload.json;
`make bench` (bench/run.py) writes bench/archive_upload.json from the same run as
bench/results.json, so the two committed files always agree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

MiB = 1024 * 1024
BUCKET = "bench-archive"
OWNER = "123456789012"
SIZES = {"100mib": 100 * MiB, "1gib": 1024 * MiB}


def _proc_status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MiB
    return float("nan")


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- child: one measured run ---------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    import boto3

    rss_after_imports_start = _proc_status("VmRSS")
    s3 = boto3.client("s3", endpoint_url=args.endpoint, region_name="us-east-1")
    if args.method == "archive":
        from recording_archive.dal.media import MediaPolicy, MediaSource
        from recording_archive.dal.recording_store import RecordingStore
        from recording_archive.models.archive import ObjectSpec

        spec = ObjectSpec(BUCKET, args.key, "audio/mpeg", {"bench": "1"}, args.kms_key, OWNER)
        store_kwargs: dict[str, int] = {}
        if args.part_size_mib:
            store_kwargs["part_size"] = args.part_size_mib * MiB
        if args.concurrency:
            store_kwargs["concurrency"] = args.concurrency
        store = RecordingStore(s3, **store_kwargs)
        source = MediaSource(MediaPolicy(allowed_hosts=(), allow_loopback=True))
        rss_ready = _proc_status("VmRSS")
        started = time.monotonic()
        with source.open(args.url) as stream:
            result = store.put_stream(spec, stream.read, stream.content_length)
        elapsed = time.monotonic() - started
        size, sha = result.size, result.sha256_hex
    else:
        import urllib3

        http = urllib3.PoolManager()
        rss_ready = _proc_status("VmRSS")
        started = time.monotonic()
        response = http.request("GET", args.url, preload_content=False)
        s3.upload_fileobj(response, BUCKET, args.key)
        response.release_conn()
        elapsed = time.monotonic() - started
        size, sha = int(response.headers["Content-Length"]), ""
    print(
        json.dumps(
            {
                "wall_s": elapsed,
                "cpu_s": _cpu_seconds(),
                "peak_rss_mib": _proc_status("VmHWM"),
                "rss_after_imports_mib": rss_after_imports_start,
                "rss_ready_mib": rss_ready,
                "size": size,
                "sha256": sha,
            }
        )
    )


# --- parent ----------------------------------------------------------------------------------
def _one_run(
    args: argparse.Namespace,
    method: str,
    url: str,
    *,
    endpoint: str,
    key: str,
    kms_key: str,
    env: dict[str, str],
) -> dict[str, Any]:
    """One measured child (its own process: its peak RSS is its own)."""
    cmd = [sys.executable, __file__, "--child", method, "--url", url]
    cmd += ["--endpoint", endpoint, "--key", key, "--kms-key", kms_key]
    if args.part_size_mib:
        cmd += ["--part-size-mib", str(args.part_size_mib)]
    if args.concurrency:
        cmd += ["--concurrency", str(args.concurrency)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"{method} {key} failed")
    run: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return run


def _stored_sha256(s3: Any, key: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
    for chunk in body.iter_chunks(8 * MiB):
        digest.update(chunk)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 MiB only")
    parser.add_argument("--reps", type=int, default=3, help="interleaved runs per size (3)")
    parser.add_argument("--part-size-mib", type=int, default=0, help="override the default")
    parser.add_argument("--concurrency", type=int, default=0, help="override the default")
    parser.add_argument("--output", default=str(ROOT / "bench" / ".work" / "archive_upload.json"))
    parser.add_argument("--child", choices=["archive", "baseline"])
    parser.add_argument("--url")
    parser.add_argument("--endpoint")
    parser.add_argument("--key")
    parser.add_argument("--kms-key")
    args = parser.parse_args()
    if args.child:
        args.method = args.child
        child(args)
        return

    import boto3

    from tests.support.media_server import GeneratedBody
    from tests.support.net import free_port, wait_http

    sizes = {"100mib": SIZES["100mib"]} if args.quick else SIZES
    moto_port = free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'functions'}",
    }
    env.pop("AWS_PROFILE", None)
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    venv_bin = Path(sys.executable).parent
    moto = subprocess.Popen(
        [str(venv_bin / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    generated = [f"/{name}.bin:{size}:{i + 1}" for i, (name, size) in enumerate(sizes.items())]
    media = subprocess.Popen(
        [sys.executable, "-m", "tests.support.media_server", "--port", "0"]
        + [a for g in generated for a in ("--generated", g)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert media.stdout is not None
        media_url = media.stdout.readline().strip()
        wait_http(f"{endpoint}/moto-api/data.json")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")
        kms_key = kms.create_key()["KeyMetadata"]["Arn"]
        s3.create_bucket(Bucket=BUCKET)

        results: dict[str, Any] = {
            "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
            "part_size_mib": args.part_size_mib or 10,
            "concurrency": args.concurrency or 4,
            "runs": args.reps,
            "interleaved": True,
        }
        rows = []
        for i, (name, size) in enumerate(sizes.items()):
            expected = GeneratedBody(size, i + 1).sha256_hex
            runs: dict[str, list[dict[str, Any]]] = {"archive": [], "baseline": []}
            for rep in range(args.reps):
                for method in ("archive", "baseline"):
                    key = f"recordings/bench/{name}-{method}-{rep}.mp3"
                    run = _one_run(
                        args,
                        method,
                        f"{media_url}/{name}.bin",
                        endpoint=endpoint,
                        key=key,
                        kms_key=kms_key,
                        env=env,
                    )
                    stored = _stored_sha256(s3, key)
                    if stored != expected or (run["sha256"] and run["sha256"] != expected):
                        raise SystemExit(f"{method} {name}: stored SHA-256 differs from the source")
                    s3.delete_object(Bucket=BUCKET, Key=key)  # keep moto's memory down
                    runs[method].append(run)
                    rows.append((name, method, run))
            for method, method_runs in runs.items():
                for figure, field in (
                    ("peak_rss_mib", "peak_rss_mib"),
                    ("wall_s", "wall_s"),
                    ("cpu_s", "cpu_s"),
                    ("rss_ready_mib", "rss_ready_mib"),
                ):
                    values = [r[field] for r in method_runs]
                    digits = 2 if figure.endswith("_s") else 1
                    results[f"{method}_{figure}_{name}"] = round(statistics.median(values), digits)
                    results[f"{method}_{figure}_{name}_range"] = [
                        round(min(values), digits),
                        round(max(values), digits),
                    ]
            ratios = [
                a["wall_s"] / b["wall_s"]
                for a, b in zip(runs["archive"], runs["baseline"], strict=True)
            ]
            results[f"archive_time_ratio_{name}"] = round(statistics.median(ratios), 2)
            results[f"archive_time_ratio_{name}_range"] = [
                round(min(ratios), 2),
                round(max(ratios), 2),
            ]
        print(
            f"{'file':<8} {'method':<9} {'peak RSS MiB':>12} {'RSS ready':>10} {'wall s':>8}"
            f" {'CPU s':>7}"
        )
        for name, method, run in rows:
            print(
                f"{name:<8} {method:<9} {run['peak_rss_mib']:>12.1f} "
                f"{run['rss_ready_mib']:>10.1f} {run['wall_s']:>8.2f} {run['cpu_s']:>7.2f}"
            )
        for name in sizes:
            ratio = results[f"archive_time_ratio_{name}"]
            spread = results[f"archive_time_ratio_{name}_range"]
            print(f"archive/baseline wall time, {name}: median {ratio} (range {spread})")
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.output}")
    finally:
        for proc in (media, moto):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
