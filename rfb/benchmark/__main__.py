"""Command line of the benchmark: ``python -m rfb.benchmark --help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rfb.benchmark import machine
from rfb.benchmark.patterns import PATTERNS
from rfb.benchmark.sections import (
    DEFAULT_SIZES,
    BenchmarkOptions,
    run_sections,
    section_names,
    write_json_report,
)


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """``"1280x720,1920x1080"`` -> ((1280, 720), (1920, 1080))."""
    sizes = []
    for item in text.split(","):
        try:
            w, h = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected sizes like 1280x720,1920x1080; got {item!r}") from None
        if w <= 0 or h <= 0:
            raise argparse.ArgumentTypeError(f"sizes must be positive, got {item!r}")
        sizes.append((w, h))
    return tuple(sizes)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rfb.benchmark",
        description="Time rfb's encode routes on this machine against textbook baselines measured in the same run.",
    )
    default_sizes = ",".join(f"{w}x{h}" for w, h in DEFAULT_SIZES)
    p.add_argument("--sizes", type=parse_sizes, default=DEFAULT_SIZES, help=f"default {default_sizes}")
    p.add_argument("--frames", type=int, default=60, help="timed frames per route and size (default 60)")
    p.add_argument("--pattern", choices=PATTERNS, default="scene", help="test picture (default scene)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate the encoders are configured for")
    p.add_argument("--bitrate", type=int, default=None, help="H.264 bit/s (default: 0.13 bit per pixel per frame)")
    p.add_argument("--quality", type=int, default=80, help="JPEG quality (default 80)")
    p.add_argument("--routes", default=None, help="comma-separated route names (default: all available)")
    p.add_argument("--png-frames", type=int, default=3, help="timed PNG stills per size (default 3)")
    p.add_argument(
        "--x264-presets", default="", help="extra h264_cpu rows with these x264 presets, e.g. superfast,veryfast"
    )
    p.add_argument("--sections", default="encode", help=f"comma-separated, from {section_names()}")
    p.add_argument(
        "--gpu",
        action="store_true",
        help="the gpu section instead of encode: GPU routes fed device frames vs CPU-origin routes, with the GPU named",
    )
    p.add_argument("--json", dest="json_path", default=None, help="also write the results to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = BenchmarkOptions(
            sizes=args.sizes,
            frames=args.frames,
            pattern=args.pattern,
            fps=args.fps,
            bitrate=args.bitrate,
            quality=args.quality,
            routes=tuple(args.routes.split(",")) if args.routes else None,
            png_frames=args.png_frames,
            x264_presets=tuple(p for p in args.x264_presets.split(",") if p),
            progress=None if args.quiet else (lambda m: print(f"... {m}", file=sys.stderr, flush=True)),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    info = machine.describe()
    if args.gpu:
        from rfb.benchmark.gpu_device import describe_gpu

        names = ["gpu"] if names == ["encode"] else [*names, "gpu"]
        info["gpu"] = describe_gpu()
    before = machine.parallel_speedup()
    reports = run_sections(options, names)
    after = machine.parallel_speedup()
    # the lower of the two: what the run could count on
    info["parallel_speedup"] = min(before, after)
    info["parallel_speedup_before_after"] = [before, after]
    print(f"machine: {machine.one_line(info)}")
    for report in reports:
        print(f"\n[{report.name}] " + "; ".join(report.notes))
        print(report.table)
        for skip in report.skipped:
            print(f"  skipped {skip['route']}: {skip['reason']}")
    if args.json_path:
        write_json_report(
            args.json_path, "rfb.benchmark", argv, machine=info, sections={r.name: r.to_json() for r in reports}
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
