"""The jpeg_gpu route (nvjpegffi behind the EncoderBackend seam).

Everywhere: the route drives the nvJPEG emulator with host memory presented as CUDA
arrays, so its frame handling (zero copy for rgb24, the stream it picks, settings,
errors, PNG stills, release) runs for real; the emulator echoes the bytes it read
through the pointer and pitch it was given. The colour conversion of NV12 is checked
against its NumPy twin, and the route's place in the registry.

On a GPU (``-m gpu``): real nvJPEG on CuPy, PyTorch and JAX arrays, decoded by Pillow
against the input at quality 75 and 90, every staging path, no host copy of the frame,
10,000 frames with flat GPU and host memory, and a WebSocket client receiving and
decoding jpeg_gpu frames from ``serve(gpu=True)``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

import nvjpegffi
from rfb.benchmark import patterns
from rfb.benchmark.metrics import psnr
from rfb.colorspace import nv12_to_rgb_host, rgb_to_nv12_host
from rfb.encoders import jpeg_gpu
from rfb.encoders.base import EncoderBackend, EncoderConfig, EncoderUnavailable
from rfb.encoders.jpeg_gpu import JpegGpuEncoder, nv12_to_jfif_host, rematrix_coefficients
from rfb.encoders.registry import get_entry, select_encoder
from rfb.frames import FrameError, RawFrame, frame_from_array
from rfb.gpu import cuda_frame, describe_device_array
from rfb.gpu.arrays import frame_stream
from tests.gpu import FakeCudaArray, require_whole_device
from tests.nvjpegffi.emulator import Emulator, parse

# The binding's emulator fixtures, reused.
from tests.support.nvjpeg_fixtures import (  # noqa: F401 (fixtures, used by name)
    c_compiler,
    emulator,
    emulator_path,
    official_include_dir,
    use_library,
)

W, H = 64, 48
NONE_LIVE = {"handles": 0, "states": 0, "params": 0}


def emulated(width: int = W, height: int = H, **options: Any) -> JpegGpuEncoder:
    """The route's backend driving the emulator with host memory (no CUDA context)."""
    config = {k: options.pop(k) for k in ("quality", "device_id") if k in options}
    return JpegGpuEncoder(EncoderConfig(width, height, **config), context=nvjpegffi.NullContext(), **options)


def host_cuda_frame(host: np.ndarray, **cai: Any) -> RawFrame:
    """A cuda RawFrame over host memory (only the emulator may read it)."""
    return cuda_frame(FakeCudaArray(host, **cai))


# ---------------------------------------------------------------- the route, emulated


def test_entry() -> None:
    entry = get_entry(jpeg_gpu.NAME)
    assert entry.transport == "image" and entry.reads_cuda and entry.priority > get_entry("image").priority
    assert entry is jpeg_gpu.ENTRIES[0]


def test_rgb24_cuda_frames_are_read_in_place(emulator: Emulator) -> None:
    storage = np.zeros((H, W * 3 + 64), np.uint8)  # a pitched allocation, as a slice of a wider one
    host = storage[:, : W * 3].reshape(H, W, 3)
    host[...] = patterns.scene(W, H, 1)
    frame = host_cuda_frame(host)
    with emulated(quality=55) as enc:
        assert isinstance(enc, EncoderBackend)
        (payload,) = enc.encode(frame)
        assert enc.last_source == (host.ctypes.data, W * 3 + 64)  # the caller's own pointer and pitch
        assert (enc.uploads, enc.packs, enc.conversions, enc.downloads) == (0, 0, 0, 0)
        assert enc.flush() == []
    assert payload.mime == "image/jpeg" and payload.keyframe and payload.transport == "image"
    assert (payload.width, payload.height, payload.codec) == (W, H, None)
    out = parse(payload.data)
    assert (out.quality, out.pitches[0], out.stream) == (55, W * 3 + 64, 0)
    np.testing.assert_array_equal(out.planes[0], host)
    assert emulator.live() == NONE_LIVE


@pytest.mark.parametrize(("named", "used"), [(None, 0), (1, 0), (2, 2), (0xC0FFEE, 0xC0FFEE)])
def test_the_frames_stream_is_the_one_nvjpeg_runs_on(emulator: Emulator, named: int | None, used: int) -> None:
    frame = host_cuda_frame(patterns.gradient(W, H), stream=named)
    assert frame_stream(describe_device_array(frame.data)) == used
    with emulated() as enc:
        (payload,) = enc.encode(frame)
    assert parse(payload.data).stream == used


