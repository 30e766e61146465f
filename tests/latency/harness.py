"""The measuring process: identical frames through the cffi and the PyAV route, taking turns.

Run by tests/latency/test_latency.py in a fresh process whose environment picks the
NVENC library (see engine.py); it can also be run by hand:

    python -m tests.latency.harness latency --size 1920x1080 --frames 60 --json out.json
    python -m tests.latency.harness overhead --size 1920x1080 --frames 3000 --json out.json

``latency``: every frame goes to both routes, configured alike (size, preset p1, tuning
ull, CBR bitrate with a one-frame VBV, GOP, no B-frames); each ``encode()`` call is
timed alone by the wall clock, from the frame in memory to its access unit in host
memory. Each call must return its own frame's access unit. The outputs are decoded
with FFmpeg: with the emulator (I_PCM) they must equal the input NV12 exactly, which
proves both routes fed the engine the right pixels; with NVENC the PSNR is reported.

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
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rfb.benchmark import patterns
from rfb.benchmark.engines import engine_of
from rfb.benchmark.gpu import summary_ms, take_turns
from rfb.colorspace import rgb_to_nv12_host
from rfb.encoders.base import EncodedPayload, EncoderBackend, EncoderConfig

WARMUP_FRAMES = 5
GOP = 120  # both routes: an IDR every 120 frames (the routes' defaults differ: infinite vs long)
HOST_OVERHEAD_GOAL_US = (
    10.0  # issue 5's goal for NvencEncoder.encode() on the GPU machine's CPU
)


# -- frames ----------------------------------------------------------------------------


class FixedInterface:
    """A device (or host) buffer behind a ``__cuda_array_interface__`` computed once.

    CuPy builds its interface dict on every access (and names its stream, which makes
    nvencffi synchronise it); this object isolates the binding's own per-frame work.
    Keeps ``owner`` alive.
    """

    def __init__(self, owner: Any, pointer: int, shape: tuple[int, ...],
                 strides: tuple[int, ...] | None = None) -> None:
        self.owner = owner
        self.__cuda_array_interface__ = {
            "shape": shape,
            "typestr": "|u1",
            "data": (pointer, False),
            "strides": strides,
            "version": 3,
            "stream": None,
        }


def nv12_frames(size: tuple[int, int], count: int) -> list[np.ndarray]:
    """``count`` distinct NV12 pictures (the benchmark's moving scene), host memory."""
    width, height = size
    return [
        rgb_to_nv12_host(patterns.make("scene", width, height, i)) for i in range(count)
    ]


@dataclass
class Side:
    """One route under test: its encoder, the frame object it is given, its measurements."""

    name: str
    encoder: EncoderBackend
    frame: Any  # what encode() is given: a view of the shared input buffer
    times: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    payload_counts: list[int] = field(default_factory=list)

    def step(self, *, keep: bool) -> None:
        t0 = time.perf_counter()
        out: list[EncodedPayload] = self.encoder.encode(self.frame)
        t1 = time.perf_counter()
        self.payload_counts.append(len(out))
        data = b"".join(p.data for p in out)
        self.payloads.append(data)
        if keep:
            self.times.append(t1 - t0)
            self.sizes.append(len(data))


class Input:
    """The one NV12 buffer both routes read, as a renderer's framebuffer is: reused every frame.

    ``load(picture)`` writes the next picture into it (host memory, or device memory by
    one synchronous host-to-device copy) before the routes take their turns; that copy
    is not timed. Reusing one buffer also means each route registers it once, as in
    production, instead of timing a registration per frame. Device rows are 256 bytes
    apart (the pitch both routes register in place: 1920-byte rows would be copied into
    a staging buffer by each, every frame), as a pitched allocation's are.
    """

    def __init__(self, memory: str, shape: tuple[int, int], device_id: int) -> None:
        self.memory = memory
        self.device_id = device_id
        if memory == "host":
            self.host = np.zeros(shape, dtype=np.uint8)
            self.array: Any = FixedInterface(self.host, self.host.ctypes.data, shape)
        else:
            from rfb.gpu.context import import_cupy

            from rfb.gpu.staging import aligned_pitch

            self._cp = cp = import_cupy()
            with cp.cuda.Device(device_id):
                storage = cp.zeros((shape[0], aligned_pitch(shape[1])), dtype=cp.uint8)
                self.array = storage[:, : shape[1]]

    def load(self, picture: np.ndarray) -> None:
        if self.memory == "host":
            np.copyto(self.host, picture)
            return
        cp = self._cp
        with cp.cuda.Device(self.device_id):
            self.array[...] = cp.asarray(picture)
            cp.cuda.get_current_stream().synchronize()


def _sides(memory: str, config: EncoderConfig) -> tuple[Input, list[Side]]:
    """The shared input buffer and (cffi side, PyAV side), each with its view of the buffer."""
    from rfb.encoders import nvenc_gpu_cffi
    from rfb.frames import frame_from_array
    from rfb.gpu.arrays import cuda_frame

    buffer = Input(memory, (config.height * 3 // 2, config.width), config.device_id)
    frame = cuda_frame(buffer.array, "nv12", device_id=config.device_id)
    if memory == "host":
        import nvencffi
        from tests.latency import host_cuda

        cffi = nvenc_gpu_cffi.NvencGpuEncoder(config, context=nvencffi.NullContext())
        try:
            pyav = host_cuda.create(
                config
            )  # FFmpeg's CUDA-frame path, as nvenc_gpu_pyav drives it
        except BaseException:
            cffi.close()
            raise
        return buffer, [
            Side("nvenc_gpu_cffi (host memory)", cffi, frame),
            Side(host_cuda.NAME, pyav, frame_from_array(buffer.host, "nv12")),
        ]
    from rfb.encoders import nvenc_gpu_pyav

    cffi = nvenc_gpu_cffi.create(config)
    try:
        pyav = nvenc_gpu_pyav.create(config)
    except BaseException:
        cffi.close()
        raise
    return buffer, [
        Side("nvenc_gpu_cffi", cffi, frame),
        Side("nvenc_gpu_pyav", pyav, frame),
    ]


def alternate(
    buffer: Input, sides: list[Side], pictures: list[np.ndarray], warmup: int
) -> None:
    """Load each picture, then let the routes encode it, who goes first alternating."""
    for n, picture in enumerate(pictures):
        buffer.load(picture)
        shift = n % len(sides)
        for side in (*sides[shift:], *sides[:shift]):
            side.step(keep=n >= warmup)


# -- checking the output ---------------------------------------------------------------


def decode_nv12(access_units: Sequence[bytes]) -> list[np.ndarray]:
    """Decode a stream with FFmpeg's H.264 decoder into NV12 arrays ``(H + H/2, W)``."""
    import av

    context = av.CodecContext.create("h264", "r")
    out = []
    for au in access_units:
        out += [f.to_ndarray(format="nv12") for f in context.decode(av.Packet(au))]
    out += [f.to_ndarray(format="nv12") for f in context.decode(None)]
    return out


def luma_psnr(reference: np.ndarray, decoded: np.ndarray, height: int) -> float:
    from rfb.benchmark.metrics import psnr

    return psnr(reference[:height], decoded[:height])


def check_output(side: Side, host: list[np.ndarray], height: int) -> dict[str, Any]:
    """Did every call return one access unit, and what does the stream decode to?"""
    decoded = decode_nv12(side.payloads)
    n = min(len(decoded), len(host))
    exact = len(decoded) == len(host) and all(
        np.array_equal(d, h) for d, h in zip(decoded, host, strict=True)
    )
    return {
        "calls": len(side.payload_counts),
        "one_access_unit_per_call": all(c == 1 for c in side.payload_counts),
        "decoded_pictures": len(decoded),
        "exact": exact,
        "luma_psnr_db": round(
            float(np.mean([luma_psnr(host[i], decoded[i], height) for i in range(n)])),
            2,
        )
        if n
        else None,
    }


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


def measure_latency(
    memory: str, size: tuple[int, int], frames: int, bitrate: int | None, fps: float
) -> dict[str, Any]:
    width, height = size
    bitrate = bitrate or max(100_000, int(round(width * height * fps * 0.13, -5)))
    config = EncoderConfig(width, height, fps=fps, bitrate=bitrate, gop=GOP)
    emu = emulator_handle()
    host = nv12_frames(size, WARMUP_FRAMES + frames)
    buffer, sides = _sides(memory, config)
    try:
        alternate(buffer, sides, host, WARMUP_FRAMES)
        sessions = list(emu.sessions()) if emu is not None else []
    finally:
        for s in sides:
            s.encoder.close()
    routes = {}
    for s in sides:
        routes[s.name] = {
            "latency": summary_ms(s.times),
            "mean_ms": round(float(np.mean(s.times)) * 1e3, 4),
            "frames": len(s.times),
            "kb_per_frame": round(float(np.mean(s.sizes)) / 1e3, 2),
            **check_output(s, host, height),
        }
    a, b = (routes[s.name] for s in sides)
    return {
        "mode": "latency",
        "memory": memory,
        "size": f"{width}x{height}",
        "settings": {
            "preset": "p1",
            "tuning": "ull",
            "rate_control": "cbr",
            "bitrate": bitrate,
            "fps": fps,
            "gop": GOP,
            "b_frames": 0,
            "warmup_frames": WARMUP_FRAMES,
        },
        "routes": routes,
        "ratio_median": round(a["latency"]["median_ms"] / b["latency"]["median_ms"], 3),
        "sessions_seen": _session_summary(sessions),
        "ledger": emu.ledger() if emu is not None else None,
    }


def measure_overhead(memory: str, size: tuple[int, int], frames: int) -> dict[str, Any]:
    """Per-call host time with the emulator in no-pixel mode (overhead only)."""
    import nvencffi

    emu = emulator_handle()
    if emu is None:
        raise SystemExit(
            "overhead mode needs the NVENC emulator (its no-pixel mode); NVENCFFI_LIBRARY is not set"
        )
    emu.set_no_pixel_work(True)
    width, height = size
    config = EncoderConfig(width, height, fps=60.0, bitrate=8_000_000, gop=GOP)
    buffer, sides = _sides(memory, config)
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
                "NvencEncoder.encode (CuPy array)"
                if memory == "cuda"
                else "NvencEncoder.encode (host wrapper)",
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

        take_turns(
            [timed(n, c) for n, c in runners], range(WARMUP_FRAMES * 20 + frames)
        )
    finally:
        binding.close()
        for s in sides:
            s.encoder.close()
        emu.set_no_pixel_work(False)
    result = {
        name: {
            **{
                k.replace("_ms", "_us"): round(v * 1e3, 3)
                for k, v in summary_ms(t).items()
            },
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
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--bitrate", type=int, default=None)
    p.add_argument("--fps", type=float, default=60.0)
    p.add_argument("--json", dest="json_path", required=True)
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    if args.mode == "latency":
        result = measure_latency(
            args.memory, (w, h), args.frames, args.bitrate, args.fps
        )
    else:
        result = measure_overhead(args.memory, (w, h), args.frames)
    result["engines"] = {
        "nvencffi": engine_of("nvenc_gpu_cffi"),
        "ffmpeg": engine_of("nvenc_cpu"),
    }
    result["python"] = sys.version.split()[0]
    with open(args.json_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
