"""The test suite's measuring process: rfb.benchmark.nvenc_latency, on the NVENC emulator too.

Run by tests/latency/test_latency.py and test_harness.py (through runner.py) in a fresh
process whose environment picks the NVENC library (see engine.py); it is not a command
for users. What users run on a machine with NVENC is ``python -m
rfb.benchmark.nvenc_latency``; this adds what needs the emulator, which is test-only:

``latency``: the same measurement, plus the emulator's record of both sessions (their
settings must agree) and its ledger (nothing leaked). With the emulator (I_PCM) the
decoded streams must equal the input NV12 exactly, which proves both routes fed the
engine the right pixels.

``overhead`` (emulator only): the emulator's no-pixel mode validates every call but
never reads a pixel, so what is left per frame is host work: the binding's
(``NvencEncoder.encode()``, once given a CuPy array and once a fixed
``__cuda_array_interface__``, which isolates CuPy's own per-access cost), the whole
cffi route's, and the PyAV route's (from_dlpack, FFmpeg, its nvenc wrapper).

``--memory host`` (CI, no GPU): nvencffi reads host memory through the emulator and the
PyAV side is FFmpeg fed the same host memory as CUDA frames (tests/latency/host_cuda.py,
the stand-in libcuda serving FFmpeg): the CUDA-frame path of nvenc_gpu_pyav, no GPU.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from rfb.benchmark import nvenc_latency
from rfb.benchmark.gpu import summary_ms, take_turns
from rfb.benchmark.nvenc_latency import (
    GOP,
    WARMUP_FRAMES,
    FixedInterface,
    Input,
    Side,
    SidesFactory,
    device_sides,
    latency_config,
    nv12_frames,
)
from rfb.benchmark.sections import write_json_report
from rfb.encoders.base import EncoderConfig

HOST_OVERHEAD_GOAL_US = 10.0  # the host time per NvencEncoder.encode() call the binding aims at (GPU machine)


# -- host memory (CI) ----------------------------------------------------------------


def host_sides(config: EncoderConfig) -> tuple[Input, list[Side]]:
    """Host memory for both routes: nvencffi through the emulator, FFmpeg's CUDA-frame path on the stand-in libcuda."""
    import nvencffi
    from rfb.encoders import nvenc_gpu_cffi
    from rfb.frames import frame_from_array
    from rfb.gpu.arrays import cuda_frame
    from tests.latency import host_cuda

    buffer = Input("host", (config.height * 3 // 2, config.width), config.device_id)
    frame = cuda_frame(buffer.array, "nv12", device_id=config.device_id)
    cffi = nvenc_gpu_cffi.NvencGpuEncoder(config, context=nvencffi.NullContext())
    try:
        pyav = host_cuda.create(config)  # FFmpeg's CUDA-frame path, as nvenc_gpu_pyav drives it
    except BaseException:
        cffi.close()
        raise
    return buffer, [
        Side("nvenc_gpu_cffi (host memory)", cffi, frame),
        Side(host_cuda.NAME, pyav, frame_from_array(buffer.host, "nv12")),
    ]


def _sides(memory: str) -> SidesFactory:
    return host_sides if memory == "host" else device_sides


# -- the emulator, when it is what the routes load ---------------------------------------


def emulator_handle() -> Any:
    """The emulator's control wrapper when both routes load it (one instance), else None.

    nvencffi loads ``NVENCFFI_LIBRARY``; FFmpeg loads the soname through LD_LIBRARY_PATH.
    glibc hands out one instance per file, so the two handles must be equal; if they
    are not, the two routes would be driving different engines and the run is void.
    """
    path = os.environ.get("NVENCFFI_LIBRARY")
    if not path:
        return None
    from tests.nvenc_emulator import Emulator

    by_path = ctypes.CDLL(path)
    by_name = ctypes.CDLL("libnvidia-encode.so.1")
    if by_path._handle != by_name._handle:
        raise SystemExit(
            f"nvencffi loads {path} but FFmpeg's dlopen('libnvidia-encode.so.1') finds another library; "
            "put the emulator's directory first in LD_LIBRARY_PATH"
        )
    emu = Emulator(path)
    emu.reset()
    return emu


# -- the two measurements ----------------------------------------------------------------


def measure_latency(memory: str, size: tuple[int, int], frames: int, bitrate: int | None, fps: float) -> dict[str, Any]:
    """rfb.benchmark.nvenc_latency's measurement, with the emulator's record of the sessions."""
    emu = emulator_handle()
    sessions: list[dict[str, int]] = []

    def record_sessions() -> None:
        if emu is not None:
            sessions.extend(emu.sessions())

    result = nvenc_latency.measure_latency(
        latency_config(size, bitrate, fps), frames, memory=memory, sides=_sides(memory), before_close=record_sessions
    )
    result["sessions_seen"] = _session_summary(sessions)
    result["ledger"] = emu.ledger() if emu is not None else None
    return result


def measure_overhead(memory: str, size: tuple[int, int], frames: int) -> dict[str, Any]:
    """Per-call host time with the emulator in no-pixel mode (overhead only)."""
    import nvencffi

    emu = emulator_handle()
    if emu is None:
        raise SystemExit("overhead mode needs the NVENC emulator (its no-pixel mode); NVENCFFI_LIBRARY is not set")
    emu.set_no_pixel_work(True)
    width, height = size
    config = EncoderConfig(width, height, fps=60.0, bitrate=8_000_000, gop=GOP)
    buffer, sides = _sides(memory)(config)
    buffer.load(nv12_frames(size, 1)[0])
    context = nvencffi.NullContext() if memory == "host" else None
    try:
        binding = nvencffi.NvencEncoder(
            width,
            height,
            preset="p1",
            tuning="ull",
            rate_control="cbr",
            bitrate=config.bitrate,
            fps=config.fps,
            gop=GOP,
            context=context,
        )
    except BaseException:
        for s in sides:
            s.encoder.close()
        raise
    try:
        array = buffer.array  # a CuPy array (cuda) or a FixedInterface (host)
        fixed = (
            array
            if memory == "host"
            else FixedInterface(array, array.data.ptr, tuple(array.shape), tuple(array.strides))
        )
        runners: list[tuple[str, Callable[[], Any]]] = [
            ("NvencEncoder.encode (fixed interface)", lambda: binding.encode(fixed)),
            (
                "NvencEncoder.encode (CuPy array)" if memory == "cuda" else "NvencEncoder.encode (host wrapper)",
                lambda: binding.encode(array),
            ),
            (
                sides[0].name + " route",
                lambda: sides[0].encoder.encode(sides[0].frame),
            ),
            (
                sides[1].name + " route",
                lambda: sides[1].encoder.encode(sides[1].frame),
            ),
        ]
        if memory == "host":
            runners.pop(1)  # the same object as the fixed interface there
        times: dict[str, list[float]] = {name: [] for name, _ in runners}
        empty: dict[str, int] = {name: 0 for name, _ in runners}

        def timed(name: str, call: Callable[[], Any]) -> Callable[[int], None]:
            def step(index: int) -> None:
                t0 = time.perf_counter_ns()
                out = call()
                t1 = time.perf_counter_ns()
                if not out:
                    empty[name] += 1
                if index >= WARMUP_FRAMES * 20:
                    times[name].append((t1 - t0) / 1e9)

            return step

        take_turns([timed(n, c) for n, c in runners], range(WARMUP_FRAMES * 20 + frames))
    finally:
        binding.close()
        for s in sides:
            s.encoder.close()
        emu.set_no_pixel_work(False)
    result = {
        name: {
            **{k.replace("_ms", "_us"): round(v * 1e3, 3) for k, v in summary_ms(t).items()},
            "calls": len(t),
            "empty_outputs": empty[name],
        }
        for name, t in times.items()
    }
    return {
        "mode": "overhead",
        "memory": memory,
        "size": f"{width}x{height}",
        "routes": result,
        "goal_us": HOST_OVERHEAD_GOAL_US,
        "ledger": emu.ledger(),
    }


# The settings both routes must have given the engine (the emulator's record of a session).
SESSION_SETTINGS = (
    "width",
    "height",
    "preset",
    "tuning_info",
    "rate_control_mode",
    "average_bitrate",
    "vbv_buffer_size",
    "gop_length",
    "idr_period",
    "frame_rate_num",
    "frame_rate_den",
    "profile_idc",
)


def _session_summary(sessions: list[dict[str, int]]) -> list[dict[str, int]]:
    keys = (*SESSION_SETTINGS, "api_major", "api_minor")
    return [{k: s[k] for k in keys if k in s} for s in sessions]


# -- command line ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.latency.harness")
    p.add_argument("mode", choices=("latency", "overhead"))
    p.add_argument("--memory", choices=("cuda", "host"), default="cuda")
    p.add_argument("--size", type=nvenc_latency.parse_size, default=(1920, 1080), metavar="WxH")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--bitrate", type=int, default=None)
    p.add_argument("--fps", type=float, default=60.0)
    p.add_argument("--json", dest="json_path", required=True)
    args = p.parse_args(argv)
    if args.mode == "latency":
        result = measure_latency(args.memory, args.size, args.frames, args.bitrate, args.fps)
    else:
        result = measure_overhead(args.memory, args.size, args.frames)
    write_json_report(args.json_path, "tests.latency.harness", argv, **nvenc_latency.with_engines(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
