"""The viewer in a real headless Chromium against a real rfb server.

What only a browser can prove: that WebCodecs decodes our H.264 and the image path
draws JPEG, that the picture on the canvas is the published frame, and that clicks,
keys and the wheel come back as events at the right FRAME coordinates through the
letterboxing. Pixels are read back through the worker (``window.__rfb.snapshot``),
because a canvas transferred to a worker cannot be read from the page.

Chromium is the Debian package (/usr/bin/chromium), never a downloaded browser. Where
it is missing these tests skip, except under CI=true, where they fail: CI must run them.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import pytest

from tests.support.chromium import chromium_context

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 800, "height": 400}  # wider than the 4:3 frame: pillarboxed
W, H = 320, 240
TOLERANCE = 48  # per channel: H.264 4:2:0 and JPEG shift flat colours a little
WAIT_MS = 8000

RED, GREEN, BLUE, WHITE = (230, 30, 30), (30, 200, 30), (30, 30, 230), (235, 235, 235)
YELLOW, CYAN = (230, 220, 30), (30, 210, 220)


def quadrants(width: int = W, height: int = H) -> np.ndarray:
    """Four flat blocks (red, green / blue, white): robust to compression, easy to locate."""
    frame = np.empty((height, width, 3), np.uint8)
    hw, hh = width // 2, height // 2
    frame[:hh, :hw], frame[:hh, hw:] = RED, GREEN
    frame[hh:, :hw], frame[hh:, hw:] = BLUE, WHITE
    return frame


def halves(width: int, height: int) -> np.ndarray:
    frame = np.empty((height, width, 3), np.uint8)
    frame[:, : width // 2], frame[:, width // 2 :] = YELLOW, CYAN
    return frame


QUADRANT_POINTS = [(W // 4, H // 4), (3 * W // 4, H // 4), (W // 4, 3 * H // 4), (3 * W // 4, 3 * H // 4)]
QUADRANT_COLOURS = [RED, GREEN, BLUE, WHITE]


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


class Feeder:
    """Publishes the current frame at a steady rate, as a render loop would.

    A steady stream (rather than one publish) means a viewer that joins late, or
    waits for a keyframe after a reconfigure, still gets frames to show.
    """

    def __init__(self, display: Any, frame: np.ndarray, fps: float = 30.0) -> None:
        self.display = display
        self.frame = frame
        self._period = 1.0 / fps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.display.publish(self.frame)
            self._stop.wait(self._period)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium_context(tmp_path_factory.mktemp("chromium-profile"), viewport=VIEWPORT) as context:
        yield context


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(WAIT_MS)
    try:
        yield page
    finally:
        page.close()
    assert not errors, f"uncaught errors in the viewer: {errors}"


def start_display(*, port: int = 0, token: str | None = None) -> Any:
    from rfb.launch import start

    return start(W, H, host="127.0.0.1", port=port, fps=30, token=token or secrets.token_urlsafe(12))


@pytest.fixture
def display() -> Iterator[Any]:
    display = start_display()
    try:
        yield display
    finally:
        display.close()


@pytest.fixture
def events(display: Any) -> Events:
    return Events(display)


@pytest.fixture
def feeder(display: Any) -> Iterator[Feeder]:
    feeder = Feeder(display, quadrants())
    try:
        yield feeder
    finally:
        feeder.close()


# ---------------------------------------------------------------- helpers


def open_viewer(page: Any, url: str, transport: str) -> dict[str, Any]:
    """Load the viewer and wait until it has drawn a frame on the expected transport."""
    page.goto(with_query(url, transport="image") if transport == "image" else url)
    page.wait_for_function("() => window.__rfb && window.__rfb.stats.framesDrawn > 0")
    stats = page.evaluate("window.__rfb.stats")
    assert stats["transport"] == transport, f"expected transport {transport}, got {stats}"
    return stats


def snapshot(page: Any, points: list[tuple[int, int]]) -> dict[str, Any]:
    return page.evaluate("(points) => window.__rfb.snapshot(points)", [list(p) for p in points])


def assert_colours(page: Any, points: list[tuple[int, int]], expected: list[tuple[int, int, int]]) -> None:
    """The canvas shows ``expected`` at ``points`` (frame pixels), now or within WAIT_MS."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        shot = snapshot(page, points)
        got = [tuple(p[:3]) if p else None for p in shot["pixels"]]
        if all(
            have is not None and all(abs(a - b) <= TOLERANCE for a, b in zip(have, want, strict=True))
            for want, have in zip(expected, got, strict=True)
        ):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"pixels {points}: expected about {expected}, got {got} (canvas {shot['width']}x{shot['height']})"
            )
        time.sleep(0.05)


