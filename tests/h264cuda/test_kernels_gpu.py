"""The h264_cuda kernels built by NVRTC give the same bytes as their CPU build (marker gpu).

The CPU build is what CI compares with the golden model; these tests close the loop
on a GPU: same kernels, same inputs, same outputs, byte for byte.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.gpu import require_cupy

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize(("width", "height"), [(70, 38), (1920, 1080)])
def test_picture_kernels_on_the_gpu_equal_their_cpu_build(width: int, height: int):
    cp = require_cupy()
    from rfb.h264cuda.kernels.cuda import CudaLauncher

    launch = CudaLauncher().launch

    rng = np.random.default_rng(1)
    pitch = -(-width // 256) * 256
    y = rng.integers(0, 256, (height, pitch), np.uint8)
    uv = rng.integers(0, 256, (height // 2, pitch), np.uint8)
    rows, cols = -(-height // 16) * 16, -(-width // 16) * 16
    out_y = cp.zeros(rows * cols, cp.uint8)
    out_c = cp.zeros(rows * cols // 2, cp.uint8)
    launch(
        "pad_luma", (-(-rows * cols // 256), 1, 1), (256, 1, 1), cp.asarray(y), pitch, width, height, out_y, cols, rows
    )
    n = rows * cols // 4
    launch("pad_chroma", (-(-n // 256), 1, 1), (256, 1, 1), cp.asarray(uv), pitch, width, height, out_c, cols, rows)
    from rfb.h264cuda.model.encoder import _pad

    np.testing.assert_array_equal(cp.asnumpy(out_y).reshape(rows, cols), _pad(y[:, :width], rows, cols))
    v = uv[:, :width]
    want_c = np.stack([_pad(v[:, 0::2], rows // 2, cols // 2), _pad(v[:, 1::2], rows // 2, cols // 2)])
    np.testing.assert_array_equal(cp.asnumpy(out_c).reshape(2, rows // 2, cols // 2), want_c)
