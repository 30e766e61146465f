"""The suite keeps itself honest: GPU routes that must work report available, and no deadlines.

GPU tests skip with a reason where a route cannot run, which is right on a machine
without the hardware and wrong on one that has it: a broken binding would turn every
GPU test into a skip and the run would look green. These guards fail instead. Where
CuPy works (a CUDA GPU, the driver, CuPy), ``jpeg_gpu`` and ``h264_gpu_nv12`` need
nothing more, so they must be available; the NVENC routes must be available exactly
where ``nvencffi.probe()`` finds an engine (an H100 or H200 has none: there all of
them are unavailable, saying so). And Hypothesis runs without wall-clock deadlines,
derandomized in CI (tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rfb.encoders.registry import EncoderStatus, encoder_status
from tests.gpu import require_cupy

ROOT = Path(__file__).resolve().parents[1]
NVENC_ROUTES = ("nvenc_gpu_cffi", "nvenc_gpu_pyav", "nvenc_cpu")


@pytest.fixture
def real_driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, EncoderStatus]]:
    """Every route's status, probed afresh against the NVIDIA driver's own libnvidia-encode (needs CuPy)."""
    import nvencffi

    require_cupy()

    monkeypatch.delenv("NVENCFFI_LIBRARY", raising=False)
    nvencffi.reset_library()
    try:
        yield {s.name: s for s in encoder_status(refresh=True)}
    finally:
        nvencffi.reset_library()


@pytest.mark.gpu
def test_where_cupy_works_the_gpu_routes_without_nvenc_are_available(real_driver: dict[str, EncoderStatus]) -> None:
    for name in ("jpeg_gpu", "h264_gpu_nv12"):
        status = real_driver[name]
        assert status.available, f"{name} must run on any CUDA GPU with CuPy; its probe says: {status.reason}"


@pytest.mark.gpu
def test_nvenc_routes_are_available_exactly_where_nvencffi_finds_an_engine(
    real_driver: dict[str, EncoderStatus],
) -> None:
    import nvencffi

    engine = nvencffi.probe()
    for name in NVENC_ROUTES:
        status = real_driver[name]
        assert status.available == engine.available, (
            f"nvencffi.probe() says available={engine.available} ({engine.reason}), "
            f"but {name} says available={status.available} ({status.reason})"
        )
        if not engine.available:
            assert "nvenc" in (status.reason or "").lower(), f"{name} should name NVENC in its reason: {status.reason}"


def hypothesis_settings(env: dict[str, str]) -> str:
    code = (
        "import tests.conftest; from hypothesis import settings; d = settings.default; print(d.deadline, d.derandomize)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_hypothesis_has_no_deadline_and_is_derandomized_in_ci() -> None:
    pytest.importorskip("hypothesis")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    assert hypothesis_settings(env) == "None False"
    assert hypothesis_settings({**env, "CI": "true"}) == "None True"
