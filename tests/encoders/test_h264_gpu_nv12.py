"""The h264_gpu_nv12 route (libx264 fed NV12 made on the GPU), and how the registry
chooses among the GPU routes.

Everywhere: host frames go through to the real libx264 and decode back; the probe's
reason without a GPU; ``select_encoder(gpu=True)`` falls back to a CPU route and
``encoder_status()`` lists the GPU routes with their reasons.

On a GPU (``-m gpu``): CuPy and PyTorch frames decode back at the quality 4:2:0 allows,
with exactly one device -> host copy per frame; where NVENC is missing (H100, H200)
the registry picks this route for ``gpu=True``.
"""

from __future__ import annotations

from typing import Any

import pytest

from rfb.benchmark import patterns
from rfb.benchmark.metrics import H264Decoder
from rfb.encoders import h264, h264_gpu_nv12
from rfb.encoders.base import EncoderBackend, EncoderConfig
from rfb.encoders.registry import encoder_status, get_entry, select_encoder
from rfb.frames import FrameError, frame_from_array
from rfb.gpu import GpuUnavailable, HostFrameAdapter, cuda_frame, gpu_available, rgb_to_nv12_host
from tests.encoders.test_h264_cpu import encode_all, rgba_of
from tests.gpu import FakeCudaArray, require_cupy, skip_if_cupy_works
from tests.support.frames import assert_h264_quality, padded_device_frame

W, H = 160, 96
GPU_ROUTES = ("nvenc_gpu_cffi", "nvenc_gpu_pyav", "h264_gpu_nv12")
CPU_ROUTES = ("nvenc_cpu", "h264_cpu")


def no_gpu() -> str:
    """Skip the calling test where a GPU is usable (it checks the no-GPU behaviour)."""
    if gpu_available() is None:
        pytest.skip("a CUDA GPU is usable here: the no-GPU answers cannot be checked")
    return "no GPU"


# ---------------------------------------------------------------- the entry and the probe


def test_entry_ranks_below_the_nvenc_routes_and_above_the_cpu_routes() -> None:
    (entry,) = h264_gpu_nv12.ENTRIES
    assert (entry.name, entry.transport, entry.reads_cuda, entry.probe) == (
        "h264_gpu_nv12",
        "webcodecs",
        True,
        h264_gpu_nv12.probe,
    )
    priorities = {name: get_entry(name).priority for name in GPU_ROUTES + CPU_ROUTES}
    assert priorities["nvenc_gpu_cffi"] > priorities["nvenc_gpu_pyav"] > priorities["h264_gpu_nv12"]
    assert min(priorities[n] for n in GPU_ROUTES) > max(priorities[n] for n in CPU_ROUTES)


def test_probe_reason_without_a_gpu() -> None:
    no_gpu()
    reason = h264_gpu_nv12.probe()
    assert reason is not None
    assert reason.startswith("this route converts CUDA frames on a GPU, and there is none usable: ")
    assert "no NVIDIA driver (libcuda) could be loaded" in reason


# ------------------------------------------------------------------ host frames, here


def test_host_frames_go_straight_to_libx264() -> None:
    sources = [patterns.make("scene", W, H, i) for i in range(6)]
    frames = [frame_from_array(s) for s in sources[:3]] + [
        frame_from_array(rgba_of(sources[3])),
        frame_from_array(rgb_to_nv12_host(sources[4]), "nv12"),
        frame_from_array(sources[5]),
    ]
    with h264_gpu_nv12.create(EncoderConfig(W, H, bitrate=6_000_000)) as enc:
        assert isinstance(enc, EncoderBackend) and isinstance(enc, HostFrameAdapter)
        assert (enc.name, enc.transport) == ("h264_gpu_nv12", "webcodecs")
        payloads = encode_all(enc, frames, force=(4,))
        assert enc.d2h_transfers == 0
        assert enc.flush() == []
    # 4 is forced; 5 goes back from nv12 (BT.709) to RGB (converted as BT.601): a new SPS
    # colour description, so libx264 re-opens with an IDR (see h264_cpu)
    assert [p.keyframe for p in payloads] == [i in (0, 4, 5) for i in range(6)]
    assert payloads[0].codec == h264.codec_string(payloads[0].data)
    with H264Decoder() as decoder:
        assert_h264_quality(sources, decoder.decode_all(p.data for p in payloads))


def test_wrong_frames_and_sizes_say_what_was_expected() -> None:
    with pytest.raises(FrameError, match=r"h264_gpu_nv12 encodes 4:2:0 video .*got 161x96"):
        h264_gpu_nv12.create(EncoderConfig(161, 96))
    with (
        h264_gpu_nv12.create(EncoderConfig(W, H)) as enc,
        pytest.raises(FrameError, match=r"h264_gpu_nv12 was opened for 160x96 frames, got 64x48"),
    ):
        enc.encode(frame_from_array(patterns.scene(64, 48, 0)))


