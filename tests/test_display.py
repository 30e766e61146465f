"""The public Display: publish(), events, introspection, lifecycle, and real encodes end to end.

The end-to-end tests decode what arrives over a real socket with the real routes
(libx264 through PyAV, JPEG) and compare the pixels with the published frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from typing import Any

import numpy as np
import pytest

import rfb
from rfb.benchmark.metrics import H264Decoder, decode_image, psnr
from rfb.display import FrameStore
from rfb.frames import FrameError, RawFrame, frame_from_array
from rfb.gpu import GpuUnavailable
from rfb.launch import serve, start
from rfb.routes import resolve_routes
from tests.conftest import JPEG, EncoderLog, ProtocolClient, eventually, start_test_display
from tests.gpu import FakeCudaArray, skip_if_cupy_works

pytestmark = pytest.mark.timeout(60)


def frame(marker: int, width: int = 64, height: int = 48) -> np.ndarray:
    array = np.zeros((height, width, 3), np.uint8)
    array[0, 0] = (marker, 0, 0)
    return array


def quadrants(width: int, height: int, shift: int = 0) -> np.ndarray:
    """Four flat blocks; ``shift`` moves the vertical split (so frames differ)."""
    out = np.empty((height, width, 3), np.uint8)
    split = width // 2 + shift
    out[: height // 2, :split], out[: height // 2, split:] = (220, 40, 40), (40, 200, 40)
    out[height // 2 :, :split], out[height // 2 :, split:] = (40, 40, 220), (230, 230, 230)
    return out


# ---------------------------------------------------------------- publish


def test_publish_validates_with_expected_and_got(display: Any) -> None:
    with pytest.raises(FrameError, match=r"expected dtype uint8, got float32"):
        display.publish(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(
        FrameError, match=r"expected shape \(H, W, 3\) for rgb24 or \(H, W, 4\) for rgba8, got \(48, 64\)"
    ):
        display.publish(np.zeros((48, 64), np.uint8))
    with pytest.raises(FrameError, match="got list"):
        display.publish([[0, 0, 0]])
    assert display.stats.published == 0


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((48, 63, 3), "width 63 is odd"),
        ((47, 64, 3), "height 47 is odd"),
        ((47, 63, 4), "width 63 and height 47 is odd"),
    ],
)
def test_video_needs_even_dimensions_and_says_which(display: Any, shape: tuple[int, ...], expected: str) -> None:
    with pytest.raises(FrameError, match=expected):
        display.publish(np.zeros(shape, np.uint8))


def test_odd_size_at_construction_is_refused(test_encoders: EncoderLog) -> None:
    with pytest.raises(ValueError, match="height 47 is odd"):
        start_test_display(64, 47)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((2, 2, 3), "from 2x4 to 16384x16384 pixels, got 2x2: height 2 is below 4"),
        ((2, 64, 4), "got 64x2: height 2 is below 4"),
        ((16, 16386, 3), "got 16386x16: width 16386 is above 16384"),
        ((16386, 16, 3), "got 16x16386: height 16386 is above 16384"),
    ],
)
def test_video_refuses_sizes_no_h264_route_encodes_naming_the_limit(
    display: Any, shape: tuple[int, ...], expected: str
) -> None:
    with pytest.raises(FrameError, match=re.escape(expected)):
        display.publish(np.zeros(shape, np.uint8))
    assert display.stats.published == 0 and (display.width, display.height) == (64, 48)


def test_video_takes_the_smallest_and_largest_sizes_libx264_encodes(display: Any) -> None:
    for shape in ((4, 2, 3), (16, 16384, 3), (16384, 16, 3)):
        display.publish(np.zeros(shape, np.uint8))
    assert display.stats.published == 3


def test_a_size_no_h264_route_encodes_is_refused_at_construction(test_encoders: EncoderLog) -> None:
    with pytest.raises(ValueError, match="height 2 is below 4"):
        start_test_display(64, 2)


@pytest.mark.anyio
async def test_an_image_only_display_serves_tiny_and_odd_frames(
    test_encoders: EncoderLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rfb.display

    def images_only(*args: Any, **kwargs: Any) -> Any:
        return {k: v for k, v in resolve_routes(*args, **kwargs).items() if k != "webcodecs"}

    monkeypatch.setattr(rfb.display, "resolve_routes", images_only)
    display = start_test_display(3, 1)
    try:
        client = await ProtocolClient.connect(display, supported=(JPEG,))
        display.publish(np.zeros((1, 3, 3), np.uint8))
        assert (await client.next_payload()).header["width"] == 3
        with pytest.raises(FrameError, match=re.escape("up to 65500x65500 pixels, got 65501x1")):
            display.publish(np.zeros((1, 65501, 3), np.uint8))
        await client.close()
    finally:
        display.close()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"max_connections": 0}, "max_connections must be a positive integer, got 0"),
        ({"max_connections": True}, "max_connections must be a positive integer, got True"),
        ({"hello_timeout": 0}, "hello_timeout (the time a connection has for its request) must be a positive number"),
        ({"hello_timeout": float("inf")}, "must be a positive number of seconds, got inf"),
    ],
)
def test_bad_connection_limits_are_refused_at_construction(
    test_encoders: EncoderLog, options: dict[str, Any], expected: str
) -> None:
    threads = threading.active_count()
    with pytest.raises(ValueError, match=re.escape(expected)):
        start_test_display(**options)
    assert threading.active_count() == threads and test_encoders.open_instances() == []


def test_publish_accepts_rgb_rgba_and_rawframe(display: Any) -> None:
    display.publish(np.zeros((48, 64, 3), np.uint8))
    display.publish(np.zeros((48, 64, 4), np.uint8))
    display.publish(RawFrame(np.zeros((24, 32, 3), np.uint8), 32, 24))
    assert display.stats.published == 3 and (display.width, display.height) == (32, 24)


def test_publish_after_close_raises(test_encoders: EncoderLog) -> None:
    display = start_test_display()
    display.close()
    with pytest.raises(RuntimeError, match="display is closed"):
        display.publish(frame(1))


def test_without_own_frames_the_display_keeps_the_callers_array() -> None:
    store = FrameStore(own_frames=False)
    array = frame(1)
    store.put(frame_from_array(array))
    taken = store.take()
    assert taken is not None and taken[0].data is array  # hence: publish a fresh array per frame


def test_own_frames_copies_into_a_small_recycled_pool() -> None:
    store = FrameStore(own_frames=True, pool_size=4)
    array = frame(1)
    buffers = set()
    for marker in range(1, 20):
        array[0, 0, 0] = marker
        store.put(frame_from_array(array))
        taken = store.take()
        assert taken is not None
        assert taken[0].data is not array and taken[0].data[0, 0, 0] == marker
        buffers.add(id(taken[0].data))
        store.release(taken[0])
    assert len(buffers) <= 2  # with nothing leased, two buffers alternate


def test_own_frames_never_overwrites_a_leased_frame() -> None:
    store = FrameStore(own_frames=True, pool_size=4)
    array = frame(1)
    store.put(frame_from_array(array))
    leased = store.take()
    assert leased is not None
    for marker in range(2, 10):
        array[0, 0, 0] = marker
        store.put(frame_from_array(array))
    assert leased[0].data[0, 0, 0] == 1, "an encoder's frame changed under it"
    store.release(leased[0])


def test_own_frames_without_cupy_refuses_a_cuda_frame_and_holds_nothing() -> None:
    skip_if_cupy_works()
    store = FrameStore(own_frames=True)
    with pytest.raises(FrameError, match=r"needs uint8 data of shape \(48, 64, 3\), got uint8 \(48, 32, 3\)"):
        store.put(RawFrame(FakeCudaArray(np.zeros((48, 32, 3), np.uint8)), 64, 48, memory="cuda"))
    with pytest.raises(GpuUnavailable, match="CuPy is not installed"):
        store.put(RawFrame(FakeCudaArray(np.zeros((48, 64, 3), np.uint8)), 64, 48, memory="cuda"))
    assert store.take() is None and store.pooled() == 0 and store.version == 0


# ---------------------------------------------------------------- CUDA frames (without a GPU)


def test_cuda_frames_are_validated_in_the_callers_stack(display: Any) -> None:
    """Layout and device are checked before anything needs CuPy or a GPU."""
    with pytest.raises(FrameError, match="expected dtype uint8, got float32"):
        display.publish(FakeCudaArray(np.zeros((48, 64, 3), np.float32)))
    with pytest.raises(FrameError, match="expected a uint8 CUDA array of shape .*got shape \\(48, 64, 5\\)"):
        display.publish(FakeCudaArray(np.zeros((48, 64, 5), np.uint8)))
    with pytest.raises(FrameError, match="device_id=0 was given but the array lives on CUDA device 1"):
        display.publish(FakeCudaArray(np.zeros((48, 64, 3), np.uint8), device=1))
    on_device_1 = RawFrame(FakeCudaArray(np.zeros((48, 64, 3), np.uint8), device=1), 64, 48, memory="cuda", device_id=1)
    with pytest.raises(FrameError, match="encodes on CUDA device 0 .*got a frame on device 1; .*device_id=1"):
        display.publish(on_device_1)
    with pytest.raises(FrameError, match="a 64x48 cuda rgb24 frame needs uint8 data of shape"):
        display.publish(RawFrame(FakeCudaArray(np.zeros((48, 64, 4), np.uint8)), 64, 48, memory="cuda"))
    assert display.stats.published == 0


def test_a_cuda_array_on_a_display_without_cupy_says_what_cupy_is_for(display: Any) -> None:
    """The documented behaviour: CUDA frames are accepted on any display (gpu or not) and
    reach a CPU route through CuPy; where CuPy is missing, publish() says so."""
    skip_if_cupy_works()
    with pytest.raises(
        FrameError,
        match="expected CuPy for CUDA frames: this display converts and downloads them "
        "for a CPU route with CuPy, which is unusable: CuPy is not installed",
    ):
        display.publish(FakeCudaArray(np.zeros((48, 64, 3), np.uint8), device=0))
    assert display.stats.published == 0


def test_gpu_true_without_a_usable_gpu_route_falls_back_to_cpu_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    from rfb.encoders.registry import encoder_status

    gpu_routes = [s for s in encoder_status() if s.reads_cuda and s.transport == "webcodecs"]
    if any(s.available for s in gpu_routes):
        pytest.skip("a GPU route can run here: nothing falls back")
    cpu_best = next(s.name for s in encoder_status() if s.available and s.transport == "webcodecs")
    with caplog.at_level(logging.WARNING, logger="rfb.display"):
        routes = resolve_routes(None, "image", gpu=True)
    assert routes["webcodecs"][0].name == cpu_best and not routes["webcodecs"][0].reads_cuda
    assert f"gpu=True, but no GPU webcodecs route can run here, so {cpu_best} encodes on the CPU" in caplog.text
    for status in gpu_routes:
        assert f"{status.name}: {status.reason}" in caplog.text
    # image_encoder="image" on a GPU display means "the best image route": its fallback is logged too
    if not routes["image"][0].reads_cuda:
        image_gpu = [s for s in encoder_status() if s.reads_cuda and s.transport == "image" and not s.available]
        assert f"gpu=True, but no GPU image route can run here, so {routes['image'][0].name} encodes" in caplog.text
        for status in image_gpu:
            assert f"{status.name}: {status.reason}" in caplog.text
    with start(64, 48, port=0, gpu=True) as display:
        assert display.encoder_name == cpu_best
        assert display.routes == {"webcodecs": cpu_best, "image": routes["image"][0].name, "png": "image"}


@pytest.mark.anyio
async def test_own_frames_lets_the_caller_reuse_its_array_at_once(test_encoders: EncoderLog) -> None:
    display = start_test_display(own_frames=True)
    try:
        client = await ProtocolClient.connect(display)
        await eventually(lambda: display.viewers, what="the viewer to join")
        array = frame(1)
        for marker in range(1, 6):
            array[0, 0, 0] = marker
            display.publish(array)
            array[0, 0, 0] = 200  # scribble right away: the display must have copied
            payload = await client.next_payload()
            assert payload.payload[1] == marker
            await client.ack(payload.seq)
        await client.close()
    finally:
        display.close()


# ---------------------------------------------------------------- events, introspection


@pytest.mark.anyio
async def test_poll_events_returns_every_viewers_events(display: Any) -> None:
    a = await ProtocolClient.connect(display)
    b = await ProtocolClient.connect(display)
    await eventually(lambda: len(display.viewers) == 2, what="both viewers")
    await a.event(type="pointerdown", x=3, y=4, button=0, buttons=1)
    await b.event(type="keydown", key="a", code="KeyA")
    events = await eventually(lambda: display.stats.events_received == 2 and display.poll_events(), what="events")
    ids = {v.client_id for v in display.viewers}
    assert sorted(e.type for e in events) == ["keydown", "pointerdown"]
    assert {e.client_id for e in events} == ids
    assert display.poll_events() == []
    await a.close()
    await b.close()


@pytest.mark.anyio
async def test_a_full_event_queue_drops_the_oldest_and_counts(test_encoders: EncoderLog) -> None:
    display = start_test_display(event_queue_size=2)
    try:
        client = await ProtocolClient.connect(display)
        for x in range(5):
            await client.event(type="pointermove", x=x, y=0)
        await eventually(lambda: display.stats.events_received == 5, what="five events")
        assert [e.x for e in display.poll_events()] == [3.0, 4.0]
        assert display.stats.events_dropped == 3
        await client.close()
    finally:
        display.close()


@pytest.mark.anyio
async def test_viewers_stats_and_url(display: Any) -> None:
    assert display.url == f"http://127.0.0.1:{display.port}/?token={display.token}" and len(display.token) >= 16
    assert display.encoder_name == "test-h264" and display.transports == ("webcodecs", "image")
    client = await ProtocolClient.connect(display)
    await eventually(lambda: display.viewers, what="the viewer")
    display.publish(frame(1))
    payload = await client.next_payload()
    await client.ack(payload.seq, decode_ms=2.5)
    (info,) = await eventually(lambda: display.viewers if display.viewers[0].inflight == 0 else None, what="the ack")
    assert (info.transport, info.client, info.delivered, info.decode_ms) == ("webcodecs", "pytest", 1, 2.5)
    stats = display.stats
    assert (stats.published, stats.viewers, stats.groups["webcodecs"].encodes) == (1, 1, 1)
    await client.close()
    await eventually(lambda: not display.viewers, what="the viewer to leave")


def test_token_none_gives_a_url_without_token(test_encoders: EncoderLog) -> None:
    with start_test_display(token=None) as display:
        assert display.url == f"http://127.0.0.1:{display.port}/"


@pytest.mark.parametrize("token", ["", 5])
def test_a_token_must_be_a_non_empty_string(test_encoders: EncoderLog, token: object) -> None:
    with pytest.raises(ValueError, match="token must be a non-empty string, or None to disable the check"):
        start_test_display(token=token)


def test_the_default_token_differs_per_display(test_encoders: EncoderLog) -> None:
    with start_test_display() as a, start_test_display() as b:
        assert a.token != b.token


# ---------------------------------------------------------------- lifecycle


@pytest.mark.anyio
async def test_close_leaves_no_thread_and_no_encoder(test_encoders: EncoderLog) -> None:
    before = set(threading.enumerate())
    display = start_test_display()
    video = await ProtocolClient.connect(display)
    image = await ProtocolClient.connect(display, supported=(JPEG,))
    display.publish(frame(1))
    await video.next_payload()
    await image.next_payload()
    assert len(test_encoders.open_instances()) == 2
    await display.aclose()
    assert await video.closed() == (1001, "server shutting down")
    assert await image.closed() == (1001, "server shutting down")
    assert not test_encoders.open_instances()
    assert set(threading.enumerate()) == before
    display.close()  # idempotent


@pytest.mark.anyio
async def test_serve_and_aclose_from_asyncio(test_encoders: EncoderLog) -> None:
    before = set(threading.enumerate())
    async with await rfb.serve(64, 48, port=0, video_encoder="test-h264", image_encoder="test-image") as display:
        assert isinstance(display, rfb.Display)
        client = await ProtocolClient.connect(display)
        display.publish(frame(7))
        assert (await client.next_payload()).payload[1] == 7
        closing = asyncio.create_task(client.closed())
        await display.aclose()
        assert await closing == (1001, "server shutting down")
    await display.aclose()  # idempotent, and __aexit__ closed it once more
    assert set(threading.enumerate()) == before and not test_encoders.open_instances()


@pytest.mark.anyio
async def test_a_blocked_caller_loop_does_not_stall_viewers(display: Any) -> None:
    """The user's loop sleeps synchronously; a viewer on another thread still gets frames."""
    from websockets.sync.client import connect

    got: list[bytes] = []

    def viewer() -> None:
        with connect(f"ws://127.0.0.1:{display.port}/ws", proxy=None, open_timeout=5) as ws:
            ws.send(json.dumps({"type": "hello", "supported": ["webcodecs/h264-annexb"], "token": display.token}))
            while not got:
                message = ws.recv(timeout=5)
                if isinstance(message, bytes):
                    got.append(message)

    display.publish(frame(3))
    thread = threading.Thread(target=viewer)
    thread.start()
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)  # blocks this test's event loop on purpose
    thread.join(5)
    assert got, "the viewer got nothing while the caller's loop was blocked"


