"""``python -m rfb.benchmark --gpu``: what it prints and writes, with or without a GPU.

Without a GPU (CI) every GPU route is listed with its reason and the command succeeds;
with one, the available routes get rows. The measuring code is exercised where a GPU
is: marker ``gpu`` below.
"""

from __future__ import annotations

import ctypes.util
import json
from pathlib import Path

import pytest

from rfb.benchmark import gpu
from rfb.benchmark.__main__ import main
from rfb.encoders.registry import encoder_status

GPU_ROUTES = sorted(s.name for s in encoder_status() if s.reads_cuda)


def test_gpu_flag_lists_every_gpu_route_and_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    assert GPU_ROUTES and set(GPU_ROUTES) <= timed | set(
        skipped
    )  # never dropped silently
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


def test_is_emulator_tells_the_emulator_from_other_libraries() -> None:
    from tests.nvenc_emulator import require_emulator

    assert gpu.is_emulator(str(require_emulator())) is True
    libc = ctypes.util.find_library("c")
    assert libc is not None and gpu.is_emulator(libc) is False
    assert gpu.is_emulator("/nonexistent/libnvidia-encode.so.1") is None


def test_engine_of_names_the_emulator_when_nvencffi_loads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.nvenc_emulator import require_emulator

    monkeypatch.setenv("NVENCFFI_LIBRARY", str(require_emulator()))
    assert gpu.engine_of("nvenc_gpu_cffi") == "emulated"
    assert gpu.engine_of("h264_gpu_nv12") == "libx264"


def test_table_shows_rows_and_missing_cpu_origin() -> None:
    stats = {"median_ms": 2.5, "p95_ms": 3.0, "p99_ms": 3.5}
    row = {
        "route": "nvenc_gpu_cffi",
        "engine": "emulated",
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
    text = gpu.format_table([with_cpu, row])
    lines = text.splitlines()
    assert "3.00x" in lines[2] and "7.50" in lines[2]
    assert "10.00" in lines[2] and "4.00x" in lines[2]  # the CPU route fed the device frame
    assert "0.75" in lines[2] and "31.25" in lines[2]  # CPU time per frame: the GPU route's, the CPU route's
    assert "nvenc_cpu (n/a)" in lines[3]
    assert "(no GPU route" in gpu.format_table([])


@pytest.mark.gpu
def test_gpu_section_times_available_routes(tmp_path: Path) -> None:
    if not gpu.describe_gpu()["available"]:
        pytest.skip(f"no CUDA GPU: {gpu.describe_gpu()['reason']}")
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
        assert row["frames"] == 3 and row["kb_per_frame"] > 0 and row["psnr_db"] > 20  # a sanity bound: garbage decodes near 10 dB; tiny frames at auto bitrate sit near 25
        assert row["gpu_total"]["median_ms"] >= row["encode"]["median_ms"]
        assert row["cpu_ms"] > 0  # even a GPU route spends host CPU time on each frame
        if "cpu_total" in row:  # the CPU route ran from host frames, and from device frames with a download
            assert row["cpu_device_total"]["median_ms"] > 0
            assert row["speedup_device"] == pytest.approx(row["cpu_device_total"]["median_ms"] / row["gpu_total"]["median_ms"], rel=0.01)


def test_driver_release_from_proc() -> None:
    # the H100 machine's line (open kernel module), and the proprietary module's form
    seen = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)  \n"
    assert gpu.parse_driver_release(seen) == "580.159.04"
    assert gpu.parse_driver_release(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19"
    ) == ("535.104.05")
    assert gpu.parse_driver_release("no driver here") is None