def test_the_wait_is_a_route_option_and_stream_sync_the_default(emulator: Emulator) -> None:
    frame = host_cuda_frame(patterns.gradient(W, H))
    with emulated() as plain, emulated(wait="event") as evented:
        assert (plain.nvjpeg.wait, evented.nvjpeg.wait) == ("stream", "event")
        assert evented.encode(frame)[0].data == plain.encode(frame)[0].data
    with pytest.raises(ValueError, match="wait must be one of"):
        emulated(wait="poll")
    assert emulator.live() == NONE_LIVE


def test_subsampling_is_a_route_option(emulator: Emulator) -> None:
    frame = host_cuda_frame(patterns.gradient(W, H))
    with emulated(subsampling="444") as enc:
        (payload,) = enc.encode(frame)
    assert parse(payload.data).params_subsampling == nvjpegffi.SUBSAMPLINGS["444"]


def test_settings_and_frames_are_checked_before_any_gpu_work(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="JPEG quality must be an integer in 1..100, got 0"):
        emulated(quality=0)
    with pytest.raises(FrameError, match="expected a positive frame size"):
        JpegGpuEncoder(EncoderConfig(0, H), context=nvjpegffi.NullContext())
    assert emulator.count("created") == 0
    with emulated() as enc:
        with pytest.raises(FrameError, match="was opened for 64x48 frames, got 32x48"):
            enc.encode(host_cuda_frame(patterns.gradient(32, H)))
        with pytest.raises(FrameError, match="expected a RawFrame, got ndarray"):
            enc.encode(patterns.gradient(W, H))  # type: ignore[arg-type]
        with pytest.raises(FrameError, match="encodes on CUDA device 0, the frame lives on device 1"):
            enc.encode(cuda_frame(FakeCudaArray(patterns.gradient(W, H), device=1)))
        lying = RawFrame(FakeCudaArray(patterns.gradient(W, 32)), W, H, "rgb24", "cuda")
        with pytest.raises(FrameError, match=r"needs uint8 data of shape \(48, 64, 3\)"):
            enc.encode(lying)
        assert emulator.count("encodes") == 0


def test_host_frames_become_exact_png_stills(emulator: Emulator) -> None:
    src = patterns.noise(W, H, 3)
    with emulated() as enc:
        (payload,) = enc.encode(frame_from_array(src), lossless=True)
        assert enc.downloads == 0 and emulator.count("encodes") == 0
    assert payload.mime == "image/png" and payload.keyframe
    with Image.open(io.BytesIO(payload.data)) as img:
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), src)


def test_close_releases_nvjpeg_and_is_idempotent(emulator: Emulator) -> None:
    enc = emulated()
    enc.encode(frame_from_array(patterns.gradient(W, H)), lossless=True)  # the PNG writer exists too
    enc.close()
    enc.close()
    assert enc.closed and emulator.live() == NONE_LIVE
    with pytest.raises(RuntimeError, match="jpeg_gpu encoder is closed"):
        enc.encode(host_cuda_frame(patterns.gradient(W, H)))
    assert "closed" in repr(enc)


def test_a_failing_nvjpeg_call_raises_with_its_status(emulator: Emulator) -> None:
    with emulated() as enc:
        emulator.inject("nvjpegEncodeImage", nvjpegffi.NvjpegStatus.NVJPEG_STATUS_EXECUTION_FAILED)
        with pytest.raises(nvjpegffi.NvjpegError, match="nvjpegEncodeImage failed: NVJPEG_STATUS_EXECUTION_FAILED"):
            enc.encode(host_cuda_frame(patterns.gradient(W, H)))
        (payload,) = enc.encode(host_cuda_frame(patterns.gradient(W, H)))  # and goes on
    assert parse(payload.data).width == W


def test_probe_and_factory_where_nvjpeg_cannot_run(use_library) -> None:
    use_library("/nonexistent/libnvjpeg.so.13")
    reason = jpeg_gpu.probe()
    assert reason is not None and reason.startswith("nvJPEG cannot encode here: could not load libnvjpeg")
    with pytest.raises(EncoderUnavailable, match="^jpeg_gpu: could not load libnvjpeg"):
        jpeg_gpu.create(EncoderConfig(W, H))


