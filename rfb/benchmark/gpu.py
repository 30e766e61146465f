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
its output just before ``publish()``. (Measured on the H100, this does not undo what
taking turns costs a short GPU route: nvJPEG's 1080p encode takes 0.15-0.17 ms of GPU
time back to back and 0.21 ms after another route's turn, rendered frame or not; the
gaps are on the host side, see docs/gpu.md.)

"CPU ms" is the process's CPU time per frame over all its threads (``time.process_time``
around the same call): what a route takes from a machine whose CPU also simulates.

The speed-ups are each CPU path's total / GPU total (medians). Frames are decoded back
to RGB (FFmpeg's decoder, or the image decoder) for PSNR, outside the timed region. The
first ``WARMUP_FRAMES`` frames of each path are not timed (CuPy compiles its kernel,
encoders start, the IDR).

Routes that cannot run are listed with their probe's reason, never dropped. Where a
route's NVENC library is the project's NVENC emulator (``tests/nvenc_emulator``; it
exports ``emu_ledger``, a real driver does not), its rows say "emulated": the plumbing
around the engine is real, the engine's time is not NVENC's.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rfb.benchmark import patterns
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
}
# Otherwise, by what the route produces: H.264 -> libx264, images -> the CPU JPEG route.
DEFAULT_CPU_ORIGIN: dict[str, str] = {"webcodecs": "h264_cpu", "image": "image"}

# Routes whose encode engine is libnvidia-encode, and how each one finds it.
NVENC_ROUTES: dict[str, str] = {
    "nvenc_gpu_cffi": "nvencffi",  # NVENCFFI_LIBRARY, else the driver's soname
    "nvenc_gpu_pyav": "ffmpeg",  # FFmpeg dlopen()s the soname (LD_LIBRARY_PATH applies)
    "nvenc_cpu": "ffmpeg",
}
NVENC_SONAME = "libnvidia-encode.so.1"
EMULATOR_SYMBOL = "emu_ledger"  # exported by tests/nvenc_emulator only


# -- the machine's GPU and encode engine ---------------------------------------------


def describe_gpu(device_id: int = 0) -> dict[str, Any]:
    """Name, compute capability, memory and driver of the GPU, or why there is none.

    Asked through the CUDA driver (cuda-python, a dependency already), so it works
    without CuPy; the driver's release number comes from the kernel module's
    ``/proc/driver/nvidia/version``, else from ``nvidia-smi``.
    """
    from rfb.gpu.context import GpuUnavailable, gpu_available, load_driver

    reason = gpu_available()
    if reason is not None:
        return {"available": False, "reason": reason}
    try:
        driver = load_driver()
        err, dev = driver.cuDeviceGet(device_id)
        _cuda_ok(err, "cuDeviceGet")
        err, raw = driver.cuDeviceGetName(256, dev)
        _cuda_ok(err, "cuDeviceGetName")
        err, memory = driver.cuDeviceTotalMem(dev)
        _cuda_ok(err, "cuDeviceTotalMem")
        attr = driver.CUdevice_attribute
        cc = []
        for which in (
            attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
            attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
        ):
            err, value = driver.cuDeviceGetAttribute(which, dev)
            _cuda_ok(err, "cuDeviceGetAttribute")
            cc.append(int(value))
        err, cuda_version = driver.cuDriverGetVersion()
        _cuda_ok(err, "cuDriverGetVersion")
    except (GpuUnavailable, RuntimeError) as exc:
        return {"available": False, "reason": str(exc)}
    name = (
        raw.split(b"\0", 1)[0].decode(errors="replace")
        if isinstance(raw, bytes)
        else str(raw)
    )
    return {
        "available": True,
        "device_id": device_id,
        "name": name,
        "compute_capability": f"{cc[0]}.{cc[1]}",
        "memory_gib": round(int(memory) / 2**30, 1),
        "cuda_driver_api": f"{int(cuda_version) // 1000}.{int(cuda_version) % 1000 // 10}",
        "driver_version": nvidia_driver_version(),
    }


def _cuda_ok(err: Any, what: str) -> None:
    if int(err) != 0:
        raise RuntimeError(f"{what} failed with CUresult {int(err)}")


_DRIVER_RELEASE = re.compile(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)")


