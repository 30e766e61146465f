"""Time of one nvJPEG encode, by layer, on a GPU machine.

    python -m rfb.benchmark.nvjpeg_layers [frames] [--json PATH] [--between WHAT ...] [--quick]
    python -m rfb.benchmark.nvjpeg_layers [frames] --compare [--json PATH] [--schedules MODE ...]

For each size and pattern, on the same CuPy frames (rgb24, already in device memory):

- ``nvjpegffi``: ``JpegEncoder.encode_rgb`` (encode, retrieve the JPEG into pinned host
  memory, wait for the stream, copy out ``bytes``): the binding alone;
- ``jpeg_gpu``: the route's ``encode`` (frame checks, array interface, then the same);
- ``gpu_ms``: CUDA events around nvJPEG's queued work on the stream (encode and the
  copy back), i.e. the GPU's share of the wall time.

``--between`` says what runs before each timed call, untimed, as other work does in a
real program and in ``python -m rfb.benchmark --gpu`` (paths taking turns):

- ``none``: nothing (back to back, the best case);
- ``sleep``: the thread sleeps 3 ms (the encoder thread of a server waiting for the next frame);
- ``spin``: the thread computes for 3 ms (a busy CPU);
- ``cpu-jpeg``: the CPU JPEG route (``image``, strips on every core) encodes the frame from the host;
- ``render``: a device-to-device copy of the frame, finished (a renderer's last kernel).

Several may be given (default ``none``). ``--quick`` keeps 1080p ``scene`` only. Medians
and p95 over ``frames`` frames after 20 untimed ones; KB per frame.

``--compare`` instead times the candidate remedies of issue 15 against the current
route, interleaved in one process, and the primary context's wait modes in one child
process each (``--schedules``, default all four; none with an empty list): see
:mod:`rfb.benchmark.nvjpeg_variants`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rfb.benchmark import patterns
from rfb.benchmark.metrics import percentile
from rfb.benchmark.sections import write_json_report

PLAN = [(1920, 1080, p) for p in ("gradient", "scene", "noise")] + [
    (w, h, "scene") for w, h in ((1280, 720), (2560, 1440), (3840, 2160))
]
WARMUP = 20


BETWEEN = ("none", "sleep", "spin", "cpu-jpeg", "render")
GAP_S = 0.003


def _neighbour(
    what: str, host: list[np.ndarray], device: list[Any], cp: Any, width: int, height: int
) -> tuple[Callable[[int], None], Callable[[], None]]:
    """(step, close): the untimed work run before each timed call."""
    if what == "none":
        return (lambda i: None), (lambda: None)
    if what == "sleep":
        return (lambda i: time.sleep(GAP_S)), (lambda: None)
    if what == "spin":

        def spin(i: int) -> None:
            end = time.perf_counter() + GAP_S
            while time.perf_counter() < end:
                pass

        return spin, (lambda: None)
    if what == "cpu-jpeg":
        from rfb.encoders.base import EncoderConfig
        from rfb.encoders.registry import get_entry
        from rfb.frames import frame_from_array

        encoder = get_entry("image").factory(EncoderConfig(width, height, quality=80))

        def cpu_jpeg(i: int) -> None:
            encoder.encode(frame_from_array(host[i % len(host)]))

        return cpu_jpeg, encoder.close
    if what == "render":
        canvas = cp.empty_like(device[0])

        def render(i: int) -> None:
            canvas[...] = device[i % len(device)]
            cp.cuda.get_current_stream().synchronize()

        return render, (lambda: None)
    raise ValueError(f"--between takes one of {BETWEEN}, got {what!r}")


def measure(cp: Any, gpu: str, width: int, height: int, pattern: str, between: str, frames: int) -> dict[str, Any]:
    """One row: the binding, the route and the GPU's share, with ``between`` run before each call."""
    import nvjpegffi
    from rfb.encoders.base import EncoderConfig
    from rfb.encoders.jpeg_gpu import JpegGpuEncoder
    from rfb.gpu import cuda_frame

    host = [patterns.make(pattern, width, height, i) for i in range(4)]
    device = [cp.asarray(h) for h in host]
    cp.cuda.Device().synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    binding, route, on_gpu, sizes = [], [], [], []
    step, close = _neighbour(between, host, device, cp, width, height)
    config = EncoderConfig(width, height, quality=80)
    try:
        with nvjpegffi.JpegEncoder(width, height, quality=80) as enc, JpegGpuEncoder(config) as backend:
            for i in range(WARMUP + frames):
                d = device[i % 4]
                step(i)
                t0 = time.perf_counter()
                start.record()
                data = enc.encode_rgb(d.data.ptr, d.strides[0])
                end.record()
                t1 = time.perf_counter()
                end.synchronize()
                step(i)
                t2 = time.perf_counter()
                (payload,) = backend.encode(cuda_frame(d))
                t3 = time.perf_counter()
                if i >= WARMUP:
                    binding.append(t1 - t0)
                    route.append(t3 - t2)
                    on_gpu.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
                    sizes.append(len(data))
    finally:
        close()
    if payload.data[:2] != b"\xff\xd8":
        raise RuntimeError(f"expected jpeg_gpu to return a JPEG (FF D8), got {payload.data[:2].hex()}")
    return {
        "gpu": gpu,
        "width": width,
        "height": height,
        "pattern": pattern,
        "frames": frames,
        "between": between,
        "nvjpegffi_ms_median": round(percentile(binding, 50) * 1e3, 3),
        "nvjpegffi_ms_p95": round(percentile(binding, 95) * 1e3, 3),
        "jpeg_gpu_ms_median": round(percentile(route, 50) * 1e3, 3),
        "jpeg_gpu_ms_p95": round(percentile(route, 95) * 1e3, 3),
        "gpu_ms_median": round(percentile(on_gpu, 50) * 1e3, 3),
        "kb_per_frame": round(float(np.mean(sizes)) / 1e3, 1),
    }


