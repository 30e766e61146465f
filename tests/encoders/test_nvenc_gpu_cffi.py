"""The nvenc_gpu_cffi route (nvencffi behind the EncoderBackend seam) against the NVENC emulator.

Everywhere: the emulator reads host memory presented as CUDA arrays (as the binding's
own tests do), so the route's frame handling, keyframes, codec string and release run
for real; the emulator writes I_PCM macroblocks, so an nv12 frame decodes back bit for
bit, which proves that the route handed NVENC the caller's pointer and pitch.

On a GPU (``-m gpu``): the same against real CuPy arrays (the emulator then reads
device memory), the staging paths (rgb24 kernel, host upload, pitch fix-up), and on
the real driver what the probe says.
"""

from __future__ import annotations

import ctypes.util
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import nvencffi
from nvencffi import errors
from rfb.benchmark import patterns
from rfb.colorspace import rgb_to_nv12
from rfb.encoders import h264, nvenc_gpu_cffi
from rfb.encoders.base import EncoderBackend, EncoderConfig, EncoderUnavailable
from rfb.encoders.nvenc_gpu_cffi import NvencGpuEncoder
from rfb.encoders.registry import get_entry
from rfb.frames import FrameError, RawFrame, frame_from_array
from rfb.gpu import GpuUnavailable, cuda_frame, gpu_available
from rfb.gpu.staging import DeviceStaging
from tests.gpu import FakeCudaArray, require_cupy, skip_if_cupy_works
from tests.support.frames import assert_stream_decodes, decode, layout_of, nv12_frame, rgba_frame
from tests.support.nvenc_fixtures import assert_released

W, H = 320, 240  # realistic: the emulator, like real drivers, refuses tiny frames
ALIGNED = 512  # a 256-byte multiple: nvencffi registers such frames in place


def emulated(width: int = W, height: int = H, **config: Any) -> NvencGpuEncoder:
    """The route's backend driving the emulator with host memory (no CUDA context)."""
    return NvencGpuEncoder(EncoderConfig(width, height, **config), context=nvencffi.NullContext())


def assert_planes_equal(decoded: tuple[np.ndarray, np.ndarray, np.ndarray], y: np.ndarray, uv: np.ndarray) -> None:
    out_y, out_u, out_v = decoded
    np.testing.assert_array_equal(out_y, y)
    np.testing.assert_array_equal(out_u, uv[:, 0::2])
    np.testing.assert_array_equal(out_v, uv[:, 1::2])


def assert_bt709_close(decoded: tuple[np.ndarray, np.ndarray, np.ndarray], rgb: np.ndarray) -> None:
    """NVENC's RGB -> YUV (the emulator's, here) within a few code values of BT.709 limited."""
    height = rgb.shape[0]
    expected = rgb_to_nv12(rgb).astype(int)
    y, u, v = (plane.astype(int) for plane in decoded)
    assert np.abs(y - expected[:height]).max() <= 2
    assert np.abs(u - expected[height:, 0::2]).max() <= 3
    assert np.abs(v - expected[height:, 1::2]).max() <= 3


# ---------------------------------------------------------------- the entry and the probe


def test_entry_is_the_best_gpu_route() -> None:
    (entry,) = nvenc_gpu_cffi.ENTRIES
    assert (entry.name, entry.transport, entry.reads_cuda, entry.probe) == (
        "nvenc_gpu_cffi",
        "webcodecs",
        True,
        nvenc_gpu_cffi.probe,
    )
    others = [get_entry(n) for n in ("nvenc_gpu_pyav", "h264_gpu_nv12", "nvenc_cpu", "h264_cpu")]
    assert all(entry.priority > other.priority for other in others)


def test_probe_reason_on_a_machine_without_the_nvidia_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    if ctypes.util.find_library("nvidia-encode") is not None or ctypes.util.find_library("cuda") is not None:
        pytest.skip("an NVIDIA driver is installed here")
    monkeypatch.delenv("NVENCFFI_LIBRARY", raising=False)
    nvencffi.reset_library()
    reason = nvenc_gpu_cffi.probe()
    assert reason is not None
    assert reason.startswith("NVENC cannot encode here: could not load the NVENC library 'libnvidia-encode.so.1'")
    assert "ships with the NVIDIA driver" in reason  # what to install, in the binding's words


