"""The h264_cpu route (libx264 through PyAV), decoded back with FFmpeg's H.264 decoder."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from rfb.benchmark import patterns
from rfb.benchmark.metrics import H264Decoder, psnr
from rfb.colorspace import rgb_to_nv12
from rfb.encoders import h264, nvenc_cpu
from rfb.encoders.base import EncodedPayload, EncoderBackend, EncoderConfig
from rfb.encoders.h264_cpu import (
    ENTRIES,
    LONG_GOP,
    NAME,
    PyAVH264Encoder,
    configure_context,
    create,
    libx264_settings,
    probe,
)
from rfb.frames import FrameError, RawFrame, frame_from_array
from rfb.videocolour import BT601_LIMITED

W, H = 320, 240


@pytest.fixture
def encoder() -> Iterator[PyAVH264Encoder]:
    with create(EncoderConfig(W, H, bitrate=6_000_000)) as enc:
        yield enc


def rgba_of(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 77, np.uint8)], axis=2))


def encode_all(enc: EncoderBackend, frames: list[RawFrame], force: tuple[int, ...] = ()) -> list[EncodedPayload]:
    out: list[EncodedPayload] = []
    for i, frame in enumerate(frames):
        payloads = enc.encode(frame, force_keyframe=i in force)
        assert len(payloads) == 1, "a low-latency route returns exactly one access unit per frame"
        out += payloads
    return out


def test_entry_and_probe() -> None:
    assert probe() is None
    (entry,) = ENTRIES
    assert entry.name == NAME == "h264_cpu" and entry.transport == "webcodecs" and not entry.reads_cuda
    backend = entry.factory(EncoderConfig(64, 64))
    try:
        assert isinstance(backend, EncoderBackend)
        assert backend.name == "h264_cpu" and backend.transport == "webcodecs"
    finally:
        backend.close()


@pytest.mark.parametrize("pattern", ["gradient", "scene"])
def test_round_trip_quality(encoder: PyAVH264Encoder, pattern: str) -> None:
    sources = [patterns.make(pattern, W, H, i) for i in range(8)]
    payloads = encode_all(encoder, [frame_from_array(s) for s in sources])
    with H264Decoder() as decoder:
        decoded = decoder.decode_all(p.data for p in payloads)
    assert len(decoded) == len(sources)
    for src, dec in zip(sources, decoded, strict=True):
        assert dec.shape == src.shape
        assert psnr(src, dec) > 30.0


def test_noise_round_trip_at_high_bitrate() -> None:
    # grey noise: 4:2:0 cannot carry per-pixel chroma, but every pixel's luma must survive
    sources = [np.repeat(patterns.noise(128, 96, i)[..., :1], 3, axis=2) for i in range(3)]
    with create(EncoderConfig(128, 96, bitrate=40_000_000)) as enc:
        payloads = encode_all(enc, [frame_from_array(s) for s in sources])
    with H264Decoder() as decoder:
        decoded = decoder.decode_all(p.data for p in payloads)
    assert len(decoded) == 3
    assert all(psnr(s, d) > 30.0 for s, d in zip(sources, decoded, strict=True))


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (128, 128, 128), (20, 20, 20)]
# The VUI colour description (primaries, transfer, matrix) each input kind's stream carries:
# host RGB is converted by OpenCV in BT.601 (matrix 6), nv12 is rfb's BT.709 (matrix 1).
VUI_OF_LAYOUT = {"rgb24": (1, 1, 6), "rgba8": (1, 1, 6), "nv12": (1, 1, 1)}


def flat_frame(colour: tuple[int, int, int], layout: str, width: int = 96, height: int = 64) -> RawFrame:
    src = np.empty((height, width, 3), np.uint8)
    src[:] = colour
    if layout == "nv12":
        return frame_from_array(rgb_to_nv12(src), "nv12")
    return frame_from_array(rgba_of(src) if layout == "rgba8" else src)


def assert_decodes_to(payload: EncodedPayload, colour: tuple[int, int, int], decoder: H264Decoder) -> None:
    (decoded,) = decoder.decode(payload.data)
    mean = decoded.reshape(-1, 3).mean(axis=0)
    assert np.all(np.abs(mean - np.array(colour)) <= 4), f"{colour} came back as {mean.round(1)}"


@pytest.mark.parametrize("layout", ["rgb24", "rgba8", "nv12"])
@pytest.mark.parametrize("colour", COLOURS)
def test_flat_colours_survive_the_round_trip(colour: tuple[int, int, int], layout: str) -> None:
    # The decoder turns YUV back into RGB with the matrix the SPS names: the colours come
    # back only if the VUI says the matrix the frames were converted with.
    with create(EncoderConfig(96, 64)) as enc:
        (payload,) = enc.encode(flat_frame(colour, layout))
    sps = h264.sps_of(payload.data)
    assert (sps.colour_primaries, sps.transfer_characteristics, sps.matrix_coefficients) == VUI_OF_LAYOUT[layout]
    assert sps.video_full_range is False
    with H264Decoder() as decoder:
        assert_decodes_to(payload, colour, decoder)


def test_switching_input_kind_reopens_with_a_new_sps_and_decodes_right() -> None:
    # rgb24 -> nv12 -> rgba8 -> rgb24: each change of matrix starts a new sequence (IDR + SPS
    # with the new colour description); frames of the same kind continue the sequence.
    plan = [
        ("rgb24", (255, 0, 0)),
        ("rgb24", (250, 10, 10)),
        ("nv12", (0, 0, 255)),
        ("nv12", (10, 10, 250)),
        ("rgba8", (0, 255, 0)),
        ("rgb24", (20, 240, 20)),
        ("nv12", (255, 255, 255)),
    ]
    with create(EncoderConfig(96, 64)) as enc, H264Decoder() as decoder:
        previous = None
        for layout, colour in plan:
            (payload,) = enc.encode(flat_frame(colour, layout))
            vui = VUI_OF_LAYOUT[layout]
            assert payload.keyframe == (vui != previous), (layout, colour)
            if payload.keyframe:
                sps = h264.sps_of(payload.data)
                assert (sps.colour_primaries, sps.transfer_characteristics, sps.matrix_coefficients) == vui
            assert enc.stream_kind[1].matrix == vui[2]
            assert_decodes_to(payload, colour, decoder)
            previous = vui


def test_without_opencv_rgb_goes_through_swscale_in_bt709(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from rfb.converters import HostConverter

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    with caplog.at_level(logging.INFO, logger="rfb.converters"):
        enc = create(EncoderConfig(96, 64))
    assert any("OpenCV is not importable" in r.getMessage() for r in caplog.records)
    with enc, H264Decoder() as decoder:
        assert isinstance(enc._converter, HostConverter)
        for i, colour in enumerate(COLOURS):
            (payload,) = enc.encode(flat_frame(colour, "rgba8" if i % 2 else "rgb24"), force_keyframe=True)
            sps = h264.sps_of(payload.data)
            assert (sps.colour_primaries, sps.transfer_characteristics, sps.matrix_coefficients) == (1, 1, 1)
            assert_decodes_to(payload, colour, decoder)
        (payload,) = enc.encode(flat_frame((0, 0, 255), "nv12"))
        assert not payload.keyframe  # nv12 is BT.709 too: the same sequence goes on
        assert_decodes_to(payload, (0, 0, 255), decoder)


@pytest.mark.parametrize("pattern", ["gradient", "scene"])
def test_opencv_route_is_at_least_as_good_as_swscale(pattern: str) -> None:
    # Same x264 settings, two conversions: OpenCV (BT.601, chroma averaged) must not cost
    # quality against swscale (BT.709, AREA), measured through the real decoder.
    from rfb.converters import HostConverter

    sources = [patterns.make(pattern, W, H, i) for i in range(6)]

    def mean_psnr(enc: PyAVH264Encoder) -> float:
        with enc, H264Decoder() as decoder:
            decoded = decoder.decode_all(p.data for p in encode_all(enc, [frame_from_array(s) for s in sources]))
        return float(np.mean([psnr(s, d) for s, d in zip(sources, decoded, strict=True)]))

    config = EncoderConfig(W, H, bitrate=6_000_000)
    fast = mean_psnr(create(config))
    swscale = mean_psnr(PyAVH264Encoder(NAME, config, libx264_settings(config), converter=HostConverter("nv12")))
    assert fast >= swscale - 0.1, (fast, swscale)


def test_host_rgb_conversion_reuses_one_buffer() -> None:
    import tracemalloc

    from rfb.converters import OpenCVConverter

    frames = [frame_from_array(patterns.scene(W, H, i)) for i in range(6)]
    with create(EncoderConfig(W, H)) as enc:
        converter = enc._converter
        assert isinstance(converter, OpenCVConverter)
        enc.encode(frames[0])
        addresses = set()
        tracemalloc.start()
        try:
            for frame in frames[1:]:
                picture = converter.convert(frame)
                addresses.add(picture.planes[0].buffer_ptr)
                enc.encode(frame)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(addresses) == 1  # every frame's I420 lands in the same memory
    assert peak < W * H // 4, f"{peak} bytes allocated while converting {W}x{H} frames"  # no frame-sized arrays


def test_keyframes_match_nal_types_and_headers_ride_on_every_idr(encoder: PyAVH264Encoder) -> None:
    frames = [frame_from_array(patterns.scene(W, H, i)) for i in range(12)]
    payloads = encode_all(encoder, frames, force=(5, 9))
    assert [p.keyframe for p in payloads] == [i in (0, 5, 9) for i in range(12)]
    for p in payloads:
        types = h264.nal_types(p.data)
        assert p.data.startswith(b"\x00\x00\x00\x01") or p.data.startswith(b"\x00\x00\x01")  # Annex B
        assert p.keyframe == (h264.NAL_IDR in types)
        if p.keyframe:
            assert h264.NAL_SPS in types and h264.NAL_PPS in types
            assert types.index(h264.NAL_SPS) < types.index(h264.NAL_IDR)
        else:
            assert h264.NAL_SPS not in types and h264.NAL_SLICE in types
        assert p.transport == "webcodecs" and (p.width, p.height) == (W, H) and p.mime is None


def test_codec_string_comes_from_the_sps(encoder: PyAVH264Encoder) -> None:
    first, second = encode_all(encoder, [frame_from_array(patterns.gradient(W, H, i)) for i in range(2)])
    sps = h264.sps_of(first.data)
    assert first.codec == second.codec == encoder.codec == h264.codec_string(first.data)
    assert first.codec == f"avc1.{sps.profile_idc:02X}{sps.constraint_flags:02X}{sps.level_idc:02X}"


def test_sps_forbids_reordering_so_browsers_output_immediately(encoder: PyAVH264Encoder) -> None:
    (payload,) = encoder.encode(frame_from_array(patterns.gradient(W, H)))
    sps = h264.sps_of(payload.data)
    assert sps.vui_present and sps.bitstream_restriction
    assert sps.max_num_reorder_frames == 0
    assert (sps.width, sps.height) == (W, H)


def test_no_b_frames_each_frame_decodes_in_order(encoder: PyAVH264Encoder) -> None:
    import av

    decoder = av.CodecContext.create("h264", "r")
    # distinct flat frames: each decoded picture tells which input it was
    levels = [30, 90, 150, 210, 60, 120]
    for i, level in enumerate(levels):
        src = np.full((H, W, 3), level, np.uint8)
        (payload,) = encoder.encode(frame_from_array(src))
        packet = av.Packet(payload.data)
        packet.pts = i
        # one access unit in, one picture out, immediately: no reordering delay
        (picture,) = decoder.decode(packet)
        assert picture.pts == i
        assert abs(float(picture.to_ndarray(format="rgb24").mean()) - level) < 4
    assert decoder.decode(None) == []


def test_rgba8_gives_the_same_stream_as_rgb24() -> None:
    sources = [patterns.scene(W, H, i) for i in range(4)]
    with create(EncoderConfig(W, H)) as a, create(EncoderConfig(W, H)) as b:
        rgb = [p.data for p in encode_all(a, [frame_from_array(s) for s in sources])]
        rgba = [p.data for p in encode_all(b, [frame_from_array(rgba_of(s)) for s in sources])]
    with H264Decoder() as d1, H264Decoder() as d2:
        pictures_rgb, pictures_rgba = d1.decode_all(rgb), d2.decode_all(rgba)
    for x, y in zip(pictures_rgb, pictures_rgba, strict=True):
        assert psnr(x, y) > 45.0  # same conversion; alpha ignored


def test_nv12_input_goes_straight_in() -> None:
    src = patterns.gradient(W, H, 3)
    nv12 = rgb_to_nv12(src)
    with create(EncoderConfig(W, H)) as enc:
        (payload,) = enc.encode(frame_from_array(nv12, "nv12"))
        converter = enc._converter
        assert converter is not None
        # nv12 is the encoder's format: the wrapped frame is the caller's memory, not a copy
        wrapped = converter.convert(frame_from_array(nv12, "nv12"))
        assert np.shares_memory(np.frombuffer(wrapped.planes[0], np.uint8), nv12)
    assert payload.keyframe
    with H264Decoder() as decoder:
        (decoded,) = decoder.decode_all([payload.data])
    assert psnr(src, decoded) > 30.0


def test_mixed_input_formats_in_one_stream(encoder: PyAVH264Encoder) -> None:
    src = patterns.scene(W, H, 1)
    frames = [frame_from_array(src), frame_from_array(rgb_to_nv12(src), "nv12"), frame_from_array(rgba_of(src))]
    payloads = encode_all(encoder, frames)
    with H264Decoder() as decoder:
        decoded = decoder.decode_all(p.data for p in payloads)
    assert all(psnr(src, d) > 30.0 for d in decoded)


def test_forced_keyframe_every_time() -> None:
    with create(EncoderConfig(64, 64)) as enc:
        for i in range(4):
            (p,) = enc.encode(frame_from_array(patterns.gradient(64, 64, i)), force_keyframe=True)
            assert p.keyframe and h264.is_idr(p.data)


@pytest.mark.parametrize("gop", [None, 12])
def test_every_pyav_route_is_configured_by_one_function(gop: int | None) -> None:
    config = EncoderConfig(64, 48, fps=29.97, bitrate=2_000_000, gop=gop)
    cuda = replace(nvenc_cpu.nvenc_settings(config), pix_fmt="cuda", open_with_first_frame=True)
    for settings in (libx264_settings(config), nvenc_cpu.nvenc_settings(config), cuda):
        context = configure_context(config, settings)  # not opened: h264_nvenc could not open here
        assert not context.is_open
        assert (context.name, context.pix_fmt) == (settings.codec, settings.pix_fmt)
        assert (context.width, context.height) == (64, 48)
        assert context.framerate == Fraction(2997, 100) and context.time_base == Fraction(100, 2997)
        assert (context.max_b_frames, context.gop_size) == (0, gop or LONG_GOP)
        vui = (context.color_primaries, context.color_trc, context.colorspace, context.color_range)
        assert vui == (1, 1, 1, 1)  # BT.709 primaries, transfer and matrix; limited range
        bt601 = configure_context(config, settings, BT601_LIMITED)
        assert (bt601.color_primaries, bt601.color_trc, bt601.colorspace, bt601.color_range) == (1, 1, 6, 1)
    with create(config) as enc:
        assert enc.settings.open_with_first_frame is False
        enc.encode(frame_from_array(patterns.scene(64, 48, 0)))  # opened in the factory, not by the frame


def test_gop_from_config() -> None:
    with create(EncoderConfig(64, 64, gop=4)) as enc:
        keys = [p.keyframe for p in encode_all(enc, [frame_from_array(patterns.scene(64, 64, i)) for i in range(9)])]
    assert keys == [True, False, False, False, True, False, False, False, True]


def test_default_gop_is_long() -> None:
    with create(EncoderConfig(64, 64)) as enc:
        keys = [p.keyframe for p in encode_all(enc, [frame_from_array(patterns.scene(64, 64, i)) for i in range(300)])]
    assert keys.count(True) == 1


def test_vbv_keeps_frames_near_the_per_frame_budget() -> None:
    bitrate, fps = 2_000_000, 30.0
    budget = bitrate / fps / 8
    with create(EncoderConfig(W, H, bitrate=bitrate, fps=fps)) as enc:
        sizes = [len(p.data) for p in encode_all(enc, [frame_from_array(patterns.noise(W, H, i)) for i in range(10)])]
    # noise would take ~10x the budget unconstrained; the VBV holds every frame near it
    assert max(sizes[1:]) < 2.5 * budget, (sizes, budget)


def test_flush_returns_nothing_and_the_next_frame_is_an_idr(encoder: PyAVH264Encoder) -> None:
    frames = [frame_from_array(patterns.scene(W, H, i)) for i in range(3)]
    encode_all(encoder, frames)
    assert encoder.flush() == []
    (after,) = encoder.encode(frames[0])
    assert after.keyframe and h264.NAL_SPS in h264.nal_types(after.data)
    assert encoder.flush() == []
    assert encoder.flush() == []


@pytest.mark.parametrize(("width", "height"), [(321, 240), (320, 241), (1, 1)])
def test_odd_dimensions_are_rejected_clearly(width: int, height: int) -> None:
    with pytest.raises(FrameError, match=rf"even.*got {width}x{height}"):
        create(EncoderConfig(width, height))


def test_wrong_frames_say_what_was_expected(encoder: PyAVH264Encoder) -> None:
    with pytest.raises(FrameError, match=r"opened for 320x240 frames, got 160x120"):
        encoder.encode(frame_from_array(patterns.gradient(160, 120)))
    with pytest.raises(FrameError, match=r"expected a RawFrame, got ndarray"):
        encoder.encode(patterns.gradient(W, H))  # type: ignore[arg-type]
    cuda_like = RawFrame(np.zeros((H, W, 3), np.uint8), W, H, "rgb24", "cuda")
    with pytest.raises(FrameError, match=r"host frames; got memory='cuda'"):
        encoder.encode(cuda_like)
    bad_shape = RawFrame(np.zeros((H, W, 4), np.uint8), W, H, "rgb24")
    with pytest.raises(FrameError, match=r"expected rgb24 of shape \(240, 320, 3\), got \(240, 320, 4\)"):
        encoder.encode(bad_shape)
    # the encoder is still usable after rejecting frames
    (p,) = encoder.encode(frame_from_array(patterns.gradient(W, H)))
    assert p.keyframe


def test_close_is_idempotent_and_encode_after_close_raises() -> None:
    enc = create(EncoderConfig(64, 64))
    enc.encode(frame_from_array(patterns.gradient(64, 64)))
    enc.close()
    enc.close()
    with pytest.raises(RuntimeError, match="h264_cpu encoder is closed"):
        enc.encode(frame_from_array(patterns.gradient(64, 64)))
    with pytest.raises(RuntimeError, match="closed"):
        enc.flush()


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux /proc")
def test_close_releases_encoder_threads_and_memory() -> None:
    import resource

    # x264 starts worker threads per encoder; closing must join them, every time.
    def cycle() -> None:
        enc = PyAVH264Encoder(NAME, EncoderConfig(640, 360), libx264_settings(EncoderConfig(640, 360), threads=4))
        try:
            enc.encode(frame_from_array(patterns.gradient(640, 360)))
            assert _threads() > before
        finally:
            enc.close()

    before = _threads()
    cycle()
    assert _threads() == before
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(25):
        cycle()
    assert _threads() == before
    # peak RSS (KiB) does not keep growing by an encoder's worth per cycle (~10+ MB each)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_start < 60_000


def test_a_failed_open_releases_the_converter() -> None:
    import av

    from rfb.converters import HostConverter

    class Recording(HostConverter):
        closed = 0

        def close(self) -> None:
            Recording.closed += 1
            super().close()

    settings = libx264_settings(EncoderConfig(64, 64), preset="no-such-preset")
    with pytest.raises(av.FFmpegError):
        PyAVH264Encoder(NAME, EncoderConfig(64, 64), settings, converter=Recording())
    assert Recording.closed == 1


def test_unknown_ffmpeg_encoder_is_unavailable() -> None:
    from dataclasses import replace

    from rfb.encoders.base import EncoderUnavailable

    settings = replace(libx264_settings(EncoderConfig(64, 64)), codec="h264_no_such_encoder")
    with pytest.raises(EncoderUnavailable, match="FFmpeg has no encoder 'h264_no_such_encoder'"):
        PyAVH264Encoder("x", EncoderConfig(64, 64), settings)
