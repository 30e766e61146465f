"""The ``encode`` section: time, size and quality of each host-frame route, per size.

For every size, each available route of the registry (H.264 for WebCodecs, and
images) encodes the same frames, and two baselines measured in the same run give
the yardstick:

- ``baseline_x264``: the textbook PyAV path, ``VideoFrame.from_ndarray(rgb24)`` ->
  ``reformat("yuv420p")`` -> libx264 with exactly the h264_cpu settings, so the
  ratio shows what the route's frame handling (zero-copy wrap, a kept multi-threaded
  swscale context, nv12) is worth;
- ``baseline_pillow_jpeg``: ``PIL.Image.fromarray(rgb).save(..., "JPEG", quality)``.

Each frame is timed alone (``encode`` call, wall clock and process CPU time), the
candidates taking turns frame by frame; the first frame (encoder start-up, the
IDR) is encoded before timing starts. Quality is
PSNR (dB, RGB) of the decoded payload against the published frame, decoded by
FFmpeg's H.264 decoder or libjpeg-turbo/Pillow, outside the timed region.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rfb.benchmark import patterns
from rfb.benchmark.metrics import H264Decoder, decode_image, percentile, psnr
from rfb.benchmark.sections import BenchmarkOptions, SectionReport
from rfb.converters import AV_FORMATS
from rfb.encoders.base import EncodedPayload, EncoderBackend, EncoderConfig, Transport
from rfb.encoders.image import ImageEncoder
from rfb.frames import RawFrame, frame_from_array

BASELINE_VIDEO = "baseline_x264"
BASELINE_IMAGE = "baseline_pillow_jpeg"
PNG_ROW = "image_png"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One thing to time: a name, how to build it, how to call it, which baseline it faces."""

    name: str
    transport: Transport
    build: Callable[[EncoderConfig], EncoderBackend]
    baseline: str | None
    lossless: bool = False
    max_frames: int | None = None


# -- baselines -------------------------------------------------------------------


class TextbookConverter:
    """``from_ndarray`` (a copy) + ``reformat`` with a fresh swscale context per frame."""

    target_format = "yuv420p"

    def convert(self, frame: RawFrame) -> Any:
        from av.video.frame import VideoFrame

        return VideoFrame.from_ndarray(frame.data, format=AV_FORMATS[frame.pixel_format]).reformat(
            format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG"
        )

    def close(self) -> None:
        pass


def textbook_x264(config: EncoderConfig) -> EncoderBackend:
    """libx264 with the h264_cpu settings, fed the textbook way (yuv420p, one thread)."""
    from rfb.encoders.h264_cpu import PyAVH264Encoder, libx264_settings

    settings = replace(libx264_settings(config), pix_fmt="yuv420p")
    return PyAVH264Encoder(BASELINE_VIDEO, config, settings, converter=TextbookConverter())


class PillowJpeg:
    """``Image.fromarray(rgb).save(buf, "JPEG", quality=q)``: the usual Python way."""

    transport: Transport = "image"

    def __init__(self, config: EncoderConfig) -> None:
        self.name = BASELINE_IMAGE
        self.config = config

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        from PIL import Image

        out = io.BytesIO()
        Image.fromarray(frame.data).save(out, format="JPEG", quality=self.config.quality)
        return [EncodedPayload(out.getvalue(), True, frame.width, frame.height, "image", mime="image/jpeg")]

    def flush(self) -> list[EncodedPayload]:
        return []

    def close(self) -> None:
        pass


def _png_stills(config: EncoderConfig) -> EncoderBackend:
    return ImageEncoder(config, name=PNG_ROW)


# -- candidates ------------------------------------------------------------------


