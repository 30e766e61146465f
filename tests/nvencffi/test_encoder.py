"""NvencEncoder against the NVENC emulator: real bitstreams, decoded by FFmpeg (PyAV).

The emulator writes I_PCM macroblocks, so decoding gives back exactly the pixels it
read: an NV12 frame must come back bit for bit, which proves the pointer, the pitch and
the chroma offset we registered (or the staging copy we made). RGBA is converted by the
"engine" and compared with the BT.709 reference within a tolerance. Sizes are realistic
(320x240 and up: the emulator, like real drivers, refuses tiny frames); 852x480 RGBA
(pitch 3408) and 1366x768 NV12 (pitch 1366, not even a multiple of 4) are odd pitches.
"""

from __future__ import annotations

import numpy as np
import pytest

import nvencffi
from nvencffi import errors
from nvencffi.encoder import PictureType
from nvencffi.frames import FrameLayoutError
from rfb.colorspace import rgb_to_nv12
from rfb.encoders.h264 import find_nal, is_idr, nal_types, sps_of
from tests.support.frames import HostCudaArray, decode, nv12_frame, rgba_frame
from tests.support.nvenc_fixtures import assert_released

IDR = PictureType.NV_ENC_PIC_TYPE_IDR
P = PictureType.NV_ENC_PIC_TYPE_P
SPS, PPS = 7, 8


W, H = 320, 240
ALIGNED = 512  # a 256-byte multiple: frames with this pitch are registered in place


def new_encoder(width: int = W, height: int = H, **kwargs) -> nvencffi.NvencEncoder:
    kwargs.setdefault("context", nvencffi.NullContext())
    return nvencffi.NvencEncoder(width, height, **kwargs)


