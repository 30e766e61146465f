"""The intra driver and kernels (rfb/h264cuda/intra.py, kernels/intra.cu) on the CPU, equal to the model."""

from __future__ import annotations

import numpy as np
import pytest

from rfb.h264cuda import intra as driver
from rfb.h264cuda.model import intra as model
from rfb.h264cuda.model.picture import MacroblockArrays, mb_view
from tests.h264cuda.intra_cases import assert_macroblocks_equal, flat, picture, random_macroblocks
from tests.support.kernels_cpu import CpuLauncher


def check_i_picture(y: np.ndarray, c: np.ndarray, qp: int) -> None:
    got_mbs, got_y, got_c = driver.code_i_picture(CpuLauncher(), y, c, qp)
    want_mbs, want_y, want_c = model.code_i_picture(y, c, qp)
    assert_macroblocks_equal(got_mbs, want_mbs)
    assert got_y.dtype == np.uint8 and got_c.dtype == np.uint8
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_array_equal(got_c, want_c)


@pytest.mark.parametrize("qp", [18, 26, 40, 51])
@pytest.mark.parametrize("pattern", ["scene", "gradient", "noise"])
@pytest.mark.parametrize(("width", "height"), [(64, 48), (70, 38), (176, 144)])
def test_i_picture_equals_the_model(pattern: str, width: int, height: int, qp: int):
    y, c = picture(pattern, width, height, index=3)
    check_i_picture(y, c, qp)


@pytest.mark.parametrize("qp", [0, 12, 33])
def test_i_picture_at_low_and_odd_qps(qp: int):
    # QP 0 on noise: the largest levels; QP 33 and 12: other qp % 6 and qp / 6 classes, chroma QP mapping.
    for pattern in ("noise", "scene"):
        y, c = picture(pattern, 160, 96, index=1)
        check_i_picture(y, c, qp)


@pytest.mark.parametrize(("width", "height"), [(16, 16), (16, 64), (80, 16)])
def test_single_row_and_column_pictures(width: int, height: int):
    y, c = picture("scene", width, height, index=5)
    check_i_picture(y, c, 26)


@pytest.mark.parametrize("value", [0, 255])
def test_flat_extremes(value: int):
    y, c = flat(48, 32, value)
    check_i_picture(y, c, 26)


def test_every_luma_and_chroma_mode_is_chosen_somewhere():
    # The patterns above are worth as much as the modes they exercise: make sure all are.
    modes_y: set[int] = set()
    modes_c: set[int] = set()
    for pattern in ("scene", "gradient", "noise"):
        y, c = picture(pattern, 176, 144, index=3)
        mbs, _, _ = driver.code_i_picture(CpuLauncher(), y, c, 26)
        modes_y |= set(np.unique(mbs.luma_mode).tolist())
        modes_c |= set(np.unique(mbs.chroma_mode).tolist())
    assert modes_y == {0, 1, 2, 3}
    assert modes_c == {0, 1, 2, 3}


def wavefront_inputs(rng: np.random.Generator, width: int, height: int, density: float) -> tuple[np.ndarray, ...]:
    y, c = picture("scene", width, height, index=7)
    ry, rc = picture("scene", width, height, index=6)  # stands in for the inter reconstruction
    rows, cols = y.shape[0] // 16, y.shape[1] // 16
    src_y = mb_view(y.astype(np.int32), 16)
    src_c = mb_view(c.astype(np.int32), 8).transpose(1, 2, 0, 3, 4)
    rec_y = np.ascontiguousarray(mb_view(ry.astype(np.int32), 16))
    rec_c = np.ascontiguousarray(mb_view(rc.astype(np.int32), 8).transpose(1, 2, 0, 3, 4))
    mask = rng.random((rows, cols)) < density
    return src_y, src_c, rec_y, rec_c, mask


