"""Deterministic test pictures, made with NumPy only, for the benchmark and the tests.

Encoders behave very differently on different content, so every figure names its
pattern:

- ``gradient``: smooth colour ramps that drift a little each frame (easy content,
  shows banding and colour errors).
- ``scene``: what a scientific viewer shows: a shaded background, filled shapes with
  hard edges, thin lines and rows of text-like glyphs, with a few shapes moving so
  that motion search has work to do.
- ``noise``: uniform random pixels (the worst case: nothing to predict).

The same ``(width, height, index)`` always gives the same pixels, on any machine.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

PATTERNS: tuple[str, ...] = ("gradient", "scene", "noise")

PatternFn = Callable[[int, int, int], np.ndarray]


def gradient(width: int, height: int, index: int = 0) -> np.ndarray:
    """An (H, W, 3) uint8 colour ramp, shifted by ``index`` pixels."""
    x = (np.arange(width, dtype=np.float32) + 2 * index) / max(width - 1, 1)
    y = (np.arange(height, dtype=np.float32) + index) / max(height - 1, 1)
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[..., 0] = (255 * (x[None, :] % 1.0)).astype(np.uint8)
    out[..., 1] = (255 * (y[:, None] % 1.0)).astype(np.uint8)
    out[..., 2] = (255 * (0.5 + 0.5 * np.sin(6.28 * (x[None, :] + y[:, None])))).astype(np.uint8)
    return out


def noise(width: int, height: int, index: int = 0) -> np.ndarray:
    """(H, W, 3) uniform random uint8 pixels, seeded by ``index``."""
    return np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)


@lru_cache(maxsize=4)
def _scene_background(width: int, height: int) -> np.ndarray:
    # Static part of the scene: vignette, plot-like grid, filled shapes, text rows.
    # Cached (read-only) because building it costs more than compositing a frame.
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width / 2, height / 2
    r = np.sqrt(((xx - cx) / width) ** 2 + ((yy - cy) / height) ** 2)
    base = np.clip(200 - 160 * r, 0, 255)
    img = np.stack([base * 0.55, base * 0.6, base * 0.75], axis=-1).astype(np.uint8)
    step = max(16, width // 24)
    img[::step, :, :] = (90, 90, 110)  # grid lines: one pixel, hard edges
    img[:, ::step, :] = (90, 90, 110)
    for _ in range(12):  # filled rectangles and discs in saturated colours
        w, h = int(rng.integers(width // 20 + 1, width // 6 + 2)), int(rng.integers(height // 20 + 1, height // 6 + 2))
        x0, y0 = int(rng.integers(0, max(1, width - w))), int(rng.integers(0, max(1, height - h)))
        colour = rng.integers(0, 256, 3, dtype=np.uint8)
        if rng.random() < 0.5:
            img[y0 : y0 + h, x0 : x0 + w] = colour
        else:
            disc = (xx[y0 : y0 + h, x0 : x0 + w] - x0 - w / 2) ** 2 / (w / 2) ** 2 + (
                yy[y0 : y0 + h, x0 : x0 + w] - y0 - h / 2
            ) ** 2 / (h / 2) ** 2 <= 1
            img[y0 : y0 + h, x0 : x0 + w][disc] = colour
    glyphs = rng.random((64, 7, 5)) < 0.45  # 64 random 5x7 "letters"
    cell_h, cell_w = 12, 6
    rows = max(1, height // (cell_h * 6))
    cols = max(1, (width // 2) // cell_w)
    for row in range(rows):  # a text block in the top-left half
        y0 = 8 + row * cell_h
        if y0 + 7 > height:
            break
        chars = rng.integers(0, 64, cols)
        line = np.concatenate([np.pad(glyphs[c], ((0, 0), (0, 1))) for c in chars], axis=1)
        line = line[:, : width - 8]
        region = img[y0 : y0 + 7, 8 : 8 + line.shape[1]]
        region[line] = (250, 250, 250)
    img.setflags(write=False)
    return img


def scene(width: int, height: int, index: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: the static scene plus three shapes moving with ``index``."""
    img = _scene_background(width, height).copy()
    size = max(4, min(width, height) // 8)
    for k, (colour, vx, vy) in enumerate((((230, 60, 40), 7, 3), ((40, 200, 90), -5, 4), ((60, 90, 240), 4, -6))):
        x0 = (width // 4 * (k + 1) + vx * index) % max(1, width - size)
        y0 = (height // 3 + k * size + vy * index) % max(1, height - size)
        img[y0 : y0 + size, x0 : x0 + size] = colour
        img[y0 + size // 4 : y0 + size // 4 + 2, x0 : x0 + size] = (255, 255, 255)  # a thin stripe
    return img


GENERATORS: dict[str, PatternFn] = {"gradient": gradient, "scene": scene, "noise": noise}


def make(pattern: str, width: int, height: int, index: int = 0) -> np.ndarray:
    """Frame ``index`` of ``pattern`` as an (H, W, 3) uint8 array."""
    try:
        fn = GENERATORS[pattern]
    except KeyError:
        raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}") from None
    return fn(width, height, index)
