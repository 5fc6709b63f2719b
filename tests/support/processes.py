"""Process-tree helpers (Linux /proc) for the local stack's subprocesses and their workers."""

from __future__ import annotations

from pathlib import Path


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


WORKER_MODULE = b"recording_archive_cli.local.lambda_worker"


def lambda_workers(root_pid: int) -> dict[int, list[bytes]]:
    """The local stack's function workers below `root_pid` (`python -m ...lambda_worker`):
    pid -> argv."""
    found: dict[int, list[bytes]] = {}
    for pid in descendants(root_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if WORKER_MODULE in argv:
            found[pid] = argv
    return found


def worker_pids(root_pid: int, logical_id: str) -> list[int]:
    """Live workers of one function (found by their `--function-name local-<logical id>`)."""
    wanted = f"local-{logical_id}".encode()
    return [pid for pid, argv in lambda_workers(root_pid).items() if wanted in argv and alive(pid)]
