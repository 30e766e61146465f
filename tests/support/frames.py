"""Frames for the tests of the NVENC binding and routes, and decoding what came out.

Without a GPU, the NVENC emulator reads frames from host memory; these helpers hand it
NumPy arrays presented through ``__cuda_array_interface__`` with the host pointer
(:class:`HostCudaArray`). :func:`decode` turns access units back into planes with
FFmpeg's H.264 decoder (PyAV), one packet per access unit, as a browser gets them;
:func:`assert_h264_quality` holds a decoded stream to what 4:2:0 allows.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np

from rfb.benchmark.metrics import psnr
from rfb.colorspace import nv12_to_rgb_host, rgb_to_nv12_host
from rfb.frames import RawFrame
from rfb.gpu.arrays import cuda_frame


class HostCudaArray:
    """A host NumPy array presented through ``__cuda_array_interface__`` (v3).

    Only the emulator, which reads host memory when there is no CUDA, accepts these.
    Keeps the array alive as long as the wrapper is.
    """

    def __init__(self, array: np.ndarray, *, strides: tuple[int, ...] | None = None) -> None:
        self.array = array
        if strides is None and not array.flags.c_contiguous:
            strides = array.strides
        self.__cuda_array_interface__ = {
            "shape": array.shape,
            "typestr": array.dtype.str,
            "data": (array.ctypes.data, False),
            "strides": strides,
            "version": 3,
            "stream": None,
        }

    @property
    def pointer(self) -> int:
        return self.array.ctypes.data


def nv12_frame(
    width: int, height: int, *, pitch: int | None = None, seed: int = 0
) -> tuple[HostCudaArray, np.ndarray, np.ndarray]:
    """A random NV12 frame in one (H + H/2, pitch) allocation viewed as (H + H/2, W).

    Returns (the frame, its Y plane (H, W), its interleaved UV plane (H/2, W)).
    """
    pitch = width if pitch is None else pitch
    rng = np.random.default_rng(seed)
    storage = rng.integers(0, 256, size=(height * 3 // 2, pitch), dtype=np.uint8)
    view = storage[:, :width]
    frame = HostCudaArray(view)
    frame.storage = storage  # type: ignore[attr-defined]
    return frame, view[:height].copy(), view[height:].copy()


def rgba_frame(width: int, height: int, *, pitch: int | None = None, seed: int = 0) -> tuple[HostCudaArray, np.ndarray]:
    """A smooth RGBA8 frame (H, W, 4), optionally with a row pitch in bytes; and its RGB."""
    pitch = width * 4 if pitch is None else pitch
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack(
        [(x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1), ((x + y + seed * 16) * 3) % 256], axis=-1
    ).astype(np.uint8)
    storage = np.zeros((height, pitch), dtype=np.uint8)
    view = storage.view(np.uint8)[:, : width * 4].reshape(height, width, 4)
    view[..., :3] = rgb
    view[..., 3] = 255
    frame = HostCudaArray(view)
    frame.storage = storage  # type: ignore[attr-defined]
    return frame, view[..., :3].copy()


def decode(units: list[bytes]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Decode a stream of access units; each frame as its (Y, U, V) planes."""
    codec = av.CodecContext.create("h264", "r")
    frames = []
    for unit in units:  # one access unit, one packet: as a browser's decoder gets them
        frames.extend(codec.decode(av.Packet(unit)))
    frames.extend(codec.decode(None))
    return [tuple(_plane(p) for p in f.planes) for f in frames]  # type: ignore[misc]


def _plane(plane: Any) -> np.ndarray:
    rows = np.frombuffer(bytes(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def layout_of(rgb: np.ndarray, layout: str) -> np.ndarray:
    """An (H, W, 3) image as the host array of a frame ``layout``: rgb24, rgba8 (opaque) or nv12 (BT.709 limited)."""
    from rfb.colorspace import rgb_to_nv12

    if layout == "rgb24":
        return rgb
    if layout == "rgba8":
        return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    if layout == "nv12":
        return rgb_to_nv12(rgb)
    raise ValueError(f"layout must be 'rgb24', 'rgba8' or 'nv12', got {layout!r}")


def assert_stream_decodes(payloads: list[Any], sources: list[np.ndarray], *, idr_at: tuple[int, ...]) -> None:
    """One access unit per source, IDRs exactly at ``idr_at``, the codec string from the SPS,
    and every picture decoded back close to its source (PSNR > 28 dB: 4:2:0 costs about that)."""
    from rfb.benchmark.metrics import H264Decoder, psnr
    from rfb.encoders import h264

    assert [p.keyframe for p in payloads] == [i in idr_at for i in range(len(sources))]
    assert payloads[0].codec == h264.codec_string(payloads[0].data)
    with H264Decoder() as decoder:
        decoded = decoder.decode_all(p.data for p in payloads)
    assert len(decoded) == len(sources)
    assert all(psnr(s, d) > 28.0 for s, d in zip(sources, decoded, strict=True))


def assert_h264_quality(sources: list[np.ndarray], decoded: list[np.ndarray]) -> None:
    """The stream is as good as 4:2:0 allows: H.264 at this bitrate adds little to its loss.

    4:2:0 itself caps the PSNR of colourful content near 30 dB, whoever converts; so
    the decoded picture is held to the NV12 round trip of the source (BT.709 limited,
    the routes' convention), and to within 1 dB of that ceiling against the source.
    """
    assert len(decoded) == len(sources)
    for src, dec in zip(sources, decoded, strict=True):
        four20 = nv12_to_rgb_host(rgb_to_nv12_host(src))
        assert psnr(four20, dec) > 40.0
        assert psnr(src, dec) > psnr(src, four20) - 1.0


def padded_device_frame(cp: Any, host: np.ndarray, pad: int = 24) -> RawFrame:
    """A cuda frame of ``host`` whose rows are ``pad`` pixels longer than the image."""
    h, w, c = host.shape
    wide = cp.zeros((h, w + pad, c), dtype=cp.uint8)
    wide[:, :w] = cp.asarray(host)
    return cuda_frame(wide[:, :w])