def test_probe_says_a_gpu_has_no_encode_engine(emulator) -> None:
    emulator.set_unsupported_device(True)  # what an H100 answers
    reason = nvenc_gpu_cffi.probe(context=nvencffi.NullContext())
    assert reason is not None and reason.startswith("NVENC cannot encode here: ")
    assert "has no NVENC video encode engine" in reason and "NV_ENC_ERR_UNSUPPORTED_DEVICE" in reason
    assert emulator.ledger()["sessions"] == 0


def test_probe_names_the_driver_needed(emulator) -> None:
    emulator.set_max_version(11, 1)
    nvencffi.reset_library()
    reason = nvenc_gpu_cffi.probe(context=nvencffi.NullContext())
    assert reason is not None and "530.41.03" in reason and "NVENC API 11.1" in reason


def test_probe_with_nvenc_but_without_cupy_says_what_cupy_is_for(emulator) -> None:
    skip_if_cupy_works()
    reason = nvenc_gpu_cffi.probe(context=nvencffi.NullContext())
    assert reason is not None
    assert reason.startswith("NVENC works, but rgb24 and host frames are staged on the GPU with CuPy")
    assert "pip install 'rfb[gpu]'" in reason
    # nvencffi's probe encoded one frame in one session
    assert emulator.ledger()["sessions"] == 0 and emulator.ledger()["sessions_opened"] == 1


def test_a_gpu_without_an_engine_makes_the_factory_raise_unavailable(emulator) -> None:
    emulator.set_unsupported_device(True)
    with pytest.raises(EncoderUnavailable, match=r"^nvenc_gpu_cffi: .*has no NVENC video encode engine"):
        emulated()
    assert_released(emulator)


# ------------------------------------------------------------------- the stream


@pytest.mark.parametrize(("width", "height", "pitch"), [(W, H, ALIGNED), (512, 288, None), (1280, 720, None)])
def test_cuda_nv12_goes_to_nvenc_in_place_and_decodes_bit_exact(
    emulator, width: int, height: int, pitch: int | None
) -> None:
    frames = [nv12_frame(width, height, pitch=pitch, seed=seed) for seed in range(3)]
    with emulated(width, height) as enc:
        assert isinstance(enc, EncoderBackend)
        payloads = [p for array, _, _ in frames for p in enc.encode(cuda_frame(array))]
        # zero copy: every registration is one of the caller's own buffers, and nothing was staged
        assert {key[0] for key in enc.nvenc.registrations} == {array.pointer for array, _, _ in frames}
        assert {key[1] for key in enc.nvenc.registrations} == {pitch or width}
        staging = enc.staging
        assert (staging.uploads, staging.conversions, staging.copies, staging.buffers) == (0, 0, 0, {})
    assert len(payloads) == 3
    for (_, y, uv), planes in zip(frames, decode([p.data for p in payloads]), strict=True):
        assert_planes_equal(planes, y, uv)
    assert_released(emulator)


@pytest.mark.parametrize(("width", "height", "pitch"), [(W, H, None), (400, 240, 2048)])
def test_cuda_rgba8_goes_to_nvenc_as_abgr_without_a_kernel(
    emulator, width: int, height: int, pitch: int | None
) -> None:
    array, rgb = rgba_frame(width, height, pitch=pitch)
    with emulated(width, height) as enc:
        (payload,) = enc.encode(cuda_frame(array))
        assert [key[0] for key in enc.nvenc.registrations] == [array.pointer]
        assert enc.staging.conversions == 0
    (planes,) = decode([payload.data])
    assert_bt709_close(planes, rgb)
    sps = h264.sps_of(payload.data)
    assert (sps.colour_primaries, sps.transfer_characteristics, sps.matrix_coefficients) == (1, 1, 1)
    assert sps.video_full_range is False


