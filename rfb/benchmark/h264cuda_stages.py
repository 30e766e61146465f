"""Where an h264_cuda picture's time goes: ``python -m rfb.benchmark.h264cuda_stages`` (GPU and CuPy).

``python -m rfb.benchmark --gpu`` gives the route's time per frame; this says what it is
made of, so that tuning starts from a measurement. Two passes over the same moving
pictures (an IDR, then P pictures), one encoder each:

1. **plain**: the encoder as the route runs it (an IDR every ``--idr-every`` pictures,
   P pictures between, rate control on); per picture kind, the median wall time
   and the process CPU time of ``CudaEncoder.encode`` (the host spins in every wait, so
   CPU time close to wall time means the host is waiting or launching, not idle);
2. **per kernel**: every launch wrapped in a pair of CUDA events, and every stage call
   in a host clock: per kernel, launches and GPU milliseconds per picture; per stage
   (padding, the decisions, the entropy stage), host milliseconds per picture. The
   events add a little host time of their own, so the plain pass is the one to quote
   for totals.

What the host does besides launching (the entropy stage's copies of the access unit,
the P pictures' copy of the intra mask, rate control, headers) is the stage's host time
minus its launches' share. The same code runs on the test suite's CPU build of the
kernels (``run(launcher=...)``), where "GPU" times are host times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rfb.benchmark import machine, patterns
from rfb.benchmark.fanout import parse_size
from rfb.h264cuda.kernels import Dim, Launcher

DEFAULT_SIZE = (1920, 1080)


@dataclass(slots=True)
class KernelRow:
    """One kernel, per picture of one kind: launches and GPU milliseconds (events)."""

    name: str
    launches: float
    gpu_ms: float


@dataclass(slots=True)
class KindReport:
    """What a picture of one kind (``idr`` or ``p``) costs."""

    kind: str
    pictures: int
    wall_ms: float  # plain pass, median
    cpu_ms: float  # plain pass, median process CPU time
    launches: float  # per picture
    stage_host_ms: dict[str, float] = field(default_factory=dict)  # per-kernel pass, median
    kernels: list[KernelRow] = field(default_factory=list)  # per-kernel pass, by GPU time


class _Clock:
    """GPU spans from CUDA events on the current stream, or host spans on a CPU build."""

    def __init__(self, xp: Any) -> None:
        self._cuda = getattr(xp, "cuda", None) if xp.__name__.startswith("cupy") else None
        self._pending: list[tuple[str, Any, Any]] = []

    def around(self, name: str, call: Callable[[], None]) -> None:
        if self._cuda is None:
            begin = time.perf_counter()
            call()
            self._pending.append((name, begin, time.perf_counter()))
            return
        start, stop = self._cuda.Event(), self._cuda.Event()
        start.record()
        call()
        stop.record()
        self._pending.append((name, start, stop))

    def collect(self) -> list[tuple[str, float]]:
        """(name, milliseconds) of every span since the last collect; waits for the GPU."""
        spans, self._pending = self._pending, []
        if self._cuda is None:
            return [(name, (end - begin) * 1e3) for name, begin, end in spans]
        if spans:
            spans[-1][2].synchronize()
        return [(name, self._cuda.get_elapsed_time(start, stop)) for name, start, stop in spans]


class _TimedLauncher:
    """A :class:`Launcher` that times every launch of the one it wraps."""

    def __init__(self, inner: Launcher, clock: _Clock | None) -> None:
        self.xp = inner.xp
        self._inner = inner
        self._clock = clock
        self.launches = 0

    def launch(self, name: str, grid: Dim, block: Dim, *args: Any) -> None:
        self.launches += 1
        if self._clock is None:
            self._inner.launch(name, grid, block, *args)
        else:
            self._clock.around(name, lambda: self._inner.launch(name, grid, block, *args))


def _timed_stages(stages: Any, host_ms: dict[str, list[float]]) -> Any:
    """``stages`` with each call's host time appended to ``host_ms[stage]``."""

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            begin = time.perf_counter()
            try:
                return function(*args)
            finally:
                host_ms[name].append((time.perf_counter() - begin) * 1e3)

        return call

    return replace(
        stages,
        i_picture=timed("I decisions", stages.i_picture),
        p_picture=timed("P decisions", stages.p_picture),
        slice_nal=timed("entropy", stages.slice_nal),
    )


def _pictures(xp: Any, width: int, height: int, count: int, pattern: str) -> list[Any]:
    from rfb.colorspace import rgb_to_nv12_host

    return [xp.asarray(rgb_to_nv12_host(patterns.make(pattern, width, height, i))) for i in range(count)]


