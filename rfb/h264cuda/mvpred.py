"""Motion vector predictors and P_Skip vectors on the device: ``model.mvpred.predictors``.

One thread per macroblock (``kernels/mvpred.cu``): with every final vector known, a
macroblock's predictor is a gather of its neighbours' vectors, independent of every
other macroblock's.
"""

from __future__ import annotations

from typing import Any

from rfb.h264cuda.kernels import Launcher, blocks

THREADS = 128


def predictors(launcher: Launcher, mv: Any, inter: Any | None = None, *, mvp: Any | None = None) -> tuple[Any, Any]:
    """(mvp, skip vector) of every macroblock, (R, C, 2) int32 each, as the model's.

    ``mv``: (R, C, 2) final vectors in quarter samples; ``inter``: (R, C) which
    macroblocks are inter (all of them when None). Arrays of ``launcher.xp``. ``mvp``,
    when given (C-contiguous int32 (R, C, 2)), is written in place, every entry, and
    returned; otherwise a new array is.
    """
    xp = launcher.xp
    if mv.ndim != 3 or mv.shape[2] != 2:
        raise ValueError(f"expected vectors shaped (rows, cols, 2), got {mv.shape}")
    rows, cols = mv.shape[:2]
    if inter is not None and inter.shape != (rows, cols):
        raise ValueError(f"expected an inter mask shaped {(rows, cols)}, got {inter.shape}")
    vectors = xp.ascontiguousarray(mv, dtype=xp.int32)
    mask = xp.ones((rows, cols), xp.int32) if inter is None else xp.ascontiguousarray(inter, dtype=xp.int32)
    if mvp is None:
        mvp = xp.empty((rows, cols, 2), xp.int32)
    elif mvp.shape != (rows, cols, 2) or mvp.dtype != xp.int32 or not mvp.flags.c_contiguous:
        raise ValueError(f"mvp: expected C-contiguous int32 {(rows, cols, 2)}, got {mvp.dtype} {mvp.shape}")
    skip = xp.empty((rows, cols, 2), xp.int32)
    grid = blocks(rows * cols, THREADS)
    launcher.launch("mv_predictors", grid, (THREADS, 1, 1), vectors, mask, rows, cols, mvp, skip)
    return mvp, skip
