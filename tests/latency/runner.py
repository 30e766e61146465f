"""Running the harness in a fresh process and checking what every latency run must show.

Shared by the GPU tests (test_latency.py, marker latency) and the default-run smoke
tests on host memory (test_harness.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.latency.engine import Engine
from tests.latency.harness import SESSION_SETTINGS
from tests.support.nvenc_header import ROOT

SETTINGS = SESSION_SETTINGS


def run_harness(engine: Engine, tmp_path: Path, *args: str, timeout: float = 540) -> dict[str, Any]:
    """``python -m tests.latency.harness ARGS`` in a fresh process with the engine's environment."""
    out = tmp_path / "result.json"
    cmd = [
        sys.executable,
        "-m",
        "tests.latency.harness",
        *args,
        "--memory",
        engine.memory,
        "--json",
        str(out),
    ]
    proc = subprocess.run(
        cmd,
        check=False,
        cwd=ROOT,
        env={**os.environ, **engine.env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}")
    return json.loads(out.read_text())


def check_latency(engine: Engine, result: dict[str, Any], frames: int) -> None:
    """What every latency run must show, whatever the engine."""
    expected = "override" if engine.emulated else "nvenc"
    assert result["engines"] == {"nvencffi": expected, "ffmpeg": expected}, "the two routes drove different engines"
    for name, route in result["routes"].items():
        assert route["frames"] == frames, name
        assert route["one_access_unit_per_call"], f"{name}: an encode() call did not return its own access unit"
        assert route["decoded_pictures"] == route["calls"], name
        if engine.emulated:  # I_PCM: the decoded stream is exactly what the route handed the engine
            assert route["exact"], f"{name}: the emulator was fed other pixels than the frames"
        else:
            assert route["luma_psnr_db"] > 25, name
    if engine.emulated:
        cffi, pyav = result["sessions_seen"]
        assert {k: cffi[k] for k in SETTINGS} == {k: pyav[k] for k in SETTINGS}, (
            "the routes were configured differently"
        )
        assert (cffi["api_major"], pyav["api_major"]) == (
            12,
            13,
        )  # nvencffi: API 12.1; PyAV's FFmpeg: 13.0
        ledger = result["ledger"]
        assert ledger["sessions"] == 0 and ledger["leaked"] == 0 and ledger["leaked_mapped"] == 0, ledger
        assert ledger["errors"] == 0, ledger
