"""The ``gpu`` section (``python -m rfb.benchmark --gpu``): frames that start on the GPU.

For every size and every GPU route of the registry, the same frames go two ways,
measured in the same run, taking turns frame by frame:

- **GPU origin**: an rgb24 frame already in device memory (a renderer's output) is
  converted to NV12 by ``rfb.gpu.rgb_to_nv12`` (timed with CUDA events, kernel only)
  and handed to the route as a CUDA frame ("GPU encode": the route's ``encode``, until
  the access unit is in host memory; zero copy into NVENC for the NVENC routes);
  "GPU total" is both, by the wall clock.
- **CPU origin**: the same picture as a host rgb24 array, given to the CPU route that
  a machine without this GPU path would use (``nvenc_cpu`` for the NVENC routes:
  swscale on the CPU, upload, NVENC; ``h264_cpu`` for the other H.264 routes: swscale,
  libx264; the CPU JPEG route ``image`` for image routes).
- **CPU route, device frame**: that CPU route fed the GPU-origin frame the way rfb
  feeds it to a display without the GPU route: through
  :class:`~rfb.gpu.adapter.HostFrameAdapter` (staged on the GPU, one copy down into
  pinned memory, then the CPU encoder). This is what a GPU renderer pays without the
  GPU route; for ``h264_gpu_nv12``, which *is* that adapter around libx264, the two
  should agree.

Every GPU-side step starts by "rendering" its frame, untimed: the picture is copied
into one device buffer and the stream synchronized, as a renderer's last kernel writes
its output just before ``publish()``.

"CPU ms" is the process's CPU time per frame over all its threads (``time.process_time``
around the same call): what a route takes from a machine whose CPU also simulates.

The speed-ups are each CPU path's total / GPU total (medians). Frames are decoded back
to RGB (FFmpeg's decoder, or the image decoder) for PSNR, outside the timed region. The
first ``WARMUP_FRAMES`` frames of each path are not timed (CuPy compiles its kernel,
encoders start, the IDR).

Routes that cannot run are listed with their probe's reason, never dropped. Each row
names its engine (:func:`rfb.benchmark.engines.engine_of`): where an override chose
the route's libnvidia-encode (``NVENCFFI_LIBRARY``, ``LD_LIBRARY_PATH``) it says
``override`` and a note names the file, since its times are that library's, which need
not be NVIDIA's driver.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rfb.benchmark import patterns
from rfb.benchmark.engines import NVENC_ROUTES, engine_of, environment_note
from rfb.benchmark.gpu_device import describe_gpu
from rfb.benchmark.gpu_table import format_table
from rfb.benchmark.metrics import H264Decoder, decode_image, percentile, psnr
from rfb.benchmark.sections import BenchmarkOptions, SectionReport
from rfb.encoders.base import EncodedPayload, EncoderBackend, EncoderConfig
from rfb.frames import frame_from_array

logger = logging.getLogger(__name__)

WARMUP_FRAMES = 5

# The CPU route a machine would use for the same stream without the GPU path.
CPU_ORIGIN: dict[str, str] = {
    "nvenc_gpu_cffi": "nvenc_cpu",
    "nvenc_gpu_pyav": "nvenc_cpu",
    "h264_gpu_nv12": "h264_cpu",
    "h264_cuda": "h264_cpu",
}
# Otherwise, by what the route produces: H.264 -> libx264, images -> the CPU JPEG route.
DEFAULT_CPU_ORIGIN: dict[str, str] = {"webcodecs": "h264_cpu", "image": "image"}


# -- statistics and turn-taking --------------------------------------------------------


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p95 and p99 in milliseconds of per-frame times given in seconds."""
    return {f"{k}_ms": round(percentile(seconds, q) * 1e3, 4) for k, q in (("median", 50), ("p95", 95), ("p99", 99))}


