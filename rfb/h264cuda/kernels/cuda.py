"""The h264_cuda kernels on a GPU: compiled once per process by NVRTC, through CuPy.

The launcher takes the same arguments as the test suite's CPU launcher (arrays and
Python ints, converted to the scalar widths the kernel's declaration names), so the
code that drives the kernels is the same on both.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from rfb.h264cuda.kernels import HERE, SCALARS, Dim, signatures, translation_unit


@cache
def _module() -> Any:
    from rfb.gpu.context import import_cupy  # CuPy is optional (rfb[gpu]); this says how to get it

    return import_cupy().RawModule(code=translation_unit(), options=("--std=c++17", f"-I{HERE}"))


class CudaLauncher:
    """The kernels on the current CUDA device, launched on CuPy's current stream."""

    def __init__(self) -> None:
        from rfb.gpu.context import import_cupy

        self.xp = import_cupy()

    def launch(self, name: str, grid: Dim, block: Dim, *args: Any) -> None:
        launch(name, grid, block, *args)


def launch(name: str, grid: Dim, block: Dim, *args: Any) -> None:
    """Launch kernel ``name`` on CuPy's current stream."""
    signature = signatures()[name]
    if len(args) != len(signature.params):
        raise TypeError(f"kernel {name} takes {len(signature.params)} arguments, got {len(args)}")
    converted = tuple(
        np.dtype(SCALARS[p.scalar]).type(a) if p.scalar is not None else a
        for p, a in zip(signature.params, args, strict=True)
    )
    _module().get_function(name)(grid, block, converted)
