"""``resize_policy="match_viewer"`` and ``publish(pixel_ratio=)`` in a real Chromium at devicePixelRatio 2.

What these prove: the display's target size is the viewer's area in device pixels
(CSS pixels x 2 here); a frame rendered at that size and published with its pixel
ratio is on screen pixel for pixel (the page's screenshot at device resolution *is*
the frame); resizing the window moves the target and the next frame at the new size
is shown just as exactly; a second viewer with a larger window shows the same frame
at its logical size, still pixel for pixel, and one with a smaller window scales it
down to fit, while the first viewer keeps driving the size.

The viewers use ``?transport=png`` (lossless) so that pixels compare exactly. Frames
are published on demand, not streamed: a viewer that joins gets the latest frame.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from tests.support.chromium import chromium_context
from tests.test_browser import WAIT_MS, Events, with_query

pytestmark = pytest.mark.browser

AREA = {"width": 400, "height": 300}  # CSS pixels: 800x600 device pixels at devicePixelRatio 2
DPR = 2


def noise(width: int, height: int, seed: int = 12) -> np.ndarray:
    """Every pixel unlike its neighbours: any resampling or half-pixel offset shows."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def hidpi_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium whose pages have devicePixelRatio 2 (Playwright's device_scale_factor)."""
    with chromium_context(tmp_path_factory.mktemp("chromium-hidpi"), viewport=AREA, device_scale_factor=DPR) as context:
        yield context


@pytest.fixture
def new_page(hidpi_context: Any) -> Iterator[Callable[[dict[str, int]], Any]]:
    """Open pages of a given viewport size; each is closed, and checked for page errors, at the end."""
    opened: list[tuple[Any, list[str]]] = []

    def open_page(viewport: dict[str, int]) -> Any:
        page = hidpi_context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(WAIT_MS)
        page.set_viewport_size(viewport)
        opened.append((page, errors))
        return page

    yield open_page
    for page, _ in opened:
        page.close()
    problems = [e for _, errors in opened for e in errors]
    assert not problems, f"uncaught errors in the viewer: {problems}"


@pytest.fixture
def display() -> Iterator[Any]:
    from rfb.launch import start

    display = start(320, 240, host="127.0.0.1", port=0, token=secrets.token_urlsafe(12), resize_policy="match_viewer")
    try:
        yield display
    finally:
        display.close()


def open_viewer(page: Any, display: Any) -> None:
    page.goto(with_query(display.url, transport="png", overlay="0"))
    page.wait_for_function("() => window.__rfb && window.__rfb.stats.framesDrawn > 0")
    assert page.evaluate("window.devicePixelRatio") == DPR


def wait_target(events: Events, size: tuple[int, int]) -> Any:
    """The ``target_size`` event that announces ``size``; every earlier one is skipped."""
    return events.wait(lambda e: e.type == "target_size" and (e.width, e.height) == size)


def show(page: Any, display: Any, frame: np.ndarray, pixel_ratio: float | None) -> None:
    """Publish ``frame`` and wait until ``page`` has drawn it and placed it."""
    drawn = page.evaluate("window.__rfb.stats.framesDrawn")
    display.publish(frame, pixel_ratio=pixel_ratio)
    page.wait_for_function(
        "([n, w, h]) => window.__rfb.stats.framesDrawn > n && window.__rfb.stats.width === w"
        " && window.__rfb.view.frame.width === w && window.__rfb.view.frame.height === h",
        arg=[drawn, frame.shape[1], frame.shape[0]],
    )


