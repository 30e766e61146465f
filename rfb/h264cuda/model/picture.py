"""What a coded picture holds per macroblock, between the decisions and the bits.

The decision stages (:mod:`.intra`, :mod:`.inter`) fill a :class:`MacroblockArrays`
for the whole picture; the entropy stage (:mod:`.slicedata`) reads it. On the GPU
these are the device arrays one kernel writes and the next reads: structure of
arrays, one entry per macroblock (or per block of one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Macroblock kinds.
P_SKIP = 0
P_L0_16X16 = 1
I_16X16 = 2


@dataclass(slots=True)
class MacroblockArrays:
    """Per-macroblock decisions and levels of one picture, (rows, cols) leading axes."""

    kind: np.ndarray  # (R, C) P_SKIP, P_L0_16X16 or I_16X16
    luma_mode: np.ndarray  # (R, C) Intra16x16PredMode of I_16X16 macroblocks
    chroma_mode: np.ndarray  # (R, C) intra_chroma_pred_mode of I_16X16 macroblocks
    mv: np.ndarray  # (R, C, 2) motion vector (x, y) in quarter samples
    mvp: np.ndarray  # (R, C, 2) its predictor (8.4.1.3): mvd = mv - mvp
    luma_dc: np.ndarray  # (R, C, 16) Intra16x16DCLevel, zigzag
    luma: np.ndarray  # (R, C, 16, 16) by luma4x4BlkIdx, zigzag; index 0 unused for I_16X16
    chroma_dc: np.ndarray  # (R, C, 2, 4)
    chroma_ac: np.ndarray  # (R, C, 2, 4, 15)
    cbp_luma: np.ndarray  # (R, C) four bits, one per 8x8 (15 or 0 for I_16X16)
    cbp_chroma: np.ndarray  # (R, C) 0, 1 or 2

    @classmethod
    def empty(cls, rows: int, cols: int) -> MacroblockArrays:
        z = np.zeros
        return cls(
            kind=z((rows, cols), np.int32),
            luma_mode=z((rows, cols), np.int32),
            chroma_mode=z((rows, cols), np.int32),
            mv=z((rows, cols, 2), np.int32),
            mvp=z((rows, cols, 2), np.int32),
            luma_dc=z((rows, cols, 16), np.int32),
            luma=z((rows, cols, 16, 16), np.int32),
            chroma_dc=z((rows, cols, 2, 4), np.int32),
            chroma_ac=z((rows, cols, 2, 4, 15), np.int32),
            cbp_luma=z((rows, cols), np.int32),
            cbp_chroma=z((rows, cols), np.int32),
        )


def mb_view(plane: np.ndarray, size: int) -> np.ndarray:
    """(H, W) -> (H / size, W / size, size, size): the plane as a grid of blocks (a view)."""
    h, w = plane.shape[-2:]
    return plane.reshape(*plane.shape[:-2], h // size, size, w // size, size).swapaxes(-3, -2)


def from_mb_view(blocks: np.ndarray) -> np.ndarray:
    """The inverse of :func:`mb_view` (a copy)."""
    rows, cols, size, _ = blocks.shape[-4:]
    return blocks.swapaxes(-3, -2).reshape(*blocks.shape[:-4], rows * size, cols * size)