def test_a_busy_port_raises_and_leaks_nothing(test_encoders: EncoderLog) -> None:
    before = set(threading.enumerate())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            start_test_display(port=busy.getsockname()[1])
    assert set(threading.enumerate()) == before


@pytest.mark.anyio
async def test_serve_failure_raises_in_the_caller(test_encoders: EncoderLog) -> None:
    with pytest.raises(KeyError, match="no encoder named 'nope'"):
        await serve(64, 48, port=0, video_encoder="nope")


def test_sync_start_and_context_manager(test_encoders: EncoderLog) -> None:
    before = set(threading.enumerate())
    with start(64, 48, port=0, video_encoder="test-h264", image_encoder="test-image") as display:
        assert not display.closed
    assert display.closed and set(threading.enumerate()) == before


# ---------------------------------------------------------------- real routes, end to end


@pytest.fixture
def real_display() -> Any:
    display = start(
        128, 96, host="127.0.0.1", port=0, video_encoder="h264_cpu", image_encoder="image", keyframe_interval_min=0.0
    )
    try:
        yield display
    finally:
        display.close()


@pytest.mark.anyio
async def test_h264_over_the_socket_decodes_to_the_published_frames(real_display: Any) -> None:
    client = await ProtocolClient.connect(real_display)
    await eventually(lambda: real_display.viewers, what="the viewer")
    published = [quadrants(128, 96, shift) for shift in (0, 8, 16, 24)]
    chunks = []
    for picture in published:
        real_display.publish(picture)
        chunk = await client.next_payload()
        chunks.append(chunk)
        await client.ack(chunk.seq)
    assert chunks[0].keyframe and not any(c.keyframe for c in chunks[1:])
    assert client.configs[-1]["codec"].startswith("avc1.") and client.configs[-1]["codec"] == chunks[0].header["codec"]
    with H264Decoder() as decoder:
        decoded = [picture for c in chunks for picture in decoder.decode(c.payload)]
    assert len(decoded) == len(published)
    for want, got in zip(published, decoded, strict=True):
        assert got.shape == want.shape
        assert psnr(want, got) > 30
        assert np.abs(want[20, 20].astype(int) - got[20, 20].astype(int)).max() <= 12  # inside a flat block
    await client.close()


