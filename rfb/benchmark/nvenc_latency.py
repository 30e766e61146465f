"""Per-call latency of the two NVENC routes, nvenc_gpu_cffi and nvenc_gpu_pyav, on the same frames.

    python -m rfb.benchmark.nvenc_latency --size 1920x1080 --frames 60 --json out.json

Every frame goes to both routes, configured alike (size, preset p1, tuning ull, CBR
bitrate with a one-frame VBV, GOP, no B-frames); each ``encode()`` call is timed alone
by the wall clock, from the frame in device memory to its access unit in host memory,
the routes taking turns at going first. Each call must return its own frame's access
unit. The outputs are decoded with FFmpeg and compared with the input (``exact``, and
the luma PSNR), so a fast route that encodes the wrong pixels shows.

Both routes must drive the same engine or the comparison says nothing: the result
names each route's engine (:func:`rfb.benchmark.engines.engine_of`), and
``override`` there means an override chose the library (its times need not be NVENC's).
The test suite runs the same measurement against its NVENC emulator
(``pytest -m latency tests/latency``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rfb.benchmark import patterns
from rfb.benchmark.gpu import summary_ms
from rfb.benchmark.sections import write_json_report
from rfb.colorspace import rgb_to_nv12_host
from rfb.encoders.base import EncodedPayload, EncoderBackend, EncoderConfig

WARMUP_FRAMES = 5
GOP = 120  # both routes: an IDR every 120 frames (the routes' defaults differ: infinite vs long)


# -- frames ----------------------------------------------------------------------------


class FixedInterface:
    """A device (or host) buffer behind a ``__cuda_array_interface__`` computed once.

    CuPy builds its interface dict on every access (and names its stream, which makes
    nvencffi synchronise it); this object isolates the binding's own per-frame work.
    Keeps ``owner`` alive.
    """

    def __init__(
        self, owner: Any, pointer: int, shape: tuple[int, ...], strides: tuple[int, ...] | None = None
    ) -> None:
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
    return [rgb_to_nv12_host(patterns.make("scene", width, height, i)) for i in range(count)]


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


SidesFactory = Callable[[EncoderConfig], "tuple[Input, list[Side]]"]


def device_sides(config: EncoderConfig) -> tuple[Input, list[Side]]:
    """The shared device buffer and the two routes as a display builds them, each given its view."""
    from rfb.encoders import nvenc_gpu_cffi, nvenc_gpu_pyav
    from rfb.gpu.arrays import cuda_frame

    buffer = Input("cuda", (config.height * 3 // 2, config.width), config.device_id)
    frame = cuda_frame(buffer.array, "nv12", device_id=config.device_id)
    cffi = nvenc_gpu_cffi.create(config)
    try:
        pyav = nvenc_gpu_pyav.create(config)
    except BaseException:
        cffi.close()
        raise
    return buffer, [Side("nvenc_gpu_cffi", cffi, frame), Side("nvenc_gpu_pyav", pyav, frame)]


def alternate(buffer: Input, sides: list[Side], pictures: list[np.ndarray], warmup: int) -> None:
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
    exact = len(decoded) == len(host) and all(np.array_equal(d, h) for d, h in zip(decoded, host, strict=True))
    return {
        "calls": len(side.payload_counts),
        "one_access_unit_per_call": all(c == 1 for c in side.payload_counts),
        "decoded_pictures": len(decoded),
        "exact": exact,
        "luma_psnr_db": round(float(np.mean([luma_psnr(host[i], decoded[i], height) for i in range(n)])), 2)
        if n
        else None,
    }


# -- the measurement ---------------------------------------------------------------------


def latency_config(size: tuple[int, int], bitrate: int | None, fps: float) -> EncoderConfig:
    """Both routes' settings: ``bitrate`` or 0.13 bit per pixel, a GOP of :data:`GOP`."""
    width, height = size
    bitrate = bitrate or max(100_000, int(round(width * height * fps * 0.13, -5)))
    return EncoderConfig(width, height, fps=fps, bitrate=bitrate, gop=GOP)


