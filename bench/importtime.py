"""Import-time profile of each latency-bound handler, as a Markdown table (bench/README.md).

Runs the runtime's Python with `-X importtime` on the native copy of each built function that
`make bench` leaves in bench/.work/native-bytecode/ (run the bench first), `--reps` times, and
keeps each module's smallest cumulative time (the least disturbed by other load). Lists the
handler's direct imports by cumulative time, each with its largest own imports. A module is
counted under the first module that imported it.

    .venv/bin/python bench/importtime.py [--reps 5] [--top 8] [--children 2] [--dir DIR]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench")]

HANDLERS = {
    "CallbackFunction": "recording_archive.handlers.recording_callback",
    "ArchiveFunction": "recording_archive.handlers.archive_stream",
}
LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


def profile(python: str, function_dir: Path, module: str) -> list[tuple[int, int, str, str]]:
    """(depth below the handler, cumulative us, module, parent) from one fresh interpreter."""
    code = f"import sys; sys.path.insert(0, {str(function_dir)!r}); import {module}"
    done = subprocess.run(
        [python, "-I", "-B", "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1"},
    )
    rows = []
    for line in done.stderr.splitlines():
        match = LINE.match(line)
        if match:
            rows.append((len(match.group(3)) // 2, int(match.group(2)), match.group(4)))
    root_depth = next(d for d, _, name in rows if name == module)
    # importtime prints a module after everything it imported: its parent is the next line
    # with a smaller indent.
    out = []
    for index, (depth, us, name) in enumerate(rows):
        parent = next((n for d, _, n in rows[index + 1 :] if d < depth), "")
        out.append((depth - root_depth, us, name, parent))
    return out


def table(
    python: str, function_dir: Path, module: str, *, reps: int, top: int, children: int
) -> str:
    """The handler's direct imports by cumulative time, each with its largest own imports."""
    best: dict[tuple[str, str], int] = {}
    total = []
    for _ in range(reps):
        for rel, us, name, parent in profile(python, function_dir, module):
            if name == module:
                total.append(us)
            elif rel in (1, 2):
                key = (parent, name)
                best[key] = min(us, best.get(key, us))
    direct = sorted(
        ((name, us) for (parent, name), us in best.items() if parent == module),
        key=lambda kv: -kv[1],
    )[:top]
    lines = [
        f"`{module}`: {min(total) / 1000:.0f} ms in all (least of {reps} runs)",
        "",
        "| import | cumulative ms |",
        "|---|---|",
    ]
    for name, us in direct:
        lines.append(f"| `{name}` | {us / 1000:.1f} |")
        kids = sorted(
            ((n, u) for (parent, n), u in best.items() if parent == name), key=lambda kv: -kv[1]
        )[:children]
        lines += [f"| · `{n}` | {u / 1000:.1f} |" for n, u in kids if u >= 1000]
    return "\n".join(lines)


def main() -> None:
    from run import runtime_python

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--top", type=int, default=8, help="direct imports listed")
    parser.add_argument("--children", type=int, default=2, help="own imports of each")
    parser.add_argument("--dir", default=str(ROOT / "bench" / ".work" / "native-bytecode"))
    args = parser.parse_args()
    python = runtime_python(ROOT / "template.yaml")
    for function, module in HANDLERS.items():
        function_dir = Path(args.dir) / function
        if not (function_dir / "recording_archive").is_dir():
            raise SystemExit(f"{function_dir}: run `make bench` first (it makes this copy)")
        print(f"### {function}\n")
        print(
            table(
                python, function_dir, module, reps=args.reps, top=args.top, children=args.children
            )
        )
        print()


if __name__ == "__main__":
    main()
