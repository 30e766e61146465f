"""The benchmark's extension points: options, section reports, the section registry.

A section is a function ``BenchmarkOptions -> SectionReport``. Built-in sections
live in their own modules (each exposing ``run``) and load on first use, so that a
section needing a browser or a GPU costs nothing when it is not asked for. To add
one, write ``rfb/benchmark/<name>.py`` with ``run(options) -> SectionReport`` and
add it to ``BUILTIN_SECTIONS``, or call :func:`register_section` from code that
embeds the benchmark.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rfb.benchmark.patterns import PATTERNS

# Section name -> module with a ``run(options) -> SectionReport`` function.
BUILTIN_SECTIONS: dict[str, str] = {
    "encode": "rfb.benchmark.encode",
    "gpu": "rfb.benchmark.gpu",
    "fanout": "rfb.benchmark.fanout",
    "browser_latency": "rfb.benchmark.browser_latency",
}

DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((1280, 720), (1920, 1080), (2560, 1440), (3840, 2160))

# Bits per pixel per frame for --bitrate auto: 1080p30 -> 8.1 Mbit/s.
AUTO_BITS_PER_PIXEL = 0.13


@dataclass(frozen=True, slots=True)
class BenchmarkOptions:
    """What the command line asked for; every section reads what it needs."""

    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES
    frames: int = 60
    pattern: str = "scene"
    fps: float = 30.0
    bitrate: int | None = None  # None: AUTO_BITS_PER_PIXEL for each size
    quality: int = 80
    routes: tuple[str, ...] | None = None  # None: every available route
    png_frames: int = 3  # PNG stills are slow and rare: time fewer of them
    x264_presets: tuple[str, ...] = ()  # extra h264_cpu rows with other x264 presets
    progress: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {self.pattern!r}")
        if not self.sizes:
            raise ValueError("expected at least one size")

    def bitrate_for(self, width: int, height: int) -> int:
        """The bitrate to configure for one size."""
        if self.bitrate is not None:
            return self.bitrate
        return max(100_000, int(round(width * height * self.fps * AUTO_BITS_PER_PIXEL, -5)))

    def say(self, message: str) -> None:
        """Report progress (to stderr from the command line; silent by default)."""
        if self.progress is not None:
            self.progress(message)


@dataclass(slots=True)
class SectionReport:
    """One section's results: JSON-ready rows, skipped items with reasons, and a table."""

    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    table: str = ""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "skipped": self.skipped, "notes": self.notes}


Section = Callable[[BenchmarkOptions], SectionReport]

_registered: dict[str, Section] = {}


def register_section(name: str, run: Section, *, replace: bool = False) -> None:
    """Make ``run`` available as ``--sections name``."""
    if (name in _registered or name in BUILTIN_SECTIONS) and not replace:
        raise ValueError(f"a benchmark section named {name!r} exists; pass replace=True to replace it")
    _registered[name] = run


def section_names() -> list[str]:
    return sorted(set(BUILTIN_SECTIONS) | set(_registered))


def get_section(name: str) -> Section:
    if name in _registered:
        return _registered[name]
    if name in BUILTIN_SECTIONS:
        module = importlib.import_module(BUILTIN_SECTIONS[name])
        run: Section = module.run
        return run
    raise KeyError(f"no benchmark section {name!r}; known: {section_names()}")


def run_sections(options: BenchmarkOptions, names: Sequence[str] = ("encode",)) -> list[SectionReport]:
    """Run the named sections in order."""
    sections = [get_section(n) for n in names]  # unknown names fail before any work
    return [section(options) for section in sections]


def write_json_report(path: str, module: str, argv: Sequence[str] | None, **fields: Any) -> None:
    """Write a benchmark's JSON: the command that made it (``python -m module args``), then ``fields``."""
    args = sys.argv[1:] if argv is None else argv
    doc = {"command": f"python -m {module} " + " ".join(args), **fields}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
