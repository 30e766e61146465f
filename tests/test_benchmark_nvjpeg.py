"""``python -m rfb.benchmark.nvjpeg_layers``: nvJPEG's encode time by layer (binding, route, GPU).

Without a GPU it says what it needs in one line and exits 1; with one (marker ``gpu``)
it prints a row per case and writes them as JSON. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rfb.gpu.context import gpu_available
from tests.gpu import FakeCudaArray
from tests.nvjpegffi.emulator import Emulator, parse
from tests.support.ci import unavailable

# The binding's emulator fixtures, reused.
from tests.support.nvjpeg_fixtures import (  # noqa: F401 (fixtures, used by name)
    c_compiler,
    emulator,
    emulator_path,
    official_include_dir,
    use_library,
)

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


def test_compare_takes_only_the_listed_schedules() -> None:
    result = run_bench("--compare", "--schedules", "busy")
    assert result.returncode == 2 and "invalid choice: 'busy'" in result.stderr


def test_frames_must_be_positive() -> None:
    result = run_bench("0", "--compare")
    assert result.returncode == 2 and "frames must be a positive integer, got 0" in result.stderr


def test_a_schedule_child_without_a_gpu_says_so_and_exits_1() -> None:
    if gpu_available() is None:
        pytest.skip("this machine has a GPU: the child would run")
    result = run_bench("3", "--child-schedule", "blocking")
    assert result.returncode == 1 and result.stderr.startswith("error: schedule 'blocking' needs a CUDA GPU"), (
        result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.mark.gpu
def test_gpu_compare_rows_for_every_cell_and_schedule(tmp_path: Path) -> None:
    from rfb.benchmark import nvjpeg_variants as nv
    from tests.gpu import require_cupy

    require_cupy()
    out = tmp_path / "compare.json"
    result = run_bench("3", "--compare", "--schedules", "auto", "blocking", "--json", str(out))
    if result.returncode == 1 and "nvJPEG" in result.stderr:
        unavailable(result.stderr.strip())
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [(r["path"], r["wait"]) for r in report["cells"]] == list(nv.CELLS)
    assert [(r["schedule"], r["path"], r["wait"]) for r in report["schedules"]] == [
        (s, p, w) for s in ("auto", "blocking") for p, w in nv.CHILD_CELLS
    ]
    assert all(r["ms_median"] > 0 and r["kb_per_frame"] > 0 for r in report["cells"] + report["schedules"])
    assert "x current" in result.stdout


class _HostArray(FakeCudaArray):
    """What the comparison reads of a CuPy array (``data.ptr``, ``strides``), over host memory."""

    def __init__(self, host: np.ndarray) -> None:
        super().__init__(host)
        self.strides = host.strides
        self.data = SimpleNamespace(ptr=host.ctypes.data)


class _Event:
    def record(self) -> None:
        self.at = time.perf_counter()

    def synchronize(self) -> None:
        return None


def _stand_in_cupy() -> Any:
    """Enough of CuPy for run_cells: arrays over host memory, events timed by the host clock."""
    device = SimpleNamespace(synchronize=lambda: None)
    cuda = SimpleNamespace(Device=lambda: device, Event=_Event, get_elapsed_time=lambda a, b: (b.at - a.at) * 1e3)
    return SimpleNamespace(asarray=lambda host: _HostArray(np.ascontiguousarray(host)), cuda=cuda)


def test_compare_times_every_cell_in_turn_against_the_emulator(emulator: Emulator) -> None:
    import nvjpegffi
    from rfb.benchmark import nvjpeg_variants as nv

    opened: list[Any] = []
    waits: dict[str, str] = {}

    def opener(path: str, width: int, height: int) -> Any:
        encoder = nv.open_encoder(path, width, height, context=nvjpegffi.NullContext())
        opened.append(encoder)
        waits[path] = encoder.wait if path == "binding" else encoder.nvjpeg.wait
        return encoder

    def check(label: str, data: bytes) -> None:
        out = parse(data)  # the emulator's echo: the frame it was handed, at the route's settings
        assert (out.width, out.height, out.quality) == (64, 48, nv.QUALITY), label

    rows = nv.run_cells(_stand_in_cupy(), nv.CELLS, 3, size=(64, 48), warmup=1, opener=opener, check=check)
    assert [(r["path"], r["wait"]) for r in rows] == list(nv.CELLS)
    assert {r["frames"] for r in rows} == {3}
    assert {type(e).__name__ for e in opened} == {"JpegGpuEncoder", "JpegEncoder"} and len(opened) == len(nv.PATHS)
    assert all(e.closed for e in opened)
    assert waits == {
        "route": "stream",
        "route-prepared": "stream",
        "event": "event",
        "event-blocking": "event-blocking",
        "binding": "stream",
    }
    nv.add_ratios(rows)
    by_cell = {(r["path"], r["wait"]): r for r in rows}
    assert by_cell["route", "none"]["ratio"] == by_cell["route", "sleep"]["ratio"] == 1.0
    for (path, wait), row in by_cell.items():
        base = by_cell["route", nv.baseline_wait(wait)]["ms_median"]
        assert row["ratio"] == round(row["ms_median"] / base, 3), (path, wait)
    spun = by_cell["route", "sleep+spin1ms"]["wait_cpu_ms_median"]
    assert spun > by_cell["route", "sleep"]["wait_cpu_ms_median"]  # the spin is paid in CPU time, and counted
    lines = nv.format_rows(rows)
    assert len(lines) == len(rows) + 1 and "x current" in lines[0]
    assert emulator.live() == {"handles": 0, "states": 0, "params": 0}
