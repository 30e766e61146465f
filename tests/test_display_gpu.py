"""A display fed from the GPU, end to end: CUDA frames through ``publish()`` to real
WebSocket clients that decode what they receive (PyAV for H.264, libjpeg-turbo and
Pillow for images).

Every test is marked ``gpu`` and skips with the reason where CuPy or a CUDA device is
missing (the CI machine has none; these run on the GPU host with ``-m gpu``):

- ``serve(gpu=True)`` with the NVENC emulator standing in for libnvidia-encode (its
  ``I_PCM`` stream decodes back bit for bit, which proves the display handed NVENC the
  caller's NV12 memory), at sizes a real driver takes (at least 145x49) and with the
  pitches it is strict about (852- and 1366-wide frames packed tightly), and with the
  real driver (an H100 has no NVENC: the route must be ``h264_gpu_nv12``);
- JPEG and PNG viewers of a GPU display (host-only routes behind one download);
- CuPy frames on a ``gpu=False`` display (accepted and downloaded, as documented);
- ``own_frames=True`` with CUDA frames (the caller overwrites right after publish) and
  without it (the documented race: nothing asserted about which picture wins);
- ``device_id`` on a second GPU, and PyTorch input, where present.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rfb.benchmark import patterns
from rfb.benchmark.metrics import H264Decoder, decode_image, psnr
from rfb.display import FrameStore
from rfb.encoders.registry import encoder_status
from rfb.frames import FrameError
from rfb.gpu import cuda_frame, rgb_to_nv12_host
from rfb.launch import start as start_display
from tests.conftest import H264, JPEG, PNG, ProtocolClient, eventually
from tests.gpu import require_cupy
from tests.support.frames import decode
from tests.support.nvenc_fixtures import assert_released
from tests.test_display import quadrants  # flat blocks: what 4:2:0 codecs keep within a few code values

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(120)]

# A size a real NVENC takes (at least 145x49) whose NV12 rows are 512 bytes: a multiple of
# 256, so NVENC registers the caller's memory where it is, with no staging copy.
W, H = 512, 288
GPU_ROUTES = ("nvenc_gpu_cffi", "nvenc_gpu_pyav", "h264_gpu_nv12")  # best first (by priority)
NO_NVENC_GPUS = ("H100", "H200", "A100", "A30")  # data-centre GPUs without a video encoder


def start(*args: Any, **options: Any) -> Any:
    """rfb's ``start`` without lossless stills unless a test asks for them: a still that
    comes while a test waits would arrive among the payloads it counts and decodes."""
    options.setdefault("still_after", None)
    return start_display(*args, **options)


@pytest.fixture
def cp() -> Any:
    return require_cupy()


@pytest.fixture
def real_driver(monkeypatch: pytest.MonkeyPatch, cp: Any) -> Iterator[dict[str, Any]]:
    """The real libnvidia-encode (never the emulator), every route probed afresh; their status."""
    import nvencffi

    monkeypatch.delenv("NVENCFFI_LIBRARY", raising=False)
    nvencffi.reset_library()
    yield {s.name: s for s in encoder_status(refresh=True)}
    nvencffi.reset_library()
    encoder_status(refresh=True)


@pytest.fixture
def emulated_nvenc(monkeypatch: pytest.MonkeyPatch, cp: Any) -> Iterator[Any]:
    """The NVENC emulator loaded as libnvidia-encode (as tests/nvencffi does); its control handle.

    The registry probes again on the way in (``nvenc_gpu_cffi`` becomes available) and on
    the way out (so later tests see the real library again).
    """
    import nvencffi
    from nvencffi.library import ENV_LIBRARY
    from tests.nvenc_emulator import Emulator, require_emulator

    path: Path = require_emulator()
    monkeypatch.setenv(ENV_LIBRARY, str(path))
    nvencffi.reset_library()
    emulator = Emulator(path)
    emulator.reset()
    encoder_status(refresh=True)
    try:
        yield emulator
    finally:
        emulator.clear_faults()
        monkeypatch.undo()
        nvencffi.reset_library()
        encoder_status(refresh=True)


def device_name(cp: Any, device: int = 0) -> str:
    name = cp.cuda.runtime.getDeviceProperties(device)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


async def stream(display: Any, client: ProtocolClient, frames: list[Any]) -> list[Any]:
    """Publish each frame (a fresh device array each time), wait for its payload, ack it as drawn.

    The tests count each group's ``encodes`` (one per payload); that a frame published
    while its group is being created is counted too is tests/test_fanout.py's to pin.
    """
    received = []
    for frame in frames:
        display.publish(frame)
        payload = await client.next_payload(timeout=10)
        received.append(payload)
        await client.ack(payload.seq, decode_ms=1.0)
    return received


def pictures(n: int) -> list[np.ndarray]:
    """``n`` different frames of flat blocks (the split moves), as tests/test_display.py uses."""
    return [quadrants(W, H, 8 * i) for i in range(n)]


def random_nv12(width: int, height: int, count: int) -> list[np.ndarray]:
    """``count`` random NV12 pictures, tightly packed (pitch = width)."""
    return [
        np.random.default_rng(seed).integers(0, 256, (height * 3 // 2, width), dtype=np.uint8) for seed in range(count)
    ]


def assert_nv12_exact(hosts: list[np.ndarray], chunks: list[Any], height: int) -> None:
    """The emulator's I_PCM stream decodes back to exactly the NV12 that was published."""
    for host, (y, u, v) in zip(hosts, decode([c.payload for c in chunks]), strict=True):
        np.testing.assert_array_equal(y, host[:height])
        np.testing.assert_array_equal(u, host[height:, 0::2])
        np.testing.assert_array_equal(v, host[height:, 1::2])