@pytest.mark.parametrize("density", [0.0, 0.3, 0.7])
@pytest.mark.parametrize("qp", [18, 30, 51])
def test_wavefront_codes_only_the_masked_macroblocks_as_the_model(density: float, qp: int):
    rng = np.random.default_rng(int(density * 10) + qp)
    src_y, src_c, rec_y, rec_c, mask = wavefront_inputs(rng, 150, 100, density)
    rows, cols = mask.shape
    mbs = random_macroblocks(rng, rows, cols)
    want = MacroblockArrays(**{n: getattr(mbs, n).copy() for n in MacroblockArrays.__slots__})
    want_y, want_c = rec_y.copy(), rec_c.copy()
    model.code_wavefront(src_y, src_c, want_y, want_c, mask, qp, want)
    driver.code_wavefront(CpuLauncher(), src_y, src_c, rec_y, rec_c, mask, qp, mbs)
    assert_macroblocks_equal(mbs, want)
    np.testing.assert_array_equal(rec_y, want_y)
    np.testing.assert_array_equal(rec_c, want_c)


def test_wavefront_writes_back_into_reconstructions_of_another_layout():
    # rec arrays that are not C-ordered int32 are completed in place all the same.
    rng = np.random.default_rng(9)
    src_y, src_c, rec_y, rec_c, mask = wavefront_inputs(rng, 64, 48, 0.5)
    rows, cols = mask.shape
    want_mbs = MacroblockArrays.empty(rows, cols)
    want_y, want_c = rec_y.copy(), rec_c.copy()
    model.code_wavefront(src_y, src_c, want_y, want_c, mask, 26, want_mbs)
    got_y, got_c = rec_y.astype(np.int64), np.asfortranarray(rec_c)
    mbs = driver.macroblock_arrays(np, rows, cols)
    driver.code_wavefront(CpuLauncher(), src_y, src_c, got_y, got_c, mask, 26, mbs)
    assert_macroblocks_equal(mbs, want_mbs)
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_array_equal(got_c, want_c)


@pytest.mark.parametrize("pattern", ["scene", "gradient", "noise"])
@pytest.mark.parametrize(("width", "height"), [(64, 48), (70, 38), (176, 144)])
def test_source_cost_equals_the_model(pattern: str, width: int, height: int):
    y, _ = picture(pattern, width, height, index=2)
    src_y = mb_view(y.astype(np.int32), 16)
    got = driver.source_cost(CpuLauncher(), src_y)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, model.source_cost(src_y))


def test_macroblock_arrays_match_the_models_empty():
    got = driver.macroblock_arrays(np, 3, 5)
    assert_macroblocks_equal(got, MacroblockArrays.empty(3, 5))


def test_wrong_inputs_are_refused_with_what_was_expected():
    y, c = flat(32, 32, 9)
    with pytest.raises(ValueError, match=r"expected luma padded to whole macroblocks \(multiples of 16\), got 30x32"):
        driver.code_i_picture(CpuLauncher(), y[:30], c, 26)
    with pytest.raises(ValueError, match=r"c: expected shape \(2, 16, 16\), got \(2, 16, 8\)"):
        driver.code_i_picture(CpuLauncher(), y, c[:, :, :8], 26)
    rng = np.random.default_rng(1)
    src_y, src_c, rec_y, rec_c, mask = wavefront_inputs(rng, 32, 32, 1.0)
    mbs = MacroblockArrays.empty(2, 2)
    mbs.luma = mbs.luma.astype(np.int64)
    with pytest.raises(ValueError, match=r"MacroblockArrays.luma: expected C-contiguous int32 \(2, 2, 16, 16\)"):
        driver.code_wavefront(CpuLauncher(), src_y, src_c, rec_y, rec_c, mask, 26, mbs)


def brute_levels(mask: np.ndarray) -> np.ndarray:
    # Raster order visits the left, upper and upper-left neighbours first.
    rows, cols = mask.shape
    level = np.full((rows, cols), -1)
    for r in range(rows):
        for c in range(cols):
            if mask[r, c]:
                near = [level[y, x] for y, x in ((r, c - 1), (r - 1, c), (r - 1, c - 1)) if y >= 0 and x >= 0]
                level[r, c] = 1 + max(near, default=-1)
    return level


@pytest.mark.parametrize("density", [0.0, 0.2, 0.5, 0.8, 1.0])
@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (1, 9), (7, 1), (9, 13), (20, 7)])
def test_chain_levels_are_the_longest_chains_of_masked_neighbours(rows: int, cols: int, density: float):
    mask = np.random.default_rng(rows * cols).random((rows, cols)) < density
    np.testing.assert_array_equal(driver.chain_levels(mask), brute_levels(mask))