def main(argv: list[str]) -> int:
    import nvjpegffi
    from rfb.benchmark import nvjpeg_variants
    from rfb.gpu.context import GpuUnavailable, gpu_available, import_cupy

    parser = argparse.ArgumentParser(prog="python -m rfb.benchmark.nvjpeg_layers")
    parser.add_argument("frames", nargs="?", type=int, default=200)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--between", nargs="+", choices=BETWEEN, default=["none"])
    parser.add_argument("--quick", action="store_true", help="1080p scene only")
    parser.add_argument(
        "--compare", action="store_true", help="the remedies of issue 15 against the current route (1080p scene)"
    )
    parser.add_argument(
        "--schedules",
        nargs="*",
        choices=nvjpeg_variants.SCHEDULES,
        default=list(nvjpeg_variants.SCHEDULES),
        help="with --compare: context wait modes, one child process each (default: all)",
    )
    parser.add_argument("--child-schedule", choices=nvjpeg_variants.SCHEDULES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.frames <= 0:
        parser.error(f"frames must be a positive integer, got {args.frames}")
    if args.child_schedule is not None:  # before anything activates the primary context
        return nvjpeg_variants.child(args.child_schedule, args.frames)
    try:
        reason = gpu_available()
        if reason is not None:
            raise GpuUnavailable(reason)
        cp = import_cupy()
        lib = nvjpegffi.load_library()
    except (GpuUnavailable, nvjpegffi.NvjpegUnavailable) as exc:
        print(f"error: this benchmark needs a CUDA GPU, CuPy and nvJPEG: {exc}", file=sys.stderr)
        return 1
    name = cp.cuda.runtime.getDeviceProperties(0)["name"]
    gpu = name.decode() if isinstance(name, bytes) else str(name)
    print(f"GPU {gpu}; nvJPEG {'.'.join(map(str, lib.version))} ({lib.path}); quality 80, 4:2:0")
    if args.compare:
        result = nvjpeg_variants.compare(cp, args.frames, args.schedules, lambda line: print(line, flush=True))
        if args.json:
            nvjpeg = ".".join(map(str, lib.version))
            write_json_report(args.json, "rfb.benchmark.nvjpeg_layers", argv, gpu=gpu, nvjpeg=nvjpeg, **result)
        return 0
    plan = [(1920, 1080, "scene")] if args.quick else PLAN
    rows: list[dict[str, Any]] = []
    for between in args.between:
        for width, height, pattern in plan:
            row = measure(cp, gpu, width, height, pattern, between, args.frames)
            rows.append(row)
            print(
                f"{width}x{height} {pattern:<8} between={between:<8} "
                f"nvjpegffi {row['nvjpegffi_ms_median']:.3f} ms (p95 {row['nvjpegffi_ms_p95']:.3f}) "
                f"jpeg_gpu {row['jpeg_gpu_ms_median']:.3f} ms (p95 {row['jpeg_gpu_ms_p95']:.3f}) "
                f"GPU {row['gpu_ms_median']:.3f} ms  {row['kb_per_frame']:.1f} KB",
                flush=True,
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