def assert_decodes_close(sources: list[np.ndarray], chunks: list[Any]) -> None:
    """The H.264 stream decodes to the published pictures (the bound tests/test_display.py uses)."""
    with H264Decoder() as decoder:
        decoded = decoder.decode_all(c.payload for c in chunks)
    assert len(decoded) == len(sources)
    for src, dec in zip(sources, decoded, strict=True):
        assert dec.shape == src.shape and psnr(src, dec) > 30
        assert np.abs(src[20, 20].astype(int) - dec[20, 20].astype(int)).max() <= 12  # inside a flat block


# ---------------------------------------------------------------- serve(gpu=True)


@pytest.mark.anyio
async def test_gpu_display_on_emulated_nvenc_streams_cupy_nv12_bit_exact(cp: Any, emulated_nvenc: Any) -> None:
    hosts = random_nv12(W, H, 4)
    display = start(W, H, port=0, gpu=True, keyframe_interval_min=0.0)
    try:
        assert display.encoder_name == "nvenc_gpu_cffi"
        client = await ProtocolClient.connect(display, supported=(H264,))
        await eventually(lambda: display.viewers, what="the viewer")
        chunks = await stream(display, client, [cp.asarray(h) for h in hosts])  # fresh device arrays
        assert chunks[0].keyframe and client.configs[-1]["codec"].startswith("avc1.")
        group = display.stats.groups["webcodecs"]
        assert (group.encoder, group.encodes, group.encoder_errors) == ("nvenc_gpu_cffi", 4, 0)
        assert group.cuda_frames == group.encodes
        await client.close()
    finally:
        display.close()
    assert_nv12_exact(hosts, chunks, H)  # the caller's own NV12, registered in place
    assert_released(emulated_nvenc)  # closing the display gave the NVENC session back


@pytest.mark.anyio
@pytest.mark.parametrize(("width", "height"), [(852, 480), (1366, 768)])
async def test_gpu_display_on_emulated_nvenc_streams_tightly_packed_odd_widths_bit_exact(
    cp: Any, emulated_nvenc: Any, width: int, height: int
) -> None:
    """Pitches 852 and 1366: a real driver faults on the first (a multiple of 4, not of
    16) and refuses the second; the route must stage both, and the stream still decode
    back to the published pixels, with no fault in the emulator."""
    hosts = random_nv12(width, height, 3)
    display = start(width, height, port=0, gpu=True, keyframe_interval_min=0.0)
    try:
        assert display.encoder_name == "nvenc_gpu_cffi"
        client = await ProtocolClient.connect(display, supported=(H264,))
        await eventually(lambda: display.viewers, what="the viewer")
        chunks = await stream(display, client, [cp.asarray(h) for h in hosts])
        group = display.stats.groups["webcodecs"]
        assert (group.encoder, group.encodes, group.encoder_errors) == ("nvenc_gpu_cffi", 3, 0)
        await client.close()
    finally:
        display.close()
    assert_nv12_exact(hosts, chunks, height)
    ledger = emulated_nvenc.ledger()
    assert (ledger["pitch_faults"], ledger["poisoned_sessions"]) == (0, 0), ledger
    assert_released(emulated_nvenc)


@pytest.mark.anyio
async def test_gpu_display_on_emulated_nvenc_converts_cupy_rgb_on_the_device(cp: Any, emulated_nvenc: Any) -> None:
    sources = [patterns.scene(W, H, i) for i in range(3)]
    display = start(W, H, port=0, gpu=True, keyframe_interval_min=0.0)
    try:
        client = await ProtocolClient.connect(display, supported=(H264,))
        chunks = await stream(display, client, [cp.asarray(s) for s in sources])
        await client.close()
    finally:
        display.close()
    for src, (y, u, v) in zip(sources, decode([c.payload for c in chunks]), strict=True):
        nv12 = rgb_to_nv12_host(src).astype(int)  # the kernel is within one code value of it
        assert np.abs(y.astype(int) - nv12[:H]).max() <= 1
        assert np.abs(u.astype(int) - nv12[H:, 0::2]).max() <= 1
        assert np.abs(v.astype(int) - nv12[H:, 1::2]).max() <= 1


