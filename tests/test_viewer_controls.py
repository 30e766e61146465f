"""The viewer's controls in a real headless Chromium: zoom, pan, fit / fill / 1:1, the strip.

What these prove: input events report the frame pixel under the pointer at any zoom
and pan (checked against what the browser actually composited there, not only against
our own arithmetic); the viewer's gestures (Ctrl/⌘+wheel, Ctrl/⌘+drag) and keys are not
sent to the application while plain ones still are; 1:1 is one frame pixel per device
pixel and magnified pixels are crisp; the screenshot is the published frame at frame
resolution; the strip is reachable from the keyboard.

Most tests use a PNG viewer (``?transport=png``: the server then sends every frame as
a lossless PNG), so pixels on screen can be compared exactly.

``RFB_WRITE_DOCS_SCREENSHOTS=1`` makes ``test_docs_screenshot`` write
docs/viewer-controls.png (the image in docs/viewer.md).
"""

from __future__ import annotations

import io
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_browser import (  # the fixtures and helpers of the viewer's browser tests
    QUADRANT_COLOURS,
    QUADRANT_POINTS,
    TOLERANCE,
    VIEWPORT,
    Events,
    Feeder,
    assert_colours,
    browser_context,  # noqa: F401 (a fixture, used by name)
    open_viewer,
    page,  # noqa: F401 (a fixture, used by name)
    quadrants,
    with_query,
)

pytestmark = pytest.mark.browser

W, H = 320, 240
CELL = 16
DOCS_IMAGE = Path(__file__).resolve().parent.parent / "docs" / "viewer-controls.png"


