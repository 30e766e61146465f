"""A tiny real run of ``python -m rfb.benchmark`` (2 frames, small sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rfb.benchmark import patterns, sections
from rfb.benchmark.__main__ import main, parse_sizes
from rfb.benchmark.encode import BASELINE_IMAGE, BASELINE_VIDEO, PNG_ROW
from rfb.benchmark.metrics import psnr
from rfb.benchmark.sections import BenchmarkOptions, SectionReport, register_section, run_sections

ROOT = Path(__file__).resolve().parents[1]


def test_command_line_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "rfb.benchmark", "--sizes", "96x64,128x96", "--frames", "2", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "machine:" in proc.stdout and "h264_cpu" in proc.stdout and "baseline_x264" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["command"].startswith("python -m rfb.benchmark --sizes 96x64,128x96")
    info = doc["machine"]
    assert info["cpu_model"] and info["cores_usable"] >= 1 and info["python"]
    assert set(info["packages"]) == {"av", "numpy", "opencv-python-headless", "simplejpeg", "pillow"}
    assert 1.0 <= info["parallel_speedup"] <= info["cores_usable"] + 0.5
    assert len(info["parallel_speedup_before_after"]) == 2
    rows = doc["sections"]["encode"]["rows"]
    routes = {r["route"] for r in rows}
    assert {BASELINE_VIDEO, BASELINE_IMAGE, "h264_cpu", "image", PNG_ROW} <= routes
    assert {(r["width"], r["height"]) for r in rows} == {(96, 64), (128, 96)}
    for r in rows:
        assert r["frames"] == 2  # PNG's default of 3 is capped by --frames
        assert r["encode_ms_median"] > 0 and r["encode_ms_p95"] >= r["encode_ms_median"]
        assert r["kb_per_frame"] > 0
        assert r["psnr_db"] is not None and r["psnr_db"] > 15
        if r["route"] == PNG_ROW:
            assert r["psnr_db"] == 100.0  # lossless
        if r["baseline"] is not None:
            assert r["time_ratio"] > 0 and r["size_ratio"] > 0 and "psnr_delta_db" in r
    # a route that cannot run here is listed with its reason, never dropped silently
    for skip in doc["sections"]["encode"]["skipped"]:
        assert skip["reason"]
        assert skip["route"] not in routes


def test_png_frames_and_route_filter(tmp_path: Path) -> None:
    options = BenchmarkOptions(sizes=((64, 48),), frames=3, routes=("image",), png_frames=1)
    (report,) = run_sections(options)
    by_route = {r["route"]: r for r in report.rows}
    assert set(by_route) == {BASELINE_VIDEO, BASELINE_IMAGE, "image", PNG_ROW}
    assert by_route["image"]["frames"] == 3 and by_route[PNG_ROW]["frames"] == 1
    assert "image" in report.table and PNG_ROW in report.table


def test_x264_preset_rows() -> None:
    options = BenchmarkOptions(sizes=((64, 48),), frames=2, routes=("h264_cpu",), x264_presets=("superfast",))
    (report,) = run_sections(options)
    rows = {r["route"]: r for r in report.rows}
    assert {"h264_cpu", "h264_cpu[superfast]"} <= set(rows)
    assert rows["h264_cpu[superfast]"]["baseline"] == BASELINE_VIDEO and "time_ratio" in rows["h264_cpu[superfast]"]


def test_sections_are_pluggable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sections, "_registered", {})  # leave the real registry untouched
    seen: list[BenchmarkOptions] = []

    def fanout(options: BenchmarkOptions) -> SectionReport:
        seen.append(options)
        return SectionReport("fanout", rows=[{"viewers": 4}], table="viewers 4")

    register_section("test_fanout", fanout)
    with pytest.raises(ValueError, match="exists"):
        register_section("test_fanout", fanout)
    with pytest.raises(KeyError, match="no benchmark section 'nope'"):
        run_sections(BenchmarkOptions(), ["nope"])
    (report,) = run_sections(BenchmarkOptions(frames=1), ["test_fanout"])
    assert report.rows == [{"viewers": 4}] and len(seen) == 1


def test_options_and_arguments_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_sizes("1280x720, 64X48") == ((1280, 720), (64, 48))
    with pytest.raises(Exception, match="expected sizes like"):
        parse_sizes("720p")
    with pytest.raises(ValueError, match="frames must be >= 1, got 0"):
        BenchmarkOptions(frames=0)
    with pytest.raises(ValueError, match="pattern must be one of"):
        BenchmarkOptions(pattern="plaid")
    assert BenchmarkOptions().bitrate_for(1920, 1080) == 8_100_000
    assert BenchmarkOptions(bitrate=123).bitrate_for(1920, 1080) == 123
    assert main(["--frames", "0"]) == 2
    assert "frames must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("pattern", patterns.PATTERNS)
def test_patterns_are_deterministic_frames(pattern: str) -> None:
    a = patterns.make(pattern, 97, 61, 5)
    assert a.shape == (61, 97, 3) and a.dtype == np.uint8 and a.flags.c_contiguous
    assert np.array_equal(a, patterns.make(pattern, 97, 61, 5))
    assert not np.array_equal(a, patterns.make(pattern, 97, 61, 6))  # it moves
    assert a.std() > 10  # not flat


def test_scene_has_edges_and_detail() -> None:
    img = patterns.scene(640, 360).astype(np.int16)
    horizontal_steps = np.abs(np.diff(img, axis=1)).max(axis=2)
    assert (horizontal_steps > 100).mean() > 0.005  # hard edges (shapes, glyphs)
    assert psnr(patterns.scene(640, 360, 0), patterns.scene(640, 360, 1)) > 15  # mostly static between frames
