"""Child processes and the memory of a process tree (Linux /proc)."""

from __future__ import annotations

from pathlib import Path


def child_pids(pid: int) -> list[int]:
    """The child processes of `pid` (Linux /proc); [] once it has gone."""
    try:
        return [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except (FileNotFoundError, ProcessLookupError):
        return []


def tree_rss_kb(pid: int) -> int:
    """Resident memory of `pid` and all its descendants (ingest and its writer)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0  # gone in the meantime
    rss = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")]
    return sum(rss) + sum(tree_rss_kb(child) for child in child_pids(pid))
