"""Tests of rfb.gpu, and the helpers its tests share.

``require_cupy()`` skips a GPU test with the reason when CuPy or a CUDA device is
missing. ``FakeCudaArray`` describes host memory through ``__cuda_array_interface__``
so that layout validation runs on machines without a GPU; nothing may ever launch
device work on one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


def require_cupy() -> Any:
    """The cupy module, or skip the calling test saying what is missing."""
    from rfb.gpu import cupy_available

    reason = cupy_available()
    if reason is not None:
        pytest.skip(reason)
    import cupy

    return cupy


def require_whole_device() -> None:
    """Skip a test that reads the device's free memory when other pytest-xdist workers share the GPU.

    ``cudaMemGetInfo`` is device-wide: under ``-n N`` the other workers' allocations show
    up as this test's growth (seen on the H200 with ``-n 6``: 1 GB in a 2 MB bound).
    """
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("reads device-wide free memory, which other pytest-xdist workers share: run it without -n")


def skip_if_cupy_works() -> None:
    """Skip a test of the no-CuPy behaviour where CuPy and a device are present."""
    from rfb.gpu import cupy_available

    if cupy_available() is None:
        pytest.skip("CuPy and a CUDA device are present: the no-GPU path cannot be exercised here")


class FakeCudaArray:
    """A CUDA array interface (v3) over a NumPy array's memory (never dereferenced on a GPU)."""

    def __init__(
        self,
        host: np.ndarray,
        *,
        strides: tuple[int, ...] | None | str = "from-array",
        device: int | None = None,
        typestr: str | None = None,
        readonly: bool = False,
        **extra: Any,
    ) -> None:
        self.host = host
        if device is not None:  # what CuPy and PyTorch also report: (kDLCUDA, ordinal)
            self.__dlpack_device__ = lambda: (2, device)
        cai: dict[str, Any] = {
            "shape": tuple(host.shape),
            "typestr": typestr or host.dtype.str,
            "data": (host.ctypes.data, readonly),
            "version": 3,
            "strides": tuple(host.strides) if strides == "from-array" else strides,
            "stream": None,
        }
        cai.update(extra)
        self._cai = cai

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return self._cai
