"""The latency comparison: nvenc_gpu_cffi vs nvenc_gpu_pyav, identical frames and settings.

Marker ``latency`` (excluded from the default run: ``pytest -m latency tests/latency``).
Needs a CUDA GPU; on one without NVENC (H100/H200) both routes drive the NVENC emulator
and the summary says so. Results: the terminal summary's table and $RFB_LATENCY_JSON.
Nothing here asserts a time: the assertions are about behaviour (one access unit per
call, the right pixels, identical settings, nothing leaked); the times are reported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.latency.engine import Engine
from tests.latency.runner import check_latency, run_harness

pytestmark = [pytest.mark.latency, pytest.mark.gpu]

SIZES = [(1280, 720), (1920, 1080)]
FRAMES = int(os.environ.get("RFB_LATENCY_FRAMES", "60"))
OVERHEAD_FRAMES = int(os.environ.get("RFB_LATENCY_OVERHEAD_FRAMES", "3000"))


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_latency_cffi_vs_pyav(
    latency_engine: Engine, latency_record: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    result = run_harness(
        latency_engine,
        tmp_path,
        "latency",
        "--size",
        f"{size[0]}x{size[1]}",
        "--frames",
        str(FRAMES),
    )
    latency_record(latency_engine, result)
    check_latency(latency_engine, result, FRAMES)


def test_host_overhead_no_pixel_mode(latency_engine: Engine, latency_record: Any, tmp_path: Path) -> None:
    """Per-frame host work of NvencEncoder.encode(), the cffi route and the PyAV route, engine doing nothing."""
    if not latency_engine.emulated:
        pytest.skip("the no-pixel mode is the emulator's; with real NVENC the engine's work cannot be switched off")
    result = run_harness(
        latency_engine,
        tmp_path,
        "overhead",
        "--size",
        "1920x1080",
        "--frames",
        str(OVERHEAD_FRAMES),
    )
    latency_record(latency_engine, result)
    for name, route in result["routes"].items():
        assert route["calls"] == OVERHEAD_FRAMES, name
        assert route["empty_outputs"] == 0, name
    ledger = result["ledger"]
    assert ledger["sessions"] == 0 and ledger["leaked"] == 0 and ledger["errors"] == 0, ledger
