"""The h264_cuda kernels built for the CPU, and a launcher that runs every thread in turn.

The kernels are written so that no thread of a launch depends on another thread of the
same launch (rfb/h264cuda/kernels/portable.h says how), so running the threads one
after another gives what the GPU gives. This is how CI, which has no GPU, checks the
kernels bit for bit against the golden model; the GPU tests then check that NVRTC's
build gives the same bytes.
"""

from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from cffi import FFI

from rfb.h264cuda.kernels import HERE, SCALARS, Dim, signatures, source_files, translation_unit
from tests.support.cbuild import CFLAGS, compile_to, compiler, compiler_identity, digest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "h264cuda-cpu"


_RUNTIME = """
rfb_dim3 threadIdx, blockIdx, blockDim, gridDim;
void rfb_set_grid(u32 gx, u32 gy, u32 gz, u32 bx, u32 by, u32 bz) {
    gridDim.x = gx; gridDim.y = gy; gridDim.z = gz;
    blockDim.x = bx; blockDim.y = by; blockDim.z = bz;
}
void rfb_set_index(u32 bx, u32 by, u32 bz, u32 tx, u32 ty, u32 tz) {
    blockIdx.x = bx; blockIdx.y = by; blockIdx.z = bz;
    threadIdx.x = tx; threadIdx.y = ty; threadIdx.z = tz;
}
"""


@cache
def _library() -> tuple[FFI, Any]:
    """Build (cached by the sources' digest) and load the kernels as a shared library."""
    sources = [HERE / "portable.h", *sorted(HERE.glob("*.h")), *source_files()]
    flags = (*CFLAGS, "-shared", f"-I{HERE}", "-Wno-unused-function")
    key = digest(sources, (*flags, compiler_identity(compiler())))
    unit = CACHE / f"{key}.c"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text('#include "portable.h"\n' + _RUNTIME + translation_unit())
    library = compile_to(CACHE / f"{key}.so", [*flags, str(unit)])
    ffi = FFI()
    ffi.cdef(
        "typedef unsigned char u8; typedef signed char i8; typedef unsigned short u16; typedef short i16;"
        "typedef int i32; typedef unsigned int u32; typedef long long i64; typedef unsigned long long u64;"
        "void rfb_set_grid(u32, u32, u32, u32, u32, u32);"
        "void rfb_set_index(u32, u32, u32, u32, u32, u32);" + "".join(s.c_declaration for s in signatures().values())
    )
    return ffi, ffi.dlopen(str(library))


def launch(name: str, grid: Dim, block: Dim, *args: Any) -> None:
    """Run kernel ``name`` over ``grid`` x ``block``, one thread at a time, on NumPy arrays."""
    ffi, lib = _library()
    signature = signatures()[name]
    if len(args) != len(signature.params):
        raise TypeError(f"kernel {name} takes {len(signature.params)} arguments, got {len(args)}")
    converted = []
    for param, arg in zip(signature.params, args, strict=True):
        if param.scalar is not None:
            converted.append(int(np.dtype(SCALARS[param.scalar]).type(arg)))
        else:
            if not isinstance(arg, np.ndarray) or not arg.flags.c_contiguous:
                raise TypeError(f"kernel {name}: expected a C-contiguous NumPy array for {param.declaration!r}")
            converted.append(ffi.cast(param.declaration.rsplit("*", 1)[0] + "*", ffi.from_buffer(arg)))
    function = getattr(lib, name)
    lib.rfb_set_grid(*grid, *block)
    for (bz, by, bx), (tz, ty, tx) in itertools.product(
        itertools.product(range(grid[2]), range(grid[1]), range(grid[0])),
        itertools.product(range(block[2]), range(block[1]), range(block[0])),
    ):
        lib.rfb_set_index(bx, by, bz, tx, ty, tz)
        function(*converted)


class CpuLauncher:
    """The :class:`rfb.h264cuda.kernels.Launcher` of the CPU build: NumPy arrays, threads in turn."""

    xp = np

    def launch(self, name: str, grid: Dim, block: Dim, *args: Any) -> None:
        launch(name, grid, block, *args)
