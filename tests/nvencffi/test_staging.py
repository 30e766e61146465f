"""Frames NVENC must not read where they are go through the encoder's own buffer.

The emulator, like a real driver, refuses to register stream-ordered pool memory, other
devices' and other contexts' memory, and pitches that are not a multiple of 4; a pitch
that is not a multiple of 16 faults inside it and poisons the session. The binding copies
such frames (pitch not a multiple of 256, pool memory, another context's) into a
256-byte-pitch buffer it allocates, and refuses another device's frames in plain words.
What a test frame's memory "is" is told to the emulator (``describe_frame``), CI's
stand-in for cuPointerGetAttributes; the encoder asks through ``emulated_context``.
"""

from __future__ import annotations

import numpy as np
import pytest

import nvencffi
from nvencffi.frames import ABGR, NV12
from nvencffi.staging import StagingBuffer, aligned_pitch, frame_geometry
from rfb.colorspace import rgb_to_nv12
from tests.support.frames import decode, nv12_frame, rgba_frame
from tests.support.nvenc_fixtures import assert_released, describe_frame


def assert_nv12_decodes(units, frames, width, height) -> None:
    decoded = decode(units)
    assert len(decoded) == len(frames)
    for (_, y_in, uv_in), (y, u, v) in zip(frames, decoded, strict=True):
        assert y.shape == (height, width)
        np.testing.assert_array_equal(y, y_in)
        np.testing.assert_array_equal(u, uv_in[:, 0::2])
        np.testing.assert_array_equal(v, uv_in[:, 1::2])


@pytest.mark.parametrize(("width", "height", "pitch"), [(1366, 768, None), (852, 480, None), (320, 240, 336)])
def test_an_unaligned_nv12_pitch_is_staged_and_decodes_exactly(
    emulator, emulated_context, width, height, pitch
) -> None:
    frames = [nv12_frame(width, height, pitch=pitch, seed=seed) for seed in range(3)]
    for frame, _, _ in frames:
        describe_frame(emulator, frame)
    with nvencffi.NvencEncoder(width, height, context=emulated_context) as enc:
        units = [enc.encode(frame) for frame, _, _ in frames]
        stats = enc.registration_stats
        assert (stats["staged"], stats["staged_pitch"], stats["cached"]) == (3, 3, 0)
        assert enc.registrations == []  # the callers' pointers were never registered
        assert emulator.ledger()["registered"] == 1  # the staging buffer, once
    assert_nv12_decodes(units, frames, width, height)
    assert_released(emulator)


def test_an_unaligned_rgba_pitch_is_staged(emulator, emulated_context) -> None:
    frame, rgb = rgba_frame(852, 480)  # pitch 3408: a multiple of 16, not of 256
    describe_frame(emulator, frame)
    with nvencffi.NvencEncoder(852, 480, context=emulated_context) as enc:
        unit = enc.encode(frame)
        assert enc.registration_stats["staged_pitch"] == 1
    ((y, u, _),) = decode([unit])
    expected = rgb_to_nv12(rgb)
    assert np.abs(y.astype(int) - expected[:480]).max() <= 2
    assert np.abs(u.astype(int) - expected[480:, 0::2]).max() <= 3
    assert_released(emulator)


def test_an_aligned_frame_is_registered_in_place(emulator, emulated_context) -> None:
    nv12, _, _ = nv12_frame(1280, 720)  # pitch 1280 = 5 x 256
    rgba, _ = rgba_frame(320, 240)  # pitch 1280
    for frame in (nv12, rgba):
        describe_frame(emulator, frame)
    with nvencffi.NvencEncoder(1280, 720, context=emulated_context, max_width=1280, max_height=720) as enc:
        enc.encode(nv12)
        enc.reconfigure(width=320, height=240)
        enc.encode(rgba)
        assert [key[0] for key in enc.registrations] == [nv12.pointer, rgba.pointer]
        assert enc.registration_stats["staged"] == 0
    assert_released(emulator)


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"mempool": True}, "mempool"),  # CuPy MemoryAsyncPool, torch cudaMallocAsync, RMM async
        ({"context": 0x5000}, "context"),  # another CUDA context on this device
    ],
)
def test_memory_nvenc_cannot_register_is_staged(emulator, emulated_context, attributes, reason) -> None:
    frames = [nv12_frame(1280, 720, seed=seed) for seed in range(2)]  # aligned: only the memory is wrong
    for frame, _, _ in frames:
        describe_frame(emulator, frame, **attributes)
    with nvencffi.NvencEncoder(1280, 720, context=emulated_context) as enc:
        units = [enc.encode(frame) for frame, _, _ in frames]
        stats = enc.registration_stats
        assert (stats["staged"], stats[f"staged_{reason}"], stats["cached"]) == (2, 2, 0)
    assert_nv12_decodes(units, frames, 1280, 720)
    assert emulator.ledger()["errors"] == 0  # never offered to nvEncRegisterResource
    assert_released(emulator)


