"""``python -m rfb.benchmark.nvenc_latency``: the latency comparison users run, product code only.

Without both NVENC routes it names each missing one with its probe's reason and exits 1.
On a GPU (marker ``gpu``) it runs against the NVENC emulator (chosen by
``NVENCFFI_LIBRARY`` and ``LD_LIBRARY_PATH``), so its engines say ``override``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rfb.benchmark.nvenc_latency import parse_size
from tests.latency import engine as engines
from tests.support.nvenc_header import ROOT


def run_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rfb.benchmark.nvenc_latency", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_sizes_are_width_x_height() -> None:
    import argparse

    assert parse_size("1920x1080") == (1920, 1080) and parse_size("640X480") == (640, 480)
    with pytest.raises(argparse.ArgumentTypeError, match="expected WIDTHxHEIGHT such as 1920x1080, got '1080p'"):
        parse_size("1080p")


def test_without_the_routes_it_names_each_reason_and_exits_1() -> None:
    from rfb.benchmark.nvenc_latency import unavailable_routes

    missing = unavailable_routes()
    if not missing:
        pytest.skip("both NVENC routes run here")
    result = run_command("--size", "320x240", "--frames", "3")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: both NVENC routes must run here; ")
    for problem in missing:
        assert problem.split(":", 1)[0] + ":" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.gpu
def test_gpu_the_command_on_the_emulator_says_override(tmp_path: Path) -> None:
    chosen = engines.select()
    if isinstance(chosen, str):
        pytest.skip(chosen)
    out = tmp_path / "latency.json"
    result = run_command("--size", "640x480", "--frames", "10", "--json", str(out), env=chosen.env)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    expected = "override" if chosen.emulated else "nvenc"
    assert report["engines"] == {"nvencffi": expected, "ffmpeg": expected}
    assert set(report["routes"]) == {"nvenc_gpu_cffi", "nvenc_gpu_pyav"}
    for name, route in report["routes"].items():
        assert route["frames"] == 10 and route["one_access_unit_per_call"], name
        assert route["decoded_pictures"] == route["calls"], name
        assert route["exact"] if chosen.emulated else route["luma_psnr_db"] > 25, name
