"""The nvenc_cpu route (FFmpeg h264_nvenc via PyAV from host frames).

The probe is tested everywhere (on a machine without NVIDIA driver it must explain
why, not raise); the encode tests need a working NVENC and skip with the probe's
reason elsewhere.
"""

from __future__ import annotations

import av.logging
import numpy as np
import pytest

from rfb.benchmark import patterns
from rfb.benchmark.metrics import H264Decoder, psnr
from rfb.colorspace import rgb_to_nv12
from rfb.encoders import h264, nvenc_cpu
from rfb.encoders.base import EncoderBackend, EncoderConfig
from rfb.frames import FrameError, frame_from_array
from tests.encoders.test_h264_cpu import encode_all, rgba_of

REASON = nvenc_cpu.probe()
needs_nvenc = pytest.mark.skipif(REASON is not None, reason=f"nvenc_cpu unavailable: {REASON}")

W, H = 640, 360


def test_entry() -> None:
    (entry,) = nvenc_cpu.ENTRIES
    assert entry.name == "nvenc_cpu" and entry.transport == "webcodecs" and entry.probe is nvenc_cpu.probe


def test_probe_answers_without_raising_and_restores_ffmpeg_logging() -> None:
    before = av.logging.get_level()
    reason = nvenc_cpu.probe()
    assert av.logging.get_level() == before
    if reason is not None:
        assert reason.startswith("FFmpeg's h264_nvenc could not open a session: ") or "no h264_nvenc" in reason
        assert len(reason) < 400 and "\n" not in reason


def test_probe_reason_on_a_machine_without_nvidia_driver() -> None:
    import ctypes.util

    if ctypes.util.find_library("cuda") is not None:
        pytest.skip("an NVIDIA driver (libcuda) is installed here")
    reason = nvenc_cpu.probe()
    assert reason is not None
    assert "no NVIDIA driver" in reason and "libcuda.so.1" in reason  # FFmpeg's own words


# FFmpeg's own lines (libavcodec/nvenc.c: nvenc_print_error, nvenc_setup_device), as an
# H100 and a busy GPU produce them.
UNSUPPORTED = "OpenEncodeSessionEx failed: unsupported device (2): (no details)\n"
NO_CAPABLE = "No capable devices found\n"
OUT_OF_MEMORY = "OpenEncodeSessionEx failed: out of memory (10): (no details)\n"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (  # host frames: FFmpeg tries every GPU, then gives up
            [(av.logging.ERROR, UNSUPPORTED), (av.logging.FATAL, NO_CAPABLE)],
            "this GPU has no NVENC engine (A100, H100 and H200 have none) "
            "(OpenEncodeSessionEx failed: unsupported device (2): (no details); No capable devices found)",
        ),
        (  # CUDA frames: FFmpeg opens on the frames' device only
            [(av.logging.ERROR, UNSUPPORTED)],
            "this GPU has no NVENC engine (A100, H100 and H200 have none) "
            "(OpenEncodeSessionEx failed: unsupported device (2): (no details))",
        ),
        (
            [(av.logging.ERROR, OUT_OF_MEMORY), (av.logging.ERROR, OUT_OF_MEMORY)],
            "the GPU refused a new encode session (session limit or out of memory) "
            "(OpenEncodeSessionEx failed: out of memory (10): (no details))",
        ),
        (
            [(av.logging.FATAL, NO_CAPABLE), (av.logging.WARNING, "below the error level: left out")],
            "no NVENC-capable GPU was found (No capable devices found)",
        ),
    ],
)
def test_ffmpeg_failure_reasons_lead_with_a_plain_hint(lines: list[tuple[int, str]], expected: str) -> None:
    logs = [(level, "h264_nvenc", message) for level, message in lines]
    exc = av.error.ExternalError(-542398533, "Generic error in an external library")
    assert nvenc_cpu.ffmpeg_failure_reason(exc, logs) == expected


def test_ffmpeg_failure_reason_from_a_real_failure() -> None:
    from rfb.encoders.h264_cpu import PyAVSettings, configure_context

    settings = PyAVSettings("libx264", {"preset": "no-such-preset"})
    before = av.logging.get_level(), av.logging.get_skip_repeated()
    for _ in range(2):  # the same line twice: a second failure is explained too
        with nvenc_cpu.capture_ffmpeg_log() as logs:
            with pytest.raises(av.FFmpegError) as info:
                configure_context(EncoderConfig(64, 48), settings).open()
            reason = nvenc_cpu.ffmpeg_failure_reason(info.value, logs)
        assert reason == "Error setting preset/tune no-such-preset/(null)."
    assert (av.logging.get_level(), av.logging.get_skip_repeated()) == before
    # Without captured lines: the line PyAV attached to the exception.
    assert nvenc_cpu.ffmpeg_failure_reason(info.value, []) == reason


