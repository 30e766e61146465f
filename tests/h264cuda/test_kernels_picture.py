"""The picture kernels on the CPU, against the model's padding and chroma split."""

from __future__ import annotations

import numpy as np
import pytest

from rfb.h264cuda.kernels import signatures
from rfb.h264cuda.model.encoder import _pad
from tests.support import kernels_cpu


def padded(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pitch = width + 13  # a pitch wider than the row, as device frames have
    y = rng.integers(0, 256, (height, pitch), np.uint8)
    uv = rng.integers(0, 256, (height // 2, pitch), np.uint8)
    rows, cols = -(-height // 16) * 16, -(-width // 16) * 16
    out_y = np.full(rows * cols, 7, np.uint8)
    out_c = np.full(rows * cols // 2, 7, np.uint8)
    kernels_cpu.launch(
        "pad_luma", (-(-rows * cols // 64), 1, 1), (64, 1, 1), y, pitch, width, height, out_y, cols, rows
    )
    n = rows * cols // 4
    kernels_cpu.launch("pad_chroma", (-(-n // 64), 1, 1), (64, 1, 1), uv, pitch, width, height, out_c, cols, rows)
    want_y = _pad(y[:, :width], rows, cols)
    v = uv[:, :width]
    want_c = np.stack([_pad(v[:, 0::2], rows // 2, cols // 2), _pad(v[:, 1::2], rows // 2, cols // 2)])
    return out_y.reshape(rows, cols), want_y, out_c.reshape(2, rows // 2, cols // 2), want_c


@pytest.mark.parametrize(("width", "height"), [(64, 48), (70, 38), (146, 50)])
def test_padding_and_chroma_split_equal_the_model(width: int, height: int):
    got_y, want_y, got_c, want_c = padded(width, height, seed=width)
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_array_equal(got_c, want_c)


def test_declarations_name_every_parameter_type():
    pad = signatures()["pad_luma"]
    assert [p.scalar for p in pad.params] == [None, "i32", "i32", "i32", None, "i32", "i32"]
    assert pad.c_declaration.startswith("void pad_luma(const u8 *y, i32 pitch")


def test_a_wrong_argument_count_is_refused_before_running():
    with pytest.raises(TypeError, match="takes 7 arguments, got 1"):
        kernels_cpu.launch("pad_luma", (1, 1, 1), (1, 1, 1), np.zeros(1, np.uint8))
