"""The h264_cuda kernels on a GPU: compiled once per process by NVRTC, through CuPy.

The launcher takes the same arguments as the test suite's CPU launcher (arrays and
Python ints, converted to the scalar widths the kernel's declaration names), so the
code that drives the kernels is the same on both.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from rfb.h264cuda.kernels import SCALARS, Dim, expanded_source, signatures


@cache
def _module(device: int) -> Any:
    """The kernels loaded on ``device``: a loaded module belongs to one device's context."""
    from rfb.gpu.context import import_cupy  # CuPy is optional (rfb[gpu]); this says how to get it

    # The includes written out: CuPy's compile cache is keyed by this text.
    return import_cupy().RawModule(code=expanded_source(), options=("--std=c++17",))


@cache
def _prepared(name: str, device: int) -> tuple[Any, tuple[Any, ...]]:
    """Kernel ``name``'s function on ``device`` and, per parameter, the NumPy scalar type (None: an array).

    Looked up once per kernel and device: an I picture launches about R + C kernels, so
    per-launch host work adds up.
    """
    signature = signatures()[name]
    types = tuple(np.dtype(SCALARS[p.scalar]).type if p.scalar is not None else None for p in signature.params)
    return _module(device).get_function(name), types


def load(device: int) -> None:
    """Compile the kernels (once per process) and load every one of them on CUDA device ``device``.

    Raises what CuPy raises: NVRTC's CompileException, or a driver error.
    """
    from rfb.gpu.context import import_cupy

    with import_cupy().cuda.Device(device):
        for name in signatures():
            _prepared(name, device)


class CudaLauncher:
    """The kernels on one CUDA device (the current one when made), launched on CuPy's current stream."""

    def __init__(self, device: int | None = None) -> None:
        from rfb.gpu.context import import_cupy

        self.xp = import_cupy()
        self.device = self.xp.cuda.Device().id if device is None else device

    def launch(self, name: str, grid: Dim, block: Dim, *args: Any) -> None:
        """Launch kernel ``name`` on CuPy's current stream (the caller has this launcher's device current)."""
        function, types = _prepared(name, self.device)
        if len(args) != len(types):
            raise TypeError(f"kernel {name} takes {len(types)} arguments, got {len(args)}")
        function(grid, block, tuple(a if t is None else t(a) for t, a in zip(types, args, strict=True)))
