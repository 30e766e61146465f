"""The entropy kernels on the CPU: the slice NAL unit equals the model's, byte for byte.

Inputs are the model's own MacroblockArrays (I and P pictures of the model encoder on
the test patterns, several sizes and QPs) and made-up ones that reach what pictures
rarely do: every code table row, the 12-bit level escapes, huge motion vector
differences, long skip runs, long runs of zero bytes for emulation prevention.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rfb.encoders.h264 import add_emulation_prevention, remove_emulation_prevention
from rfb.h264cuda import slicedata
from rfb.h264cuda.kernels import HERE
from rfb.h264cuda.model import slicedata as model
from rfb.h264cuda.model.bitwriter import START_CODE
from rfb.h264cuda.model.picture import I_16X16, P_L0_16X16, P_SKIP, MacroblockArrays
from tests.h264cuda import cavlc_h
from tests.support import kernels_cpu
from tests.support.kernels_cpu import CpuLauncher

from .streams import encode, nv12_pictures

CPU = CpuLauncher()


def assert_same_nal(mbs: MacroblockArrays, idr: bool, frame_num: int, idr_pic_id: int, qp: int) -> bytes:
    want = model.slice_nal(mbs, idr, frame_num, idr_pic_id, qp)
    got = slicedata.slice_nal(CPU, mbs, idr, frame_num, idr_pic_id, qp)
    if got != want:
        at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
        raise AssertionError(
            f"expected the model's {len(want)} bytes, got {len(got)}; first difference at byte {at}: "
            f"{want[at : at + 8].hex()} vs {got[at : at + 8].hex()}"
        )
    return got


def test_the_c_tables_are_the_models_tables() -> None:
    assert cavlc_h.PATH.read_text() == cavlc_h.render(), "regenerate: python -m tests.h264cuda.cavlc_h"


def test_the_scratch_slot_is_the_kernels_and_holds_the_bound() -> None:
    source = (HERE / "entropy.cu").read_text()
    assert f"#define ENT_SLOT_WORDS {slicedata.SLOT_WORDS}\n" in source
    assert f"#define ENT_PER_MB {slicedata.PER_MB} " in source
    # The bound entropy.cu proves, from the tables' longest codes.
    token = max(len(c) for table in cavlc_h.t.COEFF_TOKEN for row in table for c in row)
    zeros = max(len(c) for row in cavlc_h.t.TOTAL_ZEROS for c in row)
    run = max(len(c) for row in cavlc_h.t.RUN_BEFORE for c in row)
    level = 16 + 12
    block = token + zeros + 16 * (level + run)
    prelude = 63 + 9 + 5 + 2 * 65 + 11 + 1
    header = 1 + 7 + 1 + 4 + 63 + 2 + 65 + 3
    assert (token, zeros, run, block, prelude, header) == (16, 9, 11, 649, 219, 146)
    assert max(block, prelude, header) <= 32 * slicedata.SLOT_WORDS


def test_the_drivers_constants_are_the_kernels() -> None:
    source = (HERE / "entropy.cu").read_text()
    meta = {name: int(v) for name, v in re.findall(r"#define ENT_META_(\w+) (\d+)", source)}
    assert meta == {"STATUS": slicedata.META_STATUS, "BITS": slicedata.META_BITS, "NAL": slicedata.META_NAL}
    errors = {int(v): name for name, v in re.findall(r"#define ENT_ERR_(\w+) (\d+)u", source)}
    assert sorted(errors) == sorted(slicedata.ERRORS)


@pytest.mark.parametrize(
    ("pattern", "width", "height", "qp"),
    [
        ("scene", 64, 48, 18),
        ("scene", 70, 38, 26),
        ("gradient", 64, 48, 40),
        ("noise", 64, 48, 51),
        ("noise", 64, 48, 10),
        ("gradient", 96, 64, 10),
        ("scene", 160, 96, 26),
        ("scene", 176, 144, 30),
    ],
)
def test_model_pictures(pattern: str, width: int, height: int, qp: int) -> None:
    stream = encode(nv12_pictures(pattern, width, height, 3), width, height, qp=qp)
    for i, info in enumerate(stream.infos):
        assert info.idr == (i == 0)
        assert_same_nal(info.macroblocks, info.idr, info.frame_num, 3 * i, info.qp)


def test_p_pictures_with_intra_macroblocks_and_skips() -> None:
    # A cut from gradient to noise: P pictures with I16x16 macroblocks among P ones.
    pictures = nv12_pictures("gradient", 96, 64, 2) + nv12_pictures("noise", 96, 64, 2)
    stream = encode(pictures, 96, 64, qp=28)
    kinds = np.concatenate([info.macroblocks.kind.ravel() for info in stream.infos[1:]])
    assert I_16X16 in kinds and P_L0_16X16 in kinds
    for info in stream.infos:
        assert_same_nal(info.macroblocks, info.idr, info.frame_num, 0, info.qp)


def test_a_static_picture_is_one_skip_run() -> None:
    pictures = nv12_pictures("gradient", 64, 48, 1) * 3
    stream = encode(pictures, 64, 48, qp=26)
    last = stream.infos[-1].macroblocks
    assert (last.kind == P_SKIP).all()
    assert_same_nal(last, False, 2, 0, 26)


def synthetic(rows: int, cols: int, seed: int, *, big: bool = False) -> MacroblockArrays:
    """Made-up macroblocks: any kind, sparse or dense levels, small or large magnitudes."""
    rng = np.random.default_rng(seed)
    mbs = MacroblockArrays.empty(rows, cols)
    shape = (rows, cols)
    mbs.kind[...] = rng.choice([P_SKIP, P_L0_16X16, I_16X16], shape, p=[0.4, 0.35, 0.25])
    mbs.luma_mode[...] = rng.integers(0, 4, shape)
    mbs.chroma_mode[...] = rng.integers(0, 4, shape)
    mbs.mv[...] = rng.integers(-300, 300, (*shape, 2))
    mbs.mvp[...] = rng.integers(-300, 300, (*shape, 2))
    mbs.cbp_luma[...] = rng.integers(0, 16, shape)
    mbs.cbp_chroma[...] = rng.integers(0, 3, shape)

    def levels(size: tuple[int, ...]) -> np.ndarray:
        density = rng.uniform(0, 1, size[:-1] + (1,))
        limit = 2000 if big else 40
        magnitude = np.where(rng.uniform(0, 1, size) < 0.5, 1, rng.integers(1, limit, size))
        sign = rng.choice([-1, 1], size)
        return np.where(rng.uniform(0, 1, size) < density, sign * magnitude, 0).astype(np.int32)

    mbs.luma_dc[...] = levels((*shape, 16))
    mbs.luma[...] = levels((*shape, 16, 16))
    mbs.chroma_dc[...] = levels((*shape, 2, 4))
    mbs.chroma_ac[...] = levels((*shape, 2, 4, 15))
    intra = mbs.kind == I_16X16
    mbs.luma[intra, :, 0] = 0  # index 0 of an Intra16x16 block is its DC, coded apart
    mbs.cbp_luma[intra] = np.where(mbs.cbp_luma[intra] > 7, 15, 0)
    return mbs


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("idr", [False, True])
def test_synthetic_macroblocks(seed: int, idr: bool) -> None:
    mbs = synthetic(5, 7, seed)
    if idr:
        mbs.kind[mbs.kind != I_16X16] = I_16X16
    assert_same_nal(mbs, idr, frame_num=seed * 5, idr_pic_id=seed * 1000, qp=10 + 8 * seed)


@pytest.mark.parametrize("seed", range(3))
def test_large_levels_take_the_escape_codes(seed: int) -> None:
    mbs = synthetic(3, 4, 100 + seed, big=True)
    nal = assert_same_nal(mbs, False, 1, 0, 0)
    assert len(nal) > 1000


def test_every_coeff_token_row_and_nc_class() -> None:
    # Blocks with 0..16 coefficients next to each other reach nC of every class.
    mbs = MacroblockArrays.empty(4, 6)
    mbs.kind[...] = P_L0_16X16
    mbs.cbp_luma[...] = 15
    mbs.cbp_chroma[...] = 2
    total = 0
    for r, c, blk in np.ndindex(4, 6, 16):
        count = total % 17
        ones = total % 4
        values = [(-1) ** k * (1 if k < ones else 2 + k) for k in range(count)]
        mbs.luma[r, c, blk, 16 - count :] = values[::-1]
        total += 1
    for r, c, comp, blk in np.ndindex(4, 6, 2, 4):
        count = (r + c + blk) % 16
        mbs.chroma_ac[r, c, comp, blk, :count] = 1 + np.arange(count) % 3
        mbs.chroma_dc[r, c, comp, : (r + c + comp) % 5] = -1
    n_c, chroma_n_c = model.neighbour_counts(mbs)
    assert set(np.digitize(n_c.ravel(), [2, 4, 8]).tolist()) == {0, 1, 2, 3}  # the four coeff_token tables
    assert chroma_n_c.max() >= 8
    assert_same_nal(mbs, False, 0, 0, 26)


def test_worst_case_macroblocks_fit_their_slots() -> None:
    mbs = MacroblockArrays.empty(2, 2)
    mbs.kind[...] = [[I_16X16, P_L0_16X16], [P_L0_16X16, I_16X16]]
    mbs.cbp_luma[...] = [[15, 15], [15, 15]]
    mbs.cbp_chroma[...] = 2
    sign = np.where(np.arange(16) % 2, -1, 1)
    mbs.luma[...] = 2000 * sign
    mbs.luma[0, 0, :, 0] = mbs.luma[1, 1, :, 0] = 0
    mbs.luma_dc[...] = 2000 * sign
    mbs.chroma_dc[...] = -2000
    mbs.chroma_ac[...] = 2000 * sign[:15]
    mbs.mv[0, 1], mbs.mvp[0, 1] = [2**30, -(2**30)], [-(2**30), 2**30 - 1]  # mvd (-2**31, -2**31 + 1)
    mbs.mv[1, 0], mbs.mvp[1, 0] = [2**31 - 1, -(2**31)], [-(2**31), 2**31 - 1]  # wraps as int32 does
    n_c, chroma_n_c = model.neighbour_counts(mbs)
    longest = max(model.macroblock_bits(mbs, r, c, n_c, chroma_n_c, True).length for r, c in np.ndindex(2, 2))
    assert longest > 10000
    nal = assert_same_nal(mbs, False, 0, 0, 26)
    assert remove_emulation_prevention(nal[5:]) != nal[5:]  # 32-bit mvd codes: long zero runs


def test_long_skip_runs_and_a_trailing_one() -> None:
    mbs = MacroblockArrays.empty(9, 40)
    mbs.kind[4, 17] = P_L0_16X16
    mbs.mv[4, 17] = (4, -8)
    assert_same_nal(mbs, False, 7, 0, 33)
    mbs.kind[-1, -1] = P_L0_16X16  # no trailing run
    assert_same_nal(mbs, False, 7, 0, 33)
    mbs.kind[0, 0] = P_L0_16X16
    mbs.kind[4, 17] = P_SKIP
    assert_same_nal(mbs, False, 7, 0, 33)


@pytest.mark.parametrize("seed", range(4))
def test_sparse_coded_macroblocks_across_the_skip_run_chunks(seed: int) -> None:
    # 12 x 30 macroblocks: chunks of 32 for the skip-run scan, runs across several.
    rng = np.random.default_rng(seed)
    mbs = MacroblockArrays.empty(12, 30)
    coded = rng.uniform(0, 1, mbs.kind.shape) < [0.002, 0.01, 0.05, 0.3][seed]
    coded.ravel()[[31, 32, 64]] = seed % 2 == 0  # at chunk boundaries
    mbs.kind[coded] = P_L0_16X16
    mbs.mv[coded] = rng.integers(-40, 40, (int(coded.sum()), 2))
    assert_same_nal(mbs, False, seed, 0, 26)


def test_skipped_macroblocks_in_an_idr_slice_are_as_the_model_writes_them() -> None:
    # Not something the encoder makes; the model then writes only a trailing run.
    mbs = synthetic(3, 5, 9)
    assert_same_nal(mbs, True, 0, 65535, 51)


def ep_kernels(rbsp: bytes, chunks: int) -> bytes:
    """The emulation prevention launches alone, on any byte-aligned RBSP."""
    padded = rbsp + bytes(-len(rbsp) % 4)
    payload = np.frombuffer(padded, ">u4").astype(np.uint32)
    meta = np.array([0, 8 * len(rbsp), 0, 0], np.uint32)
    counts = np.empty(chunks, np.int32)
    kernels_cpu.launch("entropy_ep_count", (chunks, 1, 1), (1, 1, 1), payload, meta, chunks, counts)
    inserted = np.empty(chunks, np.int32)
    slicedata._scan(CPU, counts, inserted)
    out = np.empty(5 + 2 * len(rbsp), np.uint8)
    kernels_cpu.launch("entropy_ep_write", (chunks, 1, 1), (1, 1, 1), payload, meta, chunks, counts, inserted, 1, out)
    return out[: int(meta[2])].tobytes()


@pytest.mark.parametrize("chunks", [1, 3, 7, 64])
def test_emulation_prevention_equals_the_models_on_runs_of_zeros(chunks: int) -> None:
    rng = np.random.default_rng(chunks)
    for _ in range(40):
        parts = [
            bytes(int(rng.integers(0, 9))) + bytes([int(rng.integers(0, 6))]) for _ in range(int(rng.integers(1, 30)))
        ]
        rbsp = b"".join(parts)
        assert ep_kernels(rbsp, chunks) == START_CODE + bytes([0x61]) + add_emulation_prevention(rbsp)
    assert ep_kernels(bytes(17), chunks) == START_CODE + b"\x61" + add_emulation_prevention(bytes(17))


@given(
    st.lists(st.sampled_from([0, 0, 0, 0, 1, 2, 3, 4, 0x80, 0xFF]), min_size=1, max_size=120).map(bytes),
    st.integers(1, 50),
)
def test_emulation_prevention_on_any_bytes_in_any_chunks(rbsp: bytes, chunks: int) -> None:
    assert ep_kernels(rbsp, chunks) == START_CODE + b"\x61" + add_emulation_prevention(rbsp)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda m: m.luma.__setitem__((0, 1, 3, 5), 5000), "too large for Baseline CAVLC"),
        (lambda m: m.kind.__setitem__((1, 2), 7), "kind other than"),
    ],
)
def test_what_the_model_refuses_is_refused(change: object, why: str) -> None:
    mbs = MacroblockArrays.empty(2, 3)
    mbs.kind[...] = P_L0_16X16
    mbs.cbp_luma[...] = 15
    change(mbs)  # type: ignore[operator]
    with pytest.raises(ValueError):
        model.slice_nal(mbs, False, 0, 0, 26)
    with pytest.raises(ValueError, match=why):
        slicedata.slice_nal(CPU, mbs, False, 0, 0, 26)


def test_out_of_range_fields_are_refused() -> None:
    mbs = MacroblockArrays.empty(1, 2)
    mbs.kind[...] = I_16X16
    mbs.luma_mode[0, 1] = 4
    with pytest.raises(ValueError, match="prediction mode"):
        slicedata.slice_nal(CPU, mbs, True, 0, 0, 26)
    with pytest.raises(ValueError, match="negative idr_pic_id"):
        slicedata.slice_nal(CPU, MacroblockArrays.empty(1, 2), True, 0, -1, 26)