@pytest.mark.anyio
async def test_a_late_joiners_stream_decodes_from_its_first_payload(real_display: Any) -> None:
    early = await ProtocolClient.connect(real_display)
    for shift in (0, 8):
        real_display.publish(quadrants(128, 96, shift))
        await early.ack((await early.next_payload()).seq)
    late = await ProtocolClient.connect(real_display)
    first = await late.next_payload()
    assert first.keyframe
    with H264Decoder() as decoder:
        (picture,) = decoder.decode(first.payload)  # a fresh decoder: SPS/PPS are in-band
    assert psnr(quadrants(128, 96, 8), picture) > 30
    await early.close()
    await late.close()


@pytest.mark.anyio
async def test_a_new_size_sends_config_then_a_decodable_keyframe(real_display: Any) -> None:
    client = await ProtocolClient.connect(real_display)
    real_display.publish(quadrants(128, 96))
    await client.ack((await client.next_payload()).seq)
    real_display.publish(quadrants(64, 48))
    chunk = await client.next_payload()
    assert chunk.keyframe and (chunk.header["width"], chunk.header["height"]) == (64, 48)
    assert (client.configs[-1]["width"], client.configs[-1]["height"]) == (64, 48)
    with H264Decoder() as decoder:
        (picture,) = decoder.decode(chunk.payload)
    assert picture.shape == (48, 64, 3) and psnr(quadrants(64, 48), picture) > 30
    await client.close()


