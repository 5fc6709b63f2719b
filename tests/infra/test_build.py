"""The build output (`make build`): bytecode for the runtime's Python, nothing dev-only.

Builds into a temporary directory with the real `make build` (sam build without Docker, then
scripts/post_build.py; about 40 s here). Set RECORDING_ARCHIVE_BUILD_DIR to check an existing
build instead. Skipped, with the reason, when building is impossible here: no aws-sam-cli tool
environment (`make tools`) or no Python of the functions' runtime on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_TEXT = (ROOT / "template.yaml").read_text("utf-8")
FUNCTIONS = tuple(
    re.findall(r"^  (\w+):\n    Type: AWS::Serverless::Function$", TEMPLATE_TEXT, re.MULTILINE)
)
# Packages whose every module the functions import must ship compiled.
RUNTIME_PACKAGES = (
    "recording_archive",
    "aws_lambda_powertools",
    "boto3",
    "botocore",
    "s3transfer",
    "urllib3",
    "pydantic",
    "pydantic_core",
    "dateutil",
    "jmespath",
)
DEV_ONLY = re.compile(
    r"^(tests?|moto|_?pytest|pytest_\w+|plivo|mypy|mypyc|mypy_boto3_\w+|boto3_stubs|"
    r"botocore_stubs|hypothesis|coverage|ruff|yaml|recording_archive_cli)([-.].*)?$",
    re.IGNORECASE,
)


def _runtime_version() -> str:
    match = re.search(r"Runtime:\s*python(3\.\d+)", TEMPLATE_TEXT)
    assert match, "template.yaml has no python Runtime"
    return match.group(1)


RUNTIME = _runtime_version()
PYC_TAG = f"cpython-{RUNTIME.replace('.', '')}"


def _runtime_python_env() -> dict[str, str] | None:
    """An environment in which python<runtime> resolves (pyenv's, when it has one), or None."""
    env = dict(os.environ)
    if shutil.which(f"python{RUNTIME}"):
        probe = subprocess.run(
            [f"python{RUNTIME}", "-c", "print(1)"], env=env, capture_output=True, check=False
        )
        if probe.returncode == 0:
            return env
    if shutil.which("pyenv"):
        versions = subprocess.run(
            ["pyenv", "versions", "--bare"], capture_output=True, text=True, check=False
        ).stdout.split()
        match = [v for v in versions if v.startswith(f"{RUNTIME}.")]
        if match:
            current = subprocess.run(
                ["pyenv", "version-name"], capture_output=True, text=True, check=False
            ).stdout.strip()
            env["PYENV_VERSION"] = f"{current.split(':')[0]}:{match[0]}"
            return env
    return None


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    given = os.environ.get("RECORDING_ARCHIVE_BUILD_DIR")
    if given:
        yield Path(given)
        return
    if not (ROOT / ".tools" / "sam" / ".installed").exists():
        pytest.skip("no aws-sam-cli tool environment: run `make tools` (make test does)")
    env = _runtime_python_env()
    if env is None:
        pytest.skip(f"no python{RUNTIME} (the functions' runtime) on PATH: cannot build here")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("sam-build") / "build"
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    proc = subprocess.run(
        ["make", "--no-print-directory", "build", f"BUILD_DIR={out}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, f"make build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    yield out


@pytest.fixture(params=FUNCTIONS)
def function_dir(request: pytest.FixtureRequest, build_dir: Path) -> Path:
    path: Path = build_dir / request.param
    assert (path / "recording_archive" / "handlers").is_dir(), f"{path} is not a built function"
    return path


@pytest.mark.slow
def test_every_module_ships_bytecode_for_the_runtime(function_dir: Path) -> None:
    missing = []
    checked = 0
    for package in RUNTIME_PACKAGES:
        root = function_dir / package
        assert root.is_dir(), f"{package} missing from {function_dir.name}"
        for source in root.rglob("*.py"):
            checked += 1
            pyc = source.parent / "__pycache__" / f"{source.stem}.{PYC_TAG}.pyc"
            if not pyc.is_file():
                missing.append(str(source.relative_to(function_dir)))
    assert checked > 500
    assert not missing, f"{len(missing)} modules without {PYC_TAG} bytecode: {missing[:10]}"


@pytest.mark.slow
def test_bytecode_is_unchecked_hash_and_of_no_other_version(function_dir: Path) -> None:
    other = [p for p in function_dir.rglob("*.pyc") if f".{PYC_TAG}." not in p.name]
    assert not other, f"bytecode of another Python: {other[:5]}"
    for pyc in (function_dir / "recording_archive").rglob("*.pyc"):
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        # PEP 552: bit 0 = hash-based, bit 1 = check_source. Unchecked: the runtime never
        # stats the source, and the pyc of read-only Lambda code can never go stale.
        assert flags == 0b01, f"{pyc}: flags {flags:#b}, expected unchecked-hash"


@pytest.mark.slow
def test_no_tests_or_dev_only_packages(function_dir: Path) -> None:
    top = [p.name for p in function_dir.iterdir() if DEV_ONLY.match(p.name)]
    assert not top, f"dev-only content in {function_dir.name}: {top}"
    nested = [str(p) for p in (function_dir / "recording_archive").rglob("tests")]
    assert not nested
    # The runtime closure only: each dist-info is a pinned runtime requirement.
    required = {
        line.split("==")[0].lower().replace("-", "_")
        for line in (ROOT / "functions" / "requirements.txt").read_text("utf-8").splitlines()
        if line and not line.startswith("#")
    }
    shipped = {
        p.name.split("-")[0].lower().replace("-", "_") for p in function_dir.glob("*.dist-info")
    }
    assert shipped <= required, f"not in functions/requirements.txt: {shipped - required}"
    assert {"boto3", "aws_lambda_powertools", "pydantic"} <= shipped


@pytest.mark.slow
def test_native_code_targets_the_template_architecture(function_dir: Path) -> None:
    arch = re.search(r"Architectures:\s*\[(\w+)\]", TEMPLATE_TEXT)
    assert arch
    machine = {"arm64": "aarch64", "x86_64": "x86_64"}[arch.group(1)]
    extensions = list(function_dir.rglob("*.so"))
    assert extensions, "pydantic_core's extension is missing"
    wrong = [
        p.name for p in extensions if f"cpython-{RUNTIME.replace('.', '')}-{machine}" not in p.name
    ]
    assert not wrong, f"native code for another runtime or architecture: {wrong}"
