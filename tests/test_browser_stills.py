"""Exact stills in a real headless Chromium (docs/fanout.md "Exact stills", docs/viewer.md).

What only a browser can prove: that the still the viewer draws over H.264 or JPEG makes
the picture on screen the published frame, pixel for pixel (the page composited at
devicePixelRatio 1, the view at 1:1), and that the next frame replaces it.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_browser import (  # the fixtures and helpers of the viewer's browser tests
    QUADRANT_COLOURS,
    QUADRANT_POINTS,
    Feeder,
    H,
    W,
    assert_colours,
    browser_context,  # noqa: F401 (a fixture, used by name)
    open_viewer,
    page,  # noqa: F401 (a fixture, used by name)
    quadrants,
    with_query,
)
from tests.test_viewer_controls import noise, screen_pixels, view_state

pytestmark = pytest.mark.browser


def start_display(still_after: float | None) -> Any:
    from rfb.launch import start

    return start(W, H, host="127.0.0.1", port=0, fps=30, token=secrets.token_urlsafe(12), still_after=still_after)


@pytest.fixture
def on_demand() -> Iterator[Any]:
    display = start_display(None)
    try:
        yield display
    finally:
        display.close()


@pytest.fixture
def settling() -> Iterator[Any]:
    display = start_display(0.3)
    try:
        yield display
    finally:
        display.close()


def show_then_stop(page: Any, display: Any, frame: np.ndarray, transport: str) -> None:
    """The viewer (no overlay) draws ``frame``, then publishing stops; the view goes to 1:1."""
    feeder = Feeder(display, frame)
    try:
        open_viewer(page, with_query(display.url, overlay="0"), transport)
    finally:
        feeder.close()
    page.locator("#screen").focus()
    page.keyboard.press("Control+Digit1")
    page.wait_for_function("() => window.__rfb.view.mode === '1:1' && window.__rfb.view.scale === 1")


def shown_frame(page: Any) -> np.ndarray:
    """The frame's area of the page as composited (device pixels = CSS pixels here)."""
    assert page.evaluate("window.devicePixelRatio") == 1
    view = view_state(page)
    x, y = round(view["x"]), round(view["y"])
    return screen_pixels(page)[y : y + H, x : x + W]


def drawn_count(page: Any) -> int:
    return int(page.evaluate("window.__rfb.stats.framesDrawn"))


def wait_quiet(page: Any) -> None:
    """Until no frame has been drawn for half a second (the last published one has arrived)."""
    last, since = drawn_count(page), time.monotonic()
    while time.monotonic() - since < 0.5:
        time.sleep(0.1)
        now = drawn_count(page)
        if now != last:
            last, since = now, time.monotonic()


@pytest.mark.parametrize("transport", ["webcodecs", "image"])
def test_a_still_makes_the_screen_the_exact_frame_and_the_next_frame_replaces_it(page, on_demand, transport):
    frame = noise()
    show_then_stop(page, on_demand, frame, transport)
    wait_quiet(page)
    lossy = shown_frame(page)
    assert lossy.shape == frame.shape and not np.array_equal(lossy, frame), f"{transport} of noise is expected lossy"

    on_demand.refresh_still()
    page.wait_for_function("() => window.__rfb.stats.still === true")
    np.testing.assert_array_equal(shown_frame(page), frame, f"the still over {transport} is not the frame")
    assert page.evaluate("window.__rfb.stats.stillsDrawn") == 1

    on_demand.publish(quadrants())  # motion resumes: the next frame is drawn over the still
    assert_colours(page, QUADRANT_POINTS, QUADRANT_COLOURS)
    assert page.evaluate("window.__rfb.stats.still") is False


def test_a_settled_scene_gets_its_still_by_itself(page, settling):
    frame = noise()
    show_then_stop(page, settling, frame, "webcodecs")
    page.wait_for_function("() => window.__rfb.stats.still === true")
    np.testing.assert_array_equal(shown_frame(page), frame, "the settled still is not the frame")
    stats = settling.stats.stills
    assert stats.encodes == 1 and stats.sent == 1, stats


DOCS_IMAGE = Path(__file__).resolve().parents[1] / "docs" / "viewer-still.png"


@pytest.mark.skipif(
    os.environ.get("RFB_WRITE_DOCS_SCREENSHOTS") != "1",
    reason="set RFB_WRITE_DOCS_SCREENSHOTS=1 to write docs/viewer-still.png",
)
def test_docs_screenshot(page, settling):
    """docs/viewer-still.png: the demo scene over H.264, settled, at 1:1, the overlay saying so."""
    from rfb.demo import Scene

    feeder = Feeder(settling, Scene(W, H).render(1.0))
    try:
        open_viewer(page, settling.url, "webcodecs")
    finally:
        feeder.close()
    page.locator("#screen").focus()
    page.keyboard.press("Control+Digit1")
    page.wait_for_function("() => document.getElementById('stats').textContent.includes('exact still')")
    page.screenshot(path=str(DOCS_IMAGE))
    assert DOCS_IMAGE.stat().st_size > 0


# ---------------------------------------------------------------- recordings play in the browser

PLAY = """async (data) => {
  const video = document.createElement("video");
  video.muted = true;
  video.src = "data:video/mp4;base64," + data;
  await new Promise((resolve, reject) => {
    video.onloadeddata = resolve;
    video.onerror = () => reject(new Error(`video error: ${video.error && video.error.message}`));
  });
  // The first frame is on screen once a seek to it completes (loadeddata alone may leave it undrawn).
  await new Promise((resolve) => { video.onseeked = resolve; video.currentTime = 0; });
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(video, 0, 0);
  const pixels = Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data);
  return { width: video.videoWidth, height: video.videoHeight, duration: video.duration, pixels };
}"""


def test_a_recording_plays_in_chromium(page, on_demand, tmp_path):
    import base64

    from rfb.demo import Scene
    from rfb.frames import frame_from_array

    scene = Scene(W, H)
    frames = [scene.render(i / 30) for i in range(60)]
    with on_demand.record(tmp_path / "run.mp4") as recording:
        for i, frame in enumerate(frames):
            on_demand.publish(frame_from_array(frame, timestamp_us=1_000_000 + round(i * 1_000_000 / 30)))
            deadline = time.monotonic() + 5
            while recording.frames < i + 1 and time.monotonic() < deadline:  # paced by the writer: none skipped
                time.sleep(0.005)
            time.sleep(1 / 30)
    assert recording.frames == len(frames) and recording.files == [tmp_path / "run.mp4"]
    data = base64.b64encode((tmp_path / "run.mp4").read_bytes()).decode()
    page.set_content("<!doctype html><title>recording</title>")
    shown = page.evaluate(PLAY, data)
    assert (shown["width"], shown["height"]) == (W, H)
    assert abs(shown["duration"] - 2.0) < 0.01, shown["duration"]  # 60 frames stamped 1/30 s apart
    first = np.array(shown["pixels"], np.uint8).reshape(H, W, 4)[..., :3].astype(int)
    error = [float(np.abs(first - frames[i]).mean()) for i in (0, 30)]
    assert error[0] < 4 and error[0] < error[1], f"the first frame shown is not the first published: {error}"
