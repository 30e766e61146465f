"""Exact stills and captures (rfb/stills.py, docs/fanout.md "Exact stills").

Real displays and real WebSocket clients; the video and JPEG groups run the test
encoders (their payloads are not images), the stills are real PNGs decoded here and
compared with the published frame pixel for pixel. The browser side is in
tests/test_browser_stills.py.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from rfb import protocol
from rfb.encoders.base import EncodedPayload
from tests.conftest import H264, JPEG, PNG, EncoderLog, ProtocolClient, Received, start_test_display, wait_until

pytestmark = pytest.mark.timeout(60)

W, H = 64, 48
SETTLE = 0.3


def noise(seed: int, width: int = W, height: int = H, channels: int = 3) -> np.ndarray:
    """Every pixel different: any lossy step or off-by-one shows."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG", image.format
    return np.asarray(image.convert("RGB"))


@pytest.fixture
def display(test_encoders: EncoderLog) -> Iterator[Any]:
    display = start_test_display(W, H, still_after=SETTLE, image_encoder="image")
    try:
        yield display
    finally:
        display.close()


async def next_still(client: ProtocolClient, timeout: float = 5.0) -> Received:
    """Ack payloads (as drawn) until a still comes; fail if none within ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await client.next_payload(max(0.01, deadline - loop.time()))
        await client.ack(message.seq, decode_ms=1.0)
        if message.header.get("still"):
            return message


async def no_still(client: ProtocolClient, wait: float) -> list[Received]:
    """Ack what comes for ``wait`` seconds; return the payloads, none of which may be a still."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    seen = []
    while (left := deadline - loop.time()) > 0:
        try:
            message = await client.next_payload(left)
        except TimeoutError:
            break
        await client.ack(message.seq, decode_ms=1.0)
        seen.append(message)
    assert not [m.header for m in seen if m.header.get("still")], "expected no still"
    return seen


# ---------------------------------------------------------------- the wire


def test_still_header_is_an_image_frame_flagged_still() -> None:
    payload = EncodedPayload(b"\x89PNG", True, 64, 48, "image", mime="image/png")
    message = protocol.pack_payload(protocol.still_header(payload, seq=7, timestamp_us=1000), payload.data)
    text = b'{"type":"image_frame","seq":7,"timestamp_us":1000,"width":64,"height":48,"mime":"image/png","still":true}'
    assert message == len(text).to_bytes(4, "little") + text + b"\x89PNG"
    header, data = protocol.unpack_payload(message)
    assert header["still"] is True and data == b"\x89PNG"


# ---------------------------------------------------------------- stills


@pytest.mark.anyio
async def test_a_settled_frame_reaches_every_lossy_viewer_once_as_exact_png(display: Any) -> None:
    frame = noise(1)
    async with (
        await ProtocolClient.connect(display, supported=[H264]) as video,
        await ProtocolClient.connect(display, supported=[JPEG]) as jpeg,
        await ProtocolClient.connect(display, supported=[PNG]) as png,
    ):
        wait_until(lambda: len(display.viewers) == 3, what="three viewers")
        display.publish(frame)
        for client in (video, jpeg):  # both draw the frame well within the settle time
            await client.ack((await client.next_payload()).seq, decode_ms=1.0)
        stills = [await next_still(video), await next_still(jpeg)]
        for still in stills:
            assert still.kind == "image_frame" and still.header["mime"] == "image/png", still.header
            assert (still.header["width"], still.header["height"]) == (W, H)
            np.testing.assert_array_equal(decode_png(still.payload), frame)
        assert stills[0].seq == stills[1].seq  # one message, shared
        assert video.configs[-1]["transport"] == "webcodecs"  # a still does not reconfigure the viewer
        # The PNG viewer has the exact frame already; the others get the still once.
        shown = await no_still(png, 3 * SETTLE)
        assert shown and all(m.header["mime"] == "image/png" for m in shown)
        await no_still(video, 3 * SETTLE)
        stats = display.stats.stills
        assert (stats.encodes, stats.sent, stats.still_after) == (1, 2, SETTLE)


@pytest.mark.anyio
async def test_a_viewer_gets_the_still_only_once_it_acked_the_frame(display: Any) -> None:
    async with await ProtocolClient.connect(display, supported=[H264]) as video:
        wait_until(lambda: len(display.viewers) == 1, what="a viewer")
        display.publish(noise(2))
        chunk = await video.next_payload()
        assert chunk.kind == "video_chunk"
        with pytest.raises(TimeoutError):
            await video.next_payload(timeout=4 * SETTLE)  # the still waits for the ack
        await video.ack(chunk.seq, decode_ms=1.0)
        still = await next_still(video)
        assert still.seq > chunk.seq
        np.testing.assert_array_equal(decode_png(still.payload), noise(2))