def candidates(options: BenchmarkOptions, report: SectionReport) -> list[Candidate]:
    """Baselines first, then every available host route of the registry (skips noted)."""
    from rfb.encoders.registry import encoder_status, get_entry

    out = [
        Candidate(BASELINE_VIDEO, "webcodecs", textbook_x264, None),
        Candidate(BASELINE_IMAGE, "image", PillowJpeg, None),
    ]
    for status in encoder_status():
        if options.routes is not None and status.name not in options.routes:
            continue
        if not status.available:
            report.skipped.append({"route": status.name, "reason": status.reason or "unavailable"})
            continue
        if status.reads_cuda:
            # GPU routes take CUDA frames: a GPU section times them with device frames.
            report.skipped.append({"route": status.name, "reason": "GPU route (takes CUDA frames); not timed here"})
            continue
        baseline = BASELINE_VIDEO if status.transport == "webcodecs" else BASELINE_IMAGE
        out.append(Candidate(status.name, status.transport, get_entry(status.name).factory, baseline))
        if status.name == "image":
            out.append(Candidate(PNG_ROW, "image", _png_stills, None, lossless=True, max_frames=options.png_frames))
    for preset in options.x264_presets:
        out.append(Candidate(f"h264_cpu[{preset}]", "webcodecs", _x264_with_preset(preset), BASELINE_VIDEO))
    return out


def _x264_with_preset(preset: str) -> Callable[[EncoderConfig], EncoderBackend]:
    # h264_cpu exactly, but for the x264 preset: how the default preset was chosen.
    def build(config: EncoderConfig) -> EncoderBackend:
        from rfb.encoders.h264_cpu import NAME, PyAVH264Encoder, libx264_settings

        return PyAVH264Encoder(NAME, config, libx264_settings(config, preset=preset))

    return build


# -- measuring -------------------------------------------------------------------


@dataclass
class _Run:
    """One candidate's encoder, decoder and measurements at one size."""

    candidate: Candidate
    backend: EncoderBackend
    decoder: H264Decoder | None
    startup: float
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def close(self) -> None:
        self.backend.close()
        if self.decoder is not None:
            self.decoder.close()


def measure(
    candidates: Sequence[Candidate], config: EncoderConfig, source: Iterable[np.ndarray]
) -> list[dict[str, Any]]:
    """Encode ``source`` with every candidate, interleaved frame by frame.

    Interleaving (and rotating who goes first) makes a busy machine slow every
    candidate alike, so the ratios stay meaningful where the absolute times are not.
    The first frame of ``source`` is the untimed warm-up (encoder start-up, the IDR);
    at most ``candidate.max_frames`` of the rest are timed.
    """
    runs: list[_Run] = []
    frames = iter(source)
    first = next(frames)
    try:
        for candidate in candidates:
            t0 = time.perf_counter()
            backend = candidate.build(config)
            decoder = H264Decoder() if candidate.transport == "webcodecs" else None
            run = _Run(candidate, backend, decoder, 0.0)
            runs.append(run)
            warm = _encode(backend, frame_from_array(first), candidate)
            run.startup = time.perf_counter() - t0
            _score(first, warm, decoder)  # primes the decoder with the IDR
        for index, rgb in enumerate(frames):
            frame = frame_from_array(rgb)
            shift = index % len(runs)
            for run in runs[shift:] + runs[:shift]:
                limit = run.candidate.max_frames
                if limit is not None and index >= limit:
                    continue
                c0, t0 = time.process_time(), time.perf_counter()
                payloads = _encode(run.backend, frame, run.candidate)
                t1, c1 = time.perf_counter(), time.process_time()
                run.wall.append(t1 - t0)
                run.cpu.append(c1 - c0)
                run.sizes.append(sum(len(p.data) for p in payloads))
                run.scores += _score(rgb, payloads, run.decoder)
        for run in runs:
            run.backend.flush()
    finally:
        for run in runs:
            run.close()
    return [_row(run, config) for run in runs]


