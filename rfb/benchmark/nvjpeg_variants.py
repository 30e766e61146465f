"""Ways to make ``jpeg_gpu`` faster between other work, compared in one process (issue 15).

    python -m rfb.benchmark.nvjpeg_layers [frames] --compare [--json PATH] [--schedules S ...]

``jpeg_gpu`` takes about 0.2 ms at 1080p back to back, and about 0.1 ms more when the
calling thread slept before the call (see docs/gpu.md, "Why it is slower between other
work"). This compares candidate remedies against the current route, on the same CuPy
rgb24 frames (1080p ``scene``, quality 80, 4:2:0), every **cell** (one way to encode,
one thing that runs before it) taking turns frame by frame, who goes first rotating.

Ways to encode (``PATHS``):

- ``route``: ``JpegGpuEncoder.encode(cuda_frame(array))``, what ships today (the
  baseline; the same call as ``nvjpeg_layers``' "jpeg_gpu" column);
- ``route-prepared``: the same, with ``cuda_frame`` made before the wait, untimed, as
  ``publish()`` does on the renderer's thread in a real display: the route's Python
  share on the encoder thread alone (the array interface is then read once there);
- ``event`` / ``event-blocking``: the route with ``wait="event"`` /
  ``"event-blocking"`` (the JPEG waited for with a CUDA event instead of a stream sync;
  the blocking one sleeps the thread);
- ``binding``: ``nvjpegffi.JpegEncoder.encode_rgb`` alone (no route Python at all).

What runs before each call, untimed (``WAITS``): ``none``; ``sleep`` (3 ms, an encoder
thread waiting for its next frame); ``sleep+spinW`` (the same 3 ms gap, its last W
spinning: a thread kept warm just before the frame is due); ``naps100us`` (the 3 ms
spent in 100 us sleeps: a cheaper way to keep the core from idling deeply);
``cpu-jpeg`` (the CPU JPEG route encodes the frame on every core, as in the
interleaved ``--gpu`` benchmark) and ``cpu-jpeg+spin300us``.

Per cell: the call's wall time (median, p95), CUDA events around it (the GPU's span),
the calling thread's CPU time in the call and in the wait before it (what keeping warm
costs), and the ratio of its median to the **current route's** under the same kind of
wait (``none`` for ``none``; ``sleep`` for the sleeps, spins and naps; ``cpu-jpeg`` for
the two ``cpu-jpeg`` waits).

The primary context's wait mode (``CU_CTX_SCHED_*``) cannot change once the context is
active, so ``--schedules`` runs one child process per mode (``nvencffi.set_context_flags``
before anything touches the GPU), one after another, each timing ``route`` and
``binding`` after ``none`` and ``sleep``; their ratios are against the ``auto`` child
(the driver's default, what the benchmark and a plain server use; ``rfb demo --gpu``
calls ``enable_cuda_context_sharing`` and so runs ``blocking``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nvencffi.cuda import SCHEDULES as CONTEXT_SCHEDULES
from rfb.benchmark import patterns
from rfb.benchmark.metrics import percentile

if TYPE_CHECKING:
    from nvjpegffi.cuda import Wait

WIDTH, HEIGHT, PATTERN, QUALITY = 1920, 1080, "scene", 80
GAP_S = 0.003
NAP_S = 100e-6
WARMUP = 20
PICTURES = 4

PATHS = ("route", "route-prepared", "event", "event-blocking", "binding")
SPINS = {"sleep+spin100us": 100e-6, "sleep+spin300us": 300e-6, "sleep+spin1ms": 1e-3}
WAITS = ("none", "sleep", *SPINS, "naps100us", "cpu-jpeg", "cpu-jpeg+spin300us")
# Every way to encode after nothing and after a sleep; the current route after every other wait.
CELLS: tuple[tuple[str, str], ...] = (
    *((path, wait) for path in PATHS for wait in ("none", "sleep")),
    *(("route", wait) for wait in WAITS if wait not in ("none", "sleep")),
)
CHILD_CELLS: tuple[tuple[str, str], ...] = tuple((p, w) for p in ("route", "binding") for w in ("none", "sleep"))
SCHEDULES = tuple(CONTEXT_SCHEDULES)  # the wait modes nvencffi.set_context_flags(schedule=...) takes
BASELINE_PATH = "route"


def baseline_wait(wait: str) -> str:
    """The wait whose ``route`` cell a cell after ``wait`` is compared with."""
    if wait == "none":
        return "none"
    return "cpu-jpeg" if wait.startswith("cpu-jpeg") else "sleep"


def label(path: str, wait: str) -> str:
    return f"{path} | {wait}"


def spin(seconds: float) -> None:
    """Keep this thread computing for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def naps(seconds: float, nap: float = NAP_S) -> None:
    """Spend ``seconds`` in short sleeps of ``nap`` (the core wakes every nap)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        time.sleep(nap)


class Waits:
    """The untimed work before each call, by name; ``close()`` stops the CPU JPEG route."""

    def __init__(self, host: Sequence[np.ndarray]) -> None:
        self._host = host
        self._size = (host[0].shape[1], host[0].shape[0])
        self._cpu: Any = None

    def run(self, wait: str, index: int) -> None:
        if wait == "none":
            return
        if wait == "sleep":
            time.sleep(GAP_S)
        elif wait in SPINS:
            time.sleep(GAP_S - SPINS[wait])
            spin(SPINS[wait])
        elif wait == "naps100us":
            naps(GAP_S)
        elif wait in ("cpu-jpeg", "cpu-jpeg+spin300us"):
            self._cpu_jpeg(index)
            if wait != "cpu-jpeg":
                spin(300e-6)
        else:
            raise ValueError(f"expected a wait among {WAITS}, got {wait!r}")

    def _cpu_jpeg(self, index: int) -> None:
        from rfb.encoders.base import EncoderConfig
        from rfb.encoders.registry import get_entry
        from rfb.frames import frame_from_array

        if self._cpu is None:
            self._cpu = get_entry("image").factory(EncoderConfig(*self._size, quality=QUALITY))
        self._cpu.encode(frame_from_array(self._host[index % len(self._host)]))

    def close(self) -> None:
        cpu, self._cpu = self._cpu, None
        if cpu is not None:
            cpu.close()


@dataclass
class Cell:
    """One way to encode after one kind of wait, and what it measured."""

    path: str
    wait: str
    wall: list[float] = field(default_factory=list)
    gpu: list[float] = field(default_factory=list)
    call_cpu: list[float] = field(default_factory=list)
    wait_cpu: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return label(self.path, self.wait)

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "wait": self.wait,
            "frames": len(self.wall),
            "ms_median": _ms(self.wall, 50),
            "ms_p95": _ms(self.wall, 95),
            "gpu_ms_median": _ms(self.gpu, 50),
            "call_cpu_ms_median": _ms(self.call_cpu, 50),
            "wait_cpu_ms_median": _ms(self.wait_cpu, 50),
            "kb_per_frame": round(float(np.mean(self.sizes)) / 1e3, 1),
        }


def _ms(seconds: Sequence[float], q: float) -> float:
    return round(percentile(seconds, q) * 1e3, 3)


Opener = Callable[[str, int, int], Any]


class Encoders:
    """One encoder per way to encode (each its own nvJPEG state), opened on first use."""

    def __init__(self, width: int, height: int, opener: Opener) -> None:
        self._size = (width, height)
        self._opener = opener
        self._open: dict[str, Any] = {}

    def get(self, path: str) -> Any:
        encoder = self._open.get(path)
        if encoder is None:
            encoder = self._open[path] = self._opener(path, *self._size)
        return encoder

    def close(self) -> None:
        opened, self._open = self._open, {}
        for encoder in opened.values():
            encoder.close()


def open_encoder(path: str, width: int, height: int, **options: Any) -> Any:
    """The encoder of ``path`` (a JpegGpuEncoder, or a JpegEncoder for ``binding``).

    ``options`` go to both constructors (the tests pass ``context=NullContext()``).
    """
    import nvjpegffi
    from rfb.encoders.base import EncoderConfig
    from rfb.encoders.jpeg_gpu import JpegGpuEncoder

    if path == "binding":
        return nvjpegffi.JpegEncoder(width, height, quality=QUALITY, **options)
    waits: dict[str, Wait] = {
        "route": "stream",
        "route-prepared": "stream",
        "event": "event",
        "event-blocking": "event-blocking",
    }
    if path not in waits:
        raise ValueError(f"expected a path among {PATHS}, got {path!r}")
    return JpegGpuEncoder(EncoderConfig(width, height, quality=QUALITY), wait=waits[path], **options)


def check_jpeg(path: str, data: bytes) -> None:
    if data[:2] != b"\xff\xd8":
        raise RuntimeError(f"expected {path} to return a JPEG (FF D8), got {data[:2].hex()}")


def run_cells(
    cp: Any,
    cells: Sequence[tuple[str, str]],
    frames: int,
    *,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    warmup: int = WARMUP,
    opener: Opener = open_encoder,
    check: Callable[[str, bytes], None] = check_jpeg,
) -> list[dict[str, Any]]:
    """Time every cell over ``frames`` frames (after ``warmup`` untimed), the cells taking turns.

    ``cp`` is CuPy (the tests pass a stand-in over host memory, with ``opener`` and
    ``check`` for the nvJPEG emulator).
    """
    from rfb.gpu import cuda_frame

    width, height = size
    host = [patterns.make(PATTERN, width, height, i) for i in range(PICTURES)]
    device = [cp.asarray(h) for h in host]
    cp.cuda.Device().synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    measured = [Cell(path, wait) for path, wait in cells]
    encoders, waits = Encoders(width, height, opener), Waits(host)

    def one(cell: Cell, index: int, timed: bool) -> None:
        array = device[index % PICTURES]
        encoder = encoders.get(cell.path)
        prepared = cuda_frame(array) if cell.path == "route-prepared" else None
        w0 = time.thread_time()
        waits.run(cell.wait, index)
        w1 = time.thread_time()
        start.record()
        c0 = time.thread_time()
        t0 = time.perf_counter()
        if cell.path == "binding":
            data = encoder.encode_rgb(array.data.ptr, array.strides[0])
        else:
            (payload,) = encoder.encode(prepared if prepared is not None else cuda_frame(array))
            data = payload.data
        t1 = time.perf_counter()
        c1 = time.thread_time()
        end.record()
        end.synchronize()
        check(cell.label, data)
        if timed:
            cell.wall.append(t1 - t0)
            cell.call_cpu.append(c1 - c0)
            cell.wait_cpu.append(w1 - w0)
            cell.gpu.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
            cell.sizes.append(len(data))

    try:
        for index in range(warmup + frames):
            shift = index % len(measured)
            for cell in (*measured[shift:], *measured[:shift]):
                one(cell, index, index >= warmup)
    finally:
        try:
            encoders.close()
        finally:
            waits.close()
    return [cell.summary() for cell in measured]


def add_ratios(rows: list[dict[str, Any]], reference: Sequence[dict[str, Any]] | None = None) -> None:
    """Each row's ``ratio``: its median over the current route's under the same kind of wait.

    ``reference`` (default: ``rows``) holds the ``route`` rows compared with.
    """
    base = {r["wait"]: r["ms_median"] for r in (rows if reference is None else reference) if r["path"] == BASELINE_PATH}
    for row in rows:
        against = base.get(baseline_wait(row["wait"]))
        row["ratio"] = round(row["ms_median"] / against, 3) if against else None


def format_rows(rows: Sequence[dict[str, Any]], *, key: str = "") -> list[str]:
    head = f"{key:<10}" if key else ""
    lines = [
        f"{head}{'path | before each call':<36} {'ms':>7} {'p95':>7} {'GPU ms':>7} {'call CPU':>9} "
        f"{'wait CPU':>9} {'x current':>9}"
    ]
    for r in rows:
        ratio = "-" if r.get("ratio") is None else f"{r['ratio']:.2f}"
        prefix = f"{r.get(key, ''):<10}" if key else ""
        lines.append(
            f"{prefix}{label(r['path'], r['wait']):<36} {r['ms_median']:>7.3f} {r['ms_p95']:>7.3f} "
            f"{r['gpu_ms_median']:>7.3f} {r['call_cpu_ms_median']:>9.3f} {r['wait_cpu_ms_median']:>9.3f} {ratio:>9}"
        )
    return lines


# -- context wait modes: one child process each ------------------------------------------


def child(schedule: str, frames: int) -> int:
    """In a fresh process: set the primary context's wait mode, time CHILD_CELLS, print JSON rows."""
    from nvencffi.cuda import set_context_flags
    from nvencffi.errors import CudaUnavailable
    from rfb.gpu.context import GpuUnavailable, import_cupy

    try:
        if not set_context_flags(0, schedule=schedule):
            print(f"error: the primary context was already active; schedule {schedule!r} not set", file=sys.stderr)
            return 1
        cp = import_cupy()
    except (CudaUnavailable, GpuUnavailable) as exc:
        print(f"error: schedule {schedule!r} needs a CUDA GPU and CuPy: {exc}", file=sys.stderr)
        return 1
    rows = run_cells(cp, CHILD_CELLS, frames)
    for row in rows:
        row["schedule"] = schedule
    print(json.dumps(rows))
    return 0