@pytest.mark.anyio
async def test_motion_resumes_after_a_still_and_the_next_settle_sends_a_new_one(display: Any) -> None:
    async with await ProtocolClient.connect(display, supported=[H264]) as video:
        wait_until(lambda: len(display.viewers) == 1, what="a viewer")
        display.publish(noise(3))
        await next_still(video)
        display.publish(noise(4))
        chunk = await video.next_payload()
        assert chunk.kind == "video_chunk" and not chunk.header.get("still")
        await video.ack(chunk.seq, decode_ms=1.0)
        np.testing.assert_array_equal(decode_png((await next_still(video)).payload), noise(4))
        assert display.stats.stills.encodes == 2


@pytest.mark.anyio
async def test_still_after_none_sends_stills_only_when_asked(test_encoders: EncoderLog) -> None:
    display = start_test_display(W, H, still_after=None)
    try:
        async with await ProtocolClient.connect(display, supported=[H264]) as video:
            wait_until(lambda: len(display.viewers) == 1, what="a viewer")
            display.publish(noise(5))
            await no_still(video, 0.5)
            display.refresh_still()
            np.testing.assert_array_equal(decode_png((await next_still(video)).payload), noise(5))
            display.refresh_still()  # it has this frame's still already
            await no_still(video, 0.3)
            assert display.stats.stills.encodes == 1
    finally:
        display.close()


def test_still_after_must_be_seconds_or_none(test_encoders: EncoderLog) -> None:
    for bad in (-1, float("nan"), "0.3", True):
        with pytest.raises(ValueError, match="still_after must be"):
            start_test_display(W, H, still_after=bad)


# ---------------------------------------------------------------- capture


def test_capture_returns_the_last_published_frame(display: Any) -> None:
    with pytest.raises(LookupError, match="no frame has been published"):
        display.capture()
    first, last = noise(6), noise(7)
    display.publish(first)
    display.publish(last)
    array = display.capture("array")
    np.testing.assert_array_equal(array, last)
    assert array is not last and not np.shares_memory(array, last)  # the caller's own copy
    np.testing.assert_array_equal(decode_png(display.capture()), last)
    with pytest.raises(ValueError, match="format must be 'png' or 'array'"):
        display.capture("jpeg")


def test_capture_drops_alpha_like_the_viewer(display: Any) -> None:
    rgba = noise(8, channels=4)
    display.publish(rgba)
    np.testing.assert_array_equal(display.capture("array"), rgba[..., :3])
    np.testing.assert_array_equal(decode_png(display.capture("png")), rgba[..., :3])


def test_capture_with_own_frames_is_the_copy_taken_at_publish(test_encoders: EncoderLog) -> None:
    display = start_test_display(W, H, own_frames=True)
    try:
        frame = noise(9)
        display.publish(frame)
        expected = frame.copy()
        frame[:] = 0  # the caller reuses its array at once
        np.testing.assert_array_equal(display.capture("array"), expected)
    finally:
        display.close()


@pytest.mark.anyio
async def test_a_refresh_before_the_first_frame_does_not_skip_its_settle_time(test_encoders: EncoderLog) -> None:
    display = start_test_display(W, H, still_after=30.0)
    try:
        async with await ProtocolClient.connect(display, supported=[H264]) as video:
            wait_until(lambda: len(display.viewers) == 1, what="a viewer")
            display.refresh_still()  # nothing published yet: nothing to refresh
            wait_until(lambda: not display._fanout.stills._refresh, what="the refresh to be consumed")
            display.publish(noise(10))
            await no_still(video, 0.5)
            assert display.stats.stills.encodes == 0
    finally:
        display.close()


# ---------------------------------------------------------------- CUDA frames (the lead runs these on a GPU)


@pytest.mark.gpu
@pytest.mark.anyio
async def test_cuda_frames_give_exact_stills_and_captures(test_encoders: EncoderLog) -> None:
    from tests.gpu import require_cupy

    cp = require_cupy()
    frame = noise(11)
    # The real CPU routes: the group downloads CUDA frames for them, the still channel once more.
    display = start_test_display(W, H, still_after=SETTLE, video_encoder=None, image_encoder="image")
    try:
        async with await ProtocolClient.connect(display, supported=[H264]) as video:
            wait_until(lambda: len(display.viewers) == 1, what="a viewer")
            display.publish(cp.asarray(frame))
            np.testing.assert_array_equal(decode_png((await next_still(video)).payload), frame)
        capture = display.capture("array")
        assert isinstance(capture, np.ndarray)
        np.testing.assert_array_equal(capture, frame)
        np.testing.assert_array_equal(decode_png(display.capture("png")), frame)
    finally:
        display.close()


def still_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name == "rfb-stills"]


@pytest.mark.anyio
async def test_closing_the_display_ends_the_still_thread(test_encoders: EncoderLog) -> None:
    before = len(still_threads())
    display = start_test_display(W, H, still_after=0.05)
    try:
        async with await ProtocolClient.connect(display, supported=[H264]) as video:
            wait_until(lambda: len(display.viewers) == 1, what="a viewer")
            display.publish(noise(12))
            await next_still(video)
            assert len(still_threads()) == before + 1
    finally:
        display.close()
    assert len(still_threads()) == before
