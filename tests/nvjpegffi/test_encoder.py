"""JpegEncoder against the nvJPEG emulator: what it hands nvJPEG, what it keeps, what it frees.

The emulator reads the pixels through the pointers and pitches it is given (host memory
standing in for device memory, with a ``NullContext``) and writes them back with a
header of what it was asked, so each test checks byte for byte that the binding passed
the caller's own memory, the right layout, settings and stream; its ledger proves that
every handle, state and parameter set is destroyed.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import nvjpegffi
from nvjpegffi import errors
from nvjpegffi._ffi import ffi
from tests.nvjpegffi.emulator import Emulator, parse

W, H = 64, 48
NONE_LIVE = {"handles": 0, "states": 0, "params": 0}
RGBI, BGRI, NV12 = (
    ffi.typeof("nvjpegInputFormat_t").relements[n]
    for n in ("NVJPEG_INPUT_RGBI", "NVJPEG_INPUT_BGRI", "NVJPEG_INPUT_NV12")
)
CSS = ffi.typeof("nvjpegChromaSubsampling_t").relements
BASELINE = ffi.typeof("nvjpegJpegEncoding_t").relements["NVJPEG_ENCODING_BASELINE_DCT"]


def rgb(width: int = W, height: int = H, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encoder(emulator: Emulator, width: int = W, height: int = H, **options) -> nvjpegffi.JpegEncoder:
    return nvjpegffi.JpegEncoder(width, height, context=nvjpegffi.NullContext(), **options)


def test_rgb_is_read_where_it_is_with_the_settings_asked_for(emulator: Emulator) -> None:
    image = rgb()
    with encoder(emulator, quality=77, subsampling="444", optimized_huffman=True) as enc:
        out = parse(enc.encode_rgb(image.ctypes.data, image.strides[0]))
        assert enc.frames_encoded == 1
    assert (out.width, out.height, out.input_format, out.input_subsampling) == (W, H, RGBI, -2)  # nvjpegEncodeImage
    assert (out.params_subsampling, out.quality, out.optimized, out.encoding) == (
        CSS["NVJPEG_CSS_444"],
        77,
        1,
        BASELINE,
    )
    assert out.pitches == (W * 3, 0) and out.stream == 0
    np.testing.assert_array_equal(out.planes[0], image)
    assert emulator.live() == NONE_LIVE and emulator.count("created") == 1


def test_defaults_are_quality_90_and_4_2_0(emulator: Emulator) -> None:
    image = rgb()
    with encoder(emulator) as enc:
        out = parse(enc.encode_rgb(image.ctypes.data, image.strides[0]))
    assert (out.quality, out.params_subsampling, out.optimized) == (90, CSS["NVJPEG_CSS_420"], 0)


@pytest.mark.parametrize("wait", ["event", "event-blocking"])
def test_an_event_wait_gives_the_same_jpeg_as_the_stream_sync(emulator: Emulator, wait: str) -> None:
    image = rgb(seed=3)
    with encoder(emulator) as plain, encoder(emulator, wait=wait) as evented:
        assert (plain.wait, evented.wait) == ("stream", wait)
        expected = plain.encode_rgb(image.ctypes.data, image.strides[0])
        for _ in range(3):
            assert evented.encode_rgb(image.ctypes.data, image.strides[0], stream=0) == expected
    assert emulator.live() == NONE_LIVE


def test_a_completion_event_without_cuda_has_nothing_to_wait_for() -> None:
    from nvjpegffi.cuda import CompletionEvent

    event = CompletionEvent(nvjpegffi.NullContext(), blocking=True)
    event.record_and_wait(0)  # no CUDA (the emulator): returns at once, as synchronize_stream does
    event.close()
    event.close()  # idempotent


def test_padded_rows_and_bgr_order(emulator: Emulator) -> None:
    storage = np.zeros((H, W * 3 + 40), np.uint8)
    view = storage[:, : W * 3].reshape(H, W, 3)
    view[...] = rgb(seed=1)
    with encoder(emulator) as enc:
        out = parse(enc.encode_rgb(view.ctypes.data, storage.strides[0], order="bgr"))
    assert out.input_format == BGRI and out.pitches[0] == W * 3 + 40
    np.testing.assert_array_equal(out.planes[0], view)


def test_nv12_one_allocation_and_separate_planes(emulator: Emulator) -> None:
    nv12 = np.random.default_rng(2).integers(0, 256, (H * 3 // 2, W + 16), dtype=np.uint8)  # pitch W + 16
    with encoder(emulator) as enc:
        out = parse(enc.encode_nv12(nv12.ctypes.data, nv12.strides[0]))
        luma, chroma = nv12[:H, :W].copy(), nv12[H:, :W].copy()
        apart = parse(enc.encode_nv12(luma.ctypes.data, W, uv_pointer=chroma.ctypes.data, uv_pitch=W))
    for result in (out, apart):
        assert (result.input_format, result.input_subsampling, result.params_subsampling) == (
            NV12,
            CSS["NVJPEG_CSS_420"],
            CSS["NVJPEG_CSS_420"],
        )
        np.testing.assert_array_equal(result.planes[0], nv12[:H, :W])
        np.testing.assert_array_equal(result.planes[1], nv12[H:, :W])
    assert out.pitches == (W + 16, W + 16) and apart.pitches == (W, W)


def test_nv12_on_a_4_4_4_encoder_uses_its_own_4_2_0_parameters(emulator: Emulator) -> None:
    image, nv12 = rgb(), np.zeros((H * 3 // 2, W), np.uint8)
    with encoder(emulator, subsampling="444", quality=60) as enc:
        assert emulator.count("params") == 1
        a = parse(enc.encode_nv12(nv12.ctypes.data, W))
        assert emulator.count("params") == 2  # made once, on the first NV12 frame
        b = parse(enc.encode_rgb(image.ctypes.data, W * 3))
        enc.encode_nv12(nv12.ctypes.data, W)
        assert emulator.count("params") == 2
    assert (a.params_subsampling, a.quality) == (CSS["NVJPEG_CSS_420"], 60)
    assert (b.params_subsampling, b.quality) == (CSS["NVJPEG_CSS_444"], 60)
    assert emulator.live() == NONE_LIVE


def test_each_call_may_name_its_stream(emulator: Emulator) -> None:
    image = rgb()
    with encoder(emulator, stream=7) as enc:
        assert parse(enc.encode_rgb(image.ctypes.data, W * 3)).stream == 7
        assert parse(enc.encode_rgb(image.ctypes.data, W * 3, stream=0x5EED)).stream == 0x5EED
    with pytest.raises(ValueError, match="stream must be a cudaStream_t"):
        encoder(emulator, stream=-1)


def test_quality_changes_apply_to_every_parameter_set_and_grow_the_buffer(emulator: Emulator) -> None:
    image, nv12 = rgb(), np.zeros((H * 3 // 2, W), np.uint8)
    with encoder(emulator, quality=10) as enc:
        enc.encode_nv12(nv12.ctypes.data, W)
        small = enc.capacity
        enc.set_quality(95)
        assert enc.quality == 95 and enc.capacity > small  # the emulator's bound grows with the quality
        assert parse(enc.encode_rgb(image.ctypes.data, W * 3)).quality == 95
        assert parse(enc.encode_nv12(nv12.ctypes.data, W)).quality == 95
        for bad in (0, 101, 90.0, True, None):
            with pytest.raises(ValueError, match="JPEG quality must be an integer in 1..100"):
                enc.set_quality(bad)
        assert enc.quality == 95


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"quality": 0}, "JPEG quality must be an integer in 1..100, got 0"),
        ({"subsampling": "411"}, "subsampling must be one of"),
        ({"backend": "cpu"}, "backend must be one of"),
        ({"wait": "poll"}, r"wait must be one of \['stream', 'event', 'event-blocking'\], got 'poll'"),
    ],
)
def test_bad_settings_are_refused_before_anything_opens(emulator: Emulator, options, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encoder(emulator, **options)
    assert emulator.count("created") == 0


@pytest.mark.parametrize(("width", "height"), [(0, 48), (64, -2), (64.0, 48), (True, 48)])
def test_bad_sizes_are_refused(emulator: Emulator, width, height) -> None:
    with pytest.raises(ValueError, match="must be a positive integer"):
        nvjpegffi.JpegEncoder(width, height, context=nvjpegffi.NullContext())


def test_bad_pointers_and_pitches_say_what_was_expected(emulator: Emulator) -> None:
    image = rgb()
    with encoder(emulator) as enc:
        with pytest.raises(ValueError, match="pointer must be a non-NULL device address"):
            enc.encode_rgb(0, W * 3)
        with pytest.raises(ValueError, match="pointer must be a non-NULL device address"):
            enc.encode_rgb(image, W * 3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"must be an int of at least 192 bytes for a 64-pixel row, got 191"):
            enc.encode_rgb(image.ctypes.data, W * 3 - 1)
        with pytest.raises(ValueError, match="order must be 'rgb' or 'bgr'"):
            enc.encode_rgb(image.ctypes.data, W * 3, order="rgba")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="the row pitch of uv_pointer must be an int of at least 64 bytes"):
            enc.encode_nv12(image.ctypes.data, W, uv_pointer=image.ctypes.data, uv_pitch=W - 2)
        assert enc.frames_encoded == 0 and emulator.count("encodes") == 0


def test_nv12_needs_even_sizes(emulator: Emulator) -> None:
    image = np.zeros((3, 63, 3), np.uint8)
    with encoder(emulator, 63, 3) as enc:
        with pytest.raises(ValueError, match="NV12 needs an even width and height; this encoder is 63x3"):
            enc.encode_nv12(image.ctypes.data, 64)
        assert parse(enc.encode_rgb(image.ctypes.data, 63 * 3)).width == 63  # odd sizes are fine for RGB


def test_an_nvjpeg_failure_names_the_call_and_status_and_the_encoder_goes_on(emulator: Emulator) -> None:
    image = rgb()
    with encoder(emulator) as enc:
        emulator.inject("nvjpegEncodeImage", errors.NvjpegStatus.NVJPEG_STATUS_EXECUTION_FAILED)
        with pytest.raises(
            errors.ExecutionFailedError, match=r"^nvjpegEncodeImage failed: NVJPEG_STATUS_EXECUTION_FAILED \(6\)$"
        ):
            enc.encode_rgb(image.ctypes.data, W * 3)
        emulator.inject("nvjpegEncodeRetrieveBitstream", errors.NvjpegStatus.NVJPEG_STATUS_INVALID_PARAMETER)
        with pytest.raises(errors.InvalidParameterError, match="nvjpegEncodeRetrieveBitstream"):
            enc.encode_rgb(image.ctypes.data, W * 3)
        np.testing.assert_array_equal(parse(enc.encode_rgb(image.ctypes.data, W * 3)).planes[0], image)
        assert enc.frames_encoded == 1


@pytest.mark.parametrize(
    "function",
    [
        "nvjpegEncoderStateCreate",
        "nvjpegEncoderParamsCreate",
        "nvjpegEncoderParamsSetSamplingFactors",
        "nvjpegEncodeGetBufferSize",
    ],
)
def test_a_failed_start_releases_what_was_made(emulator: Emulator, function: str) -> None:
    emulator.inject(function, errors.NvjpegStatus.NVJPEG_STATUS_ALLOCATOR_FAILURE)
    with pytest.raises(errors.AllocatorFailureError, match=function):
        encoder(emulator)
    assert emulator.count("created") == 1 and emulator.live() == NONE_LIVE


def test_the_hardware_backend_is_refused_where_there_is_no_jpeg_engine(emulator: Emulator) -> None:
    with pytest.raises(errors.ArchMismatchError, match="nvjpegEncoderStateCreateWithBackend"):
        encoder(emulator, backend="hardware")
    with encoder(emulator, backend="gpu"):
        pass
    assert emulator.live() == NONE_LIVE


def test_close_is_idempotent_and_the_encoder_refuses_work_after_it(emulator: Emulator) -> None:
    image = rgb()
    enc = encoder(emulator)
    enc.encode_rgb(image.ctypes.data, W * 3)
    enc.close()
    enc.close()
    assert enc.closed and emulator.live() == NONE_LIVE
    with pytest.raises(RuntimeError, match="JpegEncoder is closed"):
        enc.encode_rgb(image.ctypes.data, W * 3)
    with pytest.raises(RuntimeError, match="JpegEncoder is closed"):
        enc.set_quality(50)
    assert "closed" in repr(enc)


def test_close_releases_everything_then_raises_the_first_failure(emulator: Emulator) -> None:
    enc = encoder(emulator)
    emulator.inject("nvjpegEncoderStateDestroy", errors.NvjpegStatus.NVJPEG_STATUS_INTERNAL_ERROR)
    with pytest.raises(errors.InternalError, match="nvjpegEncoderStateDestroy"):
        enc.close()
    # the parameters and the handle were still destroyed (the state is the emulator's to leak)
    assert emulator.live() == {"handles": 0, "states": 1, "params": 0}
    enc.close()  # nothing left to do


def test_host_memory_is_flat_over_many_frames(emulator: Emulator) -> None:
    """Per frame, the only host allocation that outlives the call is the returned bytes."""
    image = rgb()
    with encoder(emulator) as enc:
        capacity = enc.capacity
        for _ in range(50):
            enc.encode_rgb(image.ctypes.data, W * 3)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for _ in range(2000):
                enc.encode_rgb(image.ctypes.data, W * 3)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename") if stat.size_diff > 0)
        assert grown < 64 * 1024, f"host memory grew by {grown} bytes over 2000 frames"
        assert enc.capacity == capacity and enc.frames_encoded == 2050
    assert emulator.count("created") == 1 and emulator.count("encodes") == 2050 and emulator.live() == NONE_LIVE
