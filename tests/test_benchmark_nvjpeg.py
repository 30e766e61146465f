"""``python -m rfb.benchmark.nvjpeg_layers``: nvJPEG's encode time by layer (binding, route, GPU).

Without a GPU it says what it needs in one line and exits 1; with one (marker ``gpu``)
it prints a row per case and writes them as JSON. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rfb.gpu.context import gpu_available
from tests.support.ci import unavailable

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rfb.benchmark.nvjpeg_layers", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_a_gpu_it_says_what_it_needs_and_exits_1() -> None:
    if gpu_available() is None:
        pytest.skip("this machine has a GPU: the benchmark would run")
    result = run_bench("5", "--quick")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: this benchmark needs a CUDA GPU, CuPy and nvJPEG: "), result.stderr
    assert "Traceback" not in result.stderr


def test_between_takes_only_the_listed_neighbours() -> None:
    result = run_bench("--between", "nap")
    assert result.returncode == 2 and "invalid choice: 'nap'" in result.stderr


@pytest.mark.gpu
def test_gpu_rows_for_each_neighbour(tmp_path: Path) -> None:
    from tests.gpu import require_cupy

    require_cupy()
    out = tmp_path / "nvjpeg.json"
    result = run_bench("5", "--quick", "--between", "none", "render", "--json", str(out))
    if result.returncode == 1 and "nvJPEG" in result.stderr:
        unavailable(result.stderr.strip())
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [(r["width"], r["height"], r["pattern"], r["between"]) for r in rows] == [
        (1920, 1080, "scene", "none"),
        (1920, 1080, "scene", "render"),
    ]
    for row in rows:
        assert row["frames"] == 5 and row["kb_per_frame"] > 0
        assert 0 < row["gpu_ms_median"] and 0 < row["nvjpegffi_ms_median"] and 0 < row["jpeg_gpu_ms_median"]