class Events:
    """Events from a display, in order: waiting for one keeps those after it for later waits."""

    def __init__(self, display: Any) -> None:
        self.display = display
        self.backlog: list[Any] = []

    def clear(self) -> None:
        self.display.poll_events()
        self.backlog.clear()

    def wait(self, match: Callable[[Any], bool], timeout: float = WAIT_MS / 1000) -> Any:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            while self.backlog:
                event = self.backlog.pop(0)
                seen.append(event.type)
                if match(event):
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching event within {timeout:g} s; saw {seen}")
            self.backlog.extend(self.display.poll_events())
            if not self.backlog:
                time.sleep(0.02)


def client_point(page: Any, x: float, y: float, frame: tuple[int, int] = (W, H)) -> tuple[float, float]:
    """Where frame pixel (x, y) is on screen, through object-fit: contain letterboxing."""
    box = page.locator("#screen").bounding_box()
    scale = min(box["width"] / frame[0], box["height"] / frame[1])
    left = box["x"] + (box["width"] - frame[0] * scale) / 2
    top = box["y"] + (box["height"] - frame[1] * scale) / 2
    return left + x * scale, top + y * scale


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("transport", ["webcodecs", "image"])
def test_canvas_shows_the_published_frame(page, display, feeder, transport):
    stats = open_viewer(page, display.url, transport)
    assert (stats["width"], stats["height"]) == (W, H)
    assert_colours(page, QUADRANT_POINTS, QUADRANT_COLOURS)
    if transport == "webcodecs":
        assert stats["codec"].startswith("avc1."), stats
    overlay = page.locator("#stats").inner_text()
    assert transport in overlay and f"{W}x{H}" in overlay, overlay


@pytest.mark.parametrize("transport", ["webcodecs", "image"])
def test_overlay_shows_the_latency_the_server_measured(page, display, feeder, transport):
    open_viewer(page, display.url, transport)
    page.wait_for_function("() => window.__rfb.stats.latencyMs > 0")  # a `stats` message came (once a second)
    stats = page.evaluate("window.__rfb.stats")
    overlay = page.locator("#stats").inner_text()
    match = re.search(r"latency (\d+\.\d) ms  p95 (\d+\.\d) ms", overlay)
    assert match, overlay
    assert float(match[1]) == round(stats["latencyMs"], 1) and float(match[2]) >= float(match[1])
    assert stats["serverFps"] > 0
    (viewer,) = display.viewers
    assert display.latency(60.0)[viewer.client_id].frames > 0 and viewer.group == transport


def test_hello_offers_h264_only_where_webcodecs_decodes_it(page, display, feeder):
    stats = open_viewer(page, display.url, "webcodecs")
    assert stats["supported"] == ["webcodecs/h264-annexb", "image/jpeg", "image/png"]
    forced = open_viewer(page, display.url, "image")
    assert forced["supported"] == ["image/jpeg", "image/png"]


@pytest.mark.parametrize("transport", ["webcodecs", "image"])
def test_click_arrives_at_frame_coordinates_through_letterboxing(page, display, events, feeder, transport):
    open_viewer(page, display.url, transport)
    events.clear()
    fx, fy = 250.5, 60.25  # right half of the frame: clearly not where a stretched mapping lands
    cx, cy = client_point(page, fx, fy)
    page.mouse.click(cx, cy)
    down = events.wait(lambda e: e.type == "pointerdown")
    assert abs(down.x - fx) <= 1.5 and abs(down.y - fy) <= 1.5, (down, (fx, fy))
    assert down.button == 0 and down.buttons == 1
    up = events.wait(lambda e: e.type == "pointerup")
    assert abs(up.x - fx) <= 1.5 and abs(up.y - fy) <= 1.5, up


def test_clicks_on_the_letterbox_bars_are_not_sent(page, display, events, feeder):
    open_viewer(page, display.url, "image")
    box = page.locator("#viewer").bounding_box()
    left_edge, _ = client_point(page, 0, 0)
    assert left_edge - box["x"] > 20, "the test needs a pillarboxed frame"
    page.mouse.click(box["x"] + 5, box["y"] + box["height"] / 2)  # on the bar
    page.mouse.click(*client_point(page, 10, 10))  # then on the picture
    first = events.wait(lambda e: e.type in ("pointerdown", "pointerup"))
    assert abs(first.x - 10) <= 1.5 and abs(first.y - 10) <= 1.5, first