def test_probe_reports_a_missing_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvenc_cpu, "CODEC", "h264_no_such_encoder")
    assert nvenc_cpu.probe() == "this PyAV build has no h264_no_such_encoder encoder"


def test_settings_are_low_latency() -> None:
    settings = nvenc_cpu.nvenc_settings(EncoderConfig(W, H, bitrate=6_000_000, fps=60))
    assert settings.codec == "h264_nvenc" and settings.pix_fmt == "nv12"
    o = settings.options
    assert (o["preset"], o["tune"], o["zerolatency"], o["delay"], o["bf"], o["rc"], o["forced-idr"]) == (
        "p1",
        "ull",
        "1",
        "0",
        "0",
        "cbr",
        "1",
    )
    assert (o["maxrate"], o["bufsize"]) == ("6000000", "100000")  # one frame of bits


def test_odd_sizes_are_rejected_before_any_session_opens() -> None:
    with pytest.raises(FrameError, match=r"nvenc_cpu .* even.*got 641x360"):
        nvenc_cpu.create(EncoderConfig(641, 360))


@pytest.mark.gpu
@needs_nvenc
def test_round_trip_keyframes_and_sps() -> None:
    sources = [patterns.scene(W, H, i) for i in range(10)]
    with nvenc_cpu.create(EncoderConfig(W, H, bitrate=8_000_000)) as enc:
        assert isinstance(enc, EncoderBackend)
        payloads = encode_all(enc, [frame_from_array(s) for s in sources], force=(6,))
        assert enc.flush() == []
    assert [p.keyframe for p in payloads] == [i in (0, 6) for i in range(10)]
    for p in payloads:
        types = h264.nal_types(p.data)
        assert p.keyframe == (h264.NAL_IDR in types)
        assert (h264.NAL_SPS in types) == p.keyframe  # SPS/PPS in-band on every IDR
    sps = h264.sps_of(payloads[0].data)
    assert (sps.width, sps.height) == (W, H)
    assert payloads[0].codec == h264.codec_string(payloads[0].data)
    assert sps.max_num_reorder_frames in (None, 0)
    with H264Decoder() as decoder:
        decoded = decoder.decode_all(p.data for p in payloads)
    assert len(decoded) == len(sources)
    assert all(psnr(s, d) > 28.0 for s, d in zip(sources, decoded, strict=True))


@pytest.mark.gpu
@needs_nvenc
def test_input_formats_and_colours() -> None:
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = 255
    frames = [frame_from_array(red), frame_from_array(rgba_of(red)), frame_from_array(rgb_to_nv12(red), "nv12")]
    with nvenc_cpu.create(EncoderConfig(W, H)) as enc:
        payloads = encode_all(enc, frames)
    sps = h264.sps_of(payloads[0].data)
    assert (sps.colour_primaries, sps.transfer_characteristics, sps.matrix_coefficients) == (1, 1, 1)
    with H264Decoder() as decoder:
        for picture in decoder.decode_all(p.data for p in payloads):
            assert np.all(np.abs(picture.reshape(-1, 3).mean(axis=0) - (255, 0, 0)) <= 5)


@pytest.mark.gpu
@needs_nvenc
def test_close_is_idempotent_and_encode_after_close_raises() -> None:
    enc = nvenc_cpu.create(EncoderConfig(W, H))
    enc.encode(frame_from_array(patterns.gradient(W, H)))
    enc.close()
    enc.close()
    with pytest.raises(RuntimeError, match="nvenc_cpu encoder is closed"):
        enc.encode(frame_from_array(patterns.gradient(W, H)))


@pytest.mark.gpu
@needs_nvenc
def test_sessions_are_released() -> None:
    # Consumer GPUs allow few concurrent NVENC sessions: a leak shows up within a few dozen.
    for _ in range(40):
        with nvenc_cpu.create(EncoderConfig(W, H)) as enc:
            (p,) = enc.encode(frame_from_array(patterns.gradient(W, H)))
            assert p.keyframe
    assert nvenc_cpu.probe() is None