def run_schedules(schedules: Sequence[str], frames: int, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """One child per schedule, one after another; rows with ``ratio`` against the ``auto`` child."""
    rows: list[dict[str, Any]] = []
    for schedule in schedules:
        command = [sys.executable, "-m", "rfb.benchmark.nvjpeg_layers", str(frames), "--child-schedule", schedule]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        if result.returncode != 0:
            say(f"schedule {schedule}: child failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
            continue
        rows += json.loads(result.stdout.strip().splitlines()[-1])
    auto = [r for r in rows if r["schedule"] == "auto"]
    for row in rows:
        match = [a for a in auto if (a["path"], a["wait"]) == (row["path"], row["wait"])]
        row["ratio"] = round(row["ms_median"] / match[0]["ms_median"], 3) if match else None
    return rows


def compare(cp: Any, frames: int, schedules: Sequence[str], say: Callable[[str], None]) -> dict[str, Any]:
    """The in-process comparison, then one child per schedule; printed as it goes, returned for JSON."""
    say(
        f"--compare: {WIDTH}x{HEIGHT} {PATTERN}, quality {QUALITY}, 4:2:0; {len(CELLS)} cells taking turns, "
        f"{frames} timed frames each after {WARMUP}; 'x current' = median / the current route's "
        "(route) after the same kind of wait (none; sleep for sleeps, spins and naps; cpu-jpeg)"
    )
    rows = run_cells(cp, CELLS, frames)
    add_ratios(rows)
    for line in format_rows(rows):
        say(line)
    scheduled: list[dict[str, Any]] = []
    if schedules:
        say(
            f"context wait modes, one child process each ({', '.join(schedules)}), one after another; "
            "'x current' = median / the auto child's same cell"
        )
        scheduled = run_schedules(schedules, frames, say)
        for line in format_rows(scheduled, key="schedule"):
            say(line)
    return {"cells": rows, "schedules": scheduled}