@pytest.mark.anyio
async def test_gpu_display_on_the_real_driver_picks_the_best_gpu_route(cp: Any, real_driver: dict[str, Any]) -> None:
    available = [name for name in GPU_ROUTES if real_driver[name].available]
    assert available, {name: real_driver[name].reason for name in GPU_ROUTES}
    name = device_name(cp)
    if any(model in name for model in NO_NVENC_GPUS):
        assert available[0] == "h264_gpu_nv12", (name, {n: real_driver[n].reason for n in GPU_ROUTES})
    sources = pictures(6)
    display = start(W, H, port=0, gpu=True, keyframe_interval_min=0.0)
    try:
        assert display.encoder_name == available[0]
        client = await ProtocolClient.connect(display, supported=(H264,))
        chunks = await stream(display, client, [cp.asarray(s) for s in sources])
        group = display.stats.groups["webcodecs"]
        assert (group.encoder, group.encodes, group.encoder_errors) == (available[0], 6, 0)
        assert group.cuda_frames == group.encodes
        await client.close()
    finally:
        display.close()
    assert_decodes_close(sources, chunks)


@pytest.mark.anyio
async def test_image_viewers_of_a_gpu_display_get_jpeg_and_exact_png(cp: Any, real_driver: dict[str, Any]) -> None:
    sources = pictures(3)
    display = start(W, H, port=0, gpu=True)
    try:
        jpeg = await ProtocolClient.connect(display, supported=(JPEG,))
        png = await ProtocolClient.connect(display, supported=(PNG,))
        await eventually(lambda: len(display.viewers) == 2, what="both viewers")
        for source in sources:
            display.publish(cp.asarray(source))
            got_jpeg, got_png = await jpeg.next_payload(timeout=10), await png.next_payload(timeout=10)
            assert (got_jpeg.header["mime"], got_png.header["mime"]) == ("image/jpeg", "image/png")
            assert psnr(source, decode_image(got_jpeg.payload)) > 30
            np.testing.assert_array_equal(decode_image(got_png.payload), source)  # RGB downloaded as it is
            await jpeg.ack(got_jpeg.seq, decode_ms=1.0)
            await png.ack(got_png.seq, decode_ms=1.0)
        groups = display.stats.groups
        assert groups["image"].encodes == groups["png"].encodes == 3
        assert (
            groups["image"].cuda_frames == groups["image"].encodes
            and groups["png"].cuda_frames == groups["png"].encodes
        )
        assert groups["image"].encoder_errors == groups["png"].encoder_errors == 0
        await jpeg.close()
        await png.close()
    finally:
        display.close()


# ---------------------------------------------------------------- CUDA frames on a gpu=False display


@pytest.mark.anyio
async def test_cupy_frames_on_a_cpu_display_are_downloaded_once_each(cp: Any) -> None:
    sources = pictures(4)
    display = start(W, H, port=0, video_encoder="h264_cpu", keyframe_interval_min=0.0)  # gpu=False
    try:
        client = await ProtocolClient.connect(display, supported=(H264,))
        padded = []
        for s in sources:  # a pitched view, as a slice of a wider render target is
            wide = cp.zeros((H, W + 32, 3), cp.uint8)
            wide[:, :W] = cp.asarray(s)
            padded.append(wide[:, :W])
        chunks = await stream(display, client, padded)
        group = display.stats.groups["webcodecs"]
        assert (group.encoder, group.encodes, group.encoder_errors) == ("h264_cpu", 4, 0)
        assert group.cuda_frames == group.encodes
        await client.close()
    finally:
        display.close()
    assert_decodes_close(sources, chunks)


