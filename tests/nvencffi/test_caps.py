"""The GPU's caps, asked before configuring: sizes, custom VBV, resolution changes.

The emulator's caps are set per test (``Emulator.set_caps``); its defaults are those of
a recent GPU (145x49 .. 4096x4096, custom VBV and dynamic resolution change supported),
and it refuses at initialize what the caps exclude, as a driver does, with a terse text.
The binding must refuse first, in plain words, and not use a feature the caps deny.
"""

from __future__ import annotations

import pytest

import nvencffi
from nvencffi.caps import EncoderCaps
from tests.support.frames import nv12_frame
from tests.support.nvenc_fixtures import assert_released


def new_encoder(width: int = 320, height: int = 240, **kwargs) -> nvencffi.NvencEncoder:
    return nvencffi.NvencEncoder(width, height, context=nvencffi.NullContext(), **kwargs)


def test_the_caps_are_asked_and_exposed(emulator) -> None:
    with new_encoder() as enc:
        assert enc.caps == EncoderCaps(145, 49, 4096, 4096, custom_vbv=True, dyn_res_change=True)
    emulator.set_caps(
        width_min=320, height_min=240, width_max=1920, height_max=1080, custom_vbv=False, dyn_res_change=False
    )
    with new_encoder() as enc:
        assert enc.caps == EncoderCaps(320, 240, 1920, 1080, custom_vbv=False, dyn_res_change=False)
        assert (enc.caps.min_size, enc.caps.max_size) == ((320, 240), (1920, 1080))
    assert_released(emulator)


@pytest.mark.parametrize(
    ("size", "caps"),
    [
        ((144, 80), {}),  # VideoProcessingFramework issue 214: refused by a real driver
        ((320, 240), {"width_min": 400}),
        ((640, 480), {"height_min": 720}),
        ((2560, 1440), {"width_max": 1920, "height_max": 1080}),
    ],
)
def test_a_size_outside_the_caps_is_refused_in_plain_words(emulator, size, caps) -> None:
    emulator.set_caps(**caps)
    with pytest.raises(nvencffi.FrameSizeUnsupported) as info:
        new_encoder(*size)
    error = info.value
    low = (caps.get("width_min", 145), caps.get("height_min", 49))
    high = (caps.get("width_max", 4096), caps.get("height_max", 4096))
    assert (error.size, error.min_size, error.max_size) == (size, low, high)
    assert f"a frame size of {size[0]}x{size[1]} was asked" in str(error)
    assert f"encodes H.264 from {low[0]}x{low[1]} to {high[0]}x{high[1]}" in str(error)
    assert isinstance(error, ValueError)
    ledger = emulator.ledger()
    assert ledger["sessions_opened"] == 1  # the caps needed a session ...
    assert ledger["errors"] == 0  # ... and the driver was never asked for what it refuses
    assert_released(emulator)


def test_a_maximum_size_beyond_the_caps_is_refused(emulator) -> None:
    emulator.set_caps(width_max=1920, height_max=1080)
    with pytest.raises(nvencffi.FrameSizeUnsupported, match=r"maximum size \(max_width, max_height\) of 3840x2160"):
        new_encoder(1280, 720, max_width=3840, max_height=2160)
    assert_released(emulator)


def test_the_one_frame_vbv_is_set_only_where_a_custom_vbv_is_supported(emulator) -> None:
    frame, _, _ = nv12_frame(320, 240, pitch=512)
    with new_encoder(bitrate=3_000_000, fps=30) as enc:
        enc.encode(frame)
        (session,) = emulator.sessions()
        assert session["vbv_buffer_size"] == 100_000  # one frame: 3 Mb/s / 30
    emulator.set_caps(custom_vbv=False)
    with new_encoder(bitrate=3_000_000, fps=30) as enc:
        enc.encode(frame)
        enc.reconfigure(bitrate=2_000_000)
        (session,) = emulator.sessions()
        assert session["vbv_buffer_size"] == 0  # the driver's own choice
        assert session["average_bitrate"] == 2_000_000
    assert_released(emulator)


def test_a_resolution_change_needs_the_cap(emulator) -> None:
    emulator.set_caps(dyn_res_change=False)
    frame, _, _ = nv12_frame(320, 240, pitch=512)
    with new_encoder(max_width=640, max_height=480) as enc:
        enc.encode(frame)
        with pytest.raises(nvencffi.ResizeUnsupported, match="close this encoder and open one at 640x480"):
            enc.reconfigure(width=640, height=480)
        assert (enc.width, enc.height) == (320, 240)
        enc.reconfigure(bitrate=1_000_000)  # a rate change needs no cap
        enc.encode(frame)
        assert emulator.ledger()["reconfigures"] == 1
    assert_released(emulator)


def test_a_resolution_change_outside_the_caps_is_refused(emulator) -> None:
    emulator.set_caps(width_min=200)
    with new_encoder(max_width=640, max_height=480) as enc:
        with pytest.raises(nvencffi.FrameSizeUnsupported, match="a new frame size of 160x240"):
            enc.reconfigure(width=160, height=240)
        assert (enc.width, enc.height) == (320, 240)
    assert_released(emulator)


def test_caps_support_size_treats_an_unreported_maximum_as_unbounded() -> None:
    caps = EncoderCaps(145, 49, 0, 0, custom_vbv=True, dyn_res_change=True)
    assert caps.supports_size(8192, 8192)
    assert not caps.supports_size(144, 480)


def test_a_cap_the_driver_does_not_know_reads_as_not_supported(emulator) -> None:
    """As FFmpeg reads a failed caps query: 0. Here the 5th query (custom VBV) fails."""
    emulator.inject_fault("nvEncGetEncodeCaps", "NV_ENC_ERR_UNSUPPORTED_PARAM", after=4)
    frame, _, _ = nv12_frame(320, 240, pitch=512)
    with new_encoder(bitrate=3_000_000, fps=30) as enc:
        assert enc.caps == EncoderCaps(145, 49, 4096, 4096, custom_vbv=False, dyn_res_change=True)
        enc.encode(frame)
        (session,) = emulator.sessions()
        assert session["vbv_buffer_size"] == 0
    assert_released(emulator)


def test_any_other_caps_failure_is_an_error_with_the_drivers_text(emulator) -> None:
    emulator.inject_fault("nvEncGetEncodeCaps", "NV_ENC_ERR_GENERIC")
    with pytest.raises(
        nvencffi.errors.GenericError, match=r"nvEncGetEncodeCaps\(NV_ENC_CAPS_WIDTH_MIN\) failed"
    ) as info:
        new_encoder()
    assert "injected fault" in info.value.detail
    assert_released(emulator)
