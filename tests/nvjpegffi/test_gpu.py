"""nvjpegffi on a real GPU (``-m gpu``): real nvJPEG, CuPy arrays, Pillow decodes.

Skips with the reason where there is no CUDA device, no CuPy or no libnvjpeg.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import nvjpegffi
from rfb.benchmark import patterns
from rfb.benchmark.metrics import psnr
from tests.gpu import require_whole_device

pytestmark = pytest.mark.gpu

W, H = 320, 240
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cp() -> Iterator[Any]:
    from tests.gpu import require_cupy

    cupy = require_cupy()
    nvjpegffi.reset_library()
    result = nvjpegffi.probe()
    if not result.available:
        pytest.skip(f"nvJPEG cannot run here: {result.reason}")
    yield cupy


def decode(data: bytes, mode: str = "RGB") -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        return np.asarray(img.convert(mode))


def test_rgb_from_device_memory(cp: Any) -> None:
    src = patterns.scene(W, H, 1)
    device = cp.asarray(src)
    with nvjpegffi.JpegEncoder(W, H, quality=90) as enc:
        data = enc.encode_rgb(device.data.ptr, device.strides[0])
        assert enc._buffer is not None and enc._buffer.pinned  # the JPEG lands in page-locked memory
        bgr = enc.encode_rgb(cp.ascontiguousarray(device[..., ::-1]).data.ptr, W * 3, order="bgr")
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    assert psnr(src, decode(data)) > 30.0
    assert bgr == data  # the same pixels in the other byte order


def test_nv12_and_subsamplings(cp: Any) -> None:
    from rfb.gpu import rgb_to_nv12

    src = patterns.scene(W, H, 2)
    device = cp.asarray(src)
    nv12 = rgb_to_nv12(device, matrix="bt601", full_range=True)  # JFIF's own colours
    sizes = {}
    for subsampling in ("420", "444"):
        with nvjpegffi.JpegEncoder(W, H, quality=90, subsampling=subsampling) as enc:
            sizes[subsampling] = len(enc.encode_rgb(device.data.ptr, W * 3))
            if subsampling == "444":
                from_nv12 = enc.encode_nv12(nv12.data.ptr, nv12.strides[0])
    assert sizes["420"] < sizes["444"]
    with Image.open(io.BytesIO(from_nv12)) as img:
        assert img.size == (W, H) and img.mode == "RGB"
    assert psnr(src, decode(from_nv12)) > 30.0


def test_on_a_stream_of_the_callers(cp: Any) -> None:
    src = patterns.gradient(W, H, 3)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        device = cp.asarray(src) + 0  # written on that stream
    with nvjpegffi.JpegEncoder(W, H, stream=stream.ptr) as enc:
        assert psnr(src, decode(enc.encode_rgb(device.data.ptr, W * 3))) > 30.0


def test_a_fault_on_the_gpu_is_an_error_naming_it(cp: Any) -> None:
    """In a child process: a fault poisons the CUDA context for the rest of the process."""
    code = (
        "import nvjpegffi\n"
        "enc = nvjpegffi.JpegEncoder(320, 240)\n"
        "try:\n"
        "    enc.encode_rgb(8, 960)\n"  # an address that is no allocation
        "except (nvjpegffi.NvjpegError, nvjpegffi.CudaError) as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kind, _, message = proc.stdout.strip().partition(" ")
    assert kind in ("CudaError", "ExecutionFailedError", "InvalidParameterError", "InternalError"), proc.stdout
    assert "CUDA_ERROR_" in message or "NVJPEG_STATUS_" in message, message


def test_closing_frees_gpu_memory(cp: Any) -> None:
    require_whole_device()
    src = cp.asarray(patterns.scene(1920, 1080, 4))
    with nvjpegffi.JpegEncoder(1920, 1080) as enc:  # nvJPEG's kernels are loaded on first use, once
        enc.encode_rgb(src.data.ptr, 1920 * 3)
    cp.cuda.Device().synchronize()
    free_before, _ = cp.cuda.runtime.memGetInfo()
    for _ in range(3):
        with nvjpegffi.JpegEncoder(1920, 1080) as enc:
            enc.encode_rgb(src.data.ptr, 1920 * 3)
    cp.cuda.Device().synchronize()
    free_after, _ = cp.cuda.runtime.memGetInfo()
    assert free_before - free_after < 4 * 1024 * 1024


@pytest.mark.parametrize("wait", ["event", "event-blocking"])
def test_an_event_wait_gives_the_same_jpeg_as_the_stream_sync(cp: Any, wait: str) -> None:
    src = cp.asarray(patterns.scene(W, H, 6))
    stream = cp.cuda.Stream(non_blocking=True)
    with nvjpegffi.JpegEncoder(W, H) as plain, nvjpegffi.JpegEncoder(W, H, wait=wait) as evented:
        expected = plain.encode_rgb(src.data.ptr, W * 3)
        assert evented.encode_rgb(src.data.ptr, W * 3) == expected
        assert evented.encode_rgb(src.data.ptr, W * 3, stream=stream.ptr) == expected


def test_grey_jpegs_from_rgb(cp: Any) -> None:
    src = patterns.scene(W, H, 5)
    device = cp.asarray(src)
    with nvjpegffi.JpegEncoder(W, H, quality=90, subsampling="gray") as enc:
        data = enc.encode_rgb(device.data.ptr, W * 3)
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "L" and img.size == (W, H)
    luma = np.asarray(Image.fromarray(src).convert("L"))  # Pillow's BT.601 luma, as JFIF's
    assert psnr(luma, decode(data, "L")) > 30.0
