"""A macroblock's residual, coded and reconstructed: transform, quantise, scan, undo.

Shapes: luma residual (..., 16, 16), chroma residual (..., 2, 8, 8) (Cb then Cr), for
any leading axes (one macroblock column of every row for intra, the whole picture for
inter). Each function returns the levels in coding order and the residual the
decoder will rebuild from them, so that the caller's reconstruction is the decoder's.

Levels come back in the order CAVLC codes them:

- luma 4x4 blocks by ``luma4x4BlkIdx`` (6.4.3), coefficients in zigzag order;
- Intra16x16: the sixteen DC levels (zigzag of the 4x4 raster of block DCs) apart
  from the fifteen AC levels of each block (zigzag positions 1..15);
- chroma: the four DC levels of each component (raster of its 2x2 blocks), then the
  fifteen AC levels of each 4x4 block in raster order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rfb.h264cuda.model import transform as tf


def split_luma(mb: np.ndarray) -> np.ndarray:
    """(..., 16, 16) samples -> (..., 16, 4, 4) blocks in luma4x4BlkIdx order."""
    lead = mb.shape[:-2]
    raster = mb.reshape(*lead, 4, 4, 4, 4).swapaxes(-3, -2).reshape(*lead, 16, 4, 4)
    return raster[..., tf.BLK_RASTER, :, :]


def join_luma(blocks: np.ndarray) -> np.ndarray:
    """The inverse of :func:`split_luma`."""
    lead = blocks.shape[:-3]
    raster = np.empty_like(blocks)
    raster[..., tf.BLK_RASTER, :, :] = blocks
    return raster.reshape(*lead, 4, 4, 4, 4).swapaxes(-3, -2).reshape(*lead, 16, 16)


def split_chroma(mb: np.ndarray) -> np.ndarray:
    """(..., 8, 8) samples -> (..., 4, 4, 4): the four 4x4 blocks in raster order."""
    lead = mb.shape[:-2]
    return mb.reshape(*lead, 2, 4, 2, 4).swapaxes(-3, -2).reshape(*lead, 4, 4, 4)


def join_chroma(blocks: np.ndarray) -> np.ndarray:
    lead = blocks.shape[:-3]
    return blocks.reshape(*lead, 2, 2, 4, 4).swapaxes(-3, -2).reshape(*lead, 8, 8)


def scan(block: np.ndarray) -> np.ndarray:
    """(..., 4, 4) -> (..., 16) in zigzag order."""
    return block.reshape(*block.shape[:-2], 16)[..., tf.ZIGZAG]


def unscan(levels: np.ndarray) -> np.ndarray:
    """(..., 16) zigzag -> (..., 4, 4) raster."""
    out = np.zeros(levels.shape, dtype=np.int32)
    out[..., tf.ZIGZAG] = levels
    return out.reshape(*levels.shape[:-1], 4, 4)


@dataclass(frozen=True, slots=True)
class LumaIntra16:
    dc: np.ndarray  # (..., 16) zigzag
    ac: np.ndarray  # (..., 16, 15) by luma4x4BlkIdx, zigzag 1..15
    residual: np.ndarray  # (..., 16, 16) as the decoder rebuilds it


@dataclass(frozen=True, slots=True)
class LumaInter:
    levels: np.ndarray  # (..., 16, 16) by luma4x4BlkIdx, zigzag 0..15
    residual: np.ndarray


@dataclass(frozen=True, slots=True)
class Chroma:
    dc: np.ndarray  # (..., 2, 4)
    ac: np.ndarray  # (..., 2, 4, 15)
    residual: np.ndarray  # (..., 2, 8, 8)

    @property
    def cbp(self) -> np.ndarray:
        """coded_block_pattern's chroma part: 2 with any AC level, 1 with DC only, else 0."""
        lead = self.dc.ndim - 2
        ac = np.any(self.ac != 0, axis=tuple(range(lead, self.ac.ndim)))
        dc = np.any(self.dc != 0, axis=tuple(range(lead, self.dc.ndim)))
        return np.where(ac, 2, np.where(dc, 1, 0))


def code_luma_intra16(residual: np.ndarray, qp: int) -> LumaIntra16:
    """Intra16x16 luma: 4x4 transforms, a Hadamard over their DCs, then quantisation."""
    coef = tf.forward4x4(split_luma(residual))  # (..., 16, 4, 4) by blkIdx
    dc_raster = np.zeros(coef.shape[:-3] + (16,), dtype=np.int32)
    dc_raster[..., tf.BLK_RASTER] = coef[..., 0, 0]
    dc_coef = (tf.hadamard4(dc_raster.reshape(*coef.shape[:-3], 4, 4)) + 1) >> 1
    dc_levels = tf.quantise_dc(dc_coef, qp, intra=True)
    ac_levels = tf.quantise(coef, qp, intra=True)
    ac_levels[..., 0, 0] = 0
    # Decoder side: DCs back through their Hadamard, then each block's inverse.
    dc = tf.dequantise_luma_dc(dc_levels, qp).reshape(*coef.shape[:-3], 16)[..., tf.BLK_RASTER]
    d = tf.dequantise(ac_levels, qp)
    d[..., 0, 0] = dc
    return LumaIntra16(scan(dc_levels), scan(ac_levels)[..., 1:], join_luma(tf.inverse4x4(d)))


def luma_inter_residual(levels: np.ndarray, qp: int) -> np.ndarray:
    """The decoder's (..., 16, 16) residual from inter luma levels (..., 16, 16) in coding order."""
    return join_luma(tf.inverse4x4(tf.dequantise(unscan(levels), qp)))


def code_luma_inter(residual: np.ndarray, qp: int) -> LumaInter:
    """Inter luma: sixteen independent 4x4 blocks (LumaLevel4x4)."""
    levels = scan(tf.quantise(tf.forward4x4(split_luma(residual)), qp, intra=False))
    return LumaInter(levels, luma_inter_residual(levels, qp))


def chroma_residual(dc: np.ndarray, ac: np.ndarray, qpc: int) -> np.ndarray:
    """The decoder's (..., 2, 8, 8) residual from chroma DC (..., 2, 4) and AC (..., 2, 4, 15) levels."""
    lead = dc.shape[:-1]
    full = np.concatenate([np.zeros(ac.shape[:-1] + (1,), np.int32), ac], axis=-1)
    d = tf.dequantise(unscan(full), qpc)  # (..., 2, 4, 4, 4)
    d[..., 0, 0] = tf.dequantise_chroma_dc(dc.reshape(*lead, 2, 2), qpc).reshape(*lead, 4)
    return join_chroma(tf.inverse4x4(d))


def code_chroma(residual: np.ndarray, qpc: int, intra: bool) -> Chroma:
    """Both chroma components: 4x4 transforms, a 2x2 Hadamard over the DCs, quantisation."""
    coef = tf.forward4x4(split_chroma(residual))  # (..., 2, 4, 4, 4)
    dc_coef = tf.hadamard2(coef[..., 0, 0].reshape(*coef.shape[:-3], 2, 2))
    dc = tf.quantise_dc(dc_coef, qpc, intra).reshape(*coef.shape[:-3], 4)
    ac = scan(tf.quantise(coef, qpc, intra))[..., 1:]
    return Chroma(dc, ac, chroma_residual(dc, ac, qpc))