def test_cuda_frames_without_cupy_say_why() -> None:
    skip_if_cupy_works()
    with h264_gpu_nv12.create(EncoderConfig(W, H)) as enc:
        with pytest.raises(GpuUnavailable, match=r"CuPy is not installed"):
            enc.encode(cuda_frame(FakeCudaArray(patterns.scene(W, H, 0))))
        assert enc.d2h_transfers == 0


def test_close_closes_libx264_and_is_idempotent() -> None:
    enc = h264_gpu_nv12.create(EncoderConfig(W, H))
    enc.encode(frame_from_array(patterns.scene(W, H, 0)))
    enc.close()
    enc.close()
    assert enc.closed
    with pytest.raises(RuntimeError, match=r"HostFrameAdapter\('h264_gpu_nv12'\) is closed"):
        enc.encode(frame_from_array(patterns.scene(W, H, 0)))


# ------------------------------------------------------------------ the registry, here


def test_without_a_gpu_the_gpu_routes_are_listed_with_their_reasons() -> None:
    no_gpu()
    status = {s.name: s for s in encoder_status(refresh=True)}
    for name in GPU_ROUTES:
        s = status[name]
        assert s.reads_cuda and s.transport == "webcodecs" and not s.available, s
        assert s.reason and len(s.reason) < 1000 and "\n" not in s.reason
    assert status["nvenc_gpu_cffi"].reason.startswith("NVENC cannot encode here: ")
    assert status["nvenc_gpu_pyav"].reason.startswith("CUDA frames need a CUDA GPU: ")
    assert status["h264_gpu_nv12"].reason.startswith("this route converts CUDA frames on a GPU")


def test_without_a_gpu_gpu_true_falls_back_to_the_best_cpu_route() -> None:
    no_gpu()
    encoder_status(refresh=True)
    cpu_best = select_encoder(gpu=False)
    assert cpu_best.name in CPU_ROUTES and not cpu_best.reads_cuda
    assert select_encoder(gpu=True).name == cpu_best.name


# --------------------------------------------------------------------------- on a GPU


@pytest.fixture
def cp() -> Any:
    return require_cupy()


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["rgb24", "rgba8", "nv12"])
def test_cupy_frames_cross_once_and_decode_at_the_expected_quality(cp: Any, layout: str) -> None:
    n = 8
    sources = [patterns.make("scene", W, H, i) for i in range(n)]
    with h264_gpu_nv12.create(EncoderConfig(W, H, bitrate=6_000_000)) as enc:
        payloads = []
        for i, src in enumerate(sources):
            if layout == "rgb24":
                frame = padded_device_frame(cp, src)
            elif layout == "rgba8":
                frame = padded_device_frame(cp, rgba_of(src))
            else:
                frame = cuda_frame(cp.asarray(rgb_to_nv12_host(src)))
            payloads += enc.encode(frame, force_keyframe=i == 5)
            assert enc.d2h_transfers == i + 1  # exactly one device -> host copy per frame
    assert [p.keyframe for p in payloads] == [i in (0, 5) for i in range(n)]
    with H264Decoder() as decoder:
        assert_h264_quality(sources, decoder.decode_all(p.data for p in payloads))


@pytest.mark.gpu
def test_torch_frames_cross_once_and_decode_at_the_expected_quality() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    require_cupy()
    sources = [patterns.make("gradient", W, H, i) for i in range(4)]
    with h264_gpu_nv12.create(EncoderConfig(W, H, bitrate=6_000_000)) as enc:
        payloads = []
        for i, src in enumerate(sources):
            payloads += enc.encode(cuda_frame(torch.from_numpy(src).cuda()))
            assert enc.d2h_transfers == i + 1
    with H264Decoder() as decoder:
        assert_h264_quality(sources, decoder.decode_all(p.data for p in payloads))


@pytest.mark.gpu
def test_on_a_gpu_without_nvenc_gpu_true_picks_this_route(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = gpu_available()
    if reason is not None:
        pytest.skip(reason)
    require_cupy()
    import nvencffi

    monkeypatch.delenv("NVENCFFI_LIBRARY", raising=False)  # the real driver, not the emulator
    nvencffi.reset_library()
    status = {s.name: s for s in encoder_status(refresh=True)}
    if status["nvenc_gpu_cffi"].available or status["nvenc_gpu_pyav"].available:
        pytest.skip("this GPU has NVENC: the NVENC routes rightly come first")
    assert status["h264_gpu_nv12"].available, status["h264_gpu_nv12"].reason
    assert select_encoder(gpu=True).name == "h264_gpu_nv12"
    for name in ("nvenc_gpu_cffi", "nvenc_gpu_pyav"):
        assert "nvenc" in (status[name].reason or "").lower(), status[name].reason
