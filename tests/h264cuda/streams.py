"""Encoding test streams with the golden model and decoding them with FFmpeg (PyAV)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rfb.benchmark.patterns import make
from rfb.colorspace import rgb_to_nv12
from rfb.h264cuda.model.encoder import ModelEncoder, PictureInfo
from tests.support.frames import decode


@dataclass
class Stream:
    units: list[bytes]
    recons: list[tuple[np.ndarray, np.ndarray]]  # (Y, interleaved UV) per picture
    infos: list[PictureInfo]
    sources: list[np.ndarray]  # NV12 (H * 3/2, W)


def nv12_pictures(pattern: str, width: int, height: int, count: int) -> list[np.ndarray]:
    return [rgb_to_nv12(make(pattern, width, height, i)) for i in range(count)]


def encode(
    pictures: Sequence[np.ndarray],
    width: int,
    height: int,
    *,
    idr_at: Sequence[int] = (),
    fps: int = 30,
    bitrate: int = 2_000_000,
    **kwargs: object,
) -> Stream:
    enc = ModelEncoder(width, height, fps, bitrate, **kwargs)  # type: ignore[arg-type]
    stream = Stream([], [], [], list(pictures))
    for i, nv12 in enumerate(pictures):
        stream.units.append(enc.encode(nv12[:height], nv12[height:], force_idr=i in idr_at))
        stream.recons.append(enc.reconstruction)
        assert enc.last is not None
        stream.infos.append(enc.last)
    return stream


def assert_decodes_to_reconstruction(stream: Stream) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """FFmpeg's pictures equal the encoder's reconstruction, every plane, every picture."""
    decoded = decode(stream.units)
    assert len(decoded) == len(stream.units)
    for i, ((y, u, v), (ry, ruv)) in enumerate(zip(decoded, stream.recons, strict=True)):
        assert np.array_equal(y, ry), f"picture {i}: luma differs at {np.argwhere(y != ry)[:4].tolist()}"
        assert np.array_equal(u, ruv[:, 0::2]), f"picture {i}: Cb differs"
        assert np.array_equal(v, ruv[:, 1::2]), f"picture {i}: Cr differs"
    return decoded


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)
