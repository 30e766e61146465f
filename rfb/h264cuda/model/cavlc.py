"""CAVLC residual_block() (9.2): one block of levels, in scan order, into bits.

One call codes one block; blocks are independent once their ``nC`` is known, so the
kernel runs one thread per 4x4 block (and per chroma DC block). Within a block the
coding is short and sequential (the level suffix length adapts level by level), which
suits a thread. ``nC`` comes from the neighbours' coefficient counts
(:func:`predicted_counts`), a gather over an array computed in parallel beforehand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rfb.h264cuda.model.bitwriter import Bits
from rfb.h264cuda.model.cavlc_tables import CHROMA_DC_TOTAL_ZEROS, RUN_BEFORE, TOTAL_ZEROS, coeff_token


def _level_prefix_and_suffix(level_code: int, suffix_length: int) -> tuple[int, int, int]:
    # (level_prefix, level_suffix, levelSuffixSize) for a levelCode (9.2.2.1, read backwards).
    if suffix_length == 0:
        if level_code < 14:
            return level_code, 0, 0
        if level_code < 30:
            return 14, level_code - 14, 4
        return 15, level_code - 30, 12
    if level_code < (15 << suffix_length):
        return level_code >> suffix_length, level_code & ((1 << suffix_length) - 1), suffix_length
    return 15, level_code - (15 << suffix_length), 12


def residual_block(levels: Sequence[int] | np.ndarray, n_c: int, max_num_coeff: int, out: Bits) -> int:
    """Append the CAVLC code of ``levels`` (scan order) to ``out``; return TotalCoeff.

    ``n_c`` is -1 for 4:2:0 chroma DC, else the predicted count of 9.2.1.
    """
    if len(levels) != max_num_coeff:
        raise ValueError(f"expected {max_num_coeff} levels, got {len(levels)}")
    nonzero = [i for i, v in enumerate(levels) if v]
    total = len(nonzero)
    # Levels from the highest frequency down, as they are coded.
    values = [int(levels[i]) for i in reversed(nonzero)]
    trailing_ones = 0
    while trailing_ones < min(total, 3) and abs(values[trailing_ones]) == 1:
        trailing_ones += 1
    out.code(coeff_token(n_c, total, trailing_ones))
    if total == 0:
        return 0
    for v in values[:trailing_ones]:
        out.u(1, int(v < 0))
    suffix_length = 1 if total > 10 and trailing_ones < 3 else 0
    for i, v in enumerate(values[trailing_ones:], start=trailing_ones):
        level_code = 2 * v - 2 if v > 0 else -2 * v - 1
        if i == trailing_ones and trailing_ones < 3:
            level_code -= 2  # this level is known not to be +-1
        prefix, suffix, suffix_size = _level_prefix_and_suffix(level_code, suffix_length)
        out.u(prefix + 1, 1)
        out.u(suffix_size, suffix)
        if suffix_length == 0:
            suffix_length = 1
        if abs(v) > (3 << (suffix_length - 1)) and suffix_length < 6:
            suffix_length += 1
    total_zeros = nonzero[-1] + 1 - total
    if total < max_num_coeff:
        table = CHROMA_DC_TOTAL_ZEROS if max_num_coeff == 4 else TOTAL_ZEROS
        out.code(table[total - 1][total_zeros])
    zeros_left = total_zeros
    for k in range(total - 1, 0, -1):  # each coefficient but the lowest-frequency one
        if zeros_left == 0:
            break
        run = nonzero[k] - nonzero[k - 1] - 1
        out.code(RUN_BEFORE[min(zeros_left, 7) - 1][run])
        zeros_left -= run
    return total


def predicted_counts(counts: np.ndarray) -> np.ndarray:
    """nC of every 4x4 block from the TotalCoeff of its left (A) and upper (B) blocks (9.2.1).

    ``counts`` is (slices, n_y, n_x): each slice's grid of blocks (a rectangle of
    whole macroblocks, which is all this encoder's slices are). A block has a left
    neighbour unless x = 0 and an upper one unless y = 0. nC is nA + nB + 1 >> 1
    with both, the one available, else 0.
    """
    counts = counts.astype(np.int32)
    n_a = np.zeros_like(counts)
    n_b = np.zeros_like(counts)
    n_a[:, :, 1:] = counts[:, :, :-1]
    n_b[:, 1:, :] = counts[:, :-1, :]
    has_a = np.zeros(counts.shape, dtype=bool)
    has_b = np.zeros(counts.shape, dtype=bool)
    has_a[:, :, 1:] = True
    has_b[:, 1:, :] = True
    both = (n_a + n_b + 1) >> 1
    return np.where(has_a & has_b, both, np.where(has_a, n_a, np.where(has_b, n_b, 0)))
