"""The harness and the emulator's FFmpeg support, in the default run (no GPU needed).

FFmpeg's h264_nvenc is built against NVENC API 13.0 and needs a CUDA driver before it
loads libnvidia-encode. Here the test suite's stand-in libcuda
(tests/support/standin_libcuda.c) lets it start, and the emulator serves it: the
harness runs on host memory, nvencffi and FFmpeg taking turns on identical frames, and
everything FFmpeg asks at open is answered (no emulator error).
The GPU version of the same run is tests/latency/test_latency.py (marker latency).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.latency import engine as engines
from tests.latency import report
from tests.latency.runner import check_latency, run_harness
from tests.nvenc_emulator import EmulatorBuildError, HeaderUnavailable, require_emulator


@pytest.fixture(scope="module")
def host_engine() -> engines.Engine:
    require_emulator()  # skips (fails in CI) without the official header or a compiler
    try:
        return engines.emulated(fake_cuda=True)
    except (HeaderUnavailable, EmulatorBuildError) as exc:
        pytest.fail(f"the emulator builds but the stand-in libcuda does not: {exc}")
        raise


def test_ffmpeg_nvenc_and_nvencffi_share_the_emulator_on_identical_frames(
    host_engine: engines.Engine, tmp_path: Path
) -> None:
    result = run_harness(
        host_engine,
        tmp_path,
        "latency",
        "--size",
        "320x240",
        "--frames",
        "6",
        timeout=180,
    )
    check_latency(host_engine, result, 6)
    assert set(result["routes"]) == {
        "nvenc_gpu_cffi (host memory)",
        "nvenc_gpu_pyav (host memory as CUDA frames)",
    }
    assert result["ledger"]["sessions_opened"] == 2
    assert result["ledger"]["encodes"] == 2 * (6 + 5)  # both routes, warm-up included
    assert result["ratio_median"] > 0


def test_overhead_mode_on_host_memory(host_engine: engines.Engine, tmp_path: Path) -> None:
    result = run_harness(
        host_engine,
        tmp_path,
        "overhead",
        "--size",
        "320x240",
        "--frames",
        "200",
        timeout=180,
    )
    assert result["memory"] == "host" and result["engines"] == {
        "nvencffi": "override",
        "ffmpeg": "override",
    }
    assert len(result["routes"]) == 3
    for name, route in result["routes"].items():
        assert route["calls"] == 200 and route["empty_outputs"] == 0, name
        assert 0 < route["median_us"] <= route["p95_us"] <= route["p99_us"], name
    ledger = result["ledger"]
    assert ledger["sessions"] == 0 and ledger["leaked"] == 0 and ledger["errors"] == 0, ledger


def _record(kind: str, mode: str = "latency") -> dict[str, Any]:
    if mode == "latency":
        route = {
            "latency": {"median_ms": 2.0, "p95_ms": 3.0, "p99_ms": 4.0},
            "kb_per_frame": 3110.4,
            "exact": True,
        }
        result = {
            "mode": "latency",
            "size": "1920x1080",
            "ratio_median": 0.5,
            "routes": {
                "nvenc_gpu_cffi": route,
                "nvenc_gpu_pyav": {**route, "exact": False},
            },
        }
    else:
        result = {
            "mode": "overhead",
            "size": "1920x1080",
            "goal_us": 10.0,
            "routes": {
                "NvencEncoder.encode (fixed interface)": {
                    "median_us": 5.4,
                    "p95_us": 6.0,
                    "p99_us": 9.0,
                }
            },
        }
    return {
        "test": "t",
        "engine": {"kind": kind, "memory": "cuda", "detail": "D"},
        "result": result,
    }


def test_summary_says_when_the_engine_was_emulated(tmp_path: Path) -> None:
    lines = report.summary([_record("emulated"), _record("emulated", "overhead")], tmp_path / "x.json")
    assert lines[0].startswith("ENCODE ENGINE EMULATED") and "(D)" in lines[0]
    text = "\n".join(lines)
    assert "nvenc_gpu_pyav" in text and "0.500" in text and " no " in text  # ratio on the second route's line
    assert "5.400" in text and "us" in text
    assert f"JSON: {tmp_path / 'x.json'}" == lines[-1]
    real = report.summary([_record("nvenc")], None)
    assert real[0] == "encode engine: real NVENC (D)" and not any("EMULATED" in line for line in real)


def test_json_holds_the_machine_and_the_banner(tmp_path: Path) -> None:
    import json

    path = report.write_json([_record("emulated")], tmp_path / "sub" / "latency.json", {"gpu": {"name": "G"}})
    doc = json.loads(path.read_text())
    assert doc["machine"]["gpu"]["name"] == "G"
    assert doc["banner"][0].startswith("ENCODE ENGINE EMULATED")
    assert doc["results"][0]["result"]["ratio_median"] == 0.5


_EXTRAS = r"""
import fractions, json, os, sys
import av, numpy as np
from tests.nvenc_emulator import Emulator
emu = Emulator(os.environ["NVENCFFI_LIBRARY"]); emu.reset()
c = av.CodecContext.create("h264_nvenc", "w")
c.width, c.height, c.pix_fmt, c.time_base = 320, 240, "nv12", fractions.Fraction(1, 60)
c.flags |= av.codec.context.Flags.global_header  # extradata: nvEncGetSequenceParams
c.options = {"preset": "p1", "tune": "ull", "zerolatency": "1", "delay": "0", "rc": "cbr", "bf": "0"}
c.open()
extradata = bytes(c.extradata or b"")
picture = av.VideoFrame.from_ndarray(np.zeros((360, 320), np.uint8), format="nv12")
sizes = []
for i, rate in enumerate((2_000_000, 1_000_000)):
    c.bit_rate = rate  # a change FFmpeg passes on with nvEncReconfigureEncoder
    picture.pts = i
    sizes += [p.size for p in c.encode(picture)]
result = {"extradata": extradata.hex(), "sizes": sizes, "ledger": emu.ledger(), "sessions": emu.sessions()}
json.dump(result, sys.stdout)
"""


def test_ffmpeg_sequence_headers_and_reconfigure_on_the_emulator(
    host_engine: engines.Engine,
) -> None:
    """The API 13.0 versions of NV_ENC_SEQUENCE_PARAM_PAYLOAD and NV_ENC_RECONFIGURE_PARAMS, as FFmpeg sends them."""
    import json
    import os
    import subprocess
    import sys

    from tests.support.nvenc_header import ROOT

    proc = subprocess.run(
        [sys.executable, "-c", _EXTRAS],
        check=False,
        cwd=ROOT,
        env={**os.environ, **host_engine.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["extradata"].startswith("0000000167")  # Annex B SPS from nvEncGetSequenceParams
    assert len(out["sizes"]) == 2
    assert out["ledger"]["reconfigures"] == 1 and out["ledger"]["errors"] == 0, out["ledger"]
    (session,) = out["sessions"]
    assert (session["api_major"], session["average_bitrate"]) == (13, 1_000_000)