def test_keys_and_wheel_arrive_as_events(page, display, events, feeder):
    open_viewer(page, display.url, "webcodecs")
    cx, cy = client_point(page, 100, 200)
    page.mouse.click(cx, cy)  # focuses the canvas
    events.clear()
    page.keyboard.press("Shift+KeyA")
    down = events.wait(lambda e: e.type == "keydown" and e.code == "KeyA")
    assert down.key == "A" and "shift" in down.modifiers and down.repeat is False
    events.wait(lambda e: e.type == "keyup" and e.code == "KeyA")

    page.mouse.wheel(0, 120)
    wheel = events.wait(lambda e: e.type == "wheel")
    assert wheel.dy == 120 and wheel.dx == 0, wheel
    assert abs(wheel.x - 100) <= 1.5 and abs(wheel.y - 200) <= 1.5, wheel


def test_viewer_reports_its_canvas_size(page, display, events, feeder):
    open_viewer(page, display.url, "image")
    resize = events.wait(lambda e: e.type == "resize")
    dpr = page.evaluate("window.devicePixelRatio")
    assert (resize.width, resize.height) == (round(VIEWPORT["width"] * dpr), round(VIEWPORT["height"] * dpr))
    first = (resize.width, resize.height)
    page.set_viewport_size({"width": 640, "height": 480})
    # the viewer may repeat its first size (its ResizeObserver fires on layout too): skip repeats
    resized = events.wait(lambda e: e.type == "resize" and (e.width, e.height) != first)
    assert (resized.width, resized.height) == (round(640 * dpr), round(480 * dpr))


@pytest.mark.parametrize("transport", ["webcodecs", "image"])
def test_viewer_follows_a_new_frame_size_mid_stream(page, display, events, feeder, transport):
    open_viewer(page, display.url, transport)
    assert_colours(page, QUADRANT_POINTS, QUADRANT_COLOURS)
    feeder.frame = halves(480, 160)
    page.wait_for_function("() => window.__rfb.stats.width === 480 && window.__rfb.stats.height === 160")
    assert_colours(page, [(120, 80), (360, 80)], [YELLOW, CYAN])
    # Input now maps to the new size.
    events.clear()
    page.mouse.click(*client_point(page, 400, 40, frame=(480, 160)))
    down = events.wait(lambda e: e.type == "pointerdown")
    assert abs(down.x - 400) <= 1.5 and abs(down.y - 40) <= 1.5, down


def test_wrong_token_shows_the_error_and_does_not_retry(page, display, feeder):
    page.goto(with_query(display.url, token="not-the-token"))
    page.wait_for_function("() => window.__rfb && window.__rfb.state === 'error'")
    banner = page.locator("#banner")
    assert banner.is_visible()
    assert "unauthorized" in banner.inner_text()
    page.wait_for_timeout(1500)  # longer than the first reconnect delays
    stats = page.evaluate("window.__rfb.stats")
    assert stats["state"] == "error" and stats["connects"] == 1 and stats["framesDrawn"] == 0, stats