def test_keyframes_first_and_on_demand_with_headers_and_the_codec_from_the_sps(emulator) -> None:
    array, _, _ = nv12_frame(W, H, pitch=ALIGNED)
    with emulated() as enc:
        assert enc.codec is None
        payloads = [p for i in range(8) for p in enc.encode(cuda_frame(array), force_keyframe=i == 5)]
        codec = enc.codec
    assert [p.keyframe for p in payloads] == [i in (0, 5) for i in range(8)]
    for p in payloads:
        types = h264.nal_types(p.data)
        assert p.keyframe == (h264.NAL_IDR in types)
        assert (h264.NAL_SPS in types and h264.NAL_PPS in types) == p.keyframe  # in-band on every IDR
        assert (p.transport, p.width, p.height, p.mime) == ("webcodecs", W, H, None)
    sps = h264.sps_of(payloads[0].data)
    assert (
        codec
        == h264.codec_string(payloads[0].data)
        == f"avc1.{sps.profile_idc:02X}{sps.constraint_flags:02X}{sps.level_idc:02X}"
    )
    assert all(p.codec == codec for p in payloads)  # P frames carry the stream's codec too
    assert sps.profile_idc == 100 and sps.max_num_reorder_frames == 0  # High, no reordering
    assert emulator.ledger()["idr_frames"] == 2


def test_the_config_sets_the_session(emulator) -> None:
    array, _, _ = nv12_frame(W, H, pitch=ALIGNED)
    with emulated(bitrate=3_000_000, fps=60.0, gop=4) as enc:
        kinds = [enc.encode(cuda_frame(array))[0].keyframe for _ in range(9)]
        (session,) = emulator.sessions()
    assert [i for i, key in enumerate(kinds) if key] == [0, 4, 8]
    assert (session["width"], session["height"]) == (W, H)
    assert session["gop_length"] == 4
    assert session["average_bitrate"] == 3_000_000
    assert (session["frame_rate_num"], session["frame_rate_den"]) == (60, 1)


def test_flush_returns_nothing_and_the_next_frame_is_an_idr(emulator) -> None:
    array, _, _ = nv12_frame(W, H, pitch=ALIGNED)
    with emulated() as enc:
        enc.encode(cuda_frame(array))
        assert not enc.encode(cuda_frame(array))[0].keyframe
        assert enc.flush() == []
        (after,) = enc.encode(cuda_frame(array))
    assert after.keyframe and h264.is_idr(after.data)


def test_an_nvenc_failure_propagates_and_the_stream_goes_on(emulator) -> None:
    array, _, _ = nv12_frame(W, H, pitch=ALIGNED)
    with emulated() as enc:
        enc.encode(cuda_frame(array))
        emulator.inject_fault("nvEncEncodePicture", errors.NvencStatus.NV_ENC_ERR_ENCODER_BUSY)
        with pytest.raises(errors.EncoderBusyError, match="nvEncEncodePicture"):
            enc.encode(cuda_frame(array))
        (payload,) = enc.encode(cuda_frame(array))
        assert not payload.keyframe
    assert_released(emulator)


def test_close_releases_the_session_and_is_idempotent(emulator) -> None:
    array, _, _ = nv12_frame(W, H, pitch=ALIGNED)
    enc = emulated()
    enc.encode(cuda_frame(array))
    assert emulator.ledger()["sessions"] == 1 and emulator.ledger()["registered"] == 1
    enc.close()
    assert enc.closed
    assert_released(emulator)
    enc.close()
    with pytest.raises(RuntimeError, match="nvenc_gpu_cffi encoder is closed"):
        enc.encode(cuda_frame(array))
    with pytest.raises(RuntimeError, match="is closed"):
        enc.flush()


# ------------------------------------------------------------------- wrong frames