def test_a_frame_on_another_device_is_refused_naming_both(emulator, emulated_context) -> None:
    frame, _, _ = nv12_frame(1280, 720)
    describe_frame(emulator, frame, device=1)
    with nvencffi.NvencEncoder(1280, 720, context=emulated_context) as enc:
        assert enc.device == 0
        with pytest.raises(nvencffi.FrameDeviceError) as info:
            enc.encode(frame)
        assert "runs on CUDA device 0" in str(info.value) and "lives on device 1" in str(info.value)
        assert isinstance(info.value, nvencffi.FrameLayoutError)
        assert emulator.ledger()["registered"] == 0
    assert_released(emulator)


def test_host_memory_is_refused(emulator, emulated_context) -> None:
    frame, _, _ = nv12_frame(1280, 720)
    describe_frame(emulator, frame, kind="host")
    with nvencffi.NvencEncoder(1280, 720, context=emulated_context) as enc:
        with pytest.raises(nvencffi.FrameLayoutError, match="is host memory, not CUDA device memory"):
            enc.encode(frame)
    assert_released(emulator)


def test_the_staging_buffer_follows_the_size_and_is_freed(emulator, emulated_context) -> None:
    small, *_ = nv12_frame(320, 240)
    big, *_ = nv12_frame(852, 480)
    with nvencffi.NvencEncoder(320, 240, context=emulated_context, max_width=852, max_height=480) as enc:
        enc.encode(small)
        assert emulated_context.allocations == 1
        enc.reconfigure(width=852, height=480)
        enc.encode(big)
        assert emulated_context.allocations == 1  # the 320x240 one was given back
        assert emulator.ledger()["registered"] == 1
    assert emulated_context.allocations == 0
    assert_released(emulator)


def test_a_failure_while_staging_leaks_nothing(emulator, emulated_context) -> None:
    frame, *_ = nv12_frame(1366, 768)
    emulator.inject_fault("nvEncRegisterResource", "NV_ENC_ERR_OUT_OF_MEMORY")
    with nvencffi.NvencEncoder(1366, 768, context=emulated_context) as enc:
        with pytest.raises(nvencffi.errors.OutOfMemoryError):
            enc.encode(frame)
        assert emulated_context.allocations == 0  # the buffer it could not register is freed
        enc.encode(frame)  # and the next frame goes through
    assert_released(emulator)


@pytest.mark.parametrize(
    ("width", "height", "fmt", "row_bytes", "rows", "pitch"),
    [
        (1366, 768, NV12, 1366, 1152, 1536),
        (852, 480, ABGR, 3408, 480, 3584),
        (1280, 720, NV12, 1280, 1080, 1280),
    ],
)
def test_staging_buffers_have_256_byte_pitches(width, height, fmt, row_bytes, rows, pitch) -> None:
    assert frame_geometry(width, height, fmt) == (row_bytes, rows)
    assert aligned_pitch(row_bytes) == pitch
    context = nvencffi.NullContext()
    buffer = StagingBuffer(context, width, height, fmt)
    try:
        assert (buffer.pitch, buffer.pointer % 256) == (pitch, 0)
        cai = buffer.__cuda_array_interface__
        assert cai["strides"][0] == pitch and cai["data"][0] == buffer.pointer
    finally:
        buffer.free()
        buffer.free()  # idempotent
    assert context.allocations == 0
