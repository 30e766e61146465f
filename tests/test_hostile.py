"""Hostile clients against a real server: real uvicorn on 127.0.0.1 and real sockets only.

Each test is one attack that a public server meets (a client with a valid token that
sends odd numbers, half-open sockets, a flood of connections, a DNS-rebinding page,
frames no encoder takes) and states what the server must do instead of crashing,
leaking or filling its log. Every wait has a deadline; no loop runs unbounded.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from rfb.frames import FrameError
from tests.conftest import H264, EncoderLog, ProtocolClient, eventually, start_test_display, wait_until

pytestmark = pytest.mark.timeout(60)

HUGE = "1" + "0" * 400


def frame(marker: int, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    array = np.zeros((*shape, 3), np.uint8)
    array[0, 0] = (marker, 0, 0)
    return array


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]


def raw_request(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` exactly as written on a fresh socket; return all the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_until_closed(sock, timeout)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server kept the socket open for {timeout} s (got {data[:80]!r})")


@pytest.fixture
def quick(test_encoders: EncoderLog) -> Iterator[Any]:
    """A display whose connections must finish their HTTP request (and hello) within 0.5 s."""
    display = start_test_display(hello_timeout=0.5)
    try:
        yield display
    finally:
        display.close()


# ---------------------------------------------------------------- numbers and odd messages


NUMERIC_MESSAGES = [
    {"type": "event", "event": {"type": "pointermove", "x": "N", "y": 1}},
    {"type": "event", "event": {"type": "pointermove", "x": 1, "y": "N"}},
    {"type": "event", "event": {"type": "pointerdown", "x": 1, "y": 1, "button": "N"}},
    {"type": "event", "event": {"type": "pointerdown", "x": 1, "y": 1, "buttons": "N"}},
    {"type": "event", "event": {"type": "wheel", "x": 1, "y": 1, "dx": "N", "dy": 0}},
    {"type": "event", "event": {"type": "wheel", "x": 1, "y": 1, "dx": 0, "dy": "N"}},
    {"type": "event", "event": {"type": "resize", "width": "N", "height": 10}},
    {"type": "event", "event": {"type": "resize", "width": 10, "height": "N"}},
    {"type": "ack", "seq": "N"},
    {"type": "ack", "seq": 1, "decode_ms": "N"},
]


def spelled(message: dict[str, Any], number: str) -> str:
    """``message`` as JSON text with the placeholder "N" replaced by the number spelled ``number``."""
    return json.dumps(message).replace('"N"', number)


@pytest.mark.anyio
async def test_a_huge_integer_in_any_numeric_field_gets_an_error_and_the_viewer_stays(
    display: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rfb")
    hostile = await ProtocolClient.connect(display)
    bystander = await ProtocolClient.connect(display)
    await hostile.recv()
    await bystander.recv()
    for message in NUMERIC_MESSAGES:
        await hostile.send(spelled(message, HUGE))
        error = await hostile.next_error()
        assert "expected" in error and len(error) < 200, error  # says what it wanted, echoes no 400 digits
    display.publish(frame(5))
    assert (await hostile.next_payload()).payload[1] == 5  # not closed with 1011
    assert (await bystander.next_payload()).payload[1] == 5
    assert display.viewers[0].rejected_messages == len(NUMERIC_MESSAGES)
    assert display.poll_events() == []
    assert not tracebacks(caplog)
    await hostile.close()
    await bystander.close()


@pytest.mark.anyio
async def test_nan_infinity_minus_zero_and_1e308_are_refused_or_finite(
    display: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rfb")
    client = await ProtocolClient.connect(display)
    await client.recv()
    spellings = [
        "NaN",
        "-NaN",
        "Infinity",
        "-Infinity",
        "1e309",
        "-1e400",
        "1e308",
        "-1e308",
        "-0",
        "-0.0",
        "2.5e-400",
        HUGE,
        "-" + HUGE,
    ]
    replies = 0
    for message in NUMERIC_MESSAGES:
        for number in spellings:
            await client.send(spelled(message, number))
            await client.send({"type": "ack", "seq": "marker"})  # its error reply marks the one before as handled
            while (error := await client.next_error()) != "ack.seq: expected a positive integer, got 'marker'":
                replies += 1
                assert "expected" in error, error
    assert replies > 0
    for event in display.poll_events():  # what got through is what a render loop can use as it is
        for value in (event.x, event.y, event.dx, event.dy, event.width, event.height):
            assert value is None or (np.isfinite(value) and abs(value) <= 1e7), event
    display.publish(frame(6))
    assert (await client.next_payload()).payload[1] == 6
    assert not tracebacks(caplog)
    await client.close()


@pytest.mark.anyio
async def test_nested_binary_and_oversize_messages_cost_one_log_line_each(
    display: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rfb")
    client = await ProtocolClient.connect(display)
    await client.recv()
    attacks: list[str | bytes] = [
        "[" * 30_000 + "]" * 30_000,
        '{"type":"event","event":' * 2_500,
        b"\x00" * 100,
        '{"type":"ack","seq":' + HUGE + "}",
    ]
    for _ in range(20):  # a flood: each kind is logged once, then only counted
        for attack in attacks:
            await client.send(attack)
    await eventually(lambda: display.viewers[0].rejected_messages == 80, what="80 rejections")
    rejected_lines = [r for r in caplog.records if "rejected a message" in r.getMessage()]
    assert len(rejected_lines) == 3  # malformed JSON (both nestings), a binary message, ack.seq
    await client.send("x" * (64 * 1024 + 1))
    assert (await client.closed())[0] == 1009
    assert not tracebacks(caplog)


# ---------------------------------------------------------------- half-open sockets and floods


def test_slowloris_and_silent_sockets_are_closed_after_the_request_timeout(
    quick: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rfb")
    sockets = [socket.create_connection(("127.0.0.1", quick.port), timeout=5) for _ in range(20)]
    try:
        for sock in sockets[:10]:  # slowloris: a request head that never ends
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
        deadline = time.monotonic() + 10
        open_socks = list(sockets)
        while open_socks and time.monotonic() < deadline:
            for sock in list(open_socks):
                try:
                    if sock in sockets[:10]:
                        sock.sendall(b"a")  # one more byte: never a whole header
                    sock.settimeout(0.05)
                    if sock.recv(1024) == b"":
                        open_socks.remove(sock)
                except TimeoutError:
                    pass
                except (ConnectionResetError, BrokenPipeError):
                    open_socks.remove(sock)
        assert not open_socks, f"{len(open_socks)} of 20 half-open sockets still open after 10 s (the limit is 0.5 s)"
    finally:
        for sock in sockets:
            sock.close()
    health = httpx.get(f"http://127.0.0.1:{quick.port}/healthz", params={"token": quick.token}, trust_env=False)
    assert health.json()["connections_timed_out"] == 20
    assert (
        len([r for r in caplog.records if r.levelno == logging.WARNING and "aborted a connection" in r.getMessage()])
        == 1
    )


def test_a_slowloris_second_request_on_a_keep_alive_connection_is_closed(quick: Any) -> None:
    with socket.create_connection(("127.0.0.1", quick.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # one whole request, answered
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")  # then a request head that never ends
        deadline = time.monotonic() + 10
        while True:
            assert time.monotonic() < deadline, "the keep-alive slowloris is still open after 10 s (the limit is 0.5 s)"
            try:
                sock.sendall(b"a")  # a byte every 0.1 s: uvicorn's keep-alive timer restarts on each
                sock.settimeout(0.1)
                if sock.recv(1024) == b"":
                    break
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                break


def test_a_connection_flood_is_capped_with_503_and_one_log_line(
    test_encoders: EncoderLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rfb")
    display = start_test_display(max_connections=8)
    held = [socket.create_connection(("127.0.0.1", display.port), timeout=5) for _ in range(8)]
    try:
        wait_until(lambda: len(display._server._server.server_state.connections) == 8, what="8 open connections")
        for _ in range(12):
            reply = raw_request(display.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 503 ") and reply.endswith(b"too many connections"), reply
        for sock in held:
            sock.close()
        wait_until(lambda: not display._server._server.server_state.connections, what="the held sockets to close")
        assert (
            httpx.get(
                f"http://127.0.0.1:{display.port}/healthz", params={"token": display.token}, trust_env=False
            ).json()["connections_refused"]
            == 12
        )
    finally:
        for sock in held:
            sock.close()
        display.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "refused a connection" in r.getMessage()]
    assert len(warnings) == 1 and "max_connections=8" in warnings[0].getMessage()


@pytest.mark.anyio
async def test_viewers_count_towards_the_cap_and_a_freed_place_is_usable(test_encoders: EncoderLog) -> None:
    from websockets.exceptions import InvalidMessage, InvalidStatus

    display = start_test_display(max_connections=2)
    try:
        first = await ProtocolClient.connect(display)
        second = await ProtocolClient.connect(display)
        assert (await first.recv()).kind == (await second.recv()).kind == "config"
        with pytest.raises((InvalidStatus, InvalidMessage, EOFError, OSError)):
            await ProtocolClient.connect(display)
        await first.close()
        await eventually(lambda: len(display.viewers) == 1, what="the first viewer to leave")
        third = await ProtocolClient.connect(display)
        assert (await third.recv()).kind == "config"
        await second.close()
        await third.close()
    finally:
        display.close()


@pytest.mark.anyio
async def test_refused_tokens_origins_and_hosts_cost_a_log_line_a_minute(
    display: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    caplog.set_level(logging.DEBUG, logger="rfb")
    for i in range(15):
        guess = await ProtocolClient.connect(display, token=f"guess-{i}")
        assert (await guess.closed())[0] == 4001
        with pytest.raises(InvalidStatus):
            await ProtocolClient.connect(display, origin="http://evil.example")
        with socket.create_connection(("127.0.0.1", display.port), timeout=5) as sock, pytest.raises(InvalidStatus):
            await connect(f"ws://rebind.example:{display.port}/ws", sock=sock, proxy=None, open_timeout=5)
    for needle in ("wrong or missing token", "refused a WebSocket from origin", "refused a request for Host"):
        records = [r for r in caplog.records if needle in r.getMessage()]
        assert len(records) == 15 and len([r for r in records if r.levelno >= logging.WARNING]) <= 1, needle
    assert not display.viewers


# ---------------------------------------------------------------- DNS rebinding and the health report


@pytest.mark.parametrize("path", ["/", "/healthz", "/healthz?token=TOKEN", "/viewer/main.js", "/ws"])
def test_a_rebinding_page_reads_nothing(display: Any, path: str) -> None:
    request = (
        f"GET {path.replace('TOKEN', display.token)} HTTP/1.1\r\nHost: rebind.example:{display.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
        if path == "/ws"
        else f"GET {path.replace('TOKEN', display.token)} HTTP/1.1\r\nHost: rebind.example:{display.port}\r\n"
        "Connection: close\r\n\r\n"
    )
    reply = raw_request(display.port, request.encode())
    assert reply.startswith(b"HTTP/1.1 403 ") and reply.endswith(b"host not allowed"), reply[:200]
    if path != "/ws":  # the same request through an SSH tunnel to localhost:PORT is served
        tunnel = raw_request(display.port, request.replace("rebind.example", "localhost").encode())
        assert tunnel.startswith(b"HTTP/1.1 200 "), tunnel[:200]


def test_healthz_without_the_token_says_only_ok(display: Any) -> None:
    display.publish(frame(1))
    reply = raw_request(display.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.split(b"\r\n\r\n", 1)[1] == b'{"status":"ok"}'


# ---------------------------------------------------------------- frames and coordinates


@pytest.mark.anyio
async def test_frames_libx264_refuses_are_refused_at_publish_and_its_smallest_reach_viewers() -> None:
    display = start_test_display(video_encoder="h264_cpu", image_encoder=None, keyframe_interval_min=0.25)
    try:
        client = await ProtocolClient.connect(display, supported=(H264,))
        await client.recv()
        for shape in ((2, 2), (2, 64), (16, 16386)):
            with pytest.raises(FrameError, match=r"H\.264 routes encode frames from 2x4 to 16384x16384 pixels"):
                display.publish(frame(1, shape))
        display.publish(frame(1, (4, 2)))  # 2x4: the smallest frame libx264 encodes
        chunk = await client.next_payload(timeout=20)
        assert (chunk.kind, chunk.header["width"], chunk.header["height"], chunk.keyframe) == (
            "video_chunk",
            2,
            4,
            True,
        )
        await client.close()
    finally:
        display.close()


@pytest.mark.anyio
async def test_pointer_coordinates_outside_the_frame_are_clamped(display: Any) -> None:
    client = await ProtocolClient.connect(display)
    await client.recv()
    await client.event(type="pointermove", x=-50, y=1e6)
    await client.event(type="wheel", x=1e7, y=-1e7, dx=0, dy=16)
    await eventually(lambda: display.stats.events_received == 2, what="two events")
    events = display.poll_events()
    assert [(e.x, e.y) for e in events] == [(0.0, 48.0), (64.0, 0.0)]
    await client.close()