@pytest.mark.anyio
async def test_jpeg_over_the_socket_decodes_to_the_published_frame(real_display: Any) -> None:
    client = await ProtocolClient.connect(real_display, supported=(JPEG,))
    real_display.publish(quadrants(128, 96))
    message = await client.next_payload()
    assert message.kind == "image_frame" and message.header["mime"] == "image/jpeg"
    assert client.configs[-1]["transport"] == "image"
    picture = decode_image(message.payload)
    assert psnr(quadrants(128, 96), picture) > 30
    await client.close()


# ---------------------------------------------------------------- size limits with CUDA frames (GPU host)


@pytest.mark.gpu
@pytest.mark.anyio
async def test_cuda_frames_outside_the_h264_limits_are_refused_and_the_smallest_is_served() -> None:
    """On the GPU route the display resolves (h264_gpu_nv12 where the GPU has no NVENC)."""
    from tests.gpu import require_cupy

    cp = require_cupy()
    display = start(64, 48, port=0, gpu=True, image_encoder=None, keyframe_interval_min=0.0)
    try:
        client = await ProtocolClient.connect(display)
        await client.recv()
        for shape in ((2, 64, 3), (2, 2, 4), (16, 16386, 3)):
            with pytest.raises(FrameError, match=r"H\.264 routes encode frames from 2x4 to 16384x16384 pixels"):
                display.publish(cp.zeros(shape, cp.uint8))
        display.publish(cp.zeros((4, 2, 3), cp.uint8))  # 2x4, the smallest H.264 frame
        chunk = await client.next_payload(timeout=20)
        assert (chunk.kind, chunk.header["width"], chunk.header["height"]) == ("video_chunk", 2, 4)
        assert display.stats.groups["webcodecs"].encoder_errors == 0
        await client.close()
    finally:
        display.close()
