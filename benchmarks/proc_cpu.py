"""CPU time of a process tree, read from /proc (no dependency): per process and its kind.

benchmarks/e2ee_cpu.py measures Chromium's processes with it: each process's
utime+stime, told apart from a reused pid by its start time, and how busy
the whole machine was meanwhile (the noise of a shared box).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from benchmarks.server_process import CLOCK_TICKS


@dataclass(frozen=True)
class ProcessCpu:
    pid: int
    kind: str  # "chromium:<--type>" ("chromium:browser" for the main process), "node", ...
    start_ticks: int  # /proc/<pid>/stat field 22: tells a reused pid from the same process
    cpu_seconds: float


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process in /proc now."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                tree.setdefault(int(_stat_fields(int(entry))[1]), []).append(int(entry))
    return tree


def descendants(root: int) -> list[int]:
    tree = _children()
    found: list[int] = []
    todo = list(tree.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def _kind(pid: int) -> str:
    try:
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        with open(f"/proc/{pid}/cmdline", "rb") as f:  # Chromium's children retitle it
            args = f.read().replace(b"\0", b" ").split()
    except OSError:
        return "gone"
    if "chrom" not in exe:
        return exe.removesuffix(" (deleted)")
    kind = next((a[7:].decode() for a in args if a.startswith(b"--type=")), "browser")
    return f"chromium:{kind}"


def process_cpu(root: int, skip: set[int]) -> dict[int, ProcessCpu]:
    """Every descendant of ``root`` (but the subtrees of ``skip``): its CPU seconds so far."""
    skipped = set(skip)
    for pid in skip:
        skipped.update(descendants(pid))
    out: dict[int, ProcessCpu] = {}
    for pid in descendants(root):
        if pid in skipped:
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(pid)
            cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            out[pid] = ProcessCpu(pid, _kind(pid), int(fields[19]), cpu)
    return out


def cpu_delta(
    before: dict[int, ProcessCpu], after: dict[int, ProcessCpu]
) -> tuple[dict[str, float], int]:
    """CPU seconds spent between two snapshots, by kind; and how many processes ended meanwhile.

    A process that started in between counts from zero; one that ended is
    lost (its last seconds too): the count says whether that happened.
    """
    spent: dict[str, float] = {}
    for pid, now in after.items():
        then = before.get(pid)
        base = then.cpu_seconds if then and then.start_ticks == now.start_ticks else 0.0
        spent[now.kind] = spent.get(now.kind, 0.0) + now.cpu_seconds - base
    ended = sum(1 for pid in before if pid not in after)
    return spent, ended


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat's first line."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values[:8]) - idle), float(sum(values[:8]))


# -- one phase -----------------------------------------------------------------------------------