def test_probe_with_the_emulator(emulator: Emulator) -> None:
    assert jpeg_gpu.probe(context=nvjpegffi.NullContext()) is None
    assert emulator.live() == NONE_LIVE


@pytest.fixture
def nvjpeg_available() -> Iterator[None]:
    """jpeg_gpu registered as able to run (its probe passes), as on a GPU machine."""
    from rfb.encoders import registry

    original = get_entry(jpeg_gpu.NAME)
    registry.register_video_encoder(
        jpeg_gpu.NAME,
        original.factory,
        transport="image",
        probe=lambda: None,
        priority=original.priority,
        reads_cuda=True,
        replace=True,
    )
    yield
    registry.register_video_encoder(
        original.name,
        original.factory,
        transport=original.transport,
        probe=original.probe,
        priority=original.priority,
        reads_cuda=original.reads_cuda,
        description=original.description,
        replace=True,
    )


def test_where_nvjpeg_runs_the_best_image_route_is_jpeg_gpu(nvjpeg_available: None) -> None:
    assert select_encoder(transport="image", gpu=True).name == jpeg_gpu.NAME
    assert select_encoder(transport="image").name == jpeg_gpu.NAME  # its priority is above the CPU route's
    assert select_encoder("image", transport="image").name == "image"  # a route asked for by name stays


def test_image_viewers_of_a_gpu_display_get_jpeg_gpu(nvjpeg_available: None) -> None:
    from rfb.routes import resolve_routes

    gpu = resolve_routes(None, "image", gpu=True)["image"]
    assert gpu[0].name == jpeg_gpu.NAME and "image" in [e.name for e in gpu[1:]]  # the CPU route as fallback
    assert resolve_routes(None, "image", gpu=False)["image"][0].name == "image"  # a CPU display keeps its default
    assert resolve_routes(None, jpeg_gpu.NAME, gpu=False)["image"][0].name == jpeg_gpu.NAME  # or asks by name


# ---------------------------------------------------------------- NV12 colours


def test_rematrix_of_jfif_nv12_is_the_identity() -> None:
    c = np.asarray(rematrix_coefficients("bt601", True)).reshape(3, 4)
    np.testing.assert_allclose(c[:, :3], np.eye(3), atol=1e-9)
    np.testing.assert_allclose(c[:, 3], 0.0, atol=1e-9)


@pytest.mark.parametrize("pattern", ["gradient", "scene", "noise"])
@pytest.mark.parametrize(("matrix", "full_range"), [("bt709", False), ("bt601", False), ("bt709", True)])
def test_rematrixed_nv12_looks_to_a_jpeg_decoder_as_the_source_means_it(
    pattern: str, matrix: str, full_range: bool
) -> None:
    """A JFIF decoder reads NV12 as BT.601 full range: after the re-matrix it shows the
    picture the source colorimetry describes; without it, visibly not."""
    nv12 = rgb_to_nv12_host(patterns.make(pattern, W, H, 2), matrix=matrix, full_range=full_range)
    meant = nv12_to_rgb_host(nv12, matrix=matrix, full_range=full_range)
    as_jfif = nv12_to_jfif_host(nv12, matrix=matrix, full_range=full_range)
    assert psnr(meant, nv12_to_rgb_host(as_jfif, matrix="bt601", full_range=True)) > 48.0
    assert psnr(meant, nv12_to_rgb_host(nv12, matrix="bt601", full_range=True)) < 37.0  # what skipping it would show
    # the same as going through RGB, except where RGB clips (saturated edges)
    through_rgb = rgb_to_nv12_host(meant, matrix="bt601", full_range=True)
    assert np.abs(as_jfif.astype(int) - through_rgb.astype(int)).mean() < 0.6


# ---------------------------------------------------------------- on a GPU


def _require_nvjpeg() -> Any:
    from tests.gpu import require_cupy

    cp = require_cupy()
    result = nvjpegffi.probe()
    if not result.available:
        pytest.skip(f"nvJPEG cannot run here: {result.reason}")
    return cp


def _decode(data: bytes) -> np.ndarray:
    assert data[:2] == b"\xff\xd8"
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        return np.asarray(img.convert("RGB"))


