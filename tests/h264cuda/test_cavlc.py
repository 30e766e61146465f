"""CAVLC of the golden model: tables spot-checked against the spec, blocks read back.

The reader here is written from 9.2 independently of the model's writer (it inverts
the code tables and follows the decoding equations), so a round trip checks the
level, total_zeros and run_before logic, escapes included, on any block.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfb.encoders.h264 import BitReader
from rfb.h264cuda.model import cavlc_tables as tables
from rfb.h264cuda.model.bitwriter import Bits
from rfb.h264cuda.model.cavlc import predicted_counts, residual_block
from rfb.h264cuda.model.transform import LEVEL_MAX


def bit_string(b: Bits) -> str:
    return format(b.value, f"0{b.length}b") if b.length else ""


def test_coeff_token_spot_checks_of_table_9_5() -> None:
    assert tables.coeff_token(0, 0, 0) == "1"
    assert tables.coeff_token(1, 1, 0) == "000101"
    assert tables.coeff_token(0, 3, 3) == "00011"
    assert tables.coeff_token(0, 16, 0) == "0000000000000100"
    assert tables.coeff_token(2, 0, 0) == "11"
    assert tables.coeff_token(3, 2, 2) == "011"
    assert tables.coeff_token(4, 0, 0) == "1111"
    assert tables.coeff_token(7, 16, 3) == "0000000010"
    assert tables.coeff_token(8, 0, 0) == "000011"
    assert tables.coeff_token(8, 1, 0) == "000000"
    assert tables.coeff_token(16, 16, 3) == "111111"
    assert tables.coeff_token(-1, 0, 0) == "01"
    assert tables.coeff_token(-1, 4, 3) == "0000000"


def test_total_zeros_and_run_before_spot_checks() -> None:
    assert tables.TOTAL_ZEROS[0][:3] == ("1", "011", "010")
    assert tables.TOTAL_ZEROS[0][15] == "000000001"
    assert tables.TOTAL_ZEROS[14] == ("0", "1")
    assert tables.CHROMA_DC_TOTAL_ZEROS[0] == ("1", "01", "001", "000")
    assert tables.RUN_BEFORE[6][14] == "00000000001"
    assert tables.RUN_BEFORE[5][1:3] == ("000", "001")


def test_every_code_table_is_prefix_free() -> None:
    rows = [tuple(c for r in t for c in r) for t in tables.COEFF_TOKEN]
    rows += [tuple(c for r in tables.CHROMA_DC_COEFF_TOKEN for c in r)]
    rows += list(tables.TOTAL_ZEROS) + list(tables.CHROMA_DC_TOTAL_ZEROS) + list(tables.RUN_BEFORE)
    for row in rows:
        for a in row:
            assert not any(b != a and b.startswith(a) for b in row), (a, row)
        assert len(set(row)) == len(row)


def test_the_textbook_block_codes_as_published() -> None:
    # The 4x4 example of Richardson, "H.264 and MPEG-4 Video Compression", 6.4.13.2.
    block = np.array([[0, 3, -1, 0], [0, -1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    scanned = block.reshape(16)[[0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15]]
    out = Bits()
    assert residual_block(list(scanned), 0, 16, out) == 5
    assert bit_string(out) == "000010001110010111101101"


def _read_code(r: BitReader, codes: dict[str, object]) -> object:
    s = ""
    while s not in codes:
        s += str(r.u(1))
        if len(s) > 16:
            raise AssertionError(f"no code matches {s}")
    return codes[s]


def read_residual_block(r: BitReader, n_c: int, max_num_coeff: int) -> list[int]:
    """residual_block_cavlc() of 7.3.5.3.2 with the decoding of 9.2.2 and 9.2.3."""
    if n_c == -1:
        token_codes = {c: (tc, t1) for tc, row in enumerate(tables.CHROMA_DC_COEFF_TOKEN) for t1, c in enumerate(row)}
    elif n_c >= 8:
        token_codes = {"000011": (0, 0)}
        pairs = [(tc, t1) for tc in range(1, 17) for t1 in range(min(tc, 3) + 1)]
        token_codes.update({format(((tc - 1) << 2) | t1, "06b"): (tc, t1) for tc, t1 in pairs})
    else:
        table = tables.COEFF_TOKEN[0 if n_c < 2 else 1 if n_c < 4 else 2]
        token_codes = {c: (tc, t1) for tc, row in enumerate(table) for t1, c in enumerate(row)}
    total, trailing = _read_code(r, token_codes)  # type: ignore[misc]
    levels = [0] * max_num_coeff
    if total == 0:
        return levels
    values = []
    suffix_length = 1 if total > 10 and trailing < 3 else 0
    for i in range(total):
        if i < trailing:
            values.append(1 - 2 * r.u(1))
            continue
        prefix = 0
        while r.u(1) == 0:
            prefix += 1
        size = 4 if prefix == 14 and suffix_length == 0 else 12 if prefix >= 15 else suffix_length
        level_code = (min(15, prefix) << suffix_length) + (r.u(size) if size else 0)
        if prefix >= 15 and suffix_length == 0:
            level_code += 15
        if i == trailing and trailing < 3:
            level_code += 2
        value = (level_code + 2) >> 1 if level_code % 2 == 0 else (-level_code - 1) >> 1
        values.append(value)
        if suffix_length == 0:
            suffix_length = 1
        if abs(value) > (3 << (suffix_length - 1)) and suffix_length < 6:
            suffix_length += 1
    if total < max_num_coeff:
        table = tables.CHROMA_DC_TOTAL_ZEROS if max_num_coeff == 4 else tables.TOTAL_ZEROS
        zeros_left = _read_code(r, {c: z for z, c in enumerate(table[total - 1])})
    else:
        zeros_left = 0
    runs = []
    for _ in range(total - 1):
        run = 0
        if zeros_left:
            run = _read_code(r, {c: k for k, c in enumerate(tables.RUN_BEFORE[min(zeros_left, 7) - 1])})
        runs.append(run)
        zeros_left -= run  # type: ignore[operator]
    runs.append(zeros_left)
    pos = -1
    for value, run in zip(reversed(values), reversed(runs), strict=True):
        pos += run + 1
        levels[pos] = value
    return levels


blocks = st.sampled_from([4, 15, 16]).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(
            st.one_of(st.just(0), st.just(0), st.sampled_from([1, -1]), st.integers(-LEVEL_MAX, LEVEL_MAX)),
            min_size=n,
            max_size=n,
        ),
        st.just(-1) if n == 4 else st.integers(0, 16),
    )
)


@settings(max_examples=200, deadline=None)
@given(st.lists(blocks, min_size=1, max_size=6))
def test_blocks_read_back_exactly(cases: list[tuple[int, list[int], int]]) -> None:
    out = Bits()
    for n, levels, n_c in cases:
        assert residual_block(levels, n_c, n, out) == sum(1 for v in levels if v)
    r = BitReader(out.trailing().to_bytes())
    for n, levels, n_c in cases:
        assert read_residual_block(r, n_c, n) == levels


def test_a_block_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 16 levels, got 15"):
        residual_block([0] * 15, 0, 16, Bits())


def test_nc_uses_left_and_upper_blocks_within_the_row() -> None:
    counts = np.array([[[1, 4, 0], [3, 0, 8]]])  # one macroblock row, two block rows, three columns
    # top-left: none -> 0; (0,1): left only -> 1; (0,2): left -> 4;
    # (1,0): upper only -> 1; (1,1): (3 + 4 + 1) >> 1 = 4; (1,2): (0 + 0 + 1) >> 1 = 0
    assert predicted_counts(counts).tolist() == [[[0, 1, 4], [1, 4, 0]]]