def measure_latency(
    config: EncoderConfig,
    frames: int,
    *,
    memory: str = "cuda",
    sides: SidesFactory = device_sides,
    before_close: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Time both routes on ``frames`` pictures (after :data:`WARMUP_FRAMES`), taking turns.

    ``sides`` builds the input buffer and the routes (the test suite passes host-memory
    ones); ``before_close`` runs once every frame is encoded, before the encoders close.
    """
    host = nv12_frames((config.width, config.height), WARMUP_FRAMES + frames)
    buffer, made = sides(config)
    try:
        alternate(buffer, made, host, WARMUP_FRAMES)
        if before_close is not None:
            before_close()
    finally:
        for s in made:
            s.encoder.close()
    routes = {}
    for s in made:
        routes[s.name] = {
            "latency": summary_ms(s.times),
            "mean_ms": round(float(np.mean(s.times)) * 1e3, 4),
            "frames": len(s.times),
            "kb_per_frame": round(float(np.mean(s.sizes)) / 1e3, 2),
            **check_output(s, host, config.height),
        }
    a, b = (routes[s.name] for s in made)
    return {
        "mode": "latency",
        "memory": memory,
        "size": f"{config.width}x{config.height}",
        "settings": {
            "preset": "p1",
            "tuning": "ull",
            "rate_control": "cbr",
            "bitrate": config.bitrate,
            "fps": config.fps,
            "gop": GOP,
            "b_frames": 0,
            "warmup_frames": WARMUP_FRAMES,
        },
        "routes": routes,
        "ratio_median": round(a["latency"]["median_ms"] / b["latency"]["median_ms"], 3),
    }


def engines() -> dict[str, str]:
    """The engine each route's library is (see :func:`rfb.benchmark.engines.engine_of`)."""
    from rfb.benchmark.engines import engine_of

    return {"nvencffi": engine_of("nvenc_gpu_cffi"), "ffmpeg": engine_of("nvenc_cpu")}


def with_engines(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the engine each route drove (:func:`engines`) and the Python version added."""
    result["engines"] = engines()
    result["python"] = sys.version.split()[0]
    return result


# -- command line ------------------------------------------------------------------------


ROUTES = ("nvenc_gpu_cffi", "nvenc_gpu_pyav")


def unavailable_routes(device_id: int = 0) -> list[str]:
    """ "ROUTE: reason" for each of :data:`ROUTES` whose probe says it cannot run here."""
    from rfb.encoders.registry import get_entry, probe_entry

    reasons = {name: probe_entry(get_entry(name), device_id=device_id) for name in ROUTES}
    return [f"{name}: {reason}" for name, reason in reasons.items() if reason is not None]


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1920x1080, got {text!r}") from None
    return width, height


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfb.benchmark.nvenc_latency", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=parse_size, default=(1920, 1080), metavar="WxH")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--bitrate", type=int, default=None)
    p.add_argument("--fps", type=float, default=60.0)
    p.add_argument("--json", dest="json_path")
    args = p.parse_args(argv)
    problems = unavailable_routes()
    if problems:
        print(f"error: both NVENC routes must run here; {'; '.join(problems)}", file=sys.stderr)
        return 1
    result = with_engines(measure_latency(latency_config(args.size, args.bitrate, args.fps), args.frames))
    print(f"{result['size']}, {args.frames} frames, engines {result['engines']}")
    for name, route in result["routes"].items():
        stats = route["latency"]
        print(
            f"  {name:<16} median {stats['median_ms']:.3f} ms  p95 {stats['p95_ms']:.3f}  p99 {stats['p99_ms']:.3f}  "
            f"{route['kb_per_frame']:.1f} KB/frame  luma PSNR {route['luma_psnr_db']} dB  "
            f"one AU per call: {route['one_access_unit_per_call']}"
        )
    print(f"  cffi/PyAV median ratio {result['ratio_median']}")
    if args.json_path:
        write_json_report(args.json_path, "rfb.benchmark.nvenc_latency", argv, **result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
