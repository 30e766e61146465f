"""Without a CUDA driver: every entry point says so in plain words, nothing half-opens.

(On a machine with a CUDA driver these tests skip: tests/nvencffi/test_real_driver.py
covers that side.)
"""

from __future__ import annotations

import ctypes
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
    with pytest.raises(nvencffi.CudaUnavailable, match="no CUDA driver"):
        nvencffi.set_context_flags(0, schedule="spin")


def test_set_context_flags_names_the_schedules_it_takes() -> None:
    with pytest.raises(
        ValueError, match=r"schedule must be one of \['auto', 'spin', 'yield', 'blocking'\], got 'busy'"
    ):
        nvencffi.set_context_flags(0, schedule="busy")


def test_set_context_flags_takes_blocking_sync_or_schedule_not_both() -> None:
    with pytest.raises(
        ValueError,
        match=r"expected blocking_sync or schedule, not both; got blocking_sync=True and schedule='spin'",
    ):
        nvencffi.set_context_flags(0, blocking_sync=True, schedule="spin")
    with pytest.raises(ValueError, match=r"got blocking_sync=False and schedule='blocking'"):
        nvencffi.set_context_flags(0, blocking_sync=False, schedule="blocking")


def test_an_encoder_without_a_context_needs_cuda(emulator) -> None:
    with pytest.raises(nvencffi.CudaUnavailable):
        nvencffi.NvencEncoder(1280, 720)
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
    assert ctx.pointer_info(0x1000) is None and ctx.buffer_id(0x1000) is None  # it cannot tell
    ctx.close()
    assert ctx.handle == 0 and ctx.gpu_name is None and ctx.device == 0


def test_null_context_answers_from_its_attribute_source_and_does_host_memory_work() -> None:
    seen = []

    def source(pointer: int):
        seen.append(pointer)
        return {"kind": "device", "device": 1, "context": 0, "mempool": True, "buffer_id": 9, "start": 16, "size": 64}

    ctx = nvencffi.NullContext(device=1, attributes=source)
    assert ctx.pointer_info(32) == nvencffi.PointerInfo("device", 1, 0, True, 9, 16, 64)
    assert ctx.buffer_id(32) == 9 and seen == [32, 32]
    src, dst = ctx.allocate(10 * 3), ctx.allocate(256 * 3)
    assert dst % 256 == 0 and ctx.allocations == 2
    ctx.memset(src, 7, 30)
    ctx.memset(dst, 0, 256 * 3)
    ctx.copy_2d(dst, 256, src, 10, 10, 3, None)
    rows = [ctypes.string_at(dst + 256 * r, 12) for r in range(3)]
    assert rows == [b"\x07" * 10 + b"\x00\x00"] * 3
    ctx.free(src)
    ctx.free(dst)
    assert ctx.allocations == 0
    with pytest.raises(nvencffi.CudaError, match="cuMemFree failed: CUDA_ERROR_INVALID_VALUE"):
        ctx.free(dst)
