"""HostFrameAdapter: host frames pass through; CUDA frames cross PCIe once, as NV12, into
a reused pinned buffer, and come out of the real libx264 route at the expected quality."""

from __future__ import annotations

import numpy as np
import pytest

from rfb.benchmark import patterns
from rfb.benchmark.metrics import H264Decoder
from rfb.encoders.base import EncodedPayload, EncoderBackend, EncoderConfig
from rfb.frames import RawFrame, frame_from_array
from rfb.gpu import GpuUnavailable, HostFrameAdapter, cuda_frame, rgb_to_nv12_host
from tests.gpu import FakeCudaArray, require_cupy, skip_if_cupy_works
from tests.support.frames import assert_h264_quality, padded_device_frame


class RecordingEncoder:
    """A host-only backend that keeps a copy of what it was given."""

    name = "recording"
    transport = "webcodecs"

    def __init__(self) -> None:
        self.frames: list[RawFrame] = []
        self.copies: list[np.ndarray] = []
        self.forced: list[bool] = []
        self.closed = 0

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        assert frame.memory == "cpu", "a host-only encoder must never see device memory"
        frame_from_array(frame)  # what a real host encoder validates
        self.frames.append(frame)
        self.copies.append(frame.data.copy())
        self.forced.append(force_keyframe)
        return [EncodedPayload(b"\x00\x00\x00\x01", force_keyframe, frame.width, frame.height, "webcodecs")]

    def flush(self) -> list[EncodedPayload]:
        return []

    def close(self) -> None:
        self.closed += 1


# -- everywhere ---------------------------------------------------------------------------


def test_host_frames_pass_straight_through() -> None:
    inner = RecordingEncoder()
    adapter = HostFrameAdapter(inner)
    assert isinstance(adapter, EncoderBackend)
    assert (adapter.name, adapter.transport) == ("recording", "webcodecs")
    frame = frame_from_array(np.zeros((4, 6, 3), dtype=np.uint8))
    (payload,) = adapter.encode(frame, force_keyframe=True)
    assert payload.keyframe is True
    assert inner.frames == [frame] and inner.frames[0] is frame and inner.forced == [True]
    assert adapter.d2h_transfers == 0
    adapter.close()


def test_close_closes_the_wrapped_encoder_once() -> None:
    inner = RecordingEncoder()
    with HostFrameAdapter(inner) as adapter:
        assert not adapter.closed
    assert adapter.closed and inner.closed == 1
    adapter.close()
    assert inner.closed == 1
    with pytest.raises(RuntimeError, match=r"HostFrameAdapter\('recording'\) is closed"):
        adapter.encode(frame_from_array(np.zeros((4, 6, 3), dtype=np.uint8)))
    with pytest.raises(RuntimeError, match=r"is closed"):
        adapter.flush()


def test_prefer_is_checked() -> None:
    with pytest.raises(ValueError, match=r"prefer must be 'nv12' or 'rgb24', got 'yuv444'"):
        HostFrameAdapter(RecordingEncoder(), prefer="yuv444")  # type: ignore[arg-type]


def test_cuda_frames_without_cupy_say_why() -> None:
    skip_if_cupy_works()
    inner = RecordingEncoder()
    with HostFrameAdapter(inner) as adapter:
        with pytest.raises(GpuUnavailable, match=r"CuPy"):
            adapter.encode(cuda_frame(FakeCudaArray(np.zeros((4, 6, 3), dtype=np.uint8))))
        assert adapter.d2h_transfers == 0 and inner.frames == []


def test_wraps_the_real_h264_cpu_route_for_host_frames() -> None:
    h264_cpu = pytest.importorskip("rfb.encoders.h264_cpu")
    sources = [patterns.make("scene", 64, 48, i) for i in range(4)]
    with HostFrameAdapter(h264_cpu.create(EncoderConfig(64, 48))) as adapter:
        payloads = [p for s in sources for p in adapter.encode(frame_from_array(s))]
        assert adapter.d2h_transfers == 0
    assert len(payloads) == 4 and payloads[0].keyframe
    with H264Decoder() as decoder:
        assert_h264_quality(sources, decoder.decode_all(p.data for p in payloads))


