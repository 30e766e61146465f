"""Tiny real runs of the fan-out and browser-latency benchmarks.

Real display, real libx264, real WebSocket viewers in a real second process, and
(marker ``browser``) the real viewer page in the Debian Chromium. The runs are short
and small, so they check what the benchmarks claim (one encode serves every viewer,
a silent viewer gets nothing beyond its window, latencies respect causality), not
how fast this machine is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rfb.benchmark import fanout
from rfb.benchmark.fanout import FanoutOptions, render_table, run_all
from tests.support.chromium import require_chromium

ROOT = Path(__file__).resolve().parents[1]
SMALL = (128, 96)


def rfb_threads() -> set[threading.Thread]:
    """Live threads of rfb's: server, encode, publisher and clock threads are all named rfb-*."""
    return {t for t in threading.enumerate() if t.name.startswith("rfb-")}


def child_pids() -> set[int]:
    """Every live child process of this one (from /proc, all threads)."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        children = (task / "children").read_text().split()
        pids.update(int(p) for p in children)
    return pids


def test_fanout_two_viewers_share_one_encode_and_a_silent_viewer_costs_nothing() -> None:
    before, threads = child_pids(), rfb_threads()
    rows = run_all(FanoutOptions(viewers=(2,), size=SMALL, seconds=1.0, warmup=0.3))
    assert child_pids() == before  # the viewers' process is gone
    assert rfb_threads() <= threads
    assert [(r["viewers"], r["silent_viewers"]) for r in rows] == [(2, 0), (2, 1)]
    for r in rows:  # each assert shows the whole row when it fails
        assert r["encoder"] == "h264_cpu" and (r["width"], r["height"]) == SMALL, r
        assert r["published_fps"] > 0 and r["delivered_fps_min"] > 0, r
        assert r["delivered_fps_min"] <= r["delivered_fps_median"], r
        # One encode per published frame for both viewers (per-viewer encoding would be ~2).
        assert 0 < r["encodes_per_frame"] < 1.5, r
        assert r["mbit_per_s"] > 0, r
        assert r["server_cpu_pct"] is not None and r["server_cpu_pct"] > 0, r
        assert r["client_cpu_pct"] is not None and 0 <= r["machine_busy_pct"] <= 100, r
        # The server timed the acking viewers' frames itself (publish -> ack).
        assert 0 < r["latency_ms_median"] <= r["latency_ms_p95_worst"], r
    full, silent = rows
    assert full["silent_viewer_frames"] is None
    assert full["viewers_lost"] == 0 and silent["viewers_lost"] == 0
    # The viewer that never acks got its in-flight window before the measurement, then nothing.
    assert silent["silent_viewer_frames"] == 0, silent


def test_fanout_command_line_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rfb.benchmark.fanout",
            "--viewers",
            "1",
            "--size",
            "64x48",
            "--seconds",
            "0.5",
            "--no-silent",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "machine:" in proc.stdout and "enc/frame" in proc.stdout
    doc = json.loads(out.read_text())
    assert (
        doc["command"] == "python -m rfb.benchmark.fanout --viewers 1 --size 64x48 --seconds 0.5 --no-silent "
        f"--json {out}"
    )
    assert doc["machine"]["cpu_model"]
    (row,) = doc["rows"]
    assert row["viewers"] == 1 and row["silent_viewers"] == 0 and row["delivered_fps_min"] > 0


def test_fanout_is_a_benchmark_section(monkeypatch: pytest.MonkeyPatch) -> None:
    from rfb.benchmark import sections
    from rfb.benchmark.sections import BenchmarkOptions, register_section, run_sections

    monkeypatch.setattr(sections, "_registered", {})  # leave the real registry untouched
    monkeypatch.setattr(fanout, "DEFAULT_VIEWERS", (1,))  # one case, to stay quick
    register_section("test_fanout", fanout.run)
    # The image route named first is passed over: the section runs the first H.264 route named.
    options = BenchmarkOptions(sizes=(SMALL,), frames=15, routes=("image", "h264_cpu"))
    (report,) = run_sections(options, ["test_fanout"])
    (row,) = report.rows
    assert row["viewers"] == 1 and row["encoder"] == "h264_cpu" and row["delivered_fps_min"] > 0
    assert row["seconds"] >= 0.5  # a window of frames / fps = 0.5 s (sleep never returns early)
    assert "0.5 s per case" in report.notes[0] and "enc/frame" in report.table


def test_fanout_arguments_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert fanout.main(["--viewers", "0"]) == 2
    assert "viewers must be positive counts, got (0,)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fanout.main(["--size", "720p"])
    assert "expected sizes like 1280x720,1920x1080; got '720p'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fanout.main(["--size", "64x48,96x64"])
    assert "expected one size like 1280x720, got '64x48,96x64'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pattern must be one of"):
        FanoutOptions(pattern="plaid")


def test_device_frames_without_a_gpu_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    from rfb.gpu.context import cupy_available

    reason = cupy_available()
    if reason is None:
        pytest.skip("CuPy works here: the refusal needs a machine without it")
    assert fanout.main(["--device-frames", "--viewers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device-frames needs CuPy and a CUDA GPU: ") and reason in err


@pytest.mark.gpu
@pytest.mark.parametrize("encoder", ["jpeg_gpu", "image"])
def test_device_frames_reach_a_viewer_through_gpu_and_cpu_routes(encoder: str) -> None:
    from rfb.encoders.registry import encoder_status
    from rfb.gpu.context import cupy_available

    reason = cupy_available()
    if reason is not None:
        pytest.skip(f"needs CuPy and a CUDA GPU: {reason}")
    status = {s.name: s for s in encoder_status()}[encoder]
    if not status.available:
        pytest.skip(f"{encoder} cannot run here: {status.reason}")
    options = FanoutOptions(
        viewers=(1,),
        size=SMALL,
        seconds=0.5,
        fps=30.0,
        encoder=encoder,
        warmup=0.2,
        slow_variant=False,
        device_frames=True,
    )
    (row,) = run_all(options)
    assert row["encoder"] == encoder  # named explicitly: no fallback in between
    assert row["delivered_fps_min"] > 0 and row["latency_ms_median"] is not None


def test_a_viewer_process_that_dies_is_reported_not_waited_for() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], stdout=subprocess.PIPE, text=True)
    try:
        with pytest.raises(RuntimeError, match="expected the counts from the viewer process, but it exited with 0"):
            fanout.read_json_line(proc, 10, "the counts")
    finally:
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_cpu_and_machine_readings() -> None:
    own = fanout.cpu_seconds()
    assert own is not None and own > 0
    assert fanout.cpu_seconds(pid=2**22 + 7) is None  # no such process
    first = fanout.machine_jiffies()
    assert first is not None and 0 <= first[0] <= first[1]
    assert fanout.busy_pct(first, first) is None  # no time passed: no figure rather than 0/0
    assert fanout.busy_pct((10, 100), (30, 200)) == 20.0


def test_tables_show_missing_values_as_a_dash() -> None:
    table = render_table(
        [{"name": "a", "value": None}, {"name": "bb", "value": 2.5}], [("name", "name", ""), ("value", "value", ".1f")]
    )
    assert table.splitlines() == ["name value", "----------", "a        -", "bb     2.5"]


# ---------------------------------------------------------------- the browser


@pytest.mark.browser
def test_browser_latency_smoke_run_on_both_transports() -> None:
    from rfb.benchmark.browser_latency import LatencyOptions
    from rfb.benchmark.browser_latency import run_all as run_latency

    require_chromium()

    # The page plus one protocol viewer in a child process, on each transport.
    before, threads = child_pids(), rfb_threads()
    rows = run_latency(LatencyOptions(size=SMALL, seconds=1.0, warmup=0.3, pings=10, viewers=(2,)))
    assert child_pids() == before  # browser, Playwright's driver and the viewers' process are gone
    assert rfb_threads() <= threads
    assert [(r["transport"], r["encoder"], r["viewers"]) for r in rows] == [
        ("webcodecs", "h264_cpu", 2),
        ("image", "image", 2),
    ]
    assert rows[0]["codec"].startswith("avc1.") and rows[1]["codec"] is None
    for r in rows:  # each assert shows the whole row when it fails
        assert r["frames_drawn"] > 0 and r["drawn_fps"] > 0, r
        assert r["clock_error_ms"] >= 0, r
        # The server's own figures for the page: publish -> drawn ack, on its clock.
        assert r["server_frames"] > 0, r
        assert 0 < r["latency_ms_median"] <= r["latency_ms_p95"] <= r["latency_ms_p99"] <= r["latency_ms_max"], r
        # The probe's, through the clock mapping: no frame arrives before it was published,
        # and every frame is acked after it arrived.
        assert r["to_arrival_ms_min"] > -r["clock_error_ms"], r
        assert 0 < r["to_arrival_ms_median"] <= r["probe_latency_ms_median"], r
        assert r["arrival_to_ack_ms_median"] > 0, r
        # The other viewer was served alongside, and the server timed it too.
        assert r["others_fps_min"] > 0 and r["others_latency_ms_median"] > 0, r