def run(
    launcher: Launcher,
    width: int,
    height: int,
    frames: int,
    *,
    pattern: str = "scene",
    bitrate: int = 8_000_000,
    idr_every: int = 10,
    stages: Any = None,
) -> list[KindReport]:
    """Both passes over ``frames`` pictures (an IDR every ``idr_every``); a report per picture kind.

    One IDR and one P picture are encoded first, untimed, by an encoder of their own: the
    first launch of each kernel loads it.
    """
    from rfb.h264cuda.encoder import CudaEncoder, kernel_stages

    stages = stages if stages is not None else kernel_stages()
    pictures = _pictures(launcher.xp, width, height, frames, pattern)
    sync = _synchronizer(launcher.xp)
    kinds: list[str] = []
    wall: defaultdict[str, list[float]] = defaultdict(list)
    cpu: defaultdict[str, list[float]] = defaultdict(list)
    warm = CudaEncoder(launcher, width, height, 30, bitrate, stages=stages)
    for nv12 in pictures[:2]:
        warm.encode(nv12[:height], nv12[height:])
    sync()
    counting = _TimedLauncher(launcher, None)
    plain = CudaEncoder(counting, width, height, 30, bitrate, stages=stages)
    launches: defaultdict[str, list[int]] = defaultdict(list)
    for i, nv12 in enumerate(pictures):
        idr = i % idr_every == 0
        kind = "idr" if idr else "p"
        kinds.append(kind)
        before, begin, cpu_begin = counting.launches, time.perf_counter(), time.process_time()
        plain.encode(nv12[:height], nv12[height:], force_idr=idr)
        sync()
        wall[kind].append((time.perf_counter() - begin) * 1e3)
        cpu[kind].append((time.process_time() - cpu_begin) * 1e3)
        launches[kind].append(counting.launches - before)

    clock = _Clock(launcher.xp)
    host_ms: defaultdict[str, list[float]] = defaultdict(list)
    timed = _TimedLauncher(launcher, clock)
    encoder = CudaEncoder(timed, width, height, 30, bitrate, stages=_timed_stages(stages, host_ms))
    gpu: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
    calls: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    stage_host: defaultdict[str, defaultdict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for nv12, kind in zip(pictures, kinds, strict=True):
        for stage in host_ms:
            host_ms[stage].clear()
        begin = time.perf_counter()
        encoder.encode(nv12[:height], nv12[height:], force_idr=kind == "idr")
        spans = clock.collect()
        stage_host[kind]["encode (whole)"].append((time.perf_counter() - begin) * 1e3)
        for stage, values in host_ms.items():
            if values:
                stage_host[kind][stage].append(sum(values))
        for name, ms in spans:
            gpu[kind][name] += ms
            calls[kind][name] += 1

    reports = []
    for kind in ("idr", "p"):
        n = kinds.count(kind)
        if not n:
            continue
        kernels = [KernelRow(name, calls[kind][name] / n, gpu[kind][name] / n) for name in gpu[kind]]
        kernels.sort(key=lambda row: row.gpu_ms, reverse=True)
        reports.append(
            KindReport(
                kind,
                n,
                wall_ms=statistics.median(wall[kind]),
                cpu_ms=statistics.median(cpu[kind]),
                launches=statistics.mean(launches[kind]),
                stage_host_ms={stage: statistics.median(v) for stage, v in stage_host[kind].items()},
                kernels=kernels,
            )
        )
    return reports


def _synchronizer(xp: Any) -> Callable[[], None]:
    if xp.__name__.startswith("cupy"):
        return lambda: xp.cuda.get_current_stream().synchronize()
    return lambda: None


def format_report(reports: Sequence[KindReport], width: int, height: int, device: str) -> str:
    lines = [f"h264_cuda stages, {width}x{height}, {device}"]
    for r in reports:
        gpu_total = sum(k.gpu_ms for k in r.kernels)
        lines.append(
            f"\n{r.kind.upper()} ({r.pictures} pictures): wall {r.wall_ms:.3f} ms, CPU {r.cpu_ms:.3f} ms, "
            f"{r.launches:.0f} launches per picture; kernels' GPU time {gpu_total:.3f} ms (events)"
        )
        lines.append("  host ms per picture: " + ", ".join(f"{s} {ms:.3f}" for s, ms in r.stage_host_ms.items()))
        lines.append(f"  {'kernel':<32} {'launches':>9} {'GPU ms':>9} {'share':>6}")
        for k in r.kernels:
            share = k.gpu_ms / gpu_total if gpu_total else 0.0
            lines.append(f"  {k.name:<32} {k.launches:>9.1f} {k.gpu_ms:>9.3f} {share:>6.1%}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rfb.benchmark.h264cuda_stages", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--size", type=parse_size, default=DEFAULT_SIZE, help="WxH (default 1920x1080)")
    parser.add_argument("--frames", type=int, default=30, help="pictures (default 30)")
    parser.add_argument(
        "--idr-every", type=int, default=10, help="an IDR every N pictures, from the first (default 10)"
    )
    parser.add_argument("--pattern", default="scene", choices=sorted(patterns.PATTERNS))
    parser.add_argument("--json", dest="json_path", help="also write the reports and the machine to this file")
    args = parser.parse_args(argv)
    if args.frames < 2 or args.idr_every < 2:
        parser.error(
            f"--frames and --idr-every must be at least 2 (an IDR and a P picture), got {args.frames}, {args.idr_every}"
        )
    from rfb.encoders import h264_cuda

    reason = h264_cuda.probe()
    if reason is not None:
        print(f"rfb.benchmark.h264cuda_stages needs the h264_cuda route: {reason}", file=sys.stderr)
        return 2
    from rfb.gpu.context import import_cupy
    from rfb.h264cuda.kernels.cuda import CudaLauncher

    cp = import_cupy()
    device = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"].decode()
    width, height = args.size
    reports = run(CudaLauncher(), width, height, args.frames, pattern=args.pattern, idr_every=args.idr_every)
    print(format_report(reports, width, height, device))
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "command": "python -m rfb.benchmark.h264cuda_stages "
                    + " ".join(sys.argv[1:] if argv is None else argv),
                    "gpu": device,
                    "machine": machine.describe(),
                    "reports": [asdict(r) for r in reports],
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