@pytest.fixture
def gpu_route() -> Iterator[Any]:
    cp = _require_nvjpeg()
    made: list[JpegGpuEncoder] = []

    def make(width: int = 320, height: int = 240, **options: Any) -> JpegGpuEncoder:
        quality = options.pop("quality", 90)
        enc = JpegGpuEncoder(EncoderConfig(width, height, quality=quality), **options)
        made.append(enc)
        return enc

    yield cp, make
    for enc in made:
        enc.close()


@pytest.mark.gpu
def test_gpu_every_layout_and_no_host_copy(gpu_route) -> None:
    cp, make = gpu_route
    from rfb.gpu import rgb_to_nv12

    src = patterns.scene(320, 240, 6)
    rgb = cp.asarray(src)
    rgba = cp.concatenate([rgb, cp.full((240, 320, 1), 7, cp.uint8)], axis=2)
    wide = cp.zeros((240, 320 * 3 + 32), cp.uint8)
    wide[:, : 320 * 3] = rgb.reshape(240, -1)
    pitched = cp.ndarray((240, 320, 3), cp.uint8, memptr=wide.data, strides=(320 * 3 + 32, 3, 1))
    nv12 = rgb_to_nv12(rgb)
    enc = make()
    (a,) = enc.encode(cuda_frame(rgb))
    assert enc.last_source == (rgb.data.ptr, 320 * 3)  # nvJPEG read the CuPy array itself
    (b,) = enc.encode(cuda_frame(pitched))
    assert enc.last_source == (pitched.data.ptr, 320 * 3 + 32)
    (c,) = enc.encode(cuda_frame(rgba))
    (d,) = enc.encode(cuda_frame(nv12))
    assert (enc.uploads, enc.downloads, enc.packs, enc.conversions) == (0, 0, 1, 1)
    assert a.data == b.data == c.data  # same pixels, same JPEG, whatever the layout
    assert psnr(src, _decode(d.data)) > psnr(src, _decode(a.data)) - 3.0
    (e,) = enc.encode(frame_from_array(src))  # host fallback: one upload, same JPEG
    assert enc.uploads == 1 and e.data == a.data


@pytest.mark.gpu
def test_gpu_rematrix_kernel_matches_its_numpy_twin(gpu_route) -> None:
    cp, make = gpu_route
    from rfb.gpu import rgb_to_nv12

    enc = make(320, 240)
    nv12 = rgb_to_nv12(cp.asarray(patterns.scene(320, 240, 7)))
    converted = enc._rematrix(cuda_frame(nv12), 0)
    cp.cuda.Stream.null.synchronize()
    diff = np.abs(cp.asnumpy(converted).astype(int) - nv12_to_jfif_host(cp.asnumpy(nv12)).astype(int))
    assert diff.max() <= 1


@pytest.mark.gpu
def test_gpu_png_still_is_exact_after_one_download(gpu_route) -> None:
    cp, make = gpu_route
    src = patterns.noise(320, 240, 8)
    enc = make()
    (payload,) = enc.encode(cuda_frame(cp.asarray(src)), lossless=True)
    assert payload.mime == "image/png" and enc.downloads == 1
    with Image.open(io.BytesIO(payload.data)) as img:
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), src)


@pytest.mark.gpu
@pytest.mark.anyio
async def test_gpu_serve_sends_jpeg_gpu_frames_a_websocket_client_decodes() -> None:
    cp = _require_nvjpeg()
    from rfb import serve
    from tests.conftest import JPEG, ProtocolClient, eventually

    src = patterns.scene(320, 240, 11)
    display = await serve(320, 240, port=0, gpu=True)  # image viewers of a GPU display get jpeg_gpu
    try:
        client = await ProtocolClient.connect(display, supported=(JPEG,))
        await eventually(lambda: display.viewers, what="the viewer to join")
        display.publish(cuda_frame(cp.asarray(src)))
        payload = await client.next_payload(timeout=20)
        assert payload.kind == "image_frame" and payload.header["mime"] == "image/jpeg"
        assert psnr(src, _decode(payload.payload)) > 30.0
        assert client.configs[-1]["transport"] == "image"
        group = display.stats.groups["image"]
        assert group.encoder == jpeg_gpu.NAME and group.cuda_frames >= 1 and group.encoder_errors == 0
        await client.close()
    finally:
        await display.aclose()


