"""Without a CUDA driver: every entry point says so in plain words, nothing half-opens.

(On a machine with a CUDA driver these tests skip: tests/nvencffi/test_real_driver.py
covers that side.)
"""

from __future__ import annotations

import ctypes.util

import pytest

import nvencffi
from nvencffi import cuda


def _has_cuda_driver() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(_has_cuda_driver(), reason="this machine has a CUDA driver (see test_real_driver.py)")


def test_primary_context_without_a_driver() -> None:
    with pytest.raises(nvencffi.CudaUnavailable, match="no CUDA driver") as info:
        cuda.PrimaryContext(0)
    assert isinstance(info.value, nvencffi.NvencUnavailable)


def test_set_context_flags_without_a_driver() -> None:
    with pytest.raises(nvencffi.CudaUnavailable, match="no CUDA driver"):
        nvencffi.set_context_flags(0, blocking_sync=True)


def test_an_encoder_without_a_context_needs_cuda(emulator) -> None:
    with pytest.raises(nvencffi.CudaUnavailable):
        nvencffi.NvencEncoder(64, 48)
    assert emulator.ledger()["sessions_opened"] == 0


def test_probe_without_cuda_reports_it_and_the_api_version(emulator) -> None:
    result = nvencffi.probe()
    assert result.available is False
    assert "no CUDA driver" in result.reason
    assert result.max_api_version == (13, 0)
    assert result.gpu_name is None


def test_null_context_is_inert() -> None:
    ctx = nvencffi.NullContext()
    with ctx.pushed():
        ctx.synchronize_stream(1)
    ctx.close()
    assert ctx.handle == 0 and ctx.gpu_name is None
