"""``python -m rfb.benchmark --gpu``: what it prints and writes, with or without a GPU.

Without a GPU (CI) every GPU route is listed with its reason and the command succeeds;
with one, the available routes get rows. The measuring code is exercised where a GPU
is: marker ``gpu`` below.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rfb.benchmark import engines, gpu
from rfb.benchmark.__main__ import main
from rfb.benchmark.gpu_device import describe_gpu, parse_driver_release
from rfb.benchmark.gpu_table import format_table
from rfb.encoders.registry import encoder_status

GPU_ROUTES = sorted(s.name for s in encoder_status() if s.reads_cuda)


def test_gpu_flag_lists_every_gpu_route_and_succeeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu.json"
    assert (
        main(
            [
                "--gpu",
                "--sizes",
                "64x48",
                "--frames",
                "2",
                "--quiet",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    section = doc["sections"]["gpu"]
    assert "encode" not in doc["sections"]  # --gpu replaces the default section
    described = doc["machine"]["gpu"]
    assert isinstance(described["available"], bool)
    timed = {r["route"] for r in section["rows"]}
    skipped = {s["route"]: s["reason"] for s in section["skipped"]}
    assert GPU_ROUTES and set(GPU_ROUTES) <= timed | set(skipped)  # never dropped silently
    assert all(reason for reason in skipped.values())
    printed = capsys.readouterr().out
    for name in skipped:
        assert f"skipped {name}: " in printed
    if not described["available"]:
        assert not timed and described["reason"]
        assert any(n.startswith("no usable CUDA GPU: ") for n in section["notes"])


def test_take_turns_rotates_who_goes_first() -> None:
    calls: list[tuple[str, int]] = []
    steps = [lambda i, n=n: calls.append((n, i)) for n in "abc"]
    gpu.take_turns(steps, [10, 11, 12, 13])
    assert [n for n, _ in calls] == list("abcbcacababc")
    assert [i for _, i in calls] == [10] * 3 + [11] * 3 + [12] * 3 + [13] * 3


def test_summary_ms() -> None:
    s = gpu.summary_ms([0.001 * k for k in range(1, 101)])
    assert s["median_ms"] == pytest.approx(50.5)
    assert s["p95_ms"] == pytest.approx(95.05) and s["p99_ms"] == pytest.approx(99.01)


def test_loaded_path_is_the_file_the_loader_opened() -> None:
    libc = ctypes.util.find_library("c")  # a bare name: the loader's search finds the file
    assert libc is not None and os.sep not in libc
    path = engines.loaded_path(libc)
    assert path is not None and os.path.isabs(path) and Path(path).name.startswith("libc.so")
    assert engines.loaded_path("/nonexistent/libnvidia-encode.so.1") is None


def test_a_library_chosen_by_nvencffi_library_is_an_override(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.nvenc_emulator import require_emulator

    library = require_emulator()
    monkeypatch.setenv("NVENCFFI_LIBRARY", str(library))
    loaded = engines.nvenc_library("nvenc_gpu_cffi")
    assert loaded == engines.LoadedLibrary(str(library), str(library.resolve()), "NVENCFFI_LIBRARY")
    assert not loaded.from_system
    assert (
        loaded.describe() == f"{library.resolve()} (chosen by NVENCFFI_LIBRARY: not the system's libnvidia-encode.so.1)"
    )
    assert engines.engine_of("nvenc_gpu_cffi") == "override"
    assert engines.engine_of("h264_gpu_nv12") == "libx264"
    assert engines.nvenc_library("h264_gpu_nv12") is None


def test_a_library_from_an_ld_library_path_directory_is_an_override() -> None:
    from tests.nvenc_emulator import require_emulator

    library = require_emulator()  # named libnvidia-encode.so.1, so FFmpeg's dlopen finds it there
    env = {**os.environ, "LD_LIBRARY_PATH": str(library.parent)}
    code = "from rfb.benchmark import engines; print(engines.engine_of('nvenc_cpu')); print(engines.environment_note())"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    engine, note = proc.stdout.splitlines()
    assert engine == "override"
    assert f"ffmpeg: {library.resolve()} (chosen by LD_LIBRARY_PATH:" in note


def test_a_library_nothing_can_load_is_said_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NVENCFFI_LIBRARY", str(tmp_path / "libnvidia-encode.so.1"))
    assert engines.engine_of("nvenc_gpu_cffi") == "none"
    assert engines.nvencffi_library().describe() == f"{tmp_path / 'libnvidia-encode.so.1'} (not loadable)"


def test_table_shows_rows_and_missing_cpu_origin() -> None:
    stats = {"median_ms": 2.5, "p95_ms": 3.0, "p99_ms": 3.5}
    row = {
        "route": "nvenc_gpu_cffi",
        "engine": "override",
        "width": 1920,
        "height": 1080,
        "frames": 3,
        "convert_gpu": {"median_ms": 0.1, "p95_ms": 0.1, "p99_ms": 0.1},
        "encode": stats,
        "gpu_total": stats,
        "gpu_fps": 400.0,
        "cpu_ms": 0.75,
        "kb_per_frame": 3110.4,
        "psnr_db": 48.1,
        "cpu_origin_route": "nvenc_cpu",
    }
    with_cpu = {
        **row,
        "cpu_total": {"median_ms": 7.5, "p95_ms": 8.0, "p99_ms": 9.0},
        "cpu_fps": 133.3,
        "speedup": 3.0,
        "cpu_device_total": {"median_ms": 10.0, "p95_ms": 11.0, "p99_ms": 12.0},
        "speedup_device": 4.0,
        "cpu_route_cpu_ms": 31.25,
    }
    text = format_table([with_cpu, row])
    lines = text.splitlines()
    assert "3.00x" in lines[2] and "7.50" in lines[2]
    assert "10.00" in lines[2] and "4.00x" in lines[2]  # the CPU route fed the device frame
    assert "0.75" in lines[2] and "31.25" in lines[2]  # CPU time per frame: the GPU route's, the CPU route's
    assert "nvenc_cpu (n/a)" in lines[3]
    assert "(no GPU route" in format_table([])


@pytest.mark.gpu
def test_gpu_section_times_available_routes(tmp_path: Path) -> None:
    if not describe_gpu()["available"]:
        pytest.skip(f"no CUDA GPU: {describe_gpu()['reason']}")
    out = tmp_path / "gpu.json"
    assert (
        main(
            [
                "--gpu",
                "--sizes",
                "320x240",
                "--frames",
                "3",
                "--quiet",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    section = json.loads(out.read_text())["sections"]["gpu"]
    for row in section["rows"]:
        assert (
            row["frames"] == 3 and row["kb_per_frame"] > 0 and row["psnr_db"] > 20
        )  # a sanity bound: garbage decodes near 10 dB; tiny frames at auto bitrate sit near 25
        assert row["gpu_total"]["median_ms"] >= row["encode"]["median_ms"]
        assert row["cpu_ms"] > 0  # even a GPU route spends host CPU time on each frame
        if "cpu_total" in row:  # the CPU route ran from host frames, and from device frames with a download
            assert row["cpu_device_total"]["median_ms"] > 0
            assert row["speedup_device"] == pytest.approx(
                row["cpu_device_total"]["median_ms"] / row["gpu_total"]["median_ms"], rel=0.01
            )


def test_driver_release_from_proc() -> None:
    # the H100 machine's line (open kernel module), and the proprietary module's form
    seen = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)  \n"
    assert parse_driver_release(seen) == "580.159.04"
    assert parse_driver_release("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19") == (
        "535.104.05"
    )
    assert parse_driver_release("no driver here") is None
