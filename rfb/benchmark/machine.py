"""A description of the machine a benchmark ran on, for its JSON and its table.

A figure without its machine is not a figure: every run records the CPU model,
the cores this process could use, memory, and the versions of what did the work.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import time
from importlib import metadata
from typing import Any

_PACKAGES = ("av", "numpy", "opencv-python-headless", "simplejpeg", "pillow")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_total_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def parallel_speedup(threads: int | None = None, megabytes: int = 48) -> float:
    """How many cores this process really gets now: N hashing threads vs one.

    On a shared VM the cores that ``os.cpu_count()`` reports may be busy with other
    work; multi-threaded routes then gain nothing. The answer (1.0 .. N) is recorded
    with every run so that its figures can be read for what they are.
    """
    n = usable_cores() if threads is None else threads
    data = bytes(megabytes * 2**20)  # hashlib releases the GIL for large buffers

    def work() -> None:
        hashlib.sha256(data).digest()

    def timed(count: int) -> float:
        workers = [threading.Thread(target=work) for _ in range(count)]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return time.perf_counter() - t0

    one = min(timed(1) for _ in range(2))
    many = min(timed(n) for _ in range(2))
    return round(max(1.0, n * one / many), 2) if n > 1 else 1.0


def describe() -> dict[str, Any]:
    """JSON-ready facts about this machine and software."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cores_usable": usable_cores(),
        "cores_total": os.cpu_count(),
        "memory_gib": memory_total_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
    }
    try:
        import av

        info["ffmpeg"] = {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}
    except ImportError:
        info["ffmpeg"] = None
    return info


def one_line(info: dict[str, Any]) -> str:
    """``AMD EPYC, 2 cores, 7.8 GiB, Python 3.11.7, av 18.1.0, ...``"""
    pkgs = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
    mem = f", {info['memory_gib']} GiB" if info.get("memory_gib") else ""
    speedup = info.get("parallel_speedup")
    free = f" (parallel speedup measured now: {speedup}x)" if speedup else ""
    return f"{info['cpu_model']}, {info['cores_usable']} cores{free}{mem}, Python {info['python']}, {pkgs}"
