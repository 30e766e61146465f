"""enable_cuda_context_sharing, gpu_available and the lazy imports of rfb.gpu.

Where there is no driver, the real no-driver path runs, and the warnings are checked
around a stand-in for nvencffi's set_context_flags; the real driver is exercised
where there is one, in fresh subprocesses, since the primary context's flags can only
be set before anything in the process uses CUDA.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from rfb.gpu import context
from rfb.gpu.context import (
    CudaContextWarning,
    GpuUnavailable,
    describe_context_flags,
    enable_cuda_context_sharing,
    gpu_available,
)

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> Any:
    """Run ``code`` in a fresh interpreter at the project root; returns the JSON it prints last."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_rfb_gpu_loads_no_framework_and_no_driver() -> None:
    loaded = run_python(
        """
        import json, sys
        import rfb, rfb.gpu
        rfb.enable_cuda_context_sharing  # the lazy attribute of the public API
        roots = {"cupy", "cupy_backends", "torch", "jax", "jaxlib", "cuda", "numba"}
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in roots)))
        """
    )
    assert loaded == []


# -- without a driver ------------------------------------------------------------------


def test_without_a_driver_it_warns_and_returns_false() -> None:
    if gpu_available() is None:
        pytest.skip("a CUDA driver and device are present here")
    with pytest.warns(CudaContextWarning, match=r"enable_cuda_context_sharing\(\) did nothing: .*(driver|cuInit)"):
        assert enable_cuda_context_sharing() is False
    with pytest.raises(GpuUnavailable):
        context.load_driver()


def test_gpu_available_is_cached_until_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def probe() -> str | None:
        calls.append(1)
        return f"reason {len(calls)}"

    monkeypatch.setattr(context, "_probe_gpu", probe)
    monkeypatch.setattr(context, "_probes", {})
    assert gpu_available() == "reason 1"
    assert gpu_available() == "reason 1"
    assert gpu_available(refresh=True) == "reason 2"
    assert len(calls) == 2


def test_gpu_available_answers_without_raising() -> None:
    reason = gpu_available(refresh=True)
    assert reason is None or (isinstance(reason, str) and reason)


# -- the warnings, around the NVENC binding's set_context_flags ------------------------------


def test_too_late_warns_with_the_flags_the_context_has(monkeypatch: pytest.MonkeyPatch) -> None:
    import nvencffi.cuda

    asked: list[tuple[int, bool]] = []

    def set_context_flags(device: int = 0, *, blocking_sync: bool = True) -> bool:
        asked.append((device, blocking_sync))
        return False  # the context is already active with other flags

    monkeypatch.setattr(nvencffi.cuda, "set_context_flags", set_context_flags)
    monkeypatch.setattr(context, "primary_context_state", lambda device_id=0: (0x01 | 0x10, True))
    with pytest.warns(
        CudaContextWarning,
        match=r"too late, the primary context of CUDA device 1 is already active with flags "
        r"CU_CTX_SCHED_SPIN \| CU_CTX_LMEM_RESIZE_TO_MAX; CU_CTX_SCHED_BLOCKING_SYNC was not set",
    ):
        assert enable_cuda_context_sharing(1) is False
    assert asked == [(1, True)]


def test_success_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    import nvencffi.cuda

    monkeypatch.setattr(nvencffi.cuda, "set_context_flags", lambda device=0, *, blocking_sync=True: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert enable_cuda_context_sharing() is True


def test_driver_errors_become_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    import nvencffi.cuda
    from nvencffi.errors import CudaUnavailable

    def no_such_device(device: int = 0, *, blocking_sync: bool = True) -> bool:
        raise CudaUnavailable(f"CUDA device {device} requested; this machine has 1 CUDA device(s)")

    monkeypatch.setattr(nvencffi.cuda, "set_context_flags", no_such_device)
    with pytest.warns(CudaContextWarning, match=r"did nothing: CUDA device 5 requested"):
        assert enable_cuda_context_sharing(5) is False


def test_describe_context_flags() -> None:
    assert describe_context_flags(0) == "CU_CTX_SCHED_AUTO"
    assert describe_context_flags(0x04 | 0x10) == "CU_CTX_SCHED_BLOCKING_SYNC | CU_CTX_LMEM_RESIZE_TO_MAX"
    assert describe_context_flags(0x01 | 0x400) == "CU_CTX_SCHED_SPIN | 0x400"


# -- the real driver ------------------------------------------------------------------------

_PRIMARY_STATE = """
    from cuda.bindings import driver
    def primary_state():
        err, dev = driver.cuDeviceGet(0)
        err, flags, active = driver.cuDevicePrimaryCtxGetState(dev)
        err, primary = driver.cuDevicePrimaryCtxRetain(dev)
        err, current = driver.cuCtxGetCurrent()
        err, current_flags = driver.cuCtxGetFlags()
        driver.cuDevicePrimaryCtxRelease(dev)
        return {"flags": int(flags), "active": int(active), "current_is_primary": int(primary) == int(current),
                "current_flags": int(current_flags)}
"""


@pytest.mark.gpu
def test_before_cupy_it_takes_effect_and_cupy_shares_the_context() -> None:
    from tests.gpu import require_cupy

    require_cupy()
    result = run_python(
        _PRIMARY_STATE
        + """
    import json, sys, warnings
    import rfb
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = rfb.enable_cuda_context_sharing(0)
    assert "cupy" not in sys.modules
    import cupy
    cupy.arange(10).sum().item()  # CuPy creates (activates) the primary context here
    print(json.dumps({"ok": ok, **primary_state()}))
    """
    )
    assert result["ok"] is True
    assert result["active"] == 1
    assert result["flags"] & 0x07 == 0x04, describe_context_flags(result["flags"])
    assert result["current_is_primary"] is True  # CuPy runs in the primary context...
    assert result["current_flags"] & 0x07 == 0x04  # ...which has our flags


@pytest.mark.gpu
def test_after_cupy_it_is_too_late_and_says_so() -> None:
    from tests.gpu import require_cupy

    require_cupy()
    result = run_python(
        """
    import json, warnings
    import cupy
    cupy.arange(10).sum().item()
    import rfb
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok = rfb.enable_cuda_context_sharing(0)
    print(json.dumps({"ok": ok, "warnings": [str(w.message) for w in caught]}))
    """
    )
    assert result["ok"] is False
    assert len(result["warnings"]) == 1 and "too late" in result["warnings"][0]
    assert "already active with flags CU_CTX_SCHED_" in result["warnings"][0]
