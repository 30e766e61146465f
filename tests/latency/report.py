"""The harness's results as the terminal summary table and as a JSON file.

Kept apart from conftest.py so that the formatting is tested like any other code
(tests/latency/test_harness.py) and the conftest stays a thin pytest adapter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.support.nvenc_header import ROOT

ENV_JSON = "RFB_LATENCY_JSON"
DEFAULT_JSON = ROOT / ".cache" / "latency" / "latency.json"


def json_path() -> Path:
    """Where the results go: ``$RFB_LATENCY_JSON``, else .cache/latency/latency.json."""
    return Path(os.environ.get(ENV_JSON) or DEFAULT_JSON)


def engine_banner(records: list[dict[str, Any]]) -> list[str]:
    """Plain words about what encoded: always said, loudest when the engine was emulated."""
    lines = []
    for detail in dict.fromkeys(r["engine"]["detail"] for r in records if r["engine"]["kind"] == "emulated"):
        lines.append(
            "ENCODE ENGINE EMULATED: both routes drove the project's NVENC emulator, not NVENC silicon "
            f"({detail}). What differs between the routes (Python, cffi, FFmpeg, PyAV, registration, "
            "mapping) is measured for real; the engine's own time is the emulator's."
        )
    for detail in dict.fromkeys(r["engine"]["detail"] for r in records if r["engine"]["kind"] == "nvenc"):
        lines.append(f"encode engine: real NVENC ({detail})")
    return lines


def table(records: list[dict[str, Any]]) -> str:
    """One line per (measurement, route); the latency ratio on the second route's line."""
    header = (
        f"{'mode':<9} {'size':>9} {'route':<42} {'median':>9} {'p95':>9} {'p99':>9} {'unit':<4} "
        f"{'KB/frame':>9} {'exact':>5} {'cffi/PyAV':>9}"
    )
    lines = [header, "-" * len(header)]
    for record in records:
        result = record["result"]
        names = list(result["routes"])
        for i, name in enumerate(names):
            r = result["routes"][name]
            if result["mode"] == "latency":
                stats, unit = r["latency"], "ms"
                values = (stats["median_ms"], stats["p95_ms"], stats["p99_ms"])
                kb, exact = f"{r['kb_per_frame']:.1f}", "yes" if r["exact"] else "no"
                ratio = f"{result['ratio_median']:.3f}" if i == len(names) - 1 else ""
            else:
                unit = "us"
                values = (r["median_us"], r["p95_us"], r["p99_us"])
                kb, exact, ratio = "-", "-", ""
            lines.append(
                f"{result['mode'] if i == 0 else '':<9} {result['size'] if i == 0 else '':>9} {name:<42} "
                f"{values[0]:>9.3f} {values[1]:>9.3f} {values[2]:>9.3f} {unit:<4} {kb:>9} {exact:>5} {ratio:>9}"
            )
    return "\n".join(lines)


def summary(records: list[dict[str, Any]], written: Path | None) -> list[str]:
    """The terminal summary's lines."""
    lines = [*engine_banner(records), table(records)]
    overhead = [r for r in records if r["result"]["mode"] == "overhead"]
    for record in overhead:
        goal = record["result"]["goal_us"]
        lines.append(
            f"host overhead goal for NvencEncoder.encode(): < {goal:g} us per frame on the GPU machine's CPU "
            "(information, not an assertion)"
        )
    if written is not None:
        lines.append(f"JSON: {written}")
    return lines


def write_json(records: list[dict[str, Any]], path: Path, machine: dict[str, Any]) -> Path:
    """All records with the machine they ran on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"machine": machine, "banner": engine_banner(records), "results": records}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