def _row(run: _Run, config: EncoderConfig) -> dict[str, Any]:
    c = run.candidate
    return {
        "route": c.name,
        "transport": c.transport,
        "baseline": c.baseline,
        "width": config.width,
        "height": config.height,
        "frames": len(run.wall),
        "startup_ms": round(run.startup * 1e3, 2),
        "encode_ms_median": round(percentile(run.wall, 50) * 1e3, 3),
        "encode_ms_p95": round(percentile(run.wall, 95) * 1e3, 3),
        "cpu_ms_mean": round(float(np.mean(run.cpu)) * 1e3, 3),
        "kb_per_frame": round(float(np.mean(run.sizes)) / 1e3, 2),
        "psnr_db": round(float(np.mean(run.scores)), 2) if run.scores else None,
        "bitrate": config.bitrate if c.transport == "webcodecs" else None,
        "quality": config.quality if c.transport == "image" and not c.lossless else None,
    }


def _encode(backend: EncoderBackend, frame: RawFrame, candidate: Candidate) -> list[EncodedPayload]:
    if not candidate.lossless:
        return backend.encode(frame)
    if not isinstance(backend, ImageEncoder):
        raise TypeError(f"a lossless candidate needs the image route's ImageEncoder, got {type(backend).__name__}")
    return backend.encode(frame, lossless=True)


def _score(rgb: np.ndarray, payloads: list[EncodedPayload], decoder: H264Decoder | None) -> list[float]:
    if decoder is None:
        return [psnr(rgb, decode_image(p.data)) for p in payloads]
    return [psnr(rgb, picture) for p in payloads for picture in decoder.decode(p.data)]


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """``time_ratio`` / ``size_ratio`` / ``psnr_delta_db`` of each row against its baseline."""
    by_key = {(r["route"], r["width"], r["height"]): r for r in rows}
    for row in rows:
        base = by_key.get((row["baseline"], row["width"], row["height"]))
        if base is None:
            continue
        row["time_ratio"] = round(row["encode_ms_median"] / base["encode_ms_median"], 3)
        row["size_ratio"] = round(row["kb_per_frame"] / base["kb_per_frame"], 3) if base["kb_per_frame"] else None
        if row["psnr_db"] is not None and base["psnr_db"] is not None:
            row["psnr_delta_db"] = round(row["psnr_db"] - base["psnr_db"], 2)


# -- the section -----------------------------------------------------------------


def run(options: BenchmarkOptions) -> SectionReport:
    """Time every candidate at every size."""
    report = SectionReport("encode")
    todo = candidates(options, report)
    for width, height in options.sizes:
        config = EncoderConfig(
            width, height, fps=options.fps, bitrate=options.bitrate_for(width, height), quality=options.quality
        )
        # One extra frame: the first is encoded untimed (start-up, IDR).
        source = (patterns.make(options.pattern, width, height, i) for i in range(options.frames + 1))
        options.say(f"encode {width}x{height}: {', '.join(c.name for c in todo)}")
        report.rows += measure(todo, config, source)
    add_ratios(report.rows)
    report.notes.append(
        f"pattern={options.pattern}, {options.frames} timed frames per route (PNG: {options.png_frames}), "
        f"{options.fps:g} fps, bitrate {'auto' if options.bitrate is None else options.bitrate}, "
        f"JPEG quality {options.quality}"
    )
    report.table = format_table(report.rows)
    return report


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table, one line per (size, route)."""
    header = (
        f"{'size':>10} {'route':<24} {'median ms':>9} {'p95 ms':>8} {'cpu ms':>8} "
        f"{'KB/frame':>9} {'PSNR dB':>8} {'x time':>7} {'x bytes':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        is_baseline = r["route"] in (BASELINE_VIDEO, BASELINE_IMAGE)
        ratio = f"{r['time_ratio']:.2f}" if "time_ratio" in r else "1.00" if is_baseline else "-"
        size_ratio = f"{r['size_ratio']:.2f}" if r.get("size_ratio") is not None else "-"
        score = f"{r['psnr_db']:.2f}" if r["psnr_db"] is not None else "-"
        lines.append(
            f"{r['width']}x{r['height']:<5} {r['route']:<24} {r['encode_ms_median']:>9.2f} {r['encode_ms_p95']:>8.2f} "
            f"{r['cpu_ms_mean']:>8.2f} {r['kb_per_frame']:>9.1f} {score:>8} {ratio:>7} {size_ratio:>8}"
        )
    return "\n".join(lines)
