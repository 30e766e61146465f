"""Reading frames: __cuda_array_interface__ and DLPack, the accepted layouts, the refusals.

The DLPack producer (tests/support/dlpack.py) is written with ctypes from dlpack.h's
layout, independently of the declarations the parser uses, and hands the emulator host
memory flagged as CUDA memory (the emulator reads host memory when there is no CUDA):
so the DLPack path is exercised end to end, down to pixel-exact decoding.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nvencffi
from nvencffi.frames import ABGR, NV12, FrameLayoutError, parse_frame
from tests.nvencffi.conftest import HostCudaArray, nv12_frame
from tests.nvencffi.test_encoder import decode
from tests.support.dlpack import KDL_CPU, KDL_FLOAT, FakeDLPack


def test_cai_nv12_with_a_pitch() -> None:
    frame, _, _ = nv12_frame(50, 36, pitch=64)
    view = parse_frame(frame)
    assert (view.width, view.height, view.pitch, view.buffer_format) == (50, 36, 64, NV12)
    assert view.pointer == frame.pointer
    assert view.key == (frame.pointer, 64, 50, 36, NV12)


def test_cai_rgba_with_a_pitch() -> None:
    storage = np.zeros((30, 256), np.uint8)
    rgba = storage[:, :160].reshape(30, 40, 4)
    view = parse_frame(HostCudaArray(rgba, strides=(256, 4, 1)))
    assert (view.width, view.height, view.pitch, view.buffer_format) == (40, 30, 256, ABGR)


def test_dlpack_nv12_decodes_back_pixel_exact(emulator) -> None:
    storage = np.random.default_rng(5).integers(0, 256, (72, 80), dtype=np.uint8)
    producer = FakeDLPack.over(storage[:, :64], strides=(80, 1), byte_offset=16)
    view = parse_frame(producer)
    assert (view.width, view.height, view.pitch, view.pointer) == (64, 48, 80, storage.ctypes.data)
    with nvencffi.NvencEncoder(64, 48, context=nvencffi.NullContext()) as enc:
        unit = enc.encode(producer)
    (y, u, v), = decode([unit])
    np.testing.assert_array_equal(y, storage[:48, :64])
    np.testing.assert_array_equal(u, storage[48:, 0:64:2])
    np.testing.assert_array_equal(v, storage[48:, 1:64:2])
    assert producer.calls == [{}, {}]  # no stream asked for: none was given to the encoder


@pytest.mark.parametrize(
    ("producer", "message"),
    [
        (lambda: FakeDLPack.over(np.zeros((72, 64), np.uint8), device_type=KDL_CPU), "not in CUDA device memory"),
        (lambda: FakeDLPack.over(np.zeros((72, 64), np.uint8), dtype=(KDL_FLOAT, 32)), "code=2, bits=32"),
        (lambda: FakeDLPack.over(np.zeros((48, 64, 3), np.uint8)), r"shape=\(48, 64, 3\)"),
    ],
)
def test_dlpack_refusals_say_what_arrived(producer, message) -> None:
    with pytest.raises(FrameLayoutError, match=message):
        parse_frame(producer())


@pytest.mark.parametrize(
    ("array", "strides", "message"),
    [
        (np.zeros((72, 66), np.uint8), None, "not a multiple of 4"),
        (np.zeros((73, 64), np.uint8), None, "not H \\+ H/2"),
        (np.zeros((72, 64), np.uint16), None, "dtype=<u2"),
        (np.zeros((48, 64, 4), np.uint8), (256, 1, 64), "packed"),
        (np.zeros((72, 64), np.uint8), (64, 2), "contiguous bytes"),
        (np.zeros((36, 62, 4), np.uint8)[:, :61], None, "not even"),
        (np.zeros((72, 64), np.uint8), (32, 1), "smaller than a row"),
    ],
)
def test_layouts_nvenc_cannot_take_are_refused(array, strides, message) -> None:
    with pytest.raises(FrameLayoutError, match=message) as info:
        parse_frame(HostCudaArray(array, strides=strides))
    assert "expected a CUDA array" in str(info.value)  # always names the expected layouts


def test_a_host_array_is_refused_naming_its_device() -> None:
    with pytest.raises(FrameLayoutError, match="device=cpu"):
        parse_frame(np.zeros((72, 64), np.uint8))
    with pytest.raises(FrameLayoutError, match="not a CUDA array .*list"):
        parse_frame([[0]])


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 200).map(lambda w: w * 2),
    height=st.integers(1, 200).map(lambda h: h * 2),
    extra=st.integers(0, 64),
    rgba=st.booleans(),
)
def test_any_even_size_and_aligned_pitch_parses(width: int, height: int, extra: int, rgba: bool) -> None:
    row = width * 4 if rgba else width
    pitch = (row + extra + 3) // 4 * 4
    rows = height if rgba else height * 3 // 2
    storage = np.zeros((rows, pitch), np.uint8)
    array = storage[:, :row].reshape(height, width, 4) if rgba else storage[:, :row]
    strides = (pitch, 4, 1) if rgba else (pitch, 1)
    view = parse_frame(HostCudaArray(array, strides=strides))
    assert (view.width, view.height, view.pitch) == (width, height, pitch)
    assert view.buffer_format == (ABGR if rgba else NV12)