@pytest.mark.anyio
async def test_torch_frames_on_a_gpu_display(cp: Any, real_driver: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    sources = pictures(3)
    display = start(W, H, port=0, gpu=True, keyframe_interval_min=0.0)
    try:
        client = await ProtocolClient.connect(display, supported=(H264,))
        chunks = await stream(display, client, [torch.from_numpy(s).cuda() for s in sources])
        assert display.stats.groups["webcodecs"].cuda_frames == 3
        await client.close()
    finally:
        display.close()
    assert_decodes_close(sources, chunks)


# ---------------------------------------------------------------- own_frames with CUDA frames


@pytest.mark.anyio
async def test_own_frames_lets_the_caller_overwrite_its_device_array_at_once(cp: Any) -> None:
    colours = [(200, 30, 40), (20, 180, 60), (10, 40, 220), (250, 250, 250)]
    display = start(W, H, port=0, gpu=True, own_frames=True)
    try:
        png = await ProtocolClient.connect(display, supported=(PNG,))  # lossless: exact pixels
        await eventually(lambda: display.viewers, what="the viewer")
        target = cp.zeros((H, W, 3), cp.uint8)  # ONE device array, reused for every frame
        for colour in colours:
            target[...] = cp.asarray(colour, dtype=cp.uint8)
            display.publish(target)
            target[...] = 0  # scribble right away: the display must have copied already
            payload = await png.next_payload(timeout=10)
            picture = decode_image(payload.payload)
            assert (picture == np.asarray(colour, np.uint8)).all(), (colour, picture[0, 0])
            await png.ack(payload.seq, decode_ms=1.0)
        await png.close()
    finally:
        display.close()


def test_owned_cuda_buffers_are_packed_recycled_and_released(cp: Any) -> None:
    pool = cp.get_default_memory_pool()
    store = FrameStore(own_frames=True, pool_size=4)
    wide = cp.zeros((H, W + 16, 3), cp.uint8)
    before = pool.used_bytes()
    source = wide[:, :W]  # pitched: W*3 + 48 bytes per row
    buffers = set()
    for marker in range(1, 12):
        source[0, 0, 0] = marker
        store.put(cuda_frame(source))
        lease = store.take()
        assert lease is not None and lease.frame.data is not source
        assert lease.frame.pitch is None and lease.frame.stride == W * 3  # packed, whatever the source's pitch
        assert int(lease.frame.data[0, 0, 0]) == marker
        buffers.add(lease.frame.data.data.ptr)
        store.release(lease.frame)
    assert len(buffers) <= 2  # with nothing leased, two buffers alternate
    leased = store.take()
    assert leased is not None
    for marker in range(20, 30):  # a leased buffer is never written
        source[0, 0, 0] = marker
        store.put(cuda_frame(source))
    assert int(leased.frame.data[0, 0, 0]) == 11, "an encoder's frame changed under it"
    store.release(leased.frame)
    del leased, lease
    store.clear()
    assert store.pooled() == 0 and pool.used_bytes() <= before  # every display-owned buffer went back


def test_without_own_frames_the_display_keeps_the_callers_device_array(cp: Any) -> None:
    """The documented contract, not a race outcome: the display holds the caller's own
    array until it is replaced and encoded; writing into it meanwhile races with the encode."""
    store = FrameStore(own_frames=False)
    array = cp.zeros((H, W, 3), cp.uint8)
    store.put(cuda_frame(array))
    lease = store.take()
    assert lease is not None and lease.frame.data is array and store.pooled() == 0


@pytest.mark.anyio
async def test_without_own_frames_overwriting_a_published_array_still_streams(cp: Any) -> None:
    """Overwrite right after publish without own_frames: a viewer may see the old picture,
    the new one or a mix (docs/fanout.md). Only that frames keep arriving is asserted."""
    display = start(W, H, port=0, gpu=True, keyframe_interval_min=0.0)
    try:
        client = await ProtocolClient.connect(display, supported=(H264,))
        target = cp.zeros((H, W, 3), cp.uint8)
        for value in (50, 100, 150):
            target[...] = value
            display.publish(target)
            target[...] = 255 - value  # races with the encode, by design of this test
            payload = await client.next_payload(timeout=10)
            await client.ack(payload.seq, decode_ms=1.0)
        with H264Decoder() as decoder:
            assert len(decoder.decode_all([p.payload for p in client.payloads])) == len(client.payloads)
        assert display.stats.groups["webcodecs"].encoder_errors == 0
        await client.close()
    finally:
        display.close()


# ---------------------------------------------------------------- device_id


@pytest.mark.anyio
async def test_a_display_on_the_second_gpu_encodes_frames_from_it(cp: Any) -> None:
    if cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two CUDA devices")
    sources = pictures(3)
    display = start(W, H, port=0, gpu=True, device_id=1, keyframe_interval_min=0.0)
    try:
        client = await ProtocolClient.connect(display, supported=(H264,))
        with cp.cuda.Device(1):
            frames = [cp.asarray(s) for s in sources]
        with cp.cuda.Device(0):
            on_zero = cp.zeros((H, W, 3), cp.uint8)
        with pytest.raises(FrameError, match="device_id=1 was given but the array lives on CUDA device 0"):
            display.publish(on_zero)
        chunks = await stream(display, client, frames)
        await client.close()
    finally:
        display.close()
    assert_decodes_close(sources, chunks)
