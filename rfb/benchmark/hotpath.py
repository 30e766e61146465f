"""What one GPU frame costs on the host: ``python -m rfb.benchmark.hotpath`` (needs a GPU and CuPy).

A GPU route's per-frame work is a few microseconds of kernel; anything Python adds on
top (reading the array's interface, validating, building launch arguments) is paid on
every frame, on the render loop's thread. This benchmark separates the two for
:func:`rfb.gpu.rgb_to_nv12`, the step every GPU H.264 route runs for RGB frames:

- ``amortised``: N calls back to back, then one synchronize; wall time / N. When the
  host is slower than the kernel this is the host's cost per call.
- ``one call``: one call plus a synchronize of its stream, the median of N.
- ``kernel``: the same kernel with the same arguments captured N times in a CUDA graph
  and replayed, timed with CUDA events: the GPU's time alone.
- ``floor``: the bytes the kernel must move (read RGB, write NV12) at the device-to-device
  copy bandwidth measured in the same run: what no kernel can beat.

Each figure is for one input (``rgb24`` and ``rgba8``) and one size, from a fresh CuPy
array per call as a renderer hands them over (the arrays are made before timing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rfb.benchmark import machine

DEFAULT_SIZES = ((1920, 1080), (3840, 2160))


@dataclass(frozen=True, slots=True)
class HotPathRow:
    """Microseconds per call of one input format at one size."""

    width: int
    height: int
    pixel_format: str
    amortised_us: float
    one_call_us: float
    kernel_us: float
    floor_us: float

    @property
    def host_us(self) -> float:
        """What the host adds per call beyond the kernel, when calls run back to back."""
        return max(0.0, self.amortised_us - self.kernel_us)


def copy_bandwidth(cp: Any, nbytes: int = 1 << 30, repeats: int = 5) -> float:
    """Device-to-device copy bandwidth in bytes/s (bytes read + written), best of ``repeats``."""
    src = cp.empty(nbytes // 2, dtype=cp.uint8)
    dst = cp.empty_like(src)
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    best = float("inf")
    for _ in range(repeats):
        start.record()
        dst[...] = src
        stop.record()
        stop.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, stop) / 1e3)
    del src, dst
    return nbytes / best


def measure(cp: Any, width: int, height: int, pixel_format: str, calls: int, bandwidth: float) -> HotPathRow:
    from rfb.gpu.convert import rgb_to_nv12

    channels = 4 if pixel_format == "rgba8" else 3
    frames = [cp.full((height, width, channels), i % 251, dtype=cp.uint8) for i in range(calls)]
    out = cp.empty((height + height // 2, width), dtype=cp.uint8)
    stream = cp.cuda.get_current_stream()
    for frame in frames[:10]:  # warm-up: compile, caches
        rgb_to_nv12(frame, out=out)
    stream.synchronize()

    begin = time.perf_counter()
    for frame in frames:
        rgb_to_nv12(frame, out=out)
    stream.synchronize()
    amortised = (time.perf_counter() - begin) / calls

    singles = []
    for frame in frames:
        begin = time.perf_counter()
        rgb_to_nv12(frame, out=out)
        stream.synchronize()
        singles.append(time.perf_counter() - begin)

    graph_stream = cp.cuda.Stream(non_blocking=True)
    with graph_stream:
        rgb_to_nv12(frames[0], out=out, stream=graph_stream)  # arguments cached outside the capture
        graph_stream.begin_capture()
        for frame in frames:
            rgb_to_nv12(frame, out=out, stream=graph_stream)
        graph = graph_stream.end_capture()
        graph.upload(graph_stream)
        graph.launch(graph_stream)
        graph_stream.synchronize()
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record(graph_stream)
        graph.launch(graph_stream)
        stop.record(graph_stream)
        stop.synchronize()
    kernel = cp.cuda.get_elapsed_time(start, stop) / 1e3 / calls

    moved = width * height * channels + width * height * 3 // 2
    return HotPathRow(
        width,
        height,
        pixel_format,
        amortised_us=round(amortised * 1e6, 2),
        one_call_us=round(statistics.median(singles) * 1e6, 2),
        kernel_us=round(kernel * 1e6, 2),
        floor_us=round(moved / bandwidth * 1e6, 2),
    )


def format_table(rows: Sequence[HotPathRow], gpu: str) -> str:
    lines = [
        f"rfb.gpu.rgb_to_nv12 on {gpu} (microseconds per call)",
        "| size | input | amortised | one call | kernel (graph) | host share | memory floor |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.width}x{r.height} | {r.pixel_format} | {r.amortised_us:.1f} | {r.one_call_us:.1f} | "
            f"{r.kernel_us:.2f} | {r.host_us:.1f} | {r.floor_us:.2f} |"
        )
    return "\n".join(lines)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 1920x1080, got {text!r}") from None
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"expected a positive even size, got {text!r}")
    return w, h


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rfb.benchmark.hotpath", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=_parse_size, action="append", help="WxH (repeatable; default 1920x1080 and 3840x2160)"
    )
    parser.add_argument("--calls", type=int, default=200, help="calls per measurement (default 200)")
    parser.add_argument("--json", dest="json_path", help="also write the rows and the machine to this file")
    args = parser.parse_args(argv)
    if args.calls < 10:
        parser.error(f"--calls must be at least 10, got {args.calls}")
    from rfb.gpu.context import cupy_available, import_cupy

    reason = cupy_available()
    if reason is not None:
        print(f"rfb.benchmark.hotpath needs a CUDA GPU and CuPy: {reason}", file=sys.stderr)
        return 2
    cp = import_cupy()
    gpu = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"].decode()
    bandwidth = copy_bandwidth(cp)
    rows = [
        measure(cp, w, h, fmt, args.calls, bandwidth)
        for w, h in (args.size or DEFAULT_SIZES)
        for fmt in ("rgb24", "rgba8")
    ]
    print(format_table(rows, gpu))
    print(f"device-to-device copy: {bandwidth / 1e12:.2f} TB/s (read + write)")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "command": "python -m rfb.benchmark.hotpath " + " ".join(sys.argv[1:] if argv is None else argv),
                    "gpu": gpu,
                    "copy_bandwidth_bytes_per_s": bandwidth,
                    "machine": machine.describe(),
                    "rows": [asdict(r) | {"host_us": r.host_us} for r in rows],
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
