"""The one CUDA context everybody shares, and the cheap "is there a GPU here?" answers.

CuPy, PyTorch, JAX, FFmpeg (with ``primary_ctx``) and our NVENC binding all use the
device's *primary* context, so a frame rendered by one is readable by the others with
no copy. The primary context's flags are fixed when it is first activated, by whoever
gets there first, and ``CU_CTX_SCHED_AUTO`` (the default) spins a CPU core while it
waits for the GPU whenever the process has fewer contexts than cores. Asking for
``CU_CTX_SCHED_BLOCKING_SYNC`` before anything touches CUDA makes every waiter sleep
instead; after that it is too late, which is why
:func:`enable_cuda_context_sharing` says so loudly rather than pretending.

Nothing here imports CuPy, PyTorch or JAX; the CUDA driver bindings (cuda-python) are
imported on first call. ``cuInit`` does not create a context, so the probes below do
not fix the flags either.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

# CUctx_flags values (cuda.h; stable ABI). Kept as ints so the logic below does not
# depend on the enum classes of one cuda-python release.
CU_CTX_SCHED_MASK = 0x07
_SCHED_NAMES = {
    0: "CU_CTX_SCHED_AUTO",
    1: "CU_CTX_SCHED_SPIN",
    2: "CU_CTX_SCHED_YIELD",
    4: "CU_CTX_SCHED_BLOCKING_SYNC",
}
_OTHER_FLAG_NAMES = {
    0x08: "CU_CTX_MAP_HOST",
    0x10: "CU_CTX_LMEM_RESIZE_TO_MAX",
    0x20: "CU_CTX_COREDUMP_ENABLE",
    0x40: "CU_CTX_USER_COREDUMP_ENABLE",
    0x80: "CU_CTX_SYNC_MEMOPS",
}


class GpuUnavailable(RuntimeError):
    """A GPU operation cannot run here; the message says why (no CuPy, no driver, no device)."""


class CudaContextWarning(RuntimeWarning):
    """enable_cuda_context_sharing() could not set the flags it was asked for."""


def describe_context_flags(flags: int) -> str:
    """``CU_CTX_*`` names of a context's flags, e.g. ``"CU_CTX_SCHED_AUTO"``."""
    names = [_SCHED_NAMES.get(flags & CU_CTX_SCHED_MASK, f"sched={flags & CU_CTX_SCHED_MASK:#x}")]
    names += [name for bit, name in _OTHER_FLAG_NAMES.items() if flags & bit]
    unknown = flags & ~(CU_CTX_SCHED_MASK | sum(_OTHER_FLAG_NAMES))
    if unknown:
        names.append(f"{unknown:#x}")
    return " | ".join(names)


def load_driver() -> Any:
    """The ``cuda.bindings.driver`` module, initialised (``cuInit``); GpuUnavailable if impossible."""
    try:
        from cuda.bindings import driver
    except ImportError as exc:
        raise GpuUnavailable(f"the CUDA driver bindings are missing (pip install cuda-python): {exc}") from exc
    try:
        (err,) = driver.cuInit(0)
    except (RuntimeError, OSError) as exc:  # cuda.pathfinder raises when libcuda.so is not installed
        raise GpuUnavailable(f"no NVIDIA driver (libcuda) could be loaded: {exc}") from exc
    _check(driver, err, "cuInit(0)")
    return driver


def enable_cuda_context_sharing(device_id: int = 0) -> bool:
    """Ask for ``CU_CTX_SCHED_BLOCKING_SYNC`` on ``device_id``'s primary context, before anyone activates it.

    Call it first thing, before CuPy, PyTorch or JAX touch the GPU. Returns True when
    the primary context has (or will have, when first activated) these flags. Returns
    False with a :class:`CudaContextWarning` when the context is already active with
    other flags (it says which), or when there is no usable CUDA driver or device;
    it never raises for those.

    The flags are set by the NVENC binding's :func:`nvencffi.cuda.set_context_flags`,
    so that rfb and nvencffi agree on one way of doing it.
    """
    from nvencffi.cuda import set_context_flags
    from nvencffi.errors import CudaUnavailable

    try:
        if set_context_flags(device_id, blocking_sync=True):
            return True
        flags, _active = primary_context_state(device_id)
    except (CudaUnavailable, GpuUnavailable) as exc:
        warnings.warn(f"enable_cuda_context_sharing() did nothing: {exc}", CudaContextWarning, stacklevel=2)
        return False
    warnings.warn(
        f"enable_cuda_context_sharing(): too late, the primary context of CUDA device {device_id} is "
        f"already active with flags {describe_context_flags(flags)}; CU_CTX_SCHED_BLOCKING_SYNC was not set. "
        "Call it before CuPy, PyTorch or JAX first use the GPU (waits on the GPU will spin a CPU core).",
        CudaContextWarning,
        stacklevel=2,
    )
    return False


def primary_context_state(device_id: int = 0) -> tuple[int, bool]:
    """(flags, active) of ``device_id``'s primary context; GpuUnavailable without a driver or device."""
    driver = load_driver()
    err, dev = driver.cuDeviceGet(device_id)
    _check(driver, err, f"cuDeviceGet({device_id})")
    err, flags, active = driver.cuDevicePrimaryCtxGetState(dev)
    _check(driver, err, "cuDevicePrimaryCtxGetState")
    return int(flags), bool(active)


_probe_lock = threading.Lock()
_probes: dict[str, str | None] = {}


def gpu_available(*, refresh: bool = False) -> str | None:
    """None when a CUDA driver and at least one device are usable here, else the reason.

    Cheap (``cuInit`` and a device count; no context is created) and cached for the
    process until ``refresh=True``. Used by encoder probes and ``rfb doctor``.
    """
    return _cached("gpu", _probe_gpu, refresh)


def cupy_available(*, refresh: bool = False) -> str | None:
    """None when CuPy can be imported and sees a CUDA device, else the reason (cached)."""
    return _cached("cupy", _probe_cupy, refresh)


def import_cupy() -> Any:
    """The ``cupy`` module, or GpuUnavailable saying how to get it."""
    try:
        import cupy
    except ImportError as exc:
        raise GpuUnavailable(
            f"CuPy is not installed; GPU conversion needs it (pip install 'rfb[gpu]', i.e. cupy-cuda13x): {exc}"
        ) from exc
    return cupy


def _probe_gpu() -> str | None:
    try:
        driver = load_driver()
        err, count = driver.cuDeviceGetCount()
        _check(driver, err, "cuDeviceGetCount")
    except GpuUnavailable as exc:
        return str(exc)
    return None if count > 0 else "the CUDA driver reports no device"


def _probe_cupy() -> str | None:
    try:
        cupy = import_cupy()
    except GpuUnavailable as exc:
        return str(exc)
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except (RuntimeError, OSError) as exc:  # CUDARuntimeError is a RuntimeError; a missing libcudart an OSError
        return f"CuPy cannot reach a CUDA device: {type(exc).__name__}: {exc}"
    return None if count > 0 else "CuPy sees no CUDA device"


def _cached(key: str, probe: Any, refresh: bool) -> str | None:
    with _probe_lock:
        if refresh or key not in _probes:
            _probes[key] = probe()
        return _probes[key]


def _check(driver: Any, err: Any, what: str) -> None:
    code = int(err)
    if code == 0:
        return
    try:
        name_err, name = driver.cuGetErrorName(err)
        label = name.decode() if int(name_err) == 0 and name else f"CUresult {code}"
    except (TypeError, ValueError, AttributeError):
        label = f"CUresult {code}"
    raise GpuUnavailable(f"{what} failed with {label}")