def screen(page: Any) -> np.ndarray:
    """The page as composited, in device pixels (RGB)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.screenshot(type="png"))).convert("RGB"))


def test_target_is_the_area_in_device_pixels_and_its_frame_is_shown_pixel_for_pixel(new_page, display):
    events = Events(display)
    display.publish(noise(320, 240, seed=1))  # something to join with, at the serve() size
    assert display.target_size == (320, 240) and display.target_pixel_ratio == 1.0
    page = new_page(AREA)
    open_viewer(page, display)

    target = wait_target(events, (AREA["width"] * DPR, AREA["height"] * DPR))
    assert target.pixel_ratio == DPR
    (viewer,) = display.viewers
    assert target.client_id == viewer.client_id == display.driver
    assert display.target_size == (800, 600) and display.target_pixel_ratio == DPR

    frame = noise(*display.target_size)
    show(page, display, frame, display.target_pixel_ratio)
    view = page.evaluate("window.__rfb.view")
    assert view["mode"] == "fit" and view["zoom"] == 1 and (view["x"], view["y"]) == (0, 0), view
    assert view["frame"]["pixelRatio"] == DPR
    np.testing.assert_array_equal(screen(page), frame, "the 2x frame is not on screen pixel for pixel")

    page.locator("#screen").focus()
    page.keyboard.press("Control+Digit1")  # 1:1 is the same placement for this frame: still exact
    page.wait_for_function("() => window.__rfb.view.mode === '1:1'")
    np.testing.assert_array_equal(screen(page), frame, "at 1:1 the 2x frame is not on screen pixel for pixel")


def test_resizing_the_window_moves_the_target_and_the_next_frame_is_shown_exactly(new_page, display):
    events = Events(display)
    display.publish(noise(320, 240, seed=1))
    page = new_page(AREA)
    open_viewer(page, display)
    wait_target(events, (800, 600))
    show(page, display, noise(800, 600), DPR)

    for width in (460, 500, 540):  # a drag: several sizes, the last one stays
        page.set_viewport_size({"width": width, "height": 260})
    target = wait_target(events, (1080, 520))
    assert (target.pixel_ratio, display.target_size) == (DPR, (1080, 520))

    frame = noise(1080, 520, seed=2)
    show(page, display, frame, display.target_pixel_ratio)
    np.testing.assert_array_equal(screen(page), frame, "the frame at the new size is not on screen pixel for pixel")


def test_other_viewers_show_the_frame_at_its_logical_size_or_scale_it_down(new_page, display):
    events = Events(display)
    display.publish(noise(320, 240, seed=1))
    driver = new_page(AREA)
    open_viewer(driver, display)
    wait_target(events, (800, 600))
    frame = noise(800, 600)
    show(driver, display, frame, DPR)
    (first,) = display.viewers

    larger = new_page({"width": 600, "height": 400})
    open_viewer(larger, display)
    larger.wait_for_function("() => window.__rfb.view.frame.pixelRatio === 2")
    view = larger.evaluate("window.__rfb.view")
    assert (view["mode"], view["zoom"], view["x"], view["y"]) == ("fit", 1, 100, 50), view  # logical size, centred
    shown = screen(larger)[100:700, 200:1000]  # device pixels: the CSS box (100, 50, 400x300) x 2
    np.testing.assert_array_equal(shown, frame, "the larger viewer does not show the frame 1:1")

    smaller = new_page({"width": 200, "height": 300})
    open_viewer(smaller, display)
    smaller.wait_for_function("() => window.__rfb.view.frame.pixelRatio === 2")
    box = smaller.locator("#screen").bounding_box()
    assert (box["width"], box["height"]) == (200, 150), box  # fit: a quarter of the frame's width, in CSS pixels
    assert smaller.evaluate("window.__rfb.view.scale") == 0.25

    # Their sizes were heard (as resize events) but the first viewer still drives.
    for page in (larger, smaller):
        client_id = page.evaluate("window.__rfb.stats.clientId")
        events.wait(lambda e, c=client_id: e.type == "resize" and e.client_id == c)
    assert display.driver == first.client_id and display.target_size == (800, 600)


def test_fit_shows_a_frame_with_a_pixel_ratio_at_no_more_than_its_logical_size(new_page, display):
    """view.js's fit, run as the page runs it: the cases the screenshots above do not reach."""
    page = new_page(AREA)
    page.goto(display.url)
    r = page.evaluate(
        """async () => {
            const v = await import("./viewer/view.js");
            const area = { width: 641, height: 400 };
            const fit = (frame, dpr) => v.fitScale(area, frame, dpr);
            return {
                none: fit({ width: 320, height: 200 }, 2),
                small: fit({ width: 320, height: 200, pixelRatio: 2 }, 2),
                exact: fit({ width: 1282, height: 800, pixelRatio: 2 }, 2),
                rounded: fit({ width: 962, height: 600, pixelRatio: 1.5 }, 1.5),
                large: fit({ width: 2000, height: 800, pixelRatio: 2 }, 2),
                placed: v.placement("fit", area, { width: 962, height: 600, pixelRatio: 1.5 }, 1.5),
            };
        }"""
    )
    assert r["none"] == 2  # no ratio: fit fills the area, as it always did
    assert r["small"] == 0.5  # at its logical size (160x100 CSS pixels), not blown up
    assert r["exact"] == 0.5  # the driver's own frame: one frame pixel per device pixel
    # 641 CSS px x 1.5 = 961.5 device px, rounded to 962: a third of a CSS pixel too wide,
    # yet shown at its logical size rather than resampled a hair smaller.
    assert r["rounded"] == pytest.approx(1 / 1.5) and r["placed"]["x"] == 0
    assert r["large"] == pytest.approx(641 / 2000)  # wider than the area at its logical size: scaled down
