"""Post-build step of `make build`: ships bytecode and strips what Lambda must not carry.

`sam build` (without a container) copies the sources and the pip-installed dependencies but no
`.pyc` files, so on Lambda every cold start compiles every imported module from source (measured
4-6x slower imports: bench/README.md). This step, run with the *runtime's* Python (python3.13),
for each built function directory:

1. removes dev-only packages and test directories if any slipped in (they never should: the
   requirements are the runtime closure only), and any stale bytecode;
2. compiles everything with `compileall --invalidation-mode unchecked-hash`: the interpreter
   trusts the `.pyc` without stat-ing the source (Lambda's code is read-only and never changes
   under a running environment).

    python3.13 scripts/post_build.py .aws-sam/build

Fails if the interpreter's minor version differs from the template's runtime: bytecode of another
version would be ignored by the runtime, silently.
"""

from __future__ import annotations

import compileall
import py_compile
import re
import shutil
import sys
from pathlib import Path

# Top-level names that are never part of a function's runtime closure.
DEV_ONLY = (
    "tests",
    "test",
    "moto",
    "pytest",
    "_pytest",
    "plivo",
    "mypy",
    "mypyc",
    "mypy_extensions",
    "boto3-stubs",
    "boto3_stubs",
    "botocore-stubs",
    "botocore_stubs",
    "hypothesis",
    "coverage",
    "ruff",
    "yaml",
    "recording_archive_cli",
)
DEV_ONLY_PREFIXES = ("mypy_boto3_", "types_", "pytest_", "moto-", "pytest-", "plivo-")


def _runtime_version(template: Path) -> str | None:
    match = re.search(r"Runtime:\s*python(3\.\d+)", template.read_text(encoding="utf-8"))
    return match.group(1) if match else None


def _is_dev_only(name: str) -> bool:
    base = name.split("-", maxsplit=1)[0] if name.endswith((".dist-info", ".egg-info")) else name
    return (
        name in DEV_ONLY
        or base in DEV_ONLY
        or name.startswith(DEV_ONLY_PREFIXES)
        or base.startswith(DEV_ONLY_PREFIXES)
    )


def process(function_dir: Path) -> int:
    for entry in sorted(function_dir.iterdir()):
        if _is_dev_only(entry.name):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            print(f"  removed dev-only {entry.name}")
    for cache in list(function_dir.rglob("__pycache__")):
        shutil.rmtree(cache)
    for stray in list(function_dir.rglob("*.pyc")):
        stray.unlink()
    # Our package's own tests never ship (the package holds none; this keeps it so).
    for tests in list((function_dir / "recording_archive").rglob("tests")):
        if tests.is_dir():
            shutil.rmtree(tests)
    ok = compileall.compile_dir(
        function_dir,
        quiet=1,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    build_dir = Path(argv[1] if len(argv) > 1 else ".aws-sam/build")
    template = build_dir / "template.yaml"
    if not template.is_file():
        print(f"{template} not found: run sam build first", file=sys.stderr)
        return 2
    runtime = _runtime_version(template)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if runtime != here:
        print(
            f"the functions' runtime is python{runtime} but this is Python {here}: "
            f"run this step with python{runtime}",
            file=sys.stderr,
        )
        return 2
    functions = sorted(p.parent.parent for p in build_dir.glob("*/recording_archive/__init__.py"))
    if not functions:
        print(f"no built function under {build_dir}", file=sys.stderr)
        return 2
    failures = 0
    for function_dir in functions:
        print(f"post-build {function_dir.name}: bytecode for Python {here}")
        failures += process(function_dir)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