@pytest.mark.gpu
def test_gpu_pytorch_tensors(gpu_route) -> None:
    _, make = gpu_route
    torch = pytest.importorskip("torch")
    src = patterns.scene(320, 240, 9)
    enc = make()
    tensor = torch.from_numpy(src).cuda()
    assert frame_stream(describe_device_array(tensor)) == 0  # PyTorch's interface (v2) names no stream
    (payload,) = enc.encode(cuda_frame(tensor))
    assert enc.last_source == (tensor.data_ptr(), 320 * 3)
    assert psnr(src, _decode(payload.data)) > 30.0
    # rendered on a side stream, finished before it is published (the documented contract), RGBA
    side = torch.cuda.Stream()
    flipped = np.ascontiguousarray(src[::-1])
    with torch.cuda.stream(side):
        rgba = torch.cat(
            [
                torch.from_numpy(flipped).cuda(non_blocking=True),
                torch.full((240, 320, 1), 255, dtype=torch.uint8, device="cuda"),
            ],
            dim=2,
        )
    side.synchronize()
    (payload,) = enc.encode(cuda_frame(rgba))
    assert enc.packs == 1 and psnr(flipped, _decode(payload.data)) > 30.0


@pytest.mark.gpu
def test_gpu_jax_arrays(gpu_route) -> None:
    _, make = gpu_route
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("JAX sees no GPU")
    src = patterns.scene(320, 240, 10)
    array = jax.device_put(jnp.asarray(src), jax.devices("gpu")[0]) + 0
    enc = make()
    (payload,) = enc.encode(cuda_frame(array))
    assert psnr(src, _decode(payload.data)) > 30.0


@pytest.mark.gpu
@pytest.mark.parametrize(("quality", "floor_db"), [(75, 31.0), (90, 32.5)])
def test_gpu_jpegs_decode_to_the_input(gpu_route, quality: int, floor_db: float) -> None:
    cp, make = gpu_route
    src = patterns.scene(640, 360, 4)
    enc = make(640, 360, quality=quality)
    (payload,) = enc.encode(cuda_frame(cp.asarray(src)))
    decoded = _decode(payload.data)
    assert decoded.shape == src.shape
    score = psnr(src, decoded)
    from rfb.encoders.image import ImageEncoder  # libjpeg-turbo at the same quality, for scale

    with ImageEncoder(EncoderConfig(640, 360, quality=quality), strips=1) as cpu:
        (reference,) = cpu.encode(frame_from_array(src))
    cpu_score = psnr(src, _decode(reference.data))
    # libjpeg-turbo gives 33.2 dB (q75) and 35.1 dB (q90) here: 4:2:0 chroma caps both
    assert score > floor_db and score > cpu_score - 1.5, (score, cpu_score)


@pytest.mark.gpu
def test_gpu_higher_quality_is_closer_and_bigger(gpu_route) -> None:
    cp, make = gpu_route
    src = cp.asarray(patterns.scene(320, 240, 5))
    low, high = (make(quality=q).encode(cuda_frame(src))[0].data for q in (40, 95))
    host = cp.asnumpy(src)
    assert len(low) < len(high) and psnr(host, _decode(low)) < psnr(host, _decode(high))


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_10000_frames_flat_gpu_and_host_memory(gpu_route) -> None:
    cp, make = gpu_route
    require_whole_device()
    enc = make(1280, 720)
    frames = [cuda_frame(cp.asarray(patterns.scene(1280, 720, i))) for i in range(4)]
    for i in range(50):  # nvJPEG grows its scratch buffers on the first frames
        enc.encode(frames[i % 4])
    cp.cuda.Device().synchronize()
    free_before, _ = cp.cuda.runtime.memGetInfo()
    pool_before = cp.get_default_memory_pool().used_bytes()
    rss_before = _rss_bytes()
    for i in range(10_000):
        (payload,) = enc.encode(frames[i % 4])
    cp.cuda.Device().synchronize()
    free_after, _ = cp.cuda.runtime.memGetInfo()
    assert free_before - free_after < 2 * 1024 * 1024, f"GPU memory shrank by {free_before - free_after} bytes"
    assert cp.get_default_memory_pool().used_bytes() == pool_before
    grown = _rss_bytes() - rss_before
    assert grown < 16 * 1024 * 1024, f"host memory grew by {grown} bytes over 10,000 frames"
    assert enc.nvjpeg.frames_encoded == 10_050 and _decode(payload.data).shape == (720, 1280, 3)


def _rss_bytes() -> int:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