class CountingLauncher(CpuLauncher):
    def __init__(self) -> None:
        self.names: list[str] = []

    def launch(self, name: str, grid: tuple[int, int, int], block: tuple[int, int, int], *args: object) -> None:
        self.names.append(name)
        super().launch(name, grid, block, *args)


def test_the_level_schedule_launches_per_chain_level_and_diagonals_per_diagonal():
    rng = np.random.default_rng(3)
    src_y, src_c, rec_y, rec_c, _ = wavefront_inputs(rng, 96, 64, 0.0)
    rows, cols = src_y.shape[:2]
    mask = np.zeros((rows, cols), bool)
    mask[0, 0] = mask[2, 3] = mask[3, 5] = mask[3, 1] = True  # isolated: one level
    mask[1, 1] = True  # after (0, 0): a second level
    want = MacroblockArrays.empty(rows, cols)
    want_y, want_c = rec_y.copy(), rec_c.copy()
    model.code_wavefront(src_y, src_c, want_y, want_c, mask, 26, want)
    for schedule, launches in (("levels", 2 + 1), ("diagonals", rows + cols - 1 + 1)):
        launcher = CountingLauncher()
        mbs = driver.macroblock_arrays(np, rows, cols)
        got_y, got_c = rec_y.copy(), rec_c.copy()
        driver.code_wavefront(launcher, src_y, src_c, got_y, got_c, mask, 26, mbs, schedule=schedule)  # type: ignore[arg-type]
        assert len(launcher.names) == launches, schedule
        assert_macroblocks_equal(mbs, want)
        np.testing.assert_array_equal(got_y, want_y)
        np.testing.assert_array_equal(got_c, want_c)
    launcher = CountingLauncher()
    driver.code_wavefront(
        launcher, src_y, src_c, rec_y, rec_c, mask & False, 26, driver.macroblock_arrays(np, rows, cols)
    )
    assert launcher.names == []
    with pytest.raises(ValueError, match="schedule: expected 'levels' or 'diagonals', got 'raster'"):
        driver.code_wavefront(launcher, src_y, src_c, rec_y, rec_c, mask, 26, want, schedule="raster")  # type: ignore[arg-type]


@pytest.mark.parametrize("qp", [22, 45])
def test_diagonal_schedule_equals_the_model(qp: int):
    rng = np.random.default_rng(qp)
    src_y, src_c, rec_y, rec_c, mask = wavefront_inputs(rng, 120, 90, 0.6)
    rows, cols = mask.shape
    mbs = random_macroblocks(rng, rows, cols)
    want = MacroblockArrays(**{n: getattr(mbs, n).copy() for n in MacroblockArrays.__slots__})
    want_y, want_c = rec_y.copy(), rec_c.copy()
    model.code_wavefront(src_y, src_c, want_y, want_c, mask, qp, want)
    driver.code_wavefront(CpuLauncher(), src_y, src_c, rec_y, rec_c, mask, qp, mbs, schedule="diagonals")
    assert_macroblocks_equal(mbs, want)
    np.testing.assert_array_equal(rec_y, want_y)
    np.testing.assert_array_equal(rec_c, want_c)


def test_an_i_pictures_schedule_is_uploaded_once_per_device_and_size():
    # The diagonal order and all-ones mask are made once per (device, rows, cols) and shared
    # (read-only) by every I picture of that size; a picture coded with them is the model's.
    y, c = picture("scene", 64, 48, index=2)
    mb_lists: list[object] = []

    class Recording(CpuLauncher):
        def launch(self, name: str, grid: tuple[int, int, int], block: tuple[int, int, int], *args: object) -> None:
            if name == "intra_cbp":
                mb_lists.append(args[0])
            super().launch(name, grid, block, *args)

    for _ in range(2):
        check_i_picture(y, c, 26)  # through CpuLauncher: has no device, keyed None
        driver.code_i_picture(Recording(), y, c, 26)
    assert len(mb_lists) == 2 and mb_lists[0] is mb_lists[1]
    order, _, every = driver._device_diagonals(np, None, 3, 4)
    assert order is mb_lists[0]
    assert not order.flags.writeable and not every.flags.writeable
    assert every.dtype == np.uint8 and every.shape == (3, 4) and every.all()