def test_viewer_reconnects_after_the_server_comes_back(page):
    token = secrets.token_urlsafe(12)
    first = start_display(token=token)
    port = urlsplit(first.url).port
    feeder = Feeder(first, quadrants())
    try:
        open_viewer(page, first.url, "webcodecs")
    finally:
        feeder.close()
        first.close()
    page.wait_for_function("() => window.__rfb.state === 'reconnecting'")
    assert page.locator("#banner").is_visible()
    assert "Reconnecting" in page.locator("#banner").inner_text()

    second = start_display(port=port, token=token)
    feeder = Feeder(second, halves(W, H))
    try:
        page.wait_for_function("() => window.__rfb.state === 'streaming' && window.__rfb.stats.connects === 2")
        assert_colours(page, [(W // 4, H // 2), (3 * W // 4, H // 2)], [YELLOW, CYAN])
        assert page.locator("#banner").is_hidden()
    finally:
        feeder.close()
        second.close()


class CorruptingH264:
    """The real h264_cpu route, except that it can be told to garble the next delta frame.

    A garbled access unit makes Chromium's decoder fail, which is how a viewer meets a
    broken stream in practice (a lost packet upstream, an encoder bug).
    """

    transport = "webcodecs"
    name = "browser-test-corrupting"
    pending = 0  # how many of the next delta frames to garble (class-wide: one display per test)

    def __init__(self, config: Any) -> None:
        from rfb.encoders.registry import get_entry

        self.inner = get_entry("h264_cpu").factory(config)

    def encode(self, frame: Any, *, force_keyframe: bool = False) -> list[Any]:
        payloads = self.inner.encode(frame, force_keyframe=force_keyframe)
        if CorruptingH264.pending and payloads and not payloads[0].keyframe:
            CorruptingH264.pending -= 1
            garbage = b"\x00\x00\x00\x01\x41" + bytes(range(256)) * 2  # a non-IDR slice of nonsense
            payloads = [dataclasses.replace(payloads[0], data=garbage), *payloads[1:]]
        return payloads

    def flush(self) -> list[Any]:
        return self.inner.flush()

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def corrupting_display() -> Iterator[Any]:
    from rfb.encoders.registry import register_video_encoder, unregister_video_encoder

    register_video_encoder(CorruptingH264.name, CorruptingH264, replace=True)
    CorruptingH264.pending = 0
    display = None
    try:
        from rfb.launch import start

        display = start(W, H, host="127.0.0.1", port=0, fps=30, video_encoder=CorruptingH264.name)
        yield display
    finally:
        if display is not None:
            display.close()
        unregister_video_encoder(CorruptingH264.name)


def test_decoder_error_resets_the_decoder_requests_a_keyframe_and_recovers(page, corrupting_display):
    feeder = Feeder(corrupting_display, quadrants())
    try:
        open_viewer(page, corrupting_display.url, "webcodecs")
        CorruptingH264.pending = 1
        page.wait_for_function("() => window.__rfb.stats.decoderResets > 0")
        drawn = page.evaluate("window.__rfb.stats.framesDrawn")
        page.wait_for_function(f"() => window.__rfb.stats.framesDrawn > {drawn} + 3")
        feeder.frame = halves(W, H)
        assert_colours(page, [(W // 4, H // 2), (3 * W // 4, H // 2)], [YELLOW, CYAN])
        stats = page.evaluate("window.__rfb.stats")
        assert stats["state"] == "streaming", stats
        assert stats["keyframeRequests"] >= 1, stats
        assert stats["decoderResets"] == 1, stats
        assert corrupting_display.stats.keyframes_forced >= 1
    finally:
        feeder.close()


class ScriptedServer:
    """The real app and server thread, with a scripted ``/ws`` instead of a display.

    For protocol situations the real server avoids by design (it sends a viewer nothing
    but an IDR after a configure), yet which a viewer must survive: a stream that starts
    with delta frames, as after a reconnect race or a proxy that drops messages.
    """

    def __init__(self, script: Callable[[Any], Any]) -> None:
        from rfb.server import ServerThread, create_app

        async def nothing() -> None:
            return None

        self.received: list[dict[str, Any]] = []
        self.finished = threading.Event()
        self._script = script
        app = create_app(on_websocket=self._run, health=dict)
        self._thread = ServerThread(
            app, host="127.0.0.1", port=0, ws_max_size=65536, before_stop=nothing, after_stop=lambda: None
        )
        self._thread.start().result(timeout=10)
        self.url = f"http://127.0.0.1:{self._thread.port}/"

    async def _run(self, websocket: Any) -> None:
        import json

        from starlette.websockets import WebSocketDisconnect

        async def receive() -> dict[str, Any]:
            message = json.loads(await websocket.receive_text())
            self.received.append(message)
            return message

        try:
            await self._script(websocket, receive)
            while True:  # keep listening: acks and requests arrive after the script
                await receive()
        except WebSocketDisconnect:
            pass
        finally:
            self.finished.set()

    def close(self) -> None:
        self._thread.stop().result(timeout=10)
        self._thread.join(timeout=10)


def encode_stream(frames: list[np.ndarray], keyframes: set[int]) -> list[Any]:
    """Real h264_cpu payloads for ``frames``; IDRs at index 0 and at ``keyframes``."""
    from rfb.encoders.base import EncoderConfig
    from rfb.encoders.registry import get_entry

    encoder = get_entry("h264_cpu").factory(EncoderConfig(W, H))
    try:
        payloads = []
        for i, frame in enumerate(frames):
            (payload,) = encoder.encode(frame_from(frame), force_keyframe=i in keyframes)
            payloads.append(payload)
        return payloads
    finally:
        encoder.close()


def frame_from(array: np.ndarray) -> Any:
    from rfb.frames import frame_from_array

    return frame_from_array(array)


def test_keyframe_gate_drops_and_acks_deltas_until_a_keyframe(page):
    from rfb import protocol

    stream = encode_stream([halves(W, H)] * 3 + [quadrants()] * 2, keyframes={3})
    assert [p.keyframe for p in stream] == [True, False, False, True, False]
    # The viewer is configured, then gets deltas 1, 2 (no reference picture: must not be
    # decoded), the IDR 3 and the delta 4.
    sent = stream[1:]

    async def script(websocket: Any, receive: Callable[[], Any]) -> None:
        hello = await receive()
        assert hello["type"] == "hello"
        await websocket.send_text(
            protocol.config_message(transport="webcodecs", codec=stream[0].codec, width=W, height=H, client_id=1)
        )
        for seq, payload in enumerate(sent, start=1):
            header = protocol.payload_header(payload, seq=seq, timestamp_us=seq * 33_000)
            await websocket.send_bytes(protocol.pack_payload(header, payload.data))

    server = ScriptedServer(script)
    try:
        page.goto(server.url)
        page.wait_for_function("() => window.__rfb.stats.framesDrawn === 2")
        assert_colours(page, QUADRANT_POINTS, QUADRANT_COLOURS)
        stats = page.evaluate("window.__rfb.stats")
        assert stats["framesDropped"] == 2 and stats["decoderResets"] == 0 and stats["lastSeq"] == 4, stats
        deadline = time.monotonic() + WAIT_MS / 1000
        while sum(m["type"] == "ack" for m in server.received) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        acks = [m["seq"] for m in server.received if m["type"] == "ack"]
        assert sorted(acks) == [1, 2, 3, 4], server.received
        requests = [m for m in server.received if m["type"] == "request_keyframe"]
        assert len(requests) == 1, server.received
    finally:
        server.close()


def test_viewer_modules_agree_with_the_server_on_framing_and_mapping(page, display):
    """The pure parts of the viewer, run in the browser against the server's own packer."""
    from rfb import protocol

    header = {
        "type": "image_frame",
        "seq": 7,
        "timestamp_us": 1,
        "width": 2,
        "height": 2,
        "mime": "image/png",
        "note": "é✓",
    }
    packed = protocol.pack_payload(header, b"\x00\x01\xff")
    page.goto(display.url)
    result = page.evaluate(
        """async (bytes) => {
            const proto = await import("./viewer/protocol.js");
            const input = await import("./viewer/input.js");
            const view = await import("./viewer/view.js");
            const { header, payload } = proto.parseBinary(new Uint8Array(bytes).buffer);
            let error = null;
            try { proto.parseBinary(new Uint8Array([200, 0, 0, 0, 123]).buffer); } catch (e) { error = e.message; }
            const area = { width: 800, height: 400 };
            const fit = view.placement("fit", area, { width: 320, height: 240 }, 3);  // 1/3 px: no rounding here
            const box = { left: 10 + fit.x, top: 20 + fit.y, scale: fit.scale };
            return {
                header, payload: Array.from(payload), error,
                centre: view.toFrame(410, 220, box, 320, 240),
                corner: view.toFrame(10 + 400 - 400 * 320 / 240 / 2 + 0.01, 20 + 400 - 0.01, box, 320, 240),
                bar: view.toFrame(15, 220, box, 320, 240),
                lines: input.wheelPixels({ deltaMode: 1, deltaX: -1, deltaY: 3 }, 240),
                pages: input.wheelPixels({ deltaMode: 2, deltaX: 0, deltaY: 1 }, 240),
                pixels: input.wheelPixels({ deltaMode: 0, deltaX: 5, deltaY: -7 }, 240),
                mods: input.modifiers({ shiftKey: true, ctrlKey: false, altKey: true, metaKey: true }),
            };
        }""",
        list(packed),
    )
    assert result["header"] == header and result["payload"] == [0, 1, 255]
    assert "header length 200 runs past the message end" in result["error"]
    assert result["centre"] == {"x": pytest.approx(160), "y": pytest.approx(120), "inside": True}
    assert result["corner"] == {
        "x": pytest.approx(0.006, abs=1e-6),
        "y": pytest.approx(239.994, abs=1e-6),
        "inside": True,
    }
    assert result["bar"]["inside"] is False and result["bar"]["x"] == 0
    assert result["lines"] == {"dx": -16, "dy": 48}
    assert result["pages"] == {"dx": 0, "dy": 240}
    assert result["pixels"] == {"dx": 5, "dy": -7}
    assert result["mods"] == ["shift", "alt", "meta"]