def cells(width: int = W, height: int = H) -> np.ndarray:
    """16x16 blocks, each of its own colour (R: column, G: row): a colour says where it is."""
    ys, xs = np.mgrid[0:height, 0:width]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = 10 + (xs // CELL) * 12
    frame[..., 1] = 10 + (ys // CELL) * 16
    frame[..., 2] = 128
    return frame


def cell_of(rgb: tuple[int, ...]) -> tuple[int, int]:
    return round((rgb[0] - 10) / 12), round((rgb[1] - 10) / 16)


def noise(width: int = W, height: int = H) -> np.ndarray:
    """Every pixel different from its neighbours: any blur or half-pixel offset shows."""
    return np.random.default_rng(12).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def png_display() -> Iterator[Any]:
    from rfb.launch import start

    display = start(W, H, host="127.0.0.1", port=0, fps=30, token=secrets.token_urlsafe(12))
    try:
        yield display
    finally:
        display.close()


def open_png_viewer(page: Any, display: Any, frame: np.ndarray, overlay: str = "0") -> Feeder:
    """The viewer with ``?transport=png`` (and no stats overlay), once it has drawn ``frame``."""
    feeder = Feeder(display, frame)
    try:
        page.goto(with_query(display.url, transport="png", overlay=overlay))
        page.wait_for_function("() => window.__rfb && window.__rfb.stats.framesDrawn > 0")
        (viewer,) = display.viewers
        assert viewer.group == "png", viewer
        page.wait_for_function("() => window.__rfb.view && window.__rfb.view.frame")
    except BaseException:
        feeder.close()
        raise
    return feeder


def view_state(page: Any) -> dict[str, Any]:
    return page.evaluate("window.__rfb.view")


def area_box(page: Any) -> dict[str, float]:
    return page.locator("#viewer").bounding_box()


def expected_frame_point(view: dict[str, Any], cx: float, cy: float, area: dict[str, float]) -> tuple[float, float]:
    return (cx - area["x"] - view["x"]) / view["scale"], (cy - area["y"] - view["y"]) / view["scale"]


def screen_pixels(page: Any, cdp: Any = None) -> np.ndarray:
    """The page as composited, in device pixels (RGB).

    Pass the CDP session that emulates a devicePixelRatio: its screenshots are taken
    at that ratio (Playwright's own are at the context's).
    """
    import base64

    from PIL import Image

    session = cdp or page.context.new_cdp_session(page)
    try:
        png = base64.b64decode(session.send("Page.captureScreenshot", {"format": "png"})["data"])
    finally:
        if cdp is None:
            session.detach()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def wait_after(events: Events, match: Any) -> tuple[Any, list[Any]]:
    """The next event that matches, and every event that came before it."""
    before: list[Any] = []

    def keep(event: Any) -> bool:
        if match(event):
            return True
        before.append(event)
        return False

    return events.wait(keep), before


def assert_pointer_hits_shown_cell(page: Any, events: Events, cx: float, cy: float) -> tuple[Any, list[str]]:
    """Click at client (cx, cy): the reported frame pixel lies in the cell shown there.

    Returns the pointerdown and the types of the wheel and button events the app got
    before it (but after those already taken from ``events``).
    """
    dpr = page.evaluate("window.devicePixelRatio")
    shown = screen_pixels(page)[int(cy * dpr), int(cx * dpr)]
    page.mouse.click(cx, cy)
    down, before = wait_after(events, lambda e: e.type == "pointerdown")
    assert (int(down.x) // CELL, int(down.y) // CELL) == cell_of(tuple(shown)), (down, (cx, cy), tuple(shown))
    events.wait(lambda e: e.type == "pointerup")
    return down, [e.type for e in before if e.type in ("wheel", "pointerdown", "pointerup")]


def ctrl_wheel(page: Any, dy: float, notches: int) -> None:
    page.keyboard.down("Control")
    try:
        for _ in range(notches):
            page.mouse.wheel(0, dy)
            page.wait_for_timeout(30)
    finally:
        page.keyboard.up("Control")


# ---------------------------------------------------------------- pure parts


def test_view_arithmetic_in_the_browser(page, png_display):
    """view.js and controls.js, run as the page runs them."""
    page.goto(png_display.url)
    r = page.evaluate(
        """async () => {
            const v = await import("./viewer/view.js");
            const c = await import("./viewer/controls.js");
            const area = { width: 800, height: 400 }, frame = { width: 320, height: 240 };
            const fit = v.placement("fit", area, frame, 1);
            const zoomed = v.zoomAbout(fit, 4, 500, 150, area, frame, 1);
            const key = (code, more = {}) => c.shortcutAction({ code, key: "", ctrlKey: true, ...more });
            return {
                fit, fill: v.placement("fill", area, frame, 1), one: v.placement("1:1", area, frame, 2),
                before: [(500 - fit.x) / fit.scale, (150 - fit.y) / fit.scale],
                after: [(500 - zoomed.x) / zoomed.scale, (150 - zoomed.y) / zoomed.scale], zoomed,
                capped: v.zoomAbout(fit, 1e6, 400, 200, area, frame, 2).scale,
                floor: v.zoomAbout(fit, 1e-6, 400, 200, area, frame, 1).scale,
                lost: v.clampPan({ scale: 1, x: 5000, y: -5000 }, area, frame),
                keys: [key("Digit0"), key("Digit0", { shiftKey: true }), key("Digit1"), key("Equal"),
                       key("Minus"), key("KeyA"), c.shortcutAction({ code: "Digit0", key: "0" }),
                       c.shortcutAction({ code: "F6", key: "F6" }), key("Digit0", { altKey: true }),
                       c.shortcutAction({ code: "Digit0", key: "0", metaKey: true })],
                name: c.screenshotName(new Date(Date.UTC(2026, 11, 4, 9, 5, 7, 21))),
            };
        }"""
    )
    assert r["fit"] == {"scale": pytest.approx(400 / 240), "x": 133, "y": 0}  # x snapped to a device pixel
    assert r["fill"] == {"scale": 2.5, "x": 0, "y": -100}  # covers the width, crops top and bottom
    assert r["one"] == {"scale": 0.5, "x": 320, "y": 140}  # 1:1 at devicePixelRatio 2: half a CSS pixel
    assert r["zoomed"]["scale"] == pytest.approx(4 * 400 / 240)
    assert r["after"] == [pytest.approx(r["before"][0], abs=0.5), pytest.approx(r["before"][1], abs=0.5)]
    assert r["capped"] == 32 and r["floor"] == pytest.approx(0.5)  # 64 device px per frame px; half of min(fit, 1:1)
    assert r["lost"] == {"scale": 1, "x": 400, "y": -40}  # the area's centre stays on the picture
    assert r["keys"] == ["fit", "fill", "1:1", "zoom-in", "zoom-out", None, None, "strip", None, "fit"]
    assert r["name"] == "rfb-20261204T090507.021Z.png"


# ---------------------------------------------------------------- mapping at any zoom


def test_events_report_the_frame_pixel_under_the_pointer_at_any_zoom(page, png_display):
    events = Events(png_display)
    feeder = open_png_viewer(page, png_display, cells())
    try:
        area = area_box(page)
        fit = view_state(page)
        assert fit["mode"] == "fit"
        # Zoom 1 (fit): the pointer hits the cell shown under it.
        events.clear()
        assert_pointer_hits_shown_cell(page, events, area["x"] + 300, area["y"] + 100)

        # Ctrl+wheel: two notches of 120 px zoom in 4x about the pointer.
        ax, ay = area["x"] + 500, area["y"] + 150
        anchor = expected_frame_point(fit, ax, ay, area)
        page.mouse.move(ax, ay)
        ctrl_wheel(page, -120, 2)
        zoomed = view_state(page)
        assert zoomed["mode"] == "free" and zoomed["scale"] == pytest.approx(4 * fit["scale"]), zoomed
        down, before = assert_pointer_hits_shown_cell(page, events, ax, ay)
        assert before == [], f"Ctrl+wheel reached the app: {before}"
        assert abs(down.x - anchor[0]) <= 0.5 and abs(down.y - anchor[1]) <= 0.5, (
            down,
            anchor,
        )  # zoom about the pointer
        for cx, cy in [(area["x"] + 80, area["y"] + 60), (area["x"] + 700, area["y"] + 330)]:
            down, _ = assert_pointer_hits_shown_cell(page, events, cx, cy)
            want = expected_frame_point(zoomed, cx, cy, area)
            assert abs(down.x - want[0]) <= 0.5 and abs(down.y - want[1]) <= 0.5, (down, want)

        # Ctrl+drag pans by the drag and sends nothing.
        page.mouse.move(area["x"] + 400, area["y"] + 200)
        page.keyboard.down("Control")
        page.mouse.down()
        page.mouse.move(area["x"] + 330, area["y"] + 160, steps=5)
        page.mouse.up()
        page.keyboard.up("Control")
        panned = view_state(page)
        assert (panned["x"] - zoomed["x"], panned["y"] - zoomed["y"]) == (-70, -40), (zoomed, panned)
        for i, (cx, cy) in enumerate([(area["x"] + 123, area["y"] + 321), (area["x"] + 400, area["y"] + 200)]):
            down, before = assert_pointer_hits_shown_cell(page, events, cx, cy)
            assert i or before == [], f"the pan reached the app: {before}"
            want = expected_frame_point(panned, cx, cy, area)
            assert abs(down.x - want[0]) <= 0.5 and abs(down.y - want[1]) <= 0.5, (down, want)

        # The plain wheel still goes to the app, at the frame pixel under the pointer.
        events.clear()
        page.mouse.move(area["x"] + 250, area["y"] + 250)
        page.mouse.wheel(0, 120)
        wheel = events.wait(lambda e: e.type == "wheel")
        want = expected_frame_point(panned, area["x"] + 250, area["y"] + 250, area)
        assert wheel.dy == 120 and abs(wheel.x - want[0]) <= 0.5 and abs(wheel.y - want[1]) <= 0.5, (wheel, want)
        assert view_state(page)["scale"] == panned["scale"]
    finally:
        feeder.close()


def test_presses_beside_the_picture_are_not_sent_when_zoomed_out(page, png_display):
    events = Events(png_display)
    feeder = open_png_viewer(page, png_display, cells())
    try:
        area = area_box(page)
        page.mouse.move(area["x"] + 400, area["y"] + 200)
        ctrl_wheel(page, 120, 1)  # zoom out 2x: a wide margin all round
        view = view_state(page)
        assert view["x"] > 100 and view["y"] > 50, view
        events.clear()
        page.mouse.click(area["x"] + view["x"] / 2, area["y"] + 200)  # left of the picture
        page.mouse.click(area["x"] + view["x"] + 5 * view["scale"], area["y"] + view["y"] + 7 * view["scale"])
        first = events.wait(lambda e: e.type in ("pointerdown", "pointerup"))
        assert abs(first.x - 5) <= 0.5 and abs(first.y - 7) <= 0.5, first
    finally:
        feeder.close()


# ---------------------------------------------------------------- fit, fill, 1:1


def test_fit_fill_and_one_to_one_keys_place_the_frame_and_are_not_sent(page, png_display):
    events = Events(png_display)
    feeder = open_png_viewer(page, png_display, cells())
    try:
        area = area_box(page)
        page.mouse.click(area["x"] + 400, area["y"] + 200)  # focus the canvas
        events.clear()
        canvas = page.locator("#screen")

        page.keyboard.press("Control+Shift+Digit0")
        box = canvas.bounding_box()
        assert view_state(page)["mode"] == "fill"
        assert box["width"] == pytest.approx(VIEWPORT["width"]) and box["height"] == pytest.approx(
            H * VIEWPORT["width"] / W
        )

        page.keyboard.press("Control+Digit1")
        box = canvas.bounding_box()
        assert view_state(page)["mode"] == "1:1" and (box["width"], box["height"]) == (W, H)  # devicePixelRatio 1

        page.keyboard.press("Control+Equal")
        assert view_state(page)["zoom"] == 2
        page.keyboard.press("Control+Minus")
        assert view_state(page)["zoom"] == 1

        page.keyboard.press("Control+Digit0")
        box = canvas.bounding_box()
        assert view_state(page)["mode"] == "fit"
        assert box["height"] == pytest.approx(VIEWPORT["height"]) and box["width"] == pytest.approx(
            W * VIEWPORT["height"] / H
        )

        page.keyboard.press("KeyQ")  # a plain key still reaches the app; the viewer's did not
        _, before = wait_after(events, lambda e: e.type == "keydown" and e.code == "KeyQ")
        events.wait(lambda e: e.type == "keyup" and e.code == "KeyQ")
        keys = {e.code for e in before if e.type in ("keydown", "keyup")}
        assert keys <= {"ControlLeft", "ShiftLeft"}, f"the viewer's keys reached the app: {keys}"
    finally:
        feeder.close()


def test_mode_buttons_follow_the_window_and_say_which_is_on(page, png_display):
    feeder = open_png_viewer(page, png_display, cells())
    try:
        page.locator("#viewer").hover()
        page.get_by_role("button", name="Fill: cover the window, cropping").click()
        assert page.locator('button[data-action="fill"]').get_attribute("aria-pressed") == "true"
        assert page.locator('button[data-action="fit"]').get_attribute("aria-pressed") == "false"
        page.set_viewport_size({"width": 480, "height": 600})
        page.wait_for_function("() => window.__rfb.view.area.width === 480")
        box = page.locator("#screen").bounding_box()
        assert box["height"] == pytest.approx(600) and box["width"] == pytest.approx(W * 600 / H)  # fill, taller window
    finally:
        page.set_viewport_size(VIEWPORT)
        feeder.close()


def test_a_zoomed_view_keeps_its_zoom_on_resize_and_fits_a_new_frame_size(page, png_display):
    feeder = open_png_viewer(page, png_display, cells())
    try:
        page.locator("#screen").focus()
        page.keyboard.press("Control+Equal")
        zoomed = view_state(page)
        centre = expected_frame_point(zoomed, 400, 200, {"x": 0, "y": 0})
        page.set_viewport_size({"width": 600, "height": 300})
        page.wait_for_function("() => window.__rfb.view.area.width === 600")
        resized = view_state(page)
        assert resized["mode"] == "free" and resized["scale"] == zoomed["scale"], resized
        assert expected_frame_point(resized, 300, 150, {"x": 0, "y": 0}) == pytest.approx(centre, abs=0.5)

        feeder.frame = cells(480, 160)  # a new picture: back to fit
        page.wait_for_function("() => window.__rfb.view.frame.width === 480 && window.__rfb.view.mode === 'fit'")
        box = page.locator("#screen").bounding_box()
        assert box["width"] == pytest.approx(600) and box["height"] == pytest.approx(200), box
    finally:
        page.set_viewport_size(VIEWPORT)
        feeder.close()


def test_one_to_one_is_one_frame_pixel_per_device_pixel_and_magnified_pixels_are_crisp(page, png_display):
    frame = noise()
    feeder = open_png_viewer(page, png_display, frame)
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": VIEWPORT["width"], "height": VIEWPORT["height"], "deviceScaleFactor": 2, "mobile": False},
        )
        page.wait_for_function("() => window.devicePixelRatio === 2")
        page.locator("#screen").focus()
        page.keyboard.press("Control+Digit1")
        page.wait_for_function("() => window.__rfb.view.mode === '1:1' && window.__rfb.view.scale === 0.5")
        view = view_state(page)
        x, y = round(view["x"] * 2), round(view["y"] * 2)
        shot = screen_pixels(page, cdp)
        np.testing.assert_array_equal(shot[y : y + H, x : x + W], frame, "1:1 is not the frame, pixel for pixel")

        page.keyboard.press("Control+Equal")
        page.keyboard.press("Control+Equal")  # 4 device pixels per frame pixel, about the centre
        view = view_state(page)
        assert view["zoom"] == 4, view
        assert page.evaluate("getComputedStyle(document.getElementById('screen')).imageRendering") == "pixelated"
        x, y = round(view["x"] * 2), round(view["y"] * 2)
        shot = screen_pixels(page, cdp)
        # The device pixel (X, Y) shows frame pixel ((X - x) // 4, (Y - y) // 4), exactly.
        top, left = 300, 600  # device pixels well inside the picture
        want = np.repeat(np.repeat(frame, 4, axis=0), 4, axis=1)[top - y : top - y + 200, left - x : left - x + 200]
        np.testing.assert_array_equal(
            shot[top : top + 200, left : left + 200], want, "magnified pixels are not crisp squares"
        )
    finally:
        cdp.send("Emulation.clearDeviceMetricsOverride")
        cdp.detach()
        feeder.close()


# ---------------------------------------------------------------- the strip


@pytest.mark.parametrize("codec", ["png", "jpeg", "h264"])
def test_screenshot_is_the_frame_at_frame_resolution(page, png_display, codec, tmp_path):
    from PIL import Image

    frame = quadrants()
    if codec == "png":
        feeder = open_png_viewer(page, png_display, frame)
    else:
        feeder = Feeder(png_display, frame)
        open_viewer(page, png_display.url, "image" if codec == "jpeg" else "webcodecs")
    try:
        assert_colours(page, QUADRANT_POINTS, QUADRANT_COLOURS)
        page.locator("#screen").focus()
        page.keyboard.press("Control+Equal")  # a zoomed view still saves the whole frame
        page.locator("#viewer").hover()
        with page.expect_download() as info:
            page.get_by_role("button", name="Save the current frame as PNG").click()
        download = info.value
        assert re.fullmatch(r"rfb-\d{8}T\d{6}\.\d{3}Z\.png", download.suggested_filename), download.suggested_filename
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        saved = np.asarray(Image.open(path).convert("RGB"))
        assert saved.shape == frame.shape, saved.shape
        if codec == "png":
            np.testing.assert_array_equal(saved, frame)
        else:  # JPEG, H.264: within the tolerance of the other browser tests, away from the edges between blocks
            error = np.abs(saved.astype(int) - frame).max(axis=2)
            error[H // 2 - 8 : H // 2 + 8], error[:, W // 2 - 8 : W // 2 + 8] = 0, 0
            assert error.max() <= TOLERANCE, np.argwhere(error > TOLERANCE)[:5]
    finally:
        feeder.close()


def test_screenshot_before_any_frame_says_why(page, png_display):
    page.goto(png_display.url)  # nothing published: no frame ever arrives
    page.wait_for_function("() => window.__rfb && window.__rfb.stats.connects === 1")
    assert page.locator('button[data-action="screenshot"]').is_disabled()
    error = page.evaluate("window.__rfb.screenshot().then(() => null, (e) => e.message)")
    assert error == "expected a drawn frame to save, but none has been drawn yet"


def test_strip_is_reachable_from_the_keyboard_and_keeps_its_keys(page, png_display):
    events = Events(png_display)
    feeder = open_png_viewer(page, png_display, cells())
    try:
        strip = page.locator("#controls")
        page.wait_for_function("() => getComputedStyle(document.getElementById('controls')).opacity === '0'")
        page.keyboard.press("Tab")  # from the page: the strip is first in the tab order
        focused = page.evaluate("document.activeElement.dataset.action")
        assert focused == "fit"
        page.wait_for_function("() => getComputedStyle(document.getElementById('controls')).opacity === '1'")
        labels = strip.locator("button").evaluate_all("bs => bs.map(b => b.getAttribute('aria-label'))")
        assert all(labels) and len(labels) == 7, labels
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")  # Fill, from the keyboard
        assert view_state(page)["mode"] == "fill"
        page.keyboard.press("Escape")  # back to the canvas
        assert page.evaluate("document.activeElement.id") == "screen"

        events.clear()
        page.keyboard.press("F6")  # from the canvas to the strip, not to the app
        assert page.evaluate("document.activeElement.dataset.action") == "fit"
        page.keyboard.press("Escape")
        page.keyboard.press("KeyZ")
        first = events.wait(lambda e: e.type in ("keydown", "keyup"))
        assert (first.type, first.code) == ("keydown", "KeyZ"), first
    finally:
        feeder.close()


def test_fullscreen_button_puts_the_viewer_area_in_fullscreen(page, png_display):
    feeder = open_png_viewer(page, png_display, cells())
    try:
        page.locator("#viewer").hover()
        button = page.get_by_role("button", name="Fullscreen")
        pressed = "() => document.querySelector('button[data-action=fullscreen]').getAttribute('aria-pressed')"
        button.click()
        page.wait_for_function(f"() => ({pressed})() === 'true'")  # set on fullscreenchange
        assert page.evaluate("document.fullscreenElement.id") == "viewer"
        button.click()
        page.wait_for_function(f"() => ({pressed})() === 'false'")
        assert page.evaluate("document.fullscreenElement") is None
    finally:
        feeder.close()


# ---------------------------------------------------------------- the docs image


@pytest.mark.skipif(
    os.environ.get("RFB_WRITE_DOCS_SCREENSHOTS") != "1",
    reason="set RFB_WRITE_DOCS_SCREENSHOTS=1 to write docs/viewer-controls.png",
)
def test_docs_screenshot(page, png_display):
    """docs/viewer-controls.png: the demo scene zoomed in, the strip shown, the overlay on."""
    from rfb.demo import Scene

    scene = Scene(W, H)
    feeder = open_png_viewer(page, png_display, scene.render(1.0), overlay="1")
    try:
        area = area_box(page)
        page.mouse.move(area["x"] + 430, area["y"] + 210)
        ctrl_wheel(page, -120, 1)
        page.wait_for_function("() => window.__rfb.stats.latencyMs !== null")
        page.locator("#viewer").hover(position={"x": 700, "y": 20})
        page.wait_for_function("() => getComputedStyle(document.getElementById('controls')).opacity === '1'")
        page.screenshot(path=str(DOCS_IMAGE))
    finally:
        feeder.close()
    assert DOCS_IMAGE.stat().st_size > 0
