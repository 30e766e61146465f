"""``python -m rfb.benchmark``: what each encode route costs on this machine.

The benchmark is built from sections (``rfb.benchmark.sections``). The ``encode``
section times every available host-frame route of the registry against textbook
baselines measured in the same run; other sections (fan-out, browser latency) plug
in through :func:`rfb.benchmark.sections.register_section` or the
``BUILTIN_SECTIONS`` table there.

Measurements of one layer have commands of their own, needing only rfb and a GPU:
``python -m rfb.benchmark.nvenc_latency`` (the two NVENC routes' per-call latency) and
``python -m rfb.benchmark.nvjpeg_layers`` (one nvJPEG encode, by layer).
"""

from rfb.benchmark.sections import BenchmarkOptions, SectionReport, register_section, run_sections

__all__ = ["BenchmarkOptions", "SectionReport", "register_section", "run_sections"]
