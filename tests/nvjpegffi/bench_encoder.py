"""Time of one nvJPEG encode, by layer, on a GPU machine. Not a test (no timing assertions).

    python -m tests.nvjpegffi.bench_encoder [frames] [--json PATH]

For each size and pattern, on the same CuPy frames (rgb24, already in device memory):

- ``nvjpegffi``: ``JpegEncoder.encode_rgb`` (encode, retrieve the JPEG into pinned host
  memory, wait for the stream, copy out ``bytes``): the binding alone;
- ``jpeg_gpu``: the route's ``encode`` (frame checks, array interface, then the same);
- ``gpu_ms``: CUDA events around nvJPEG's queued work on the stream (encode and the
  copy back), i.e. the GPU's share of the wall time.

Medians and p95 over ``frames`` frames after 20 untimed ones; KB per frame.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from rfb.benchmark import patterns
from rfb.benchmark.metrics import percentile

PLAN = [(1920, 1080, p) for p in ("gradient", "scene", "noise")] + [
    (w, h, "scene") for w, h in ((1280, 720), (2560, 1440), (3840, 2160))
]
WARMUP = 20


def main(argv: list[str]) -> int:
    import cupy as cp

    import nvjpegffi
    from rfb.encoders.base import EncoderConfig
    from rfb.encoders.jpeg_gpu import JpegGpuEncoder
    from rfb.gpu import cuda_frame

    frames = int(argv[0]) if argv and not argv[0].startswith("--") else 200
    json_path = argv[argv.index("--json") + 1] if "--json" in argv else None
    lib = nvjpegffi.load_library()
    name = cp.cuda.runtime.getDeviceProperties(0)["name"]
    gpu = name.decode() if isinstance(name, bytes) else str(name)
    print(f"GPU {gpu}; nvJPEG {'.'.join(map(str, lib.version))} ({lib.path}); quality 80, 4:2:0")
    rows: list[dict[str, Any]] = []
    for width, height, pattern in PLAN:
        device = [cp.asarray(patterns.make(pattern, width, height, i)) for i in range(4)]
        cp.cuda.Device().synchronize()
        start, end = cp.cuda.Event(), cp.cuda.Event()
        binding, route, on_gpu, sizes = [], [], [], []
        with nvjpegffi.JpegEncoder(width, height, quality=80) as enc, JpegGpuEncoder(EncoderConfig(width, height, quality=80)) as backend:
            for i in range(WARMUP + frames):
                d = device[i % 4]
                t0 = time.perf_counter()
                start.record()
                data = enc.encode_rgb(d.data.ptr, d.strides[0])
                end.record()
                t1 = time.perf_counter()
                (payload,) = backend.encode(cuda_frame(d))
                t2 = time.perf_counter()
                end.synchronize()
                if i >= WARMUP:
                    binding.append(t1 - t0)
                    route.append(t2 - t1)
                    on_gpu.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
                    sizes.append(len(data))
        assert payload.data[:2] == b"\xff\xd8"
        row = {
            "gpu": gpu, "width": width, "height": height, "pattern": pattern, "frames": frames,
            "nvjpegffi_ms_median": round(percentile(binding, 50) * 1e3, 3),
            "nvjpegffi_ms_p95": round(percentile(binding, 95) * 1e3, 3),
            "jpeg_gpu_ms_median": round(percentile(route, 50) * 1e3, 3),
            "jpeg_gpu_ms_p95": round(percentile(route, 95) * 1e3, 3),
            "gpu_ms_median": round(percentile(on_gpu, 50) * 1e3, 3),
            "kb_per_frame": round(float(np.mean(sizes)) / 1e3, 1),
        }
        rows.append(row)
        print(f"{width}x{height} {pattern:<8} nvjpegffi {row['nvjpegffi_ms_median']:.3f} ms (p95 {row['nvjpegffi_ms_p95']:.3f}) "
              f"jpeg_gpu {row['jpeg_gpu_ms_median']:.3f} ms (p95 {row['jpeg_gpu_ms_p95']:.3f}) "
              f"GPU {row['gpu_ms_median']:.3f} ms  {row['kb_per_frame']:.1f} KB", flush=True)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