def aligned_nv12(width: int = W, height: int = H, seed: int = 0):
    return nv12_frame(width, height, pitch=ALIGNED if width <= ALIGNED else -(-width // 256) * 256, seed=seed)


# ------------------------------------------------------------------ pixels


@pytest.mark.parametrize(
    ("width", "height", "pitch"),
    [(320, 240, None), (320, 240, 512), (640, 480, 768), (852, 480, None), (1366, 768, None), (1366, 768, 1368)],
)
def test_nv12_frames_decode_back_pixel_exact(emulator, width: int, height: int, pitch: int | None) -> None:
    frames = [nv12_frame(width, height, pitch=pitch, seed=seed) for seed in range(3)]
    with new_encoder(width, height) as enc:
        units = [enc.encode(frame) for frame, _, _ in frames]
    decoded = decode(units)
    assert len(decoded) == 3
    for (_, y_in, uv_in), out in zip(frames, decoded, strict=True):
        y, u, v = out
        assert y.shape == (height, width)
        np.testing.assert_array_equal(y, y_in)
        np.testing.assert_array_equal(u, uv_in[:, 0::2])
        np.testing.assert_array_equal(v, uv_in[:, 1::2])
    assert_released(emulator)


@pytest.mark.parametrize(("width", "height", "pitch"), [(320, 240, None), (852, 480, None), (400, 240, 2048)])
def test_rgba_frames_are_converted_on_the_engine_bt709(emulator, width: int, height: int, pitch: int | None) -> None:
    frame, rgb = rgba_frame(width, height, pitch=pitch)
    with new_encoder(width, height) as enc:
        unit = enc.encode(frame)
    (out,) = decode([unit])
    expected = rgb_to_nv12(rgb)  # BT.709 limited range: the VUI we write says so
    y, u, v = out
    assert np.abs(y.astype(int) - expected[:height]).max() <= 2
    uv = expected[height:]
    assert np.abs(u.astype(int) - uv[:, 0::2]).max() <= 3
    assert np.abs(v.astype(int) - uv[:, 1::2]).max() <= 3
    sps = sps_of(unit)
    assert (sps.colour_primaries, sps.transfer_characteristics, sps.matrix_coefficients) == (1, 1, 1)
    assert sps.video_full_range is False


def test_the_encoder_reads_the_callers_memory_in_place(emulator) -> None:
    """Zero copy: the registered pointer is the array's own, and writing into that same
    buffer between frames changes what the next frame encodes."""
    frame, _, _ = aligned_nv12(seed=1)
    with new_encoder() as enc:
        first = enc.encode(frame)
        assert [key[0] for key in enc.registrations] == [frame.pointer]
        frame.array[:H] = 7  # luma, in place
        second = enc.encode(frame)
        assert len(enc.registrations) == 1
        assert enc.registration_stats["staged"] == 0
    y0, y1 = (planes[0] for planes in decode([first, second]))
    assert not (y0 == 7).all()
    assert (y1 == 7).all()


# ------------------------------------------------------------- the stream


def test_the_sps_asks_browsers_not_to_buffer_and_names_the_profile(emulator) -> None:
    for profile, idc in (("high", 100), ("main", 77), ("baseline", 66)):
        frame, _, _ = aligned_nv12()
        with new_encoder(profile=profile) as enc:
            unit = enc.encode(frame)
            headers = enc.sequence_params()
        assert nal_types(unit)[:2] == [SPS, PPS]
        sps = sps_of(unit)
        assert sps.profile_idc == idc
        assert (sps.width, sps.height) == (W, H)
        assert sps.bitstream_restriction and sps.max_num_reorder_frames == 0
        assert find_nal(headers, SPS) == find_nal(unit, SPS)
        assert find_nal(headers, PPS) == find_nal(unit, PPS)


def test_infinite_gop_makes_idrs_only_first_and_on_demand(emulator) -> None:
    frame, _, _ = aligned_nv12()
    kinds, idr_flags = [], []
    with new_encoder(gop=None) as enc:
        for i in range(12):
            unit = enc.encode(frame, force_idr=(i == 7))
            kinds.append(enc.last_picture_type)
            idr_flags.append(is_idr(unit))
            if is_idr(unit):
                assert nal_types(unit)[:2] == [SPS, PPS]  # in-band headers on every IDR
            else:
                assert SPS not in nal_types(unit)
    assert [i for i, k in enumerate(kinds) if k == IDR] == [0, 7]
    assert idr_flags == [k == IDR for k in kinds]
    assert set(kinds) == {IDR, P}
    assert emulator.ledger()["idr_frames"] == 2


def test_a_finite_gop_puts_an_idr_every_gop_frames(emulator) -> None:
    frame, _, _ = aligned_nv12()
    with new_encoder(gop=4) as enc:
        kinds = []
        for _ in range(10):
            enc.encode(frame)
            kinds.append(enc.last_picture_type)
    assert [i for i, k in enumerate(kinds) if k == IDR] == [0, 4, 8]


def test_flush_returns_nothing_and_the_next_frame_restarts_with_an_idr(emulator) -> None:
    frame, _, _ = aligned_nv12()
    with new_encoder() as enc:
        enc.encode(frame)
        enc.encode(frame)
        assert enc.flush() == []
        assert enc.last_was_keyframe is False
        assert is_idr(enc.encode(frame))
    assert emulator.ledger()["encodes"] == 3


# ------------------------------------------------------------ reconfigure


def test_reconfigure_bitrate_keeps_the_session_and_the_gop(emulator) -> None:
    frame, _, _ = aligned_nv12()
    with new_encoder(bitrate=2_000_000, fps=30) as enc:
        enc.encode(frame)
        enc.reconfigure(bitrate=500_000)
        unit = enc.encode(frame)
        assert not is_idr(unit)  # a rate change needs no new sequence
        enc.reconfigure(fps=60)
        assert (enc.bitrate, enc.fps) == (500_000, 60.0)
        enc.encode(frame)
        ledger = emulator.ledger()
        assert ledger["reconfigures"] == 2 and ledger["sessions"] == 1 and ledger["sessions_opened"] == 1
        (session,) = emulator.sessions()
    assert_released(emulator)
    assert session  # the emulator reported the reconfigured session


def test_reconfigure_size_within_the_maximum(emulator) -> None:
    small, _, _ = aligned_nv12(seed=3)
    big, y_big, uv_big = aligned_nv12(480, 320, seed=4)
    with new_encoder(max_width=640, max_height=480) as enc:
        units = [enc.encode(small)]
        enc.reconfigure(width=480, height=320)
        assert (enc.width, enc.height) == (480, 320)
        with pytest.raises(FrameLayoutError, match="takes 480x320 frames"):
            enc.encode(small)
        units.append(enc.encode(big))
        with pytest.raises(ValueError, match="exceeds this session's maximum 640x480"):
            enc.reconfigure(width=660, height=320)
        assert (enc.width, enc.height) == (480, 320)
    assert is_idr(units[1])
    assert (sps_of(units[1]).width, sps_of(units[1]).height) == (480, 320)
    out = decode(units)
    y, u, _ = out[1]
    np.testing.assert_array_equal(y, y_big)
    np.testing.assert_array_equal(u, uv_big[:, 0::2])
    assert_released(emulator)


def test_a_failed_reconfigure_keeps_the_previous_settings(emulator) -> None:
    frame, _, _ = aligned_nv12()
    with new_encoder(max_width=640, max_height=480, bitrate=1_000_000) as enc:
        enc.encode(frame)
        emulator.inject_fault("nvEncReconfigureEncoder", errors.NvencStatus.NV_ENC_ERR_UNSUPPORTED_PARAM)
        with pytest.raises(errors.UnsupportedParamError):
            enc.reconfigure(width=640, height=480, bitrate=3_000_000)
        assert (enc.width, enc.height, enc.bitrate) == (W, H, 1_000_000)
        assert not is_idr(enc.encode(frame))
        enc.reconfigure(bitrate=2_000_000)  # and the session still takes a good one
    assert_released(emulator)


# ---------------------------------------------------------- registrations


def test_a_reused_buffer_registers_once(emulator) -> None:
    frame, _, _ = aligned_nv12()
    with new_encoder() as enc:
        for _ in range(6):
            enc.encode(frame)
            assert emulator.ledger()["registered"] == 1
            assert emulator.ledger()["mapped"] == 0
        stats = enc.registration_stats
        assert (stats["cached"], stats["hits"], stats["misses"], stats["staged"]) == (1, 5, 1, 0)
    assert_released(emulator)


def test_the_registration_cache_is_bounded_and_evictions_unregister(emulator) -> None:
    frames = [aligned_nv12(seed=s)[0] for s in range(4)]
    with new_encoder(registration_cache_size=2) as enc:
        for frame in frames:
            enc.encode(frame)
            assert emulator.ledger()["registered"] <= 2
        assert [key[0] for key in enc.registrations] == [frames[2].pointer, frames[3].pointer]
        enc.encode(frames[2])  # still cached: no new registration
        assert enc.registration_stats["misses"] == 4
        assert enc.forget(frames[3].pointer) == 1
        assert emulator.ledger()["registered"] == 1
        enc.clear_registrations()
        assert emulator.ledger()["registered"] == 0 and enc.registrations == []
        enc.encode(frames[0])  # registers again
        assert emulator.ledger()["registered"] == 1
    assert_released(emulator)


def test_the_same_pointer_with_another_layout_is_another_registration(emulator) -> None:
    storage = np.zeros((H * 3 // 2, ALIGNED), dtype=np.uint8)
    a = HostCudaArray(storage[:, :W], strides=(ALIGNED, 1))  # 320x240 NV12, pitch 512
    b = HostCudaArray(storage[:, :300], strides=(ALIGNED, 1))  # 300x240 in the same memory
    with new_encoder() as enc:
        enc.encode(a)
        enc.reconfigure(width=300, height=H)
        enc.encode(b)
        keys = enc.registrations
    assert [k[0] for k in keys] == [a.pointer, a.pointer]
    assert keys[0] != keys[1]


# ----------------------------------------------------------------- faults

S = errors.NvencStatus

ENCODE_FAULTS = [
    ("nvEncRegisterResource", S.NV_ENC_ERR_OUT_OF_MEMORY, errors.OutOfMemoryError),
    ("nvEncRegisterResource", S.NV_ENC_ERR_RESOURCE_REGISTER_FAILED, errors.ResourceRegisterFailedError),
    ("nvEncMapInputResource", S.NV_ENC_ERR_MAP_FAILED, errors.MapFailedError),
    ("nvEncEncodePicture", S.NV_ENC_ERR_ENCODER_BUSY, errors.EncoderBusyError),
    ("nvEncEncodePicture", S.NV_ENC_ERR_DEVICE_NOT_EXIST, errors.DeviceNotExistError),
    ("nvEncLockBitstream", S.NV_ENC_ERR_LOCK_BUSY, errors.LockBusyError),
    ("nvEncUnlockBitstream", S.NV_ENC_ERR_INVALID_CALL, errors.InvalidCallError),
    ("nvEncUnmapInputResource", S.NV_ENC_ERR_RESOURCE_NOT_MAPPED, errors.ResourceNotMappedError),
]


@pytest.mark.parametrize(
    ("function", "status", "cls"), ENCODE_FAULTS, ids=[f"{f}-{s.name}" for f, s, _ in ENCODE_FAULTS]
)
def test_a_failing_call_during_encode_raises_its_class_and_leaks_nothing(emulator, function, status, cls) -> None:
    frame, _, _ = aligned_nv12()
    enc = new_encoder()
    try:
        enc.encode(frame)
        enc.clear_registrations()  # so that the register fault fires too
        emulator.inject_fault(function, status)
        with pytest.raises(cls) as info:
            enc.encode(frame)
        error = info.value
        assert isinstance(error, errors.NvencError)
        assert (error.function, error.name, error.code) == (function, status.name, int(status))
        assert error.detail and "injected fault" in error.detail
        assert status.name in str(error) and error.detail in str(error)
        # a failed lock leaves its output pending, and NVENC unmaps an input only after its
        # output is locked: the encoder settles both before the next frame
        assert emulator.ledger()["mapped"] == (function in ("nvEncLockBitstream", "nvEncUnmapInputResource"))
        assert is_idr(enc.encode(frame)) is False  # still usable, the stream goes on
        assert emulator.ledger()["mapped"] == 0
    finally:
        enc.close()
    assert_released(emulator)


def test_clearing_registrations_after_a_failed_lock_settles_the_pending_unmap_first(emulator) -> None:
    frame, _, _ = aligned_nv12()
    with new_encoder() as enc:
        enc.encode(frame)
        emulator.inject_fault("nvEncLockBitstream", S.NV_ENC_ERR_LOCK_BUSY)
        with pytest.raises(errors.LockBusyError):
            enc.encode(frame)
        assert emulator.ledger()["mapped"] == 1  # NVENC unmaps only after the output is locked
        enc.clear_registrations()
        assert emulator.ledger()["registered"] == emulator.ledger()["mapped"] == 0
        enc.encode(frame)
    assert_released(emulator)


SETUP_FAULTS = [
    ("nvEncOpenEncodeSessionEx", S.NV_ENC_ERR_OUT_OF_MEMORY, errors.OutOfMemoryError),
    ("nvEncGetEncodePresetConfigEx", S.NV_ENC_ERR_UNSUPPORTED_PARAM, errors.UnsupportedParamError),
    ("nvEncInitializeEncoder", S.NV_ENC_ERR_INVALID_PARAM, errors.InvalidParamError),
    ("nvEncCreateBitstreamBuffer", S.NV_ENC_ERR_OUT_OF_MEMORY, errors.OutOfMemoryError),
]


@pytest.mark.parametrize(("function", "status", "cls"), SETUP_FAULTS, ids=[f for f, _, _ in SETUP_FAULTS])
def test_a_failing_call_while_opening_releases_what_was_made(emulator, function, status, cls) -> None:
    emulator.inject_fault(function, status, after=1 if function == "nvEncCreateBitstreamBuffer" else 0)
    with pytest.raises(cls) as info:
        new_encoder()
    assert (info.value.function, info.value.name) == (function, status.name)
    if function != "nvEncOpenEncodeSessionEx":  # an injected open fault hands back no session to ask
        assert "injected fault" in (info.value.detail or "")
    assert_released(emulator)


def test_a_failing_release_is_raised_after_everything_else_is_released(emulator) -> None:
    frame, _, _ = aligned_nv12()
    enc = new_encoder()
    enc.encode(frame)
    emulator.inject_fault("nvEncDestroyBitstreamBuffer", S.NV_ENC_ERR_INVALID_PARAM)
    with pytest.raises(errors.InvalidParamError) as info:
        enc.close()
    assert info.value.function == "nvEncDestroyBitstreamBuffer"
    ledger = emulator.ledger()
    assert ledger["sessions"] == 0 and ledger["registered"] == 0  # the rest was released
    assert enc.closed
    enc.close()  # idempotent, and does not raise again


def test_closing_twice_and_using_a_closed_encoder(emulator) -> None:
    frame, _, _ = aligned_nv12()
    enc = new_encoder()
    enc.close()
    enc.close()
    with pytest.raises(RuntimeError, match="closed"):
        enc.encode(frame)
    assert_released(emulator)


def test_an_encoder_left_open_warns_and_is_released(emulator) -> None:
    enc = new_encoder()
    with pytest.warns(ResourceWarning, match="unclosed"):
        enc.__del__()
    assert enc.closed
    assert_released(emulator)


def test_frames_of_the_wrong_layout_are_rejected_before_the_driver(emulator) -> None:
    with new_encoder() as enc:
        with pytest.raises(FrameLayoutError, match="takes 320x240 frames"):
            enc.encode(aligned_nv12(640, 480)[0])
        with pytest.raises(FrameLayoutError, match="not in CUDA device memory"):
            enc.encode(np.zeros((H * 3 // 2, W), np.uint8))
        with pytest.raises(FrameLayoutError, match=r"shape=\(240, 320, 3\)"):
            enc.encode(HostCudaArray(np.zeros((H, W, 3), np.uint8)))
        assert emulator.ledger()["registered"] == 0


def test_invalid_arguments_name_what_was_expected(emulator) -> None:
    for kwargs, message in [
        ({"preset": "p9"}, "preset must be one of"),
        ({"tuning": "fast"}, "tuning must be one of"),
        ({"rate_control": "abr"}, "rate_control must be one of"),
        ({"profile": "high444"}, "profile must be"),
        ({"gop": 0}, "gop must be None"),
        ({"codec": "hevc"}, "codec must be 'h264'"),
        ({"registration_cache_size": 0}, "registration_cache_size must be at least 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            new_encoder(**kwargs)
    with pytest.raises(ValueError, match="even"):
        new_encoder(321, 240)
    assert_released(emulator)


# ------------------------------------------------- no engine, old driver


def test_a_gpu_without_nvenc_is_reported_in_plain_words(emulator) -> None:
    emulator.set_unsupported_device(True)
    with pytest.raises(nvencffi.NvencUnavailable) as info:
        new_encoder()
    error = info.value
    assert isinstance(error, errors.UnsupportedDeviceError)
    assert error.name == "NV_ENC_ERR_UNSUPPORTED_DEVICE" and error.code == 2
    assert "has no NVENC video encode engine" in str(error)
    assert "fall back" in str(error)
    assert "emulating an H100" in error.detail  # the driver's own words are kept
    result = nvencffi.probe(context=nvencffi.NullContext())
    assert result.available is False
    assert "has no NVENC video encode engine" in result.reason
    assert result.max_api_version == (13, 0)
    assert_released(emulator)


@pytest.mark.parametrize("old", [(11, 0), (11, 1), (12, 0)])
def test_a_driver_older_than_api_12_1_names_the_driver_needed(emulator, old: tuple[int, int]) -> None:
    emulator.set_max_version(*old)
    nvencffi.reset_library()
    with pytest.raises(nvencffi.DriverTooOld) as info:
        new_encoder()
    assert f"NVENC API {old[0]}.{old[1]} only" in str(info.value) and "530.41.03" in str(info.value)
    assert info.value.max_api_version == old
    result = nvencffi.probe(context=nvencffi.NullContext())
    assert (result.available, result.max_api_version) == (False, old)
    assert "530.41.03" in result.reason
    emulator.set_max_version(12, 1)  # exactly what we need is enough
    nvencffi.reset_library()
    assert nvencffi.probe(context=nvencffi.NullContext()).available


def test_probe_opens_and_destroys_a_session(emulator) -> None:
    result = nvencffi.probe(context=nvencffi.NullContext())
    assert (result.available, result.reason, result.max_api_version, result.gpu_name) == (True, None, (13, 0), None)
    assert emulator.ledger()["sessions"] == 0
    assert emulator.ledger().get("sessions_opened", 1) >= 1


def test_the_library_path_comes_from_the_environment(emulator, monkeypatch) -> None:
    monkeypatch.setenv("NVENCFFI_LIBRARY", "/nonexistent/libnvidia-encode.so.1")
    nvencffi.reset_library()
    with pytest.raises(nvencffi.NvencUnavailable, match="/nonexistent/libnvidia-encode.so.1"):
        nvencffi.load_library()
    assert nvencffi.probe(context=nvencffi.NullContext()).available is False