def test_wrong_frames_say_what_was_expected_and_reach_no_driver(emulator) -> None:
    array, _, _ = nv12_frame(W, H, pitch=ALIGNED)
    with emulated() as enc:
        with pytest.raises(FrameError, match=r"expected a RawFrame, got HostCudaArray .*rfb\.gpu\.cuda_frame"):
            enc.encode(array)  # type: ignore[arg-type]
        with pytest.raises(FrameError, match=r"nvenc_gpu_cffi was opened for 320x240 frames, got 640x480"):
            enc.encode(cuda_frame(nv12_frame(640, 480)[0]))
        with pytest.raises(
            FrameError,
            match=r"320x240 cuda rgba8 frame needs uint8 data of shape \(240, 320, 4\), got uint8 \(360, 320\)",
        ):
            enc.encode(RawFrame(array, W, H, "rgba8", "cuda"))
        with pytest.raises(
            FrameError, match=r"the frame says its rows are 320 bytes apart, its data's strides say 512"
        ):
            enc.encode(RawFrame(nv12_frame(W, H, pitch=ALIGNED)[0], W, H, "nv12", "cuda", pitch=W))
        with pytest.raises(FrameError, match=r"encoder runs on CUDA device 0, the frame lives on device 1"):
            enc.encode(cuda_frame(FakeCudaArray(np.zeros((360, 320), np.uint8), device=1)))
        with pytest.raises(FrameError, match=r"expected rgb24 of shape \(240, 320, 3\), got \(240, 320, 4\)"):
            enc.encode(RawFrame(np.zeros((H, W, 4), np.uint8), W, H, "rgb24"))
        assert emulator.ledger()["registered"] == 0 and emulator.ledger()["encodes"] == 0


@pytest.mark.parametrize(("width", "height"), [(321, 240), (320, 241)])
def test_odd_sizes_are_refused_before_any_session_opens(emulator, width: int, height: int) -> None:
    with pytest.raises(FrameError, match=rf"nvenc_gpu_cffi .* even.*got {width}x{height}"):
        emulated(width, height)
    assert emulator.ledger()["sessions_opened"] == 0


def test_frames_that_need_staging_say_cupy_is_missing(emulator) -> None:
    skip_if_cupy_works()
    rgb = patterns.scene(W, H, 0)
    with emulated() as enc:
        for frame in (frame_from_array(rgb), cuda_frame(FakeCudaArray(rgb))):
            with pytest.raises(GpuUnavailable, match=r"CuPy is not installed"):
                enc.encode(frame)
    assert emulator.ledger()["encodes"] == 0
    assert_released(emulator)


def test_an_odd_pitch_is_left_to_nvencffi_which_stages_it_without_cupy(emulator) -> None:
    misaligned, y, uv = nv12_frame(322, 240)  # a 322-byte pitch: NVENC is only handed 256-byte pitches
    with emulated(322, 240) as enc:
        (payload,) = enc.encode(cuda_frame(misaligned))
        assert enc.staging.copies == 0  # the route passed it on as it is
        assert enc.nvenc.registration_stats["staged_pitch"] == 1
        assert_planes_equal(decode([payload.data])[0], y, uv)
    assert_released(emulator)


def test_staging_passes_direct_layouts_through_untouched() -> None:
    staging = DeviceStaging(("nv12", "rgba8"))
    nv12 = cuda_frame(nv12_frame(W, H, pitch=W + 4)[0])
    rgba = cuda_frame(rgba_frame(W, H)[0])
    assert staging.device_frame(nv12) is nv12 and staging.device_frame(rgba) is rgba
    assert (staging.uploads, staging.conversions, staging.copies) == (0, 0, 0)
    staging.close()
    with pytest.raises(RuntimeError, match="DeviceStaging is closed"):
        staging.device_frame(nv12)
    with pytest.raises(ValueError, match=r"direct must include 'nv12'"):
        DeviceStaging(("rgba8",))


# --------------------------------------------------------------------------- on a GPU


@pytest.fixture
def cp() -> Any:
    return require_cupy()


