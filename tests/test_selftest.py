"""``rfb doctor --selftest`` (rfb.selftest): what it reports, and that its verdicts are real.

Everywhere: the command on a machine without a GPU (exit 0, every GPU route listed with
its reason, the JSON a bug report carries), and the self-test's own loop driving the
``nvenc_gpu_cffi`` route against the NVENC emulator through host memory presented as
CUDA memory: real H.264 out, decoded back by FFmpeg, PSNR and latency measured, and
the driver's own status text when the emulator is told to fail.

On a GPU (``-m gpu``): the command itself, on the real driver and on the emulator fed
memory from every allocator installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nvencffi
from rfb import selftest
from rfb.encoders.nvenc_gpu_cffi import NvencGpuEncoder
from rfb.gpu import allocators, gpu_available
from rfb.gpu.status import GPU_ROUTES
from tests.support.frames import HostCudaArray
from tests.support.nvenc_fixtures import assert_released, c_compiler, emulator, emulator_path, official_header_dir

__all__ = ["c_compiler", "emulator", "emulator_path", "official_header_dir"]  # fixtures used below

ROOT = Path(__file__).resolve().parents[1]
SIZES = ((160, 96), (320, 240))
FRAMES = 4


def run_rfb(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rfb", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def host_upload(host: np.ndarray, device_id: int, padded: bool) -> HostCudaArray:
    """An allocator of host memory presented as CUDA memory (only the emulator may read it)."""
    storage = np.zeros(allocators.padded_view_shape(host.shape, padded), np.uint8)
    view = storage[:, : host.shape[1]]
    view[...] = host
    return HostCudaArray(view)


HOST = allocators.Allocator("host-as-cuda", host_upload)


def emulated_route() -> selftest.RouteUnderTest:
    from rfb.benchmark.engines import engine_of

    return selftest.RouteUnderTest(
        "nvenc_gpu_cffi",
        "webcodecs",
        lambda config: NvencGpuEncoder(config, context=nvencffi.NullContext()),
        None,
        engine_of("nvenc_gpu_cffi"),
        "nv12",
    )


def run_emulated(**options: Any) -> selftest.SelftestReport:
    return selftest.run_selftest(
        sizes=SIZES,
        frames=FRAMES,
        routes=[emulated_route()],
        allocators=[HOST],
        pixel_formats=("nv12", "rgba8"),
        **options,
    )


# ---------------------------------------------------------------- without a GPU


def test_a_machine_without_a_gpu_lists_every_route_with_its_reason_and_exits_0(tmp_path: Path) -> None:
    if gpu_available() is None:
        pytest.skip("a GPU is usable here: the routes would run (see the gpu tests)")
    env = {k: v for k, v in os.environ.items() if k != "NVENCFFI_LIBRARY"}
    out = tmp_path / "selftest.json"
    result = run_rfb("doctor", "--selftest", "--json", str(out), "--sizes", "320x240", "--frames", "2", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    for name in GPU_ROUTES:
        assert f"[--] {name}: unavailable: " in text, text
    assert "NVENC cannot encode here: could not load the NVENC library" in text
    assert "PASS: no GPU route can run here, so none was tested" in text
    assert f"wrote {out}" in text

    report = json.loads(out.read_text())
    assert report["rfb_selftest"] == 1 and report["passed"] is True and report["device_id"] == 0
    assert [r["name"] for r in report["routes"]] == list(GPU_ROUTES)
    for route in report["routes"]:
        assert set(route) == {"name", "available", "reason", "engine", "cases", "passed"}
        assert route["available"] is False and route["reason"] and route["cases"] == [] and route["passed"] is True
    machine = report["machine"]
    assert machine["gpu"]["available"] is False and machine["gpu"]["reason"]
    assert machine["nvenc_library"].startswith("libnvidia-encode.so.1")
    assert set(machine["versions"]) >= {"rfb", "numpy", "pyav", "cupy", "cuda_runtime", "torch", "jax"}
    assert [a["name"] for a in report["allocators"]] == ["cupy", "cupy-async", "torch", "jax"]
    assert all(a["available"] is False and a["reason"] for a in report["allocators"])


def test_json_to_stdout_is_one_object() -> None:
    if gpu_available() is None:
        pytest.skip("a GPU is usable here: the routes would run (see the gpu tests)")
    result = run_rfb("doctor", "--selftest", "--json", "--sizes", "160x96", "--frames", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passed"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--sizes", "321x240"), "expected even width and height"),
        (("--frames", "0"), "--frames must be at least 1, got 0"),
    ],
)
def test_bad_options_are_refused_with_what_was_expected(args: tuple[str, ...], message: str) -> None:
    result = run_rfb("doctor", "--selftest", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_plain_doctor_writes_its_json_to_a_file_when_given_one(tmp_path: Path) -> None:
    out = tmp_path / "doctor.json"
    result = run_rfb("doctor", "--json", str(out))
    assert result.returncode == 0 and result.stdout == "", result.stderr
    names = [e["name"] for e in json.loads(out.read_text())["encoders"]]
    assert set(GPU_ROUTES) <= set(names)


# ---------------------------------------------------------------- the loop, against the emulator


def test_the_selftest_encodes_and_decodes_through_the_route(emulator) -> None:
    lines: list[str] = []
    report = run_emulated(say=lines.append)
    (route,) = report.routes
    assert route.engine == "override"  # the report says what encoded: never taken for NVENC silicon
    labels = [c.label for c in route.cases]
    assert labels == [
        "host-as-cuda 160x96 nv12 tight",
        "host-as-cuda 160x96 nv12 padded",
        "host-as-cuda 320x240 nv12 tight",
        "host-as-cuda 320x240 nv12 padded",
        "host-as-cuda 320x240 rgba8 tight",
    ]
    for case in route.cases:
        assert case.passed and case.error is None, case
        assert case.frames == FRAMES
        assert case.psnr_min_db is not None and case.psnr_min_db >= 25.0
        assert case.encode_ms_median is not None and case.encode_ms_p95 >= case.encode_ms_median
        assert case.kb_per_frame and case.kb_per_frame > 0
        row = case.width * (4 if case.pixel_format == "rgba8" else 1)
        if case.padded:
            assert case.pitch > row and case.pitch % allocators.PADDED_PITCH_ALIGNMENT == 0
        else:
            assert case.pitch == row
    assert report.passed and report.exit_code == 0
    assert len(lines) == len(route.cases) and all(line.endswith(": pass") for line in lines)
    ledger = emulator.ledger()
    assert (ledger["encodes"], ledger["idr_frames"]) == (FRAMES * len(route.cases), len(route.cases))
    assert_released(emulator)
    text = selftest.format_report(report)
    assert "[ok] nvenc_gpu_cffi (override): 5 of 5 cases passed" in text
    assert "PASS: nvenc_gpu_cffi passed" in text


def test_a_driver_failure_fails_the_run_with_the_drivers_own_words(emulator) -> None:
    emulator.inject_fault("nvEncEncodePicture", "NV_ENC_ERR_ENCODER_BUSY", after=2)  # the first case's third frame
    report = run_emulated()
    first, *others = report.routes[0].cases
    assert not first.passed and first.frames == 2  # two encoded, the third refused
    assert "nvEncEncodePicture" in first.error and "NV_ENC_ERR_ENCODER_BUSY" in first.error
    assert all(case.passed for case in others)
    assert not report.passed and report.exit_code == 1
    text = selftest.format_report(report)
    assert "[FAIL] nvenc_gpu_cffi (override): 4 of 5 cases passed" in text
    assert "NV_ENC_ERR_ENCODER_BUSY" in text and text.endswith("FAIL: nvenc_gpu_cffi failed")
    assert json.loads(json.dumps(report.as_dict()))["routes"][0]["passed"] is False
    assert_released(emulator)


def test_a_route_that_encodes_other_pictures_fails(emulator) -> None:
    emulator.set_no_pixel_work(True)  # valid H.264 of a flat grey picture, whatever the frame
    report = run_emulated()
    assert not report.passed
    for case in report.routes[0].cases:
        assert not case.passed and "decoded to another picture" in case.error
        assert case.psnr_db is not None and case.psnr_db < 25.0


def test_an_available_route_with_no_usable_allocator_is_a_failure_and_says_so(emulator) -> None:
    report = selftest.run_selftest(
        sizes=SIZES,
        frames=1,
        routes=[emulated_route()],
        allocators=[allocators.Allocator("cupy", None, reason="CuPy is not installed")],
    )
    assert not report.passed and report.routes[0].cases == []
    assert "no case ran: no allocator could make CUDA frames here" in selftest.format_report(report)
    assert report.allocators == [{"name": "cupy", "available": False, "reason": "CuPy is not installed"}]


def test_unavailable_routes_are_listed_and_are_no_failure() -> None:
    route = selftest.RouteUnderTest(
        "nvenc_gpu_cffi",
        "webcodecs",
        None,
        "NVENC cannot encode here: ... NV_ENC_ERR_UNSUPPORTED_DEVICE",
        "nvenc",
        "nv12",
    )
    report = selftest.run_selftest(sizes=SIZES, frames=1, routes=[route], allocators=[HOST])
    assert report.passed and report.exit_code == 0 and report.routes[0].cases == []
    assert "[--] nvenc_gpu_cffi: unavailable: NVENC cannot encode here: ... NV_ENC_ERR_UNSUPPORTED_DEVICE" in (
        selftest.format_report(report)
    )


# ---------------------------------------------------------------- the plan


def test_the_default_plan() -> None:
    def allocator(name: str, padded: bool = True) -> allocators.Allocator:
        return allocators.Allocator(name, host_upload, padded=padded)

    made = [allocator("cupy"), allocator("cupy-async"), allocator("torch"), allocator("jax", padded=False)]
    route = selftest.RouteUnderTest("r", "webcodecs", None, None, "x", "nv12")
    cases = selftest.plan_cases(route, made, selftest.DEFAULT_SIZES)
    main = [c for c in cases if c.allocator.name == "cupy" and c.pixel_format == "nv12"]
    assert [(c.size, c.padded) for c in main] == [(s, p) for s in selftest.DEFAULT_SIZES for p in (False, True)]
    others = [(c.allocator.name, c.size, c.padded) for c in cases if c.allocator.name != "cupy"]
    assert others == [
        ("cupy-async", (1280, 720), False),
        ("cupy-async", (1280, 720), True),
        ("torch", (1280, 720), False),
        ("torch", (1280, 720), True),
        ("jax", (1280, 720), False),
    ]
    formats = [(c.pixel_format, c.size, c.padded) for c in cases if c.pixel_format != "nv12"]
    assert formats == [("rgba8", (1280, 720), False), ("rgb24", (1280, 720), False)]
    image = selftest.RouteUnderTest("j", "image", None, None, "x", "rgb24")
    assert {c.pixel_format for c in selftest.plan_cases(image, made[:1], selftest.DEFAULT_SIZES)[:10]} == {"rgb24"}


@pytest.mark.parametrize(
    "shape", [(48, 64), (720, 1280), (240, 320, 3), (480, 852, 3), (768, 1366, 4), (1080, 1920, 4)]
)
def test_a_padded_pitch_is_aligned_and_wider_than_the_row(shape: tuple[int, ...]) -> None:
    wide = allocators.padded_view_shape(shape, True)
    channels = shape[2] if len(shape) == 3 else 1
    pitch = wide[1] * channels
    assert pitch > shape[1] * channels and pitch % allocators.PADDED_PITCH_ALIGNMENT == 0
    assert (wide[0], *wide[2:]) == (shape[0], *shape[2:])
    assert allocators.padded_view_shape(shape, False) == shape


# ---------------------------------------------------------------- on a GPU


@pytest.mark.gpu
def test_the_command_on_this_gpu(tmp_path: Path) -> None:
    from tests.gpu import require_cupy

    require_cupy()
    out = tmp_path / "selftest.json"
    result = run_rfb(
        "doctor", "--selftest", "--json", str(out), "--sizes", "320x240,1280x720", "--frames", "5", timeout=600
    )
    report = json.loads(out.read_text())
    assert result.returncode == (0 if report["passed"] else 1), result.stdout
    routes = {r["name"]: r for r in report["routes"]}
    assert report["machine"]["gpu"]["available"] is True
    nv12 = routes["h264_gpu_nv12"]
    assert nv12["available"] and nv12["passed"], result.stdout
    tried = {c["allocator"] for c in nv12["cases"]}
    assert tried == {a["name"] for a in report["allocators"] if a["available"]}
    for route in routes.values():
        assert route["available"] or route["reason"], route
        assert not route["available"] or route["passed"], (route["name"], result.stdout)


@pytest.mark.gpu
def test_the_command_on_this_gpu_with_the_emulator_for_nvenc(emulator_path: Path, tmp_path: Path) -> None:
    from tests.gpu import require_cupy

    require_cupy()
    out = tmp_path / "selftest.json"
    env = {**os.environ, "NVENCFFI_LIBRARY": str(emulator_path)}
    result = run_rfb(
        "doctor", "--selftest", "--json", str(out), "--sizes", "320x240,1280x720", "--frames", "5", env=env, timeout=600
    )
    report = json.loads(out.read_text())
    cffi = {r["name"]: r for r in report["routes"]}["nvenc_gpu_cffi"]
    assert cffi["available"] and cffi["engine"] == "override", result.stdout
    assert cffi["passed"], result.stdout  # device memory from every allocator, through the emulator
    assert report["machine"]["nvenc_library"] == (
        f"{emulator_path.resolve()} (chosen by NVENCFFI_LIBRARY: not the system's libnvidia-encode.so.1)"
    )