# -- on the GPU ---------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("pattern", ["gradient", "scene"])
def test_real_h264_cpu_from_cuda_frames(pattern: str) -> None:
    cp = require_cupy()
    h264_cpu = pytest.importorskip("rfb.encoders.h264_cpu")
    w, h, n = 320, 240, 12
    sources = [patterns.make(pattern, w, h, i) for i in range(n)]
    with HostFrameAdapter(h264_cpu.create(EncoderConfig(w, h, bitrate=6_000_000))) as adapter:
        payloads = []
        for i, src in enumerate(sources):
            payloads += adapter.encode(padded_device_frame(cp, src), force_keyframe=i == 6)
            assert adapter.d2h_transfers == i + 1  # exactly one device -> host copy per frame
    assert len(payloads) == n and payloads[0].keyframe and payloads[6].keyframe
    with H264Decoder() as decoder:
        assert_h264_quality(sources, decoder.decode_all(p.data for p in payloads))


@pytest.mark.gpu
def test_nv12_reaches_the_encoder_from_pinned_memory_reused() -> None:
    cp = require_cupy()
    inner = RecordingEncoder()
    hosts = [patterns.make("scene", 98, 66, i) for i in range(3)]
    with HostFrameAdapter(inner) as adapter:
        for host in hosts:
            adapter.encode(padded_device_frame(cp, host))
        assert adapter.d2h_transfers == 3
    for frame, copy, host in zip(inner.frames, inner.copies, hosts, strict=True):
        assert (frame.pixel_format, frame.memory, frame.size) == ("nv12", "cpu", (98, 66))
        assert int(np.abs(copy.astype(np.int16) - rgb_to_nv12_host(host)).max()) <= 1
    first, last = inner.frames[0].data, inner.frames[-1].data
    assert np.shares_memory(first, last)  # one host buffer for the whole stream
    attributes = cp.cuda.runtime.pointerGetAttributes(first.ctypes.data)
    assert attributes.type == cp.cuda.runtime.memoryTypeHost  # page-locked, not pageable


@pytest.mark.gpu
def test_prefer_rgb24_packs_rgba_on_the_device() -> None:
    cp = require_cupy()
    inner = RecordingEncoder()
    rgba = np.concatenate([patterns.make("scene", 98, 66, 0), np.full((66, 98, 1), 9, np.uint8)], axis=2)
    rgb = patterns.make("gradient", 98, 66, 1)
    with HostFrameAdapter(inner, prefer="rgb24") as adapter:
        adapter.encode(padded_device_frame(cp, rgba))
        adapter.encode(padded_device_frame(cp, rgb))
        assert adapter.d2h_transfers == 2
    assert [f.pixel_format for f in inner.frames] == ["rgb24", "rgb24"]
    assert np.array_equal(inner.copies[0], rgba[..., :3])
    assert np.array_equal(inner.copies[1], rgb)


@pytest.mark.gpu
def test_cuda_nv12_is_copied_as_it_is() -> None:
    cp = require_cupy()
    inner = RecordingEncoder()
    nv12 = rgb_to_nv12_host(patterns.make("scene", 98, 66, 2))
    wide = cp.zeros((99, 128), dtype=cp.uint8)
    wide[:, :98] = cp.asarray(nv12)
    with HostFrameAdapter(inner) as adapter:
        adapter.encode(cuda_frame(wide[:, :98], timestamp_us=42))
        assert adapter.d2h_transfers == 1
    (frame,) = inner.frames
    assert (frame.pixel_format, frame.timestamp_us) == ("nv12", 42)
    assert np.array_equal(inner.copies[0], nv12)


@pytest.mark.gpu
def test_size_change_and_close_release_the_buffers() -> None:
    cp = require_cupy()
    inner = RecordingEncoder()
    device_pool = cp.get_default_memory_pool()
    pinned_pool = cp.get_default_pinned_memory_pool()
    adapter = HostFrameAdapter(inner)
    adapter.encode(padded_device_frame(cp, patterns.make("scene", 98, 66, 0)))
    adapter.encode(padded_device_frame(cp, patterns.make("scene", 64, 48, 0)))
    assert inner.frames[1].data.shape == (72, 64)
    assert not np.shares_memory(inner.frames[0].data, inner.frames[1].data)
    del inner.frames[:]  # the frames handed out view the pinned buffer; drop them
    cp.cuda.Device().synchronize()
    used_before = device_pool.used_bytes()
    free_pinned_before = pinned_pool.n_free_blocks()
    adapter.close()
    assert device_pool.used_bytes() < used_before  # the NV12 staging buffer went back
    assert pinned_pool.n_free_blocks() > free_pinned_before  # and the pinned one
    assert inner.closed == 1