def parse_driver_release(proc_version: str) -> str | None:
    """The release in ``/proc/driver/nvidia/version`` ("NVRM version: NVIDIA UNIX Open Kernel
    Module for x86_64  580.159.04  Release Build ..."; the proprietary module says
    "NVIDIA UNIX x86_64 Kernel Module  580.159.04 ...")."""
    m = _DRIVER_RELEASE.search(proc_version)
    return m.group(1) if m else None


def nvidia_driver_version() -> str | None:
    """The NVIDIA driver's release ("580.159.04"), or None when it cannot be read."""
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as f:
            release = parse_driver_release(f.read())
        if release:
            return release
    except OSError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def nvenc_library(route: str) -> str | None:
    """The libnvidia-encode a route loads (a path or the soname); None for non-NVENC routes."""
    how = NVENC_ROUTES.get(route)
    if how is None:
        return None
    if how == "nvencffi":
        from nvencffi.library import library_path

        return library_path()
    return NVENC_SONAME


def is_emulator(library: str) -> bool | None:
    """Whether ``library`` resolves to the NVENC emulator (True), the driver (False), or nothing (None).

    ``dlopen`` of a name resolves as FFmpeg's own does in this process (LD_LIBRARY_PATH,
    then the system's paths), and of a path opens that file; the emulator is known by
    its control symbol.
    """
    try:
        lib = ctypes.CDLL(library)
    except OSError:
        return None
    return hasattr(lib, EMULATOR_SYMBOL)


# What encodes for the routes that do not use NVENC.
OTHER_ENGINES: dict[str, str] = {
    "h264_cpu": "libx264",
    "h264_gpu_nv12": "libx264",
    "jpeg_gpu": "nvjpeg",
    "image": "libjpeg",
}


def engine_of(route: str) -> str:
    """'nvenc' (a real driver), 'emulated' (the project's NVENC emulator), else the codec library."""
    library = nvenc_library(route)
    if library is None:
        return OTHER_ENGINES.get(route, "-")
    return "emulated" if is_emulator(library) else "nvenc"


