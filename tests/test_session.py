"""One viewer's session over a real socket: hello, token, transport and format choice, bad
messages, and the ``stats`` message with the latency the server measured."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import threading
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from rfb import session as session_module
from rfb.session import SessionSettings
from tests.conftest import (
    H264,
    JPEG,
    PNG,
    EncoderLog,
    FakeVideoEncoder,
    ProtocolClient,
    eventually,
    start_test_display,
)

pytestmark = pytest.mark.timeout(60)


def frame(marker: int) -> np.ndarray:
    array = np.zeros((48, 64, 3), np.uint8)
    array[0, 0] = (marker, 0, 0)
    return array


# ---------------------------------------------------------------- handshake


@pytest.mark.anyio
async def test_a_valid_hello_gets_a_config(display: Any) -> None:
    client = await ProtocolClient.connect(display)
    config = await client.recv()
    assert config.header == {
        "type": "config",
        "transport": "webcodecs",
        "codec": None,
        "width": 64,
        "height": 48,
        "client_id": 1,
    }
    display.publish(frame(1))
    first = await client.next_payload()
    assert first.keyframe and client.configs[-1]["codec"] == "avc1.42001f"  # the config before it names the codec
    await client.close()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("first", "reason"),
    [
        ({"type": "ack", "seq": 1}, "bad hello: expected 'hello' first, got Ack"),
        ("not json", "bad hello: expected a JSON object, got malformed JSON"),
        ({"type": "hello", "supported": "webcodecs/h264-annexb"}, "bad hello: hello.supported: expected a list"),
        (b"\x00\x01", "bad hello: expected a JSON text message, got binary"),
    ],
)
async def test_a_bad_first_message_closes_with_4400(display: Any, first: Any, reason: str) -> None:
    client = await ProtocolClient.connect(display, hello=None)
    await client.send(first)
    code, text = await client.closed()
    assert code == 4400 and text is not None and text.startswith(reason)


@pytest.mark.anyio
async def test_no_hello_within_the_timeout_closes_with_4400(test_encoders: EncoderLog) -> None:
    display = start_test_display(hello_timeout=0.2)
    try:
        client = await ProtocolClient.connect(display, hello=None)
        assert await client.closed() == (4400, "bad hello: none within 0.2 s")
    finally:
        display.close()


@pytest.mark.anyio
@pytest.mark.parametrize("token", [None, "wrong", "", "é" * 10])
async def test_a_wrong_or_missing_token_closes_with_4001(display: Any, token: str | None) -> None:
    client = await ProtocolClient.connect(display, token=token)
    assert await client.closed() == (4001, "unauthorized")
    assert not display.viewers


@pytest.mark.anyio
async def test_token_none_disables_the_check(test_encoders: EncoderLog) -> None:
    display = start_test_display(token=None)
    try:
        client = await ProtocolClient.connect(display, token=None)
        assert (await client.recv()).kind == "config"
        await client.close()
    finally:
        display.close()


@pytest.mark.anyio
async def test_a_client_that_takes_nothing_we_send_gets_4406(display: Any) -> None:
    client = await ProtocolClient.connect(display, supported=("video/av1",))
    code, reason = await client.closed()
    assert code == 4406
    assert reason == (
        "no supported transport: server sends ['webcodecs/h264-annexb', 'image/jpeg', 'image/png'], "
        "client takes ['video/av1']"
    )


@pytest.mark.anyio
async def test_the_clients_order_of_preference_wins(display: Any) -> None:
    client = await ProtocolClient.connect(display, supported=(JPEG, H264))
    assert (await client.recv()).header["transport"] == "image"
    display.publish(frame(2))
    message = await client.next_payload()
    assert message.kind == "image_frame" and message.header["mime"] == "image/jpeg"
    await client.close()


# ---------------------------------------------------------------- after hello


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            "{",
            "expected a JSON object, got malformed JSON (Expecting property name enclosed in double quotes at "
            "character 1)",
        ),
        ({"type": "bogus"}, "type: expected one of 'hello', 'ack', 'request_keyframe', 'event', got 'bogus'"),
        ({"type": "ack", "seq": "1"}, "ack.seq: expected a positive integer, got '1'"),
        ({"type": "event", "event": {"type": "pointermove", "x": "a", "y": 0}}, "event.x: expected a number, got 'a'"),
        ({"type": "hello", "supported": []}, "hello: already received; a second hello is ignored"),
        (b"abc", "expected JSON text messages, got a binary message of 3 bytes"),
    ],
)
async def test_a_bad_message_after_hello_gets_an_error_and_changes_nothing(
    display: Any, message: Any, error: str
) -> None:
    client = await ProtocolClient.connect(display)
    await client.recv()  # config
    await client.send(message)
    assert await client.next_error() == error
    display.publish(frame(3))
    assert (await client.next_payload()).payload[1] == 3  # still served
    (info,) = display.viewers
    assert info.rejected_messages == 1
    await client.close()


@pytest.mark.anyio
async def test_a_message_over_the_limit_closes_with_1009(display: Any) -> None:
    client = await ProtocolClient.connect(display)
    await client.recv()
    await client.send(json.dumps({"type": "event", "event": {"type": "keydown", "key": "k" * (64 * 1024)}}))
    code, _ = await client.closed()
    assert code == 1009


@pytest.mark.anyio
async def test_request_keyframe_makes_the_next_payload_an_idr(display: Any) -> None:
    client = await ProtocolClient.connect(display)
    display.publish(frame(1))
    await client.ack((await client.next_payload()).seq)
    display.publish(frame(2))
    second = await client.next_payload()
    assert not second.keyframe
    await client.ack(second.seq)
    await client.request_keyframe("decoder error")
    third = await client.next_payload()  # the same frame again, as an IDR: nothing new was published
    assert third.keyframe and third.payload[1] == 2
    await client.close()


@pytest.mark.anyio
async def test_one_viewers_garbage_never_reaches_another(display: Any) -> None:
    noisy = await ProtocolClient.connect(display)
    quiet = await ProtocolClient.connect(display)
    noisy_id = (await noisy.recv()).header["client_id"]
    quiet_id = (await quiet.recv()).header["client_id"]
    for i in range(200):
        await noisy.send("garbage" if i % 2 else b"\xff" * 10)
    for marker in (1, 2, 3):
        display.publish(frame(marker))
        message = await quiet.next_payload()
        assert message.payload[1] == marker
        await quiet.ack(message.seq)
    await eventually(lambda: sum(i.rejected_messages for i in display.viewers) == 200, what="200 rejections")
    rejected = {i.client_id: i.rejected_messages for i in display.viewers}
    assert rejected == {noisy_id: 200, quiet_id: 0} and quiet.errors == []
    await noisy.close()
    await quiet.close()


@pytest.mark.anyio
async def test_a_flood_of_bad_messages_logs_one_line_per_kind(display: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rfb.session")
    client = await ProtocolClient.connect(display)
    await client.recv()
    for i in range(60):
        await client.send([{"type": "ack", "seq": "x"}, {"type": "bogus"}, "{"][i % 3])
    await eventually(lambda: display.viewers and display.viewers[0].rejected_messages == 60, what="60 rejections")
    lines = [r.getMessage() for r in caplog.records if "rejected a message" in r.getMessage()]
    assert len(lines) == 3, lines
    await client.close()


@pytest.mark.anyio
async def test_a_server_bug_on_one_message_is_logged_once_and_the_viewer_stays(
    display: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rfb.fanout import FanOut

    def broken(self: Any, member: Any) -> None:
        raise OverflowError("a bug in the server")

    monkeypatch.setattr(FanOut, "request_keyframe", broken)
    monkeypatch.setattr(session_module, "_logged_failures", set())
    caplog.set_level(logging.DEBUG, logger="rfb.session")
    client = await ProtocolClient.connect(display)
    await client.recv()
    for _ in range(5):
        await client.request_keyframe()
        assert await client.next_error() == "internal error: the server failed on this message (OverflowError)"
    display.publish(frame(4))
    assert (await client.next_payload()).payload[1] == 4  # still served
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1 and "handling a message failed" in tracebacks[0].getMessage()
    assert display.viewers[0].rejected_messages == 5
    await client.close()


@pytest.mark.anyio
async def test_a_viewer_that_leaves_is_forgotten(display: Any) -> None:
    client = await ProtocolClient.connect(display)
    await eventually(lambda: display.viewers, what="the viewer")
    await client.close()
    await eventually(lambda: not display.viewers, what="the viewer to be forgotten")
    await eventually(lambda: display.stats.groups["webcodecs"].viewers == 0, what="the fan-out to forget it")


@pytest.mark.anyio
async def test_events_carry_the_senders_client_id_and_receive_time(display: Any) -> None:
    import time

    client = await ProtocolClient.connect(display)
    config = await client.recv()
    sent = time.monotonic()
    await client.event(type="wheel", x=1, y=2, dx=0, dy=-48, modifiers=["alt"])
    (event,) = await eventually(display.poll_events, what="the event")
    assert (event.type, event.client_id, event.dy, event.modifiers) == (
        "wheel",
        config.header["client_id"],
        -48.0,
        ("alt",),
    )
    assert sent <= event.time <= time.monotonic()
    await client.close()


# ---------------------------------------------------------------- image formats


@pytest.mark.anyio
async def test_a_png_only_viewer_gets_png_while_a_jpeg_viewer_gets_jpeg(display: Any) -> None:
    from PIL import Image

    png = await ProtocolClient.connect(display, supported=(PNG,))
    jpeg = await ProtocolClient.connect(display, supported=(JPEG, PNG))
    assert (await png.recv()).header["transport"] == "image"
    await eventually(lambda: len(display.viewers) == 2, what="both viewers")
    published = frame(7)
    published[10:20, 30:40] = (12, 200, 99)
    display.publish(published)
    got_png, got_jpeg = await png.next_payload(), await jpeg.next_payload()
    assert got_png.header["mime"] == "image/png" and got_jpeg.header["mime"] == "image/jpeg"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(got_png.payload)).convert("RGB")), published)  # lossless
    assert got_jpeg.payload[:2] == b"M\x07"  # the test JPEG route's marker
    groups = {v.client_id: v.group for v in display.viewers}
    assert sorted(groups.values()) == ["image", "png"]
    assert display.stats.groups["png"].encoder == "image" and display.stats.groups["png"].encodes == 1
    await png.close()
    await jpeg.close()


@pytest.mark.anyio
async def test_a_png_only_viewer_is_refused_where_no_images_are_served(test_encoders: EncoderLog) -> None:
    display = start_test_display(image_encoder=None)
    try:
        client = await ProtocolClient.connect(display, supported=(PNG,))
        code, reason = await client.closed()
        assert code == 4406 and reason is not None
        assert "server sends ['webcodecs/h264-annexb'], client takes ['image/png']" in reason
    finally:
        display.close()


# ---------------------------------------------------------------- stats: latency as the server sees it


@pytest.mark.anyio
async def test_stats_messages_report_the_latency_of_drawn_frames(test_encoders: EncoderLog) -> None:
    display = start_test_display(stats_interval=0.1)
    try:
        client = await ProtocolClient.connect(display)
        first = await client.next_stats()  # nothing published yet
        assert first == {"type": "stats", "latency_ms": None, "fps": 0.0, "window_s": 0.1}
        drawn = 0
        for marker in range(1, 4):
            display.publish(frame(marker))
            payload = await client.next_payload()
            await client.ack(payload.seq, decode_ms=1.0)
            drawn += 1
        display.publish(frame(9))
        await client.ack((await client.next_payload()).seq)  # dropped by the client: no decode_ms
        (client_id,) = {v.client_id for v in display.viewers}
        await eventually(lambda: display.latency(60.0)[client_id].frames == drawn, what="every drawn ack")
        summary = display.latency(60.0)[client_id]
        assert summary.median_ms is not None and summary.median_ms > 0
        while True:  # a stats message that covers some of those acks
            stats = await client.next_stats()
            if stats["latency_ms"] is not None:
                break
        assert set(stats["latency_ms"]) == {"median", "p95"} and stats["latency_ms"]["median"] >= 0
        assert stats["fps"] > 0 and stats["window_s"] == 0.1
        (info,) = display.viewers
        assert info.latency.window_s == display.stats.latency[client_id].window_s == 0.1
        await client.close()
    finally:
        display.close()


@pytest.mark.anyio
async def test_stats_interval_zero_sends_no_stats(test_encoders: EncoderLog) -> None:
    display = start_test_display(stats_interval=0)
    try:
        client = await ProtocolClient.connect(display)
        display.publish(frame(1))
        await client.ack((await client.next_payload()).seq, decode_ms=1.0)
        with pytest.raises(TimeoutError):
            await client.next_stats(timeout=0.5)
        assert client.stats == []
        (info,) = display.viewers
        assert display.latency(60.0)[info.client_id].frames == 1  # still measured, only not sent
        await client.close()
    finally:
        display.close()


@pytest.mark.parametrize("interval", [-1, 0.01, float("nan"), float("inf"), True, "1"])
def test_a_bad_stats_interval_is_refused(interval: Any) -> None:
    with pytest.raises(ValueError, match="stats_interval must be 0 \\(off\\) or at least 0.05 s"):
        SessionSettings(None, stats_interval=interval)


# ---------------------------------------------------------------- without an H.264 route


@pytest.fixture
def no_h264(test_encoders: EncoderLog) -> Any:
    """Every webcodecs route reports itself unavailable for this test, then is restored."""
    from dataclasses import asdict

    from rfb.encoders.registry import encoder_status, get_entry, register_video_encoder

    originals = [get_entry(s.name) for s in encoder_status() if s.transport == "webcodecs"]
    for entry in originals:
        fields = asdict(entry) | {"probe": lambda: "disabled by the test"}
        register_video_encoder(**fields, replace=True)
    try:
        yield
    finally:
        for entry in originals:
            register_video_encoder(**asdict(entry), replace=True)


@pytest.mark.anyio
async def test_without_h264_viewers_that_take_images_get_images(no_h264: None) -> None:
    display = start_test_display(63, 47, video_encoder=None)  # odd sizes are fine for images
    try:
        assert display.transports == ("image",)
        both = await ProtocolClient.connect(display, supported=(H264, JPEG))
        assert (await both.recv()).header["transport"] == "image"
        display.publish(np.zeros((47, 63, 3), np.uint8))
        assert (await both.next_payload()).kind == "image_frame"
        h264_only = await ProtocolClient.connect(display, supported=(H264,))
        code, reason = await h264_only.closed()
        assert code == 4406 and reason is not None and "server sends ['image/jpeg', 'image/png']" in reason
        await both.close()
    finally:
        display.close()


# ---------------------------------------------------------------- a socket that stops reading


class BigEncoder(FakeVideoEncoder):
    """Payloads of 256 KiB, so that a viewer that stops reading soon blocks its socket."""

    def encode(self, frame: Any, *, force_keyframe: bool = False) -> list[Any]:
        (payload,) = super().encode(frame, force_keyframe=force_keyframe)
        return [replace(payload, data=payload.data + bytes(256 * 1024))]


@pytest.mark.anyio
async def test_a_blocked_socket_only_hurts_itself(test_encoders: EncoderLog, caplog: pytest.LogCaptureFixture) -> None:
    """A client that stops reading but acks everything in advance: its queue stays bounded
    (payloads beyond its window are dropped for it alone, and at most one ``stats`` message
    waits), another viewer gets every frame, and closing the display aborts the stuck
    connection instead of waiting for it."""
    from rfb.encoders.registry import register_video_encoder, unregister_video_encoder
    from rfb.session import _StatsText

    register_video_encoder("test-big", test_encoders.factory(BigEncoder, "test-big"), replace=True)
    before = set(threading.enumerate())
    display = start_test_display(video_encoder="test-big", stats_interval=0.05)
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", display.port))
        stuck = await ProtocolClient.connect(display, sock=sock, max_queue=1)
        stuck_id = (await stuck.recv()).header["client_id"]
        good = await ProtocolClient.connect(display)
        await eventually(lambda: len(display.viewers) == 2, what="both viewers")
        seen = []
        marker = 0
        while not any(v.dropped for v in display.viewers if v.client_id == stuck_id):
            marker += 1
            assert marker <= 200, "the stuck viewer never hit its bound"
            display.publish(frame(marker % 256))
            while not seen or seen[-1] != marker % 256:  # re-sent IDRs of a frame may come too
                message = await good.next_payload()
                seen.append(message.payload[1])
                await good.ack(message.seq)
            await stuck.ack(10**9)  # "I have it all": frees its window without reading
        assert sorted(set(seen)) == sorted({m % 256 for m in range(1, marker + 1)})
        await asyncio.sleep(0.5)  # ten stats intervals while its sender is stuck
        queue = display._registry._viewers[stuck_id]._queue  # the bound is internal
        assert sum(isinstance(item, _StatsText) for item in queue) <= 1
        assert display.stats.groups["webcodecs"].frames_encoded == marker
        await good.close()
    finally:
        await display.aclose()
        unregister_video_encoder("test-big")
    assert "aborting 1 viewers that do not read" in caplog.text
    assert set(threading.enumerate()) == before and not test_encoders.open_instances()
    stuck.ws.transport.abort()