def take_turns(steps: Sequence[Callable[[int], None]], indices: Sequence[int]) -> None:
    """Run every step on every index, the steps taking turns frame by frame.

    Who goes first rotates with the index, so a machine that gets busy halfway (or a
    cache warmed by the previous step) slows every step alike: the ratios between
    steps stay meaningful where the absolute times are not.
    """
    for n, index in enumerate(indices):
        shift = n % len(steps)
        for step in (*steps[shift:], *steps[:shift]):
            step(index)


# -- one size --------------------------------------------------------------------------


@dataclass
class _Measured:
    """Per-frame figures of one path (GPU origin or CPU origin) of one route at one size."""

    convert: list[float] = field(default_factory=list)  # GPU kernel, CUDA events (s)
    encode: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    cpu_time: list[float] = field(default_factory=list)  # process CPU time, all threads (s)
    sizes: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def record(self, total: float, cpu_time: float, payloads: list[EncodedPayload], scores: list[float]) -> None:
        """One timed frame: wall and CPU time, bytes out, PSNR of what came out."""
        self.total.append(total)
        self.cpu_time.append(cpu_time)
        self.sizes.append(sum(len(p.data) for p in payloads))
        self.scores += scores


class _Path:
    """What both kinds of path own: an encoder, and an H.264 decoder for PSNR (H.264 routes)."""

    encoder: EncoderBackend
    decoder: H264Decoder | None

    def close(self) -> None:
        try:
            self.encoder.close()
        finally:
            if self.decoder is not None:
                self.decoder.close()


class _Frames:
    """The run's pictures: host rgb24 for the CPU origin and PSNR, device copies for the GPU origin."""

    def __init__(self, pattern: str, width: int, height: int, count: int, device_id: int) -> None:
        from rfb.gpu.context import import_cupy

        self._cp = cp = import_cupy()
        self.device_id = device_id
        self.host = [patterns.make(pattern, width, height, i) for i in range(count)]
        with cp.cuda.Device(device_id):
            self.device = [cp.asarray(rgb) for rgb in self.host]
            self.canvas = cp.empty_like(self.device[0])  # the renderer's output buffer
            cp.cuda.get_current_stream().synchronize()

    def render(self, index: int) -> Any:
        """Picture ``index`` written into the canvas on the GPU, finished (untimed by callers).

        Models a renderer's last kernel before ``publish()``; see the module docstring.
        """
        cp = self._cp
        with cp.cuda.Device(self.device_id):
            self.canvas[...] = self.device[index]
            cp.cuda.get_current_stream().synchronize()
        return self.canvas


