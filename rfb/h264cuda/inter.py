"""P pictures on the device: ``model.inter``, as a sequence of parallel launches.

Each function mirrors the model function of the same name, with a
:class:`rfb.h264cuda.kernels.Launcher` first and arrays of ``launcher.xp``; the
kernels are in ``kernels/inter.cu``.
"""

from __future__ import annotations

from typing import Any

from rfb.h264cuda.kernels import Launcher, blocks
from rfb.h264cuda.model.inter import LAMBDA

THREADS = 128


def _luma_plane(xp: Any, plane: Any, name: str) -> Any:
    if plane.ndim != 2 or plane.shape[0] % 16 or plane.shape[1] % 16 or plane.dtype != xp.uint8:
        raise ValueError(f"expected {name} as a uint8 plane of whole macroblocks, got {plane.dtype} {plane.shape}")
    return xp.ascontiguousarray(plane)


def motion_search(launcher: Launcher, y: Any, ref: Any, search: int, qp: int) -> tuple[Any, Any]:
    """The chosen vector of every macroblock, (R, C, 2) whole luma samples (x, y), and its cost (R, C).

    Two launches: every (macroblock, candidate) cost, then each macroblock's choice in
    the model's candidate order.
    """
    xp = launcher.xp
    src, reference = _luma_plane(xp, y, "y"), _luma_plane(xp, ref, "ref")
    if src.shape != reference.shape:
        raise ValueError(f"expected a reference shaped like the picture {src.shape}, got {reference.shape}")
    if search < 0 or not 0 <= qp < len(LAMBDA):
        raise ValueError(f"expected search >= 0 and a QP in 0..{len(LAMBDA) - 1}, got {search} and {qp}")
    h, w = src.shape
    rows, cols = h // 16, w // 16
    count = (2 * search + 1) ** 2
    costs = xp.empty(rows * cols * count, xp.int32)
    launcher.launch(
        "motion_costs", blocks(costs.size, THREADS), (THREADS, 1, 1), src, reference, w, h, search, LAMBDA[qp], costs
    )
    mv = xp.empty((rows, cols, 2), xp.int32)
    cost = xp.empty((rows, cols), xp.int32)
    grid = blocks(rows * cols, THREADS)
    launcher.launch("motion_choose", grid, (THREADS, 1, 1), costs, rows * cols, search, mv, cost)
    return mv, cost
