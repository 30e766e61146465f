"""Pictures and comparisons shared by the intra kernel tests (CPU and GPU)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rfb.benchmark.patterns import make
from rfb.colorspace import rgb_to_nv12
from rfb.h264cuda.model.encoder import _pad
from rfb.h264cuda.model.picture import MacroblockArrays


def picture(pattern: str, width: int, height: int, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Luma (H, W) and chroma (2, H/2, W/2) of a test pattern, padded to whole macroblocks as the encoder pads."""
    nv12 = rgb_to_nv12(make(pattern, width, height, index))
    y, uv = nv12[:height], nv12[height:]
    rows, cols = -(-height // 16) * 16, -(-width // 16) * 16
    c = np.stack([_pad(uv[:, 0::2], rows // 2, cols // 2), _pad(uv[:, 1::2], rows // 2, cols // 2)])
    return _pad(y, rows, cols), c


def flat(width: int, height: int, value: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((height, width), value, np.uint8), np.full((2, height // 2, width // 2), 255 - value, np.uint8)


def assert_macroblocks_equal(got: MacroblockArrays, want: MacroblockArrays, host: Any = np.asarray) -> None:
    """Every field equal, named in the failure; ``host`` brings a device array to NumPy."""
    for name in MacroblockArrays.__slots__:
        g, w = host(getattr(got, name)), getattr(want, name)
        assert g.dtype == np.int32, f"{name}: expected int32, got {g.dtype}"
        assert g.shape == w.shape, f"{name}: expected shape {w.shape}, got {g.shape}"
        differ = np.argwhere(g != w)
        if differ.size:
            at = tuple(differ[0])
            raise AssertionError(f"{name} differs at {differ[:4].tolist()}: got {g[at]}, want {w[at]}")


def random_macroblocks(rng: np.random.Generator, rows: int, cols: int) -> MacroblockArrays:
    """Macroblocks as a P picture leaves them before its intra wavefront: inter decisions and levels."""
    mbs = MacroblockArrays.empty(rows, cols)
    for name in MacroblockArrays.__slots__:
        a = getattr(mbs, name)
        a[...] = rng.integers(-20, 20, a.shape, np.int32)
    mbs.kind[...] = rng.integers(0, 2, (rows, cols))
    return mbs