def device_nv12(cp: Any, width: int, height: int, *, pitch: int | None = None, seed: int = 0) -> tuple[Any, np.ndarray]:
    """A random NV12 CuPy frame (optionally a view of wider rows) and its host copy."""
    host = np.random.default_rng(seed).integers(0, 256, size=(height * 3 // 2, width), dtype=np.uint8)
    storage = cp.zeros((height * 3 // 2, pitch or width), dtype=cp.uint8)
    storage[:, :width] = cp.asarray(host)
    return storage[:, :width], host


@pytest.mark.gpu
def test_cupy_nv12_is_registered_in_place(emulator, cp: Any) -> None:
    frames = [device_nv12(cp, 512, 288, pitch=pitch, seed=seed) for seed, pitch in enumerate((None, 768, None))]
    with nvenc_gpu_cffi.create(EncoderConfig(512, 288)) as enc:
        payloads = [p for array, _ in frames for p in enc.encode(cuda_frame(array))]
        assert {key[0] for key in enc.nvenc.registrations} == {array.data.ptr for array, _ in frames}
        assert enc.staging.buffers == {} and enc.nvenc.registration_stats["staged"] == 0
    for (_, host), planes in zip(frames, decode([p.data for p in payloads]), strict=True):
        assert_planes_equal(planes, host[:288], host[288:])
    assert_released(emulator)


@pytest.mark.gpu
def test_cupy_rgba8_is_registered_in_place(emulator, cp: Any) -> None:
    rgb = patterns.scene(320, 240, 1)
    rgba = cp.asarray(np.concatenate([rgb, np.full((240, 320, 1), 255, np.uint8)], axis=2))  # pitch 1280
    with nvenc_gpu_cffi.create(EncoderConfig(320, 240)) as enc:
        (payload,) = enc.encode(cuda_frame(rgba))
        assert [key[0] for key in enc.nvenc.registrations] == [rgba.data.ptr]
        assert enc.staging.conversions == 0
    (planes,) = decode([payload.data])
    assert_bt709_close(planes, rgb)


@pytest.mark.gpu
def test_cupy_rgb24_is_converted_into_one_reused_staging_buffer(emulator, cp: Any) -> None:
    from rfb.gpu import rgb_to_nv12_host

    sources = [patterns.scene(512, 288, i) for i in range(4)]
    with nvenc_gpu_cffi.create(EncoderConfig(512, 288)) as enc:
        payloads = [p for s in sources for p in enc.encode(cuda_frame(cp.asarray(s)))]
        staged = enc.staging.buffers["nv12"]
        assert enc.staging.conversions == 4 and enc.staging.uploads == 0
        assert [key[0] for key in enc.nvenc.registrations] == [staged.data.ptr]  # registered once
    for src, planes in zip(sources, decode([p.data for p in payloads]), strict=True):
        expected = rgb_to_nv12_host(src).astype(int)  # the kernel's reference
        y, u, v = (plane.astype(int) for plane in planes)
        assert np.abs(y - expected[:288]).max() <= 1
        assert np.abs(u - expected[288:, 0::2]).max() <= 1 and np.abs(v - expected[288:, 1::2]).max() <= 1


@pytest.mark.gpu
def test_host_frames_are_uploaded_once_each(emulator, cp: Any) -> None:
    nv12 = [np.random.default_rng(i).integers(0, 256, (432, 512), dtype=np.uint8) for i in range(3)]
    with nvenc_gpu_cffi.create(EncoderConfig(512, 288)) as enc:
        payloads = [p for host in nv12 for p in enc.encode(frame_from_array(host, "nv12"))]
        assert enc.staging.uploads == 3 and enc.staging.conversions == 0
        (rgb_payload,) = enc.encode(frame_from_array(patterns.scene(512, 288, 0)))
        assert enc.staging.uploads == 4 and enc.staging.conversions == 1
    for host, planes in zip(nv12, decode([p.data for p in payloads]), strict=True):
        assert_planes_equal(planes, host[:288], host[288:])
    assert not rgb_payload.keyframe


@pytest.mark.gpu
def test_a_pitch_nvenc_refuses_is_fixed_with_one_device_copy(emulator, cp: Any) -> None:
    array, host = device_nv12(cp, 322, 240)  # pitch 322: not a multiple of 4
    with nvenc_gpu_cffi.create(EncoderConfig(322, 240)) as enc:
        (payload,) = enc.encode(cuda_frame(array))
        # the route's copy (to a multiple of 4) is not a multiple of 256 either: nvencffi stages it
        assert enc.staging.copies + enc.nvenc.registration_stats["staged_pitch"] >= 1
        assert enc.nvenc.registrations == [] or [key[1] % 256 for key in enc.nvenc.registrations] == [0]
    (planes,) = decode([payload.data])
    assert_planes_equal(planes, host[:240], host[240:])


@pytest.mark.gpu
def test_torch_nv12_is_registered_in_place(emulator) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    host = np.random.default_rng(5).integers(0, 256, (432, 512), dtype=np.uint8)
    tensor = torch.from_numpy(host).cuda()
    with nvenc_gpu_cffi.create(EncoderConfig(512, 288)) as enc:
        (payload,) = enc.encode(cuda_frame(tensor))
        stats = enc.nvenc.registration_stats
        if stats["staged_mempool"]:  # PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync: a pool nvenc cannot register
            assert enc.nvenc.registrations == []
        else:
            assert [key[0] for key in enc.nvenc.registrations] == [tensor.data_ptr()]
    (planes,) = decode([payload.data])
    assert_planes_equal(planes, host[:288], host[288:])


@pytest.mark.gpu
def test_close_gives_the_staging_buffers_back(emulator, cp: Any) -> None:
    pool = cp.get_default_memory_pool()
    enc = nvenc_gpu_cffi.create(EncoderConfig(512, 288))
    enc.encode(frame_from_array(patterns.scene(512, 288, 0)))  # an rgb24 upload buffer and an NV12 one
    assert set(enc.staging.buffers) == {"rgb24", "nv12"}
    cp.cuda.Device().synchronize()
    used = pool.used_bytes()
    enc.close()
    assert pool.used_bytes() <= used - (288 * 512 * 3 + 432 * 512)  # both went back to the pool
    assert_released(emulator)


@pytest.fixture
def real_driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The NVIDIA driver's own libnvidia-encode, not the emulator."""
    monkeypatch.delenv("NVENCFFI_LIBRARY", raising=False)
    nvencffi.reset_library()
    yield
    nvencffi.reset_library()


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["rgb24", "rgba8", "nv12"])
def test_round_trip_on_a_real_nvenc(real_driver: None, layout: str) -> None:
    reason = gpu_available() or nvenc_gpu_cffi.probe()
    if reason is not None:
        pytest.skip(f"nvenc_gpu_cffi unavailable: {reason}")
    cp = require_cupy()
    w, h, n = 640, 360, 10
    sources = [patterns.scene(w, h, i) for i in range(n)]
    with nvenc_gpu_cffi.create(EncoderConfig(w, h, bitrate=8_000_000)) as enc:
        frames = [cuda_frame(cp.asarray(layout_of(s, layout)), layout) for s in sources]
        payloads = [p for i, frame in enumerate(frames) for p in enc.encode(frame, force_keyframe=i == 6)]
    assert_stream_decodes(payloads, sources, idr_at=(0, 6))


@pytest.mark.gpu
def test_on_the_real_driver_the_probe_answers(real_driver: None) -> None:
    """On a GPU without NVENC (H100, H200) the reason says so; elsewhere the route is available."""
    reason = gpu_available()
    if reason is not None:
        pytest.skip(reason)
    result = nvencffi.probe()
    reason = nvenc_gpu_cffi.probe()
    if result.available:
        pytest.skip(f"this GPU ({result.gpu_name}) has NVENC; the route's probe said {reason!r}")
    assert reason is not None and reason.startswith("NVENC cannot encode here: ")
    # no engine (the H100's answer) or, in a container without the 'video' capability, no library
    assert "has no NVENC video encode engine" in reason or "could not load the NVENC library" in reason, reason