class _GpuPath(_Path):
    """A GPU route fed a device frame: NV12 made on the GPU for H.264 routes, the rgb24 itself for image routes."""

    def __init__(self, name: str, encoder: EncoderBackend, frames: _Frames, config: EncoderConfig) -> None:
        from rfb.gpu.arrays import cuda_frame
        from rfb.gpu.context import import_cupy

        self.name = self.label = name
        self.encoder = encoder
        self.frames = frames
        self.measured = _Measured()
        self.transport = encoder.transport
        self.cpu_origin = cpu_origin_of(name, self.transport)
        self.decoder = H264Decoder() if self.transport == "webcodecs" else None
        self._cp = cp = import_cupy()
        self._device_id = config.device_id
        with cp.cuda.Device(config.device_id):
            self._nv12 = cp.empty((config.height * 3 // 2, config.width), dtype=cp.uint8)
            self._start, self._end = cp.cuda.Event(), cp.cuda.Event()
        self._frame = cuda_frame(self._nv12, device_id=config.device_id)

    def step(self, index: int, *, timed: bool = True) -> None:
        from rfb.gpu.arrays import cuda_frame
        from rfb.gpu.convert import rgb_to_nv12

        cp = self._cp
        convert = self.decoder is not None  # H.264 routes take NV12; image routes RGB as it is
        rendered = self.frames.render(index)
        with cp.cuda.Device(self._device_id):
            c0 = time.process_time()
            t0 = time.perf_counter()
            if convert:
                self._start.record()
                rgb_to_nv12(rendered, out=self._nv12)
                self._end.record()
                self._end.synchronize()
                frame = self._frame
            else:
                frame = cuda_frame(rendered, device_id=self._device_id)
            t1 = time.perf_counter()
            payloads = self.encoder.encode(frame)
            t2 = time.perf_counter()
            c2 = time.process_time()
        scores = _scores(self.frames.host[index], payloads, self.decoder)
        if timed:
            m = self.measured
            if convert:
                m.convert.append(cp.cuda.get_elapsed_time(self._start, self._end) / 1e3)
            m.encode.append(t2 - t1)
            m.record(t2 - t0, c2 - c0, payloads, scores)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._nv12 = None


class _CpuPath(_Path):
    """A CPU route fed the host rgb24 picture (its own colour conversion on the CPU).

    With ``from_device=True`` the route is wrapped in a HostFrameAdapter and fed the
    rendered device frame instead: the download is part of its time.
    """

    def __init__(self, name: str, encoder: EncoderBackend, frames: _Frames, *, from_device: bool = False) -> None:
        self.name = name
        self.label = _label(name, from_device)
        self.from_device = from_device
        self.encoder: EncoderBackend = _adapted(encoder) if from_device else encoder
        self.frames = frames
        self.measured = _Measured()
        self.decoder = H264Decoder() if encoder.transport == "webcodecs" else None

    @property
    def key(self) -> tuple[str, bool]:
        return self.name, self.from_device

    def step(self, index: int, *, timed: bool = True) -> None:
        rgb = self.frames.host[index]
        if self.from_device:
            from rfb.gpu.arrays import cuda_frame

            frame = cuda_frame(self.frames.render(index), device_id=self.frames.device_id)
        else:
            frame = frame_from_array(rgb)
        c0 = time.process_time()
        t0 = time.perf_counter()
        payloads = self.encoder.encode(frame)
        t1 = time.perf_counter()
        c1 = time.process_time()
        scores = _scores(rgb, payloads, self.decoder)
        if timed:
            self.measured.record(t1 - t0, c1 - c0, payloads, scores)


def _adapted(encoder: EncoderBackend) -> EncoderBackend:
    """``encoder`` behind the HostFrameAdapter rfb puts in front of a CPU route for CUDA frames."""
    from rfb.encodegroup import HOST_FORMATS
    from rfb.gpu.adapter import HostFrameAdapter

    try:
        return HostFrameAdapter(encoder, prefer=HOST_FORMATS[encoder.transport])
    except BaseException:
        encoder.close()
        raise


def _scores(rgb: np.ndarray, payloads: list[EncodedPayload], decoder: H264Decoder | None) -> list[float]:
    if decoder is None:  # an image route: each payload is a picture
        return [psnr(rgb, decode_image(p.data)) for p in payloads]
    return [psnr(rgb, picture) for p in payloads for picture in decoder.decode(p.data)]


def measure_size(
    routes: Sequence[str],
    cpu_routes: Sequence[str],
    config: EncoderConfig,
    options: BenchmarkOptions,
    factory: Callable[[str], Callable[[EncoderConfig], EncoderBackend]],
    failures: list[dict[str, str]],
) -> list[dict[str, Any]]:
    """Time ``routes`` (GPU origin) and ``cpu_routes`` (CPU origin) at one size, taking turns.

    A route that fails to start or breaks mid-run is dropped from the turns and
    reported in ``failures`` with the error; the others carry on.
    """
    frames = _Frames(
        options.pattern,
        config.width,
        config.height,
        WARMUP_FRAMES + options.frames,
        config.device_id,
    )
    size = f"{config.width}x{config.height}"
    wanted = [(name, False) for name in routes] + [(name, d) for name in cpu_routes for d in (False, True)]
    paths: list[_GpuPath | _CpuPath] = []
    broken: dict[str, str] = {}
    try:
        for name, from_device in wanted:
            label = _label(name, from_device)
            try:
                encoder = factory(name)(config)
            except Exception as exc:  # a benchmark survives one broken route
                logger.warning("%s failed to start at %s", label, size, exc_info=True)
                failures.append({"route": label, "reason": f"failed to start at {size}: {_describe(exc)}"})
                continue
            try:
                paths.append(
                    _GpuPath(name, encoder, frames, config)
                    if name in routes
                    else _CpuPath(name, encoder, frames, from_device=from_device)
                )
            except BaseException:
                encoder.close()
                raise
        take_turns([_guarded(p, broken, timed=False) for p in paths], range(WARMUP_FRAMES))
        take_turns(
            [_guarded(p, broken, timed=True) for p in paths],
            range(WARMUP_FRAMES, WARMUP_FRAMES + options.frames),
        )
        for p in paths:
            if p.label not in broken:
                p.encoder.flush()
    finally:
        for p in paths:
            p.close()
    for label, reason in broken.items():
        failures.append({"route": label, "reason": f"failed during the run at {size}: {reason}"})
    done = [p for p in paths if p.label not in broken]
    cpu_paths = {p.key: p for p in done if isinstance(p, _CpuPath)}
    return [
        _row(p, cpu_paths.get((p.cpu_origin, False)), cpu_paths.get((p.cpu_origin, True)), config)
        for p in done
        if isinstance(p, _GpuPath)
    ]


def _label(name: str, from_device: bool) -> str:
    """How a path is named in failures: a CPU route fed device frames says so."""
    return f"{name} (device frame)" if from_device else name


def _guarded(path: _GpuPath | _CpuPath, broken: dict[str, str], *, timed: bool) -> Callable[[int], None]:
    """``path.step`` that, once it has raised, records why and does nothing more."""

    def step(index: int) -> None:
        if path.label in broken:
            return
        try:
            path.step(index, timed=timed)
        except Exception as exc:  # one broken route must not void the others' figures
            logger.warning("%s failed on frame %d", path.label, index, exc_info=True)
            broken[path.label] = _describe(exc)

    return step


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def cpu_origin_of(route: str, transport: str = "webcodecs") -> str:
    """The CPU route that makes the same stream from host frames (see CPU_ORIGIN)."""
    return CPU_ORIGIN.get(route) or DEFAULT_CPU_ORIGIN.get(transport, "h264_cpu")


def _row(gpu: _GpuPath, cpu: _CpuPath | None, cpu_device: _CpuPath | None, config: EncoderConfig) -> dict[str, Any]:
    m = gpu.measured
    total = summary_ms(m.total)
    row: dict[str, Any] = {
        "route": gpu.name,
        "engine": engine_of(gpu.name),
        "width": config.width,
        "height": config.height,
        "frames": len(m.total),
        "convert_gpu": summary_ms(m.convert) if m.convert else None,
        "encode": summary_ms(m.encode),
        "gpu_total": total,
        "gpu_fps": round(1e3 / total["median_ms"], 1),
        "cpu_ms": _median_ms(m.cpu_time),
        "kb_per_frame": round(float(np.mean(m.sizes)) / 1e3, 2),
        "psnr_db": round(float(np.mean(m.scores)), 2) if m.scores else None,
        "bitrate": config.bitrate,
        "transport": gpu.transport,
        "cpu_origin_route": gpu.cpu_origin,
    }
    if cpu is not None:
        c = cpu.measured
        cpu_total = summary_ms(c.total)
        row.update(
            cpu_origin_engine=engine_of(cpu.name),
            cpu_total=cpu_total,
            cpu_fps=round(1e3 / cpu_total["median_ms"], 1),
            cpu_route_cpu_ms=_median_ms(c.cpu_time),
            speedup=round(cpu_total["median_ms"] / total["median_ms"], 2),
            cpu_kb_per_frame=round(float(np.mean(c.sizes)) / 1e3, 2),
            cpu_psnr_db=round(float(np.mean(c.scores)), 2) if c.scores else None,
        )
    if cpu_device is not None:  # the same CPU route, fed the device frame (download included)
        device_total = summary_ms(cpu_device.measured.total)
        row.update(
            cpu_device_total=device_total,
            cpu_device_cpu_ms=_median_ms(cpu_device.measured.cpu_time),
            speedup_device=round(device_total["median_ms"] / total["median_ms"], 2),
        )
    return row


def _median_ms(seconds: Sequence[float]) -> float | None:
    return round(percentile(seconds, 50) * 1e3, 3) if seconds else None


# -- the section -----------------------------------------------------------------------


def _registry_factory(name: str) -> Callable[[EncoderConfig], EncoderBackend]:
    from rfb.encoders.registry import get_entry

    return get_entry(name).factory


def plan(options: BenchmarkOptions, report: SectionReport) -> tuple[list[str], list[str]]:
    """The GPU routes to time and their CPU-origin routes; the rest go to ``report.skipped``."""
    from rfb.encoders.registry import encoder_status

    status = {s.name: s for s in encoder_status()}
    gpu_routes = []
    for s in status.values():
        if not s.reads_cuda or (options.routes is not None and s.name not in options.routes):
            continue
        if s.available:
            gpu_routes.append(s.name)
        else:
            report.skipped.append({"route": s.name, "reason": s.reason or "unavailable"})
    cpu_routes = []
    for name in dict.fromkeys(cpu_origin_of(r, status[r].transport) for r in gpu_routes):
        origin = status.get(name)
        if origin is not None and origin.available:
            cpu_routes.append(name)
        else:
            reason = "not registered" if origin is None else origin.reason or "unavailable"
            report.skipped.append({"route": f"{name} (CPU origin)", "reason": reason})
    return gpu_routes, cpu_routes


def run(options: BenchmarkOptions) -> SectionReport:
    """Time every available GPU route at every size against its CPU-origin route."""
    report = SectionReport("gpu")
    gpu = describe_gpu()
    if not gpu["available"]:
        report.notes.append(f"no usable CUDA GPU: {gpu['reason']}")
    else:
        report.notes.append(
            f"GPU {gpu['name']} (compute {gpu['compute_capability']}, {gpu['memory_gib']} GiB), "
            f"driver {gpu['driver_version'] or 'unknown'}, CUDA driver API {gpu['cuda_driver_api']}"
        )
    routes, cpu_routes = plan(options, report)
    if routes:
        from rfb.gpu.context import cupy_available

        reason = cupy_available()
        if reason is not None:  # every GPU route's probe asks for CuPy; this is belt and braces
            report.skipped += [{"route": r, "reason": reason} for r in routes]
            routes = []
    for width, height in options.sizes if routes else ():
        config = EncoderConfig(
            width,
            height,
            fps=options.fps,
            bitrate=options.bitrate_for(width, height),
            gop=None,
        )
        options.say(f"gpu {width}x{height}: {', '.join(routes)} against {', '.join(cpu_routes) or 'no CPU route'}")
        report.rows += measure_size(routes, cpu_routes, config, options, _registry_factory, report.skipped)
    if any(r in NVENC_ROUTES for r in (*routes, *(s["route"] for s in report.skipped))):
        report.notes.append(f"NVENC library: {environment_note()}")
    overridden = sorted({r["route"] for r in report.rows if "override" in (r["engine"], r.get("cpu_origin_engine"))})
    if overridden:
        report.notes.append(
            "ENCODE ENGINE NOT THE SYSTEM'S DRIVER for "
            + ", ".join(overridden)
            + ": an override chose their libnvidia-encode (see the NVENC library note), so their encode "
            "times are that library's, not necessarily NVENC's"
        )
    report.notes.append(
        f"pattern={options.pattern}, {WARMUP_FRAMES} warm-up + {options.frames} timed frames per path, "
        f"{options.fps:g} fps, bitrate {'auto' if options.bitrate is None else options.bitrate}; "
        "paths take turns frame by frame; times are medians (p95/p99 in the JSON)"
    )
    report.table = format_table(report.rows)
    return report
