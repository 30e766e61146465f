"""``python -m rfb.benchmark``: what each encode route costs on this machine.

The benchmark is built from sections (``rfb.benchmark.sections``). The ``encode``
section times every available host-frame route of the registry against textbook
baselines measured in the same run; other sections (fan-out, browser latency) plug
in through :func:`rfb.benchmark.sections.register_section` or the
``BUILTIN_SECTIONS`` table there.

Some measurements also run alone, as ``python -m rfb.benchmark.MODULE``: ``fanout``,
``browser_latency``, ``widget_latency`` (the notebook widget in a real JupyterLab, over
the comm and the WebSocket), ``hotpath``, ``nvenc_latency`` (the two NVENC routes'
per-call latency, on a GPU) and ``nvjpeg_layers`` (one nvJPEG encode by layer, on a GPU).
"""

from rfb.benchmark.sections import BenchmarkOptions, SectionReport, register_section, run_sections

__all__ = ["BenchmarkOptions", "SectionReport", "register_section", "run_sections"]
