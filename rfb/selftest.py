"""``python -m rfb doctor --selftest``: known frames through every GPU route that works here.

Nothing available to the project has an NVENC engine, so the first run of the NVENC
routes on real silicon will be a user's. This is what that user runs and sends back:
for each GPU route that works on the device (:func:`rfb.gpu.gpu_encode_status`), it
encodes a deterministic scene with detail and motion (``rfb.benchmark.patterns.scene``)
at several sizes, from tight and padded rows, in memory from every allocator installed
(:mod:`rfb.gpu.allocators`: CuPy's default pool, CuPy's stream-ordered
``MemoryAsyncPool``, PyTorch, JAX), decodes every frame back (FFmpeg's H.264 decoder;
libjpeg-turbo for ``jpeg_gpu``), and reports
per case the PSNR, the per-frame encode latency and pass/fail with the library's own
error text. Routes that cannot run are listed with their reason, and are not failures:
an H200 answers "no NVENC engine ... NV_ENC_ERR_UNSUPPORTED_DEVICE" and still passes.

It drives whatever ``libnvidia-encode`` nvencffi loads (``NVENCFFI_LIBRARY`` chooses
another) and says which file that was and whether the override chose it, so a run
against another library is never taken for a hardware result.

The cases, per route (``--sizes`` changes the sizes, ``--frames`` the frame count):
every size x {tight, padded} from CuPy's default pool in the route's own format (NV12
for H.264, rgb24 for JPEG); {tight, padded} at one size from each other allocator
(JAX: tight only, its arrays cannot be views); the other two pixel formats at that size.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import rfb
from rfb.encoders.base import EncodedPayload, EncoderBackend, EncoderConfig
from rfb.gpu.allocators import Allocator, installed_allocators

DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((320, 240), (852, 480), (1280, 720), (1366, 768), (1920, 1080))
DEFAULT_FRAMES = 30
PIXEL_FORMATS: tuple[str, ...] = ("nv12", "rgba8", "rgb24")


@dataclass(frozen=True, slots=True)
class RouteUnderTest:
    """A route as the self-test drives it: its factory, and why it cannot run (None: it can)."""

    name: str
    transport: str
    factory: Callable[[EncoderConfig], EncoderBackend] | None
    reason: str | None
    engine: str
    format: str  # the pixel format the route takes without a conversion of ours


@dataclass(slots=True)
class CaseResult:
    """One route x allocator x size x format x pitch: ``frames`` frames encoded and decoded back."""

    route: str
    allocator: str
    width: int
    height: int
    pixel_format: str
    padded: bool
    pitch: int | None = None  # bytes between rows, as the route saw them
    frames: int = 0  # frames encoded
    passed: bool = False
    psnr_db: float | None = None  # mean over frames
    psnr_min_db: float | None = None
    encode_ms_median: float | None = None
    encode_ms_p95: float | None = None
    kb_per_frame: float | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        pitch = "padded" if self.padded else "tight"
        return f"{self.allocator} {self.width}x{self.height} {self.pixel_format} {pitch}"


@dataclass(slots=True)
class RouteReport:
    """One route: available or why not, what encodes for it (``engine``), and its cases."""

    name: str
    available: bool
    reason: str | None
    engine: str
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """An unavailable route is not a failure; an available one passes when it ran and every case passed."""
        return not self.available or (bool(self.cases) and all(c.passed for c in self.cases))


@dataclass(slots=True)
class SelftestReport:
    """Everything a run found: the machine, the allocators tried, every route."""

    device_id: int
    machine: dict[str, Any]
    allocators: list[dict[str, Any]]
    routes: list[RouteReport]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.routes)

    @property
    def exit_code(self) -> int:
        """0 when every available route passed (unavailable routes are no failure), else 1."""
        return 0 if self.passed else 1

    def as_dict(self) -> dict[str, Any]:
        routes = [{**asdict(r), "passed": r.passed} for r in self.routes]
        return {
            "rfb_selftest": 1,
            "passed": self.passed,
            "device_id": self.device_id,
            "machine": self.machine,
            "allocators": self.allocators,
            "routes": routes,
        }


# ---------------------------------------------------------------- running it


def run_selftest(
    *,
    device_id: int = 0,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    frames: int = DEFAULT_FRAMES,
    routes: Sequence[RouteUnderTest] | None = None,
    allocators: Sequence[Allocator] | None = None,
    pixel_formats: Sequence[str] = PIXEL_FORMATS,
    say: Callable[[str], None] | None = None,
) -> SelftestReport:
    """Run every case of every available route; never raises for a route that fails or cannot run.

    ``routes`` and ``allocators`` default to the GPU routes of the registry and the
    frameworks installed here; ``pixel_formats`` are those tried besides each route's
    own; ``say`` hears one line per finished case.
    """
    if frames < 1 or not sizes:
        raise ValueError(f"expected at least one frame and one size, got frames={frames}, sizes={list(sizes)}")
    sharing = _share_context(device_id)  # before any probe or framework activates the primary context
    routes = list(routes) if routes is not None else gpu_routes(device_id)
    allocators = list(allocators) if allocators is not None else installed_allocators(device_id)
    usable = [a for a in allocators if a.upload is not None and a.reason is None]
    pictures = _Pictures(frames)
    reports = []
    for route in routes:
        report = RouteReport(route.name, route.reason is None, route.reason, route.engine)
        reports.append(report)
        if route.reason is not None or route.factory is None:
            continue
        for case in plan_cases(route, usable, sizes, pixel_formats):
            result = run_case(route, case, pictures, device_id)
            report.cases.append(result)
            if say:
                say(format_case(result))
    machine = describe_machine(device_id)
    machine["context_sharing"] = sharing
    listed = [
        {"name": a.name, "available": a.upload is not None and a.reason is None, "reason": a.reason} for a in allocators
    ]
    return SelftestReport(device_id, machine, listed, reports)


def gpu_routes(device_id: int = 0) -> list[RouteUnderTest]:
    """The registry's GPU routes with their availability on ``device_id`` (their probes encode)."""
    from rfb.benchmark.engines import engine_of
    from rfb.encoders.registry import get_entry
    from rfb.gpu.status import gpu_encode_status

    out = []
    for status in gpu_encode_status(device_id).routes:
        factory = get_entry(status.name).factory if status.transport is not None else None
        fmt = "rgb24" if status.transport == "image" else "nv12"
        out.append(
            RouteUnderTest(
                status.name,
                status.transport or "webcodecs",
                factory,
                status.reason,
                _guarded(functools.partial(engine_of, status.name)),
                fmt,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Case:
    """One planned case of a route: where its frames live, their size, format and pitch."""

    allocator: Allocator
    size: tuple[int, int]
    pixel_format: str
    padded: bool


def plan_cases(
    route: RouteUnderTest,
    allocators: Sequence[Allocator],
    sizes: Sequence[tuple[int, int]],
    pixel_formats: Sequence[str] = PIXEL_FORMATS,
) -> list[Case]:
    """The cases of one route (see the module's doc), sizes in the order given; the first allocator is the main one."""
    if not allocators:
        return []
    first, others = allocators[0], allocators[1:]
    middle = sizes[len(sizes) // 2]
    pitches = (False, True)
    cases = [Case(first, size, route.format, padded) for size in sizes for padded in pitches]
    cases += [Case(a, middle, route.format, padded) for a in others for padded in pitches if a.padded or not padded]
    cases += [Case(first, middle, fmt, False) for fmt in pixel_formats if fmt != route.format]
    return cases


def run_case(route: RouteUnderTest, case: Case, pictures: _Pictures, device_id: int) -> CaseResult:
    """Encode ``pictures.count`` frames of the scene through ``route`` and decode them back."""
    from rfb.encoders.nvenc_cpu import capture_ffmpeg_log
    from rfb.gpu.arrays import cuda_frame

    width, height = case.size
    result = CaseResult(route.name, case.allocator.name, width, height, case.pixel_format, case.padded)
    references = pictures.rgb(width, height)
    times: list[float] = []
    sizes: list[int] = []
    factory, upload = route.factory, case.allocator.upload
    if factory is None or upload is None:
        raise ValueError(f"{route.name} has no factory or {case.allocator.name} no upload: neither can run a case")
    with capture_ffmpeg_log() as logs, _Decoder(route.transport, references) as decoder:
        try:
            with contextlib.closing(factory(EncoderConfig(width, height, device_id=device_id))) as backend:
                for index in range(len(references)):
                    host = pictures.layout(width, height, index, case.pixel_format)
                    frame = cuda_frame(upload(host, device_id, case.padded), case.pixel_format)
                    result.pitch = frame.stride
                    start = time.perf_counter()
                    payloads = backend.encode(frame, force_keyframe=index == 0)
                    times.append(time.perf_counter() - start)
                    del frame  # the memory goes back to its allocator, as a renderer's would
                    result.frames += 1
                    result.error = _check_payloads(payloads, index)
                    if result.error is not None:
                        break
                    sizes.append(len(payloads[0].data))
                    decoder.decode(payloads[0])
            if result.error is None:
                decoder.flush()
        except Exception as exc:  # a self-test reports every failure, whatever its type, and goes on
            result.error = _failure_text(exc, logs)
    if result.error is None:
        result.error = decoder.verdict()
    if decoder.psnr:
        result.psnr_db, result.psnr_min_db = round(float(np.mean(decoder.psnr)), 2), round(min(decoder.psnr), 2)
    if times:
        result.encode_ms_median = round(float(np.percentile(times, 50)) * 1e3, 3)
        result.encode_ms_p95 = round(float(np.percentile(times, 95)) * 1e3, 3)
    if sizes:
        result.kb_per_frame = round(sum(sizes) / len(sizes) / 1024, 1)
    result.passed = result.error is None
    return result


def _check_payloads(payloads: list[EncodedPayload], index: int) -> str | None:
    if len(payloads) != 1:
        return f"frame {index} gave {len(payloads)} payloads, expected exactly one"
    if index == 0 and not payloads[0].keyframe:
        return "the first frame (forced keyframe) did not give a keyframe"
    return None


def _failure_text(exc: BaseException, logs: list[tuple[int, str, str]]) -> str:
    """The failing library's own words: NVENC's status and text, FFmpeg's log lines, else the exception."""
    import av

    if isinstance(exc, av.FFmpegError):
        from rfb.encoders.nvenc_cpu import ffmpeg_failure_reason

        return f"{type(exc).__name__}: {ffmpeg_failure_reason(exc, logs)}"
    return f"{type(exc).__name__}: {exc}"


class _Decoder:
    """Decodes a route's payloads back to RGB and scores each picture against its frame as it comes.

    FFmpeg's H.264 decoder for video, an image decoder for images. Pictures are scored
    and dropped at once, so a case holds one decoded picture at a time.
    """

    def __init__(self, transport: str, references: Sequence[np.ndarray]) -> None:
        from rfb.benchmark.metrics import H264Decoder

        self.name = "FFmpeg's H.264 decoder" if transport == "webcodecs" else "the image decoder"
        self.references = references
        self.psnr: list[float] = []
        self.count = 0
        self._problem: str | None = None
        self._h264 = H264Decoder() if transport == "webcodecs" else None

    def decode(self, payload: EncodedPayload) -> None:
        from rfb.benchmark.metrics import decode_image

        self._score([decode_image(payload.data)] if self._h264 is None else self._h264.decode(payload.data))

    def flush(self) -> None:
        if self._h264 is not None:
            self._score(self._h264.flush())

    def verdict(self) -> str | None:
        """None when every frame came back as its picture (see :func:`rfb.encoders.trial.compare_pictures`)."""
        if self._problem is None and self.count != len(self.references):
            return f"{self.name} made {self.count} picture(s) of {len(self.references)} frame(s)"
        return self._problem

    def _score(self, pictures: Sequence[np.ndarray]) -> None:
        from rfb.encoders import trial

        for picture in pictures:
            index, self.count = self.count, self.count + 1
            if index >= len(self.references):
                continue
            reference = self.references[index]
            problem = trial.compare_pictures([picture], [reference], self.name, first=index)
            if picture.shape == reference.shape:
                self.psnr += trial.psnr_of([picture], [reference])
            if self._problem is None:
                self._problem = problem

    def __enter__(self) -> _Decoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._h264 is not None:
            self._h264.close()


class _Pictures:
    """The scene's frames per size, and their host layouts, made once and reused by every route.

    Only one size is kept at a time (cases come size by size), so memory stays at one
    size's frames.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self._size: tuple[int, int] | None = None
        self._layouts: dict[str, list[np.ndarray]] = {}

    def rgb(self, width: int, height: int) -> list[np.ndarray]:
        from rfb.benchmark import patterns

        if self._size != (width, height):
            self._size = (width, height)
            self._layouts = {"rgb24": [patterns.scene(width, height, i) for i in range(self.count)]}
        return self._layouts["rgb24"]

    def layout(self, width: int, height: int, index: int, pixel_format: str) -> np.ndarray:
        from rfb.colorspace import rgb_to_nv12

        rgb = self.rgb(width, height)
        if pixel_format not in self._layouts:
            if pixel_format == "nv12":
                self._layouts["nv12"] = [rgb_to_nv12(p) for p in rgb]
            elif pixel_format == "rgba8":
                self._layouts["rgba8"] = [np.dstack([p, np.full(p.shape[:2], 255, np.uint8)]) for p in rgb]
            else:
                raise ValueError(f"expected a pixel format among {PIXEL_FORMATS}, got {pixel_format!r}")
        return self._layouts[pixel_format][index]


# ---------------------------------------------------------------- the machine


def describe_machine(device_id: int = 0) -> dict[str, Any]:
    """GPU, driver, CUDA, the NVENC library nvencffi loads, and the versions a bug report needs."""
    from rfb.benchmark.gpu_device import describe_gpu

    return {
        "gpu": _guarded(lambda: describe_gpu(device_id)),
        "nvenc_library": _guarded(_nvenc_library),
        "NVENCFFI_LIBRARY": os.environ.get("NVENCFFI_LIBRARY"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            "rfb": rfb.__version__,
            "numpy": np.__version__,
            "pyav": _guarded(_pyav_version),
            "cupy": _version("cupy"),
            "cuda_runtime": _guarded(_cuda_runtime),
            "torch": _version("torch"),
            "jax": _version("jax"),
        },
    }


def _guarded(fact: Callable[[], Any]) -> Any:
    try:
        return fact()
    except Exception as exc:  # a fact that cannot be read is reported, never fatal
        return f"unknown ({type(exc).__name__}: {exc})"


def _nvenc_library() -> str:
    from rfb.benchmark.engines import nvencffi_library

    return nvencffi_library().describe()


def _pyav_version() -> str:
    import av

    return f"{av.__version__} (FFmpeg {getattr(av, 'ffmpeg_version_info', '?')})"


def _version(module: str) -> str | None:
    """A module's version without importing it (None: not installed)."""
    from importlib import metadata

    if importlib.util.find_spec(module) is None:
        return None
    names = {"cupy": ("cupy-cuda13x", "cupy-cuda12x", "cupy"), "torch": ("torch",), "jax": ("jax",)}[module]
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(name)
    return "installed (version unknown)"


def _cuda_runtime() -> str | None:
    if "cupy" not in sys.modules:
        return None
    import cupy as cp

    version = cp.cuda.runtime.runtimeGetVersion()
    return f"{version // 1000}.{version % 1000 // 10}"


def _share_context(device_id: int) -> bool:
    """rfb.enable_cuda_context_sharing, quietly: its warning on a machine without a GPU is no finding here."""
    from rfb.gpu.context import CudaContextWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CudaContextWarning)
        return rfb.enable_cuda_context_sharing(device_id)


# ---------------------------------------------------------------- text and the command


def format_case(case: CaseResult) -> str:
    psnr = "-" if case.psnr_db is None else f"{case.psnr_db:.1f} dB (min {case.psnr_min_db:.1f})"
    ms = "-" if case.encode_ms_median is None else f"{case.encode_ms_median:.2f} ms (p95 {case.encode_ms_p95:.2f})"
    verdict = "pass" if case.passed else f"FAIL: {_one_line(case.error)}"
    return f"{case.route}: {case.label} pitch {case.pitch}: {case.frames} frames, PSNR {psnr}, encode {ms}: {verdict}"


def format_report(report: SelftestReport) -> str:
    """The text form: the machine, each route with its cases or its reason, the verdict."""
    gpu = report.machine.get("gpu")
    if isinstance(gpu, dict) and gpu.get("available"):
        where = f"{gpu['name']} (driver {gpu.get('driver_version')}, CUDA {gpu.get('cuda_driver_api')})"
    else:
        where = f"no usable GPU ({gpu.get('reason') if isinstance(gpu, dict) else gpu})"
    lines = [
        f"rfb {report.machine['versions']['rfb']} self-test, CUDA device {report.device_id}: {where}",
        f"NVENC library: {report.machine['nvenc_library']}",
        "allocators: "
        + "; ".join(
            a["name"] if a["available"] else f"{a['name']} (unavailable: {_one_line(a['reason'])})"
            for a in report.allocators
        ),
        "",
    ]
    for route in report.routes:
        if not route.available:
            lines.append(f"[--] {route.name}: unavailable: {_one_line(route.reason)}")
            continue
        ran = sum(c.passed for c in route.cases)
        mark = "ok" if route.passed else "FAIL"
        lines.append(f"[{mark}] {route.name} ({route.engine}): {ran} of {len(route.cases)} cases passed")
        if not route.cases:
            lines.append("       no case ran: no allocator could make CUDA frames here")
        lines += [f"       {format_case(c).split(': ', 1)[1]}" for c in route.cases]
    failed = [r.name for r in report.routes if not r.passed]
    tested = [r.name for r in report.routes if r.available]
    if failed:
        verdict = f"FAIL: {', '.join(failed)} failed"
    elif tested:
        verdict = f"PASS: {', '.join(tested)} passed"
    else:
        verdict = "PASS: no GPU route can run here, so none was tested (each says why above)"
    return "\n".join([*lines, "", verdict])


def _one_line(text: str | None) -> str:
    return " ".join(str(text).split())


def run_command(
    *,
    json_path: str | None = None,
    sizes: Sequence[tuple[int, int]] | None = None,
    frames: int = DEFAULT_FRAMES,
    device_id: int = 0,
) -> int:
    """What ``rfb doctor --selftest`` does: run, print the report (and write JSON), return the exit code."""
    if frames < 1:
        print(f"rfb doctor: error: --frames must be at least 1, got {frames}", file=sys.stderr)
        return 2
    report = run_selftest(
        device_id=device_id,
        sizes=sizes or DEFAULT_SIZES,
        frames=frames,
        say=lambda line: print(line, file=sys.stderr, flush=True),
    )
    data = json.dumps(report.as_dict(), indent=2, default=str)
    if json_path == "-":
        print(data)
    else:
        print(format_report(report))
        if json_path is not None:
            Path(json_path).write_text(data + "\n", encoding="utf-8")
            print(f"wrote {json_path}")
    return report.exit_code