# -- statistics and turn-taking --------------------------------------------------------


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p95 and p99 in milliseconds of per-frame times given in seconds."""
    return {
        f"{k}_ms": round(percentile(seconds, q) * 1e3, 4)
        for k, q in (("median", 50), ("p95", 95), ("p99", 99))
    }


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

    def __init__(
        self, pattern: str, width: int, height: int, count: int, device_id: int
    ) -> None:
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

    def __init__(
        self, name: str, encoder: EncoderBackend, frames: _Frames, config: EncoderConfig
    ) -> None:
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
            self._nv12 = cp.empty(
                (config.height * 3 // 2, config.width), dtype=cp.uint8
            )
            self._start, self._end = cp.cuda.Event(), cp.cuda.Event()
        self._frame = cuda_frame(self._nv12, device_id=config.device_id)

    def step(self, index: int, *, timed: bool = True) -> None:
        from rfb.gpu.arrays import cuda_frame
        from rfb.gpu.convert import rgb_to_nv12

        cp = self._cp
        convert = (
            self.decoder is not None
        )  # H.264 routes take NV12; image routes RGB as it is
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
        return HostFrameAdapter(encoder, prefer=HOST_FORMATS[encoder.transport])  # type: ignore[arg-type]
    except BaseException:
        encoder.close()
        raise


def _scores(
    rgb: np.ndarray, payloads: list[EncodedPayload], decoder: H264Decoder | None
) -> list[float]:
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


def _guarded(
    path: _GpuPath | _CpuPath, broken: dict[str, str], *, timed: bool
) -> Callable[[int], None]:
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


def _row(
    gpu: _GpuPath, cpu: _CpuPath | None, cpu_device: _CpuPath | None, config: EncoderConfig
) -> dict[str, Any]:
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


def plan(
    options: BenchmarkOptions, report: SectionReport
) -> tuple[list[str], list[str]]:
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
            report.skipped.append(
                {"route": s.name, "reason": s.reason or "unavailable"}
            )
    cpu_routes = []
    for name in dict.fromkeys(
        cpu_origin_of(r, status[r].transport) for r in gpu_routes
    ):
        origin = status.get(name)
        if origin is not None and origin.available:
            cpu_routes.append(name)
        else:
            reason = (
                "not registered" if origin is None else origin.reason or "unavailable"
            )
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
        if (
            reason is not None
        ):  # every GPU route's probe asks for CuPy; this is belt and braces
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
        options.say(
            f"gpu {width}x{height}: {', '.join(routes)} against {', '.join(cpu_routes) or 'no CPU route'}"
        )
        report.rows += measure_size(
            routes, cpu_routes, config, options, _registry_factory, report.skipped
        )
    if any(r in NVENC_ROUTES for r in (*routes, *(s["route"] for s in report.skipped))):
        report.notes.append(f"NVENC library: {environment_note()}")
    emulated = sorted(
        {
            r["route"]
            for r in report.rows
            if "emulated" in (r["engine"], r.get("cpu_origin_engine"))
        }
    )
    if emulated:
        report.notes.append(
            "ENCODE ENGINE EMULATED for "
            + ", ".join(emulated)
            + ": libnvidia-encode is the project's NVENC emulator (tests/nvenc_emulator), so their encode "
            "times are the emulator's (I_PCM, device memory read back), not NVENC's"
        )
    report.notes.append(
        f"pattern={options.pattern}, {WARMUP_FRAMES} warm-up + {options.frames} timed frames per path, "
        f"{options.fps:g} fps, bitrate {'auto' if options.bitrate is None else options.bitrate}; "
        "paths take turns frame by frame; times are medians (p95/p99 in the JSON)"
    )
    report.table = format_table(report.rows)
    return report


def format_table(rows: list[dict[str, Any]]) -> str:
    """Fixed-width table: one line per (size, GPU route), medians in ms.

    "CPU tot" is the CPU route from a host frame, "CPU+dl" the same route fed the
    device frame (one download first); each speed-up divides one of them by "GPU tot".
    The first "CPU ms" is the GPU route's process CPU time per frame, the second the
    CPU route's (from a host frame).
    """
    header = (
        f"{'size':>10} {'route':<15} {'engine':<9} {'RGB->NV12':>9} {'encode':>8} {'GPU tot':>8} {'p99':>7} "
        f"{'CPU ms':>7} {'CPU-origin route':<17} {'CPU tot':>8} {'p99':>7} {'speedup':>7} "
        f"{'CPU+dl':>8} {'speedup':>7} {'CPU ms':>7} {'KB/frame':>9} {'PSNR dB':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        score = f"{r['psnr_db']:.2f}" if r["psnr_db"] is not None else "-"
        convert = f"{r['convert_gpu']['median_ms']:.3f}" if r["convert_gpu"] else "-"
        if "cpu_total" in r:
            cpu = (
                f"{r['cpu_origin_route']:<17} {r['cpu_total']['median_ms']:>8.2f} {r['cpu_total']['p99_ms']:>7.2f} "
                f"{r['speedup']:>6.2f}x"
            )
        else:
            cpu = f"{r['cpu_origin_route'] + ' (n/a)':<17} {'-':>8} {'-':>7} {'-':>7}"
        if "cpu_device_total" in r:
            device = f"{r['cpu_device_total']['median_ms']:>8.2f} {r['speedup_device']:>6.2f}x"
        else:
            device = f"{'-':>8} {'-':>7}"
        cpu_ms = _cell(r.get("cpu_ms"))
        cpu_route_ms = _cell(r.get("cpu_route_cpu_ms"))
        lines.append(
            f"{r['width']}x{r['height']:<5} {r['route']:<15} {r['engine']:<9} {convert:>9} "
            f"{r['encode']['median_ms']:>8.2f} {r['gpu_total']['median_ms']:>8.2f} {r['gpu_total']['p99_ms']:>7.2f} "
            f"{cpu_ms:>7} {cpu} {device} {cpu_route_ms:>7} {r['kb_per_frame']:>9.1f} {score:>8}"
        )
    if not rows:
        lines.append("(no GPU route could run here; see the reasons below)")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def environment_note() -> str:
    """Which NVENC library each way of loading it would find here (for the JSON)."""
    libs = {"nvencffi": nvenc_library("nvenc_gpu_cffi"), "ffmpeg": NVENC_SONAME}
    parts = []
    for who, lib in libs.items():
        if lib is None:
            continue
        state = is_emulator(lib)
        parts.append(
            f"{who}: {lib} -> {'none' if state is None else 'emulator' if state else 'driver'}"
        )
    ld = os.environ.get("LD_LIBRARY_PATH")
    return "; ".join(parts) + (f" (LD_LIBRARY_PATH={ld})" if ld else "")
