"""The demo scene: deterministic, animated, and reacting to input events."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from rfb.demo import BLOB_COLOURS, DEFAULT_RADIUS, DeviceUpload, Scene, animate
from rfb.events import InputEvent

W, H = 320, 240


def pointer(kind: str, x: float, y: float, buttons: int = 0) -> InputEvent:
    return InputEvent(kind, client_id=1, x=x, y=y, buttons=buttons)


def key(name: str, *, repeat: bool = False) -> InputEvent:
    return InputEvent("keydown", client_id=1, key=name, code="", repeat=repeat)


def wheel(x: float, y: float, dy: float) -> InputEvent:
    return InputEvent("wheel", client_id=1, x=x, y=y, dy=dy)


def click(scene: Scene, x: float, y: float) -> None:
    scene.handle(pointer("pointerdown", x, y, buttons=1))
    scene.handle(pointer("pointerup", x, y))


def colour_at(frame: np.ndarray, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in frame[y, x])


FIRST_BLOB = BLOB_COLOURS[0]


def test_render_is_a_fresh_rgb_frame_of_the_scene_size():
    scene = Scene(W, H)
    a = scene.render(0.0)
    assert a.shape == (H, W, 3) and a.dtype == np.uint8 and a.flags.c_contiguous
    a[:] = 0
    b = scene.render(0.0)
    assert b.any(), "render must not hand out a buffer it reuses"


def test_same_events_and_time_give_identical_frames():
    one, two = Scene(W, H), Scene(W, H)
    for scene in (one, two):
        click(scene, 100, 80)
        scene.handle(wheel(100, 80, -200))
        scene.handle(key("c"))
    for t in (0.0, 0.37, 5.0):
        np.testing.assert_array_equal(one.render(t), two.render(t))


def test_the_picture_moves_with_time():
    scene = Scene(W, H)
    assert not np.array_equal(scene.render(0.0), scene.render(0.5))


def test_press_on_empty_space_creates_a_blob_there():
    scene = Scene(W, H)
    scene.show_orbiters = False
    before = scene.render(1.0)
    click(scene, 60, 50)
    after = scene.render(1.0)
    # Off the crosshair's arms (which run through the pointer), inside the blob.
    assert colour_at(before, 70, 60) != FIRST_BLOB
    assert colour_at(after, 70, 60) == FIRST_BLOB
    assert colour_at(after, 60 + DEFAULT_RADIUS + 20, 50 + DEFAULT_RADIUS + 20) != FIRST_BLOB


def test_drag_moves_the_blob_under_the_pointer():
    scene = Scene(W, H)
    scene.show_orbiters = False
    click(scene, 60, 50)
    scene.handle(pointer("pointerdown", 60, 50, buttons=1))
    scene.handle(pointer("pointermove", 200, 150, buttons=1))
    scene.handle(pointer("pointerup", 200, 150))
    frame = scene.render(0.0)
    assert len(scene.blobs) == 1, "pressing on a blob grabs it instead of creating another"
    assert colour_at(frame, 210, 160) == FIRST_BLOB
    assert colour_at(frame, 70, 60) != FIRST_BLOB
    scene.handle(pointer("pointermove", 20, 20))  # not dragging any more
    assert (scene.blobs[0].x, scene.blobs[0].y) == (200, 150)


def test_wheel_resizes_the_blob_under_the_pointer():
    scene = Scene(W, H)
    scene.show_orbiters = False
    click(scene, 160, 120)
    probe = (160 + DEFAULT_RADIUS + 10, 120 + 5)
    assert colour_at(scene.render(0.0), *probe) != FIRST_BLOB
    scene.handle(wheel(160, 120, -300))  # wheel up grows
    assert scene.blobs[0].radius > DEFAULT_RADIUS
    assert colour_at(scene.render(0.0), *probe) == FIRST_BLOB
    scene.handle(wheel(160, 120, 10_000))
    assert scene.blobs[0].radius >= 6, "the radius is clamped, never zero or negative"


def test_keys_toggle_orbiters_cycle_palette_and_clear():
    scene = Scene(W, H)
    shown = scene.render(2.0)
    scene.handle(key(" "))
    hidden = scene.render(2.0)
    assert not np.array_equal(shown, hidden)
    scene.handle(key(" ", repeat=True))  # auto-repeat does not toggle back
    np.testing.assert_array_equal(hidden, scene.render(2.0))
    scene.handle(key("c"))
    assert not np.array_equal(hidden, scene.render(2.0))
    click(scene, 50, 50)
    scene.handle(key("x"))
    assert scene.blobs == []


def test_events_off_the_frame_do_not_break_rendering():
    scene = Scene(W, H)
    click(scene, -500, 10_000)
    scene.handle(InputEvent("resize", client_id=1, width=800, height=600))
    assert scene.render(0.0).shape == (H, W, 3)


def test_too_small_a_scene_is_refused_with_the_size():
    with pytest.raises(ValueError, match="8x8"):
        Scene(8, 8)


class Recorder:
    """A stand-in for a Display: keeps published frames and hands out queued events."""

    def __init__(self, events: list[InputEvent], stop_after: int, stop: asyncio.Event) -> None:
        self.frames: list[np.ndarray] = []
        self.events = events
        self.stop_after = stop_after
        self.stop = stop

    def publish(self, frame: np.ndarray) -> None:
        self.frames.append(frame)
        if len(self.frames) >= self.stop_after:
            self.stop.set()

    def poll_events(self) -> list[InputEvent]:
        events, self.events = self.events, []
        return events


def test_animate_applies_events_before_rendering_and_stops_on_request():
    async def run() -> Recorder:
        stop = asyncio.Event()
        display = Recorder([pointer("pointerdown", 100, 100, buttons=1)], stop_after=3, stop=stop)
        scene = Scene(W, H)
        published = await animate(display, scene, fps=200, stop=stop)
        assert published == 3
        return display

    display = asyncio.run(run())
    assert len(display.frames) == 3
    assert colour_at(display.frames[0], 110, 110) == FIRST_BLOB


def test_animate_publishes_what_to_frame_makes_of_each_render():
    """The --gpu seam: ``to_frame`` (there, a DeviceUpload) runs on each rendered frame,
    and what it returns is what gets published."""
    seen: list[np.ndarray] = []

    def wrap(frame: np.ndarray) -> tuple[str, np.ndarray]:
        seen.append(frame)
        return ("converted", frame)

    async def run() -> Recorder:
        stop = asyncio.Event()
        display = Recorder([], stop_after=2, stop=stop)
        assert await animate(display, Scene(W, H), fps=200, stop=stop, to_frame=wrap) == 2
        return display

    display = asyncio.run(run())
    assert [kind for kind, _ in display.frames] == ["converted", "converted"]
    assert [frame for _, frame in display.frames] == seen and seen[0].shape == (H, W, 3)


@pytest.mark.gpu
def test_device_upload_gives_a_fresh_finished_cuda_copy_per_frame():
    from tests.gpu import require_cupy

    cp = require_cupy()
    upload = DeviceUpload()
    scene = Scene(W, H)
    first, second = scene.render(0.0), scene.render(0.5)
    a, b = upload(first), upload(second)
    assert isinstance(a, cp.ndarray) and a.shape == (H, W, 3) and a.dtype == cp.uint8
    assert a.data.ptr != b.data.ptr, "a published frame must not be overwritten by the next one"
    np.testing.assert_array_equal(cp.asnumpy(a), first)
    np.testing.assert_array_equal(cp.asnumpy(b), second)
    assert upload.uploads == 2
    with pytest.raises(ValueError, match="expected a \\(H, W, 3\\|4\\) uint8 frame, got float32"):
        upload(first.astype(np.float32))


def test_animate_refuses_a_non_positive_fps():
    async def run() -> None:
        await animate(Recorder([], 1, asyncio.Event()), Scene(W, H), fps=0, stop=asyncio.Event())

    with pytest.raises(ValueError, match="fps must be positive, got 0"):
        asyncio.run(run())


def test_the_pointer_shows_as_an_outlined_crosshair():
    scene = Scene(W, H)
    scene.show_orbiters = False
    scene.handle(pointer("pointermove", 200, 100))
    frame = scene.render(0.0)
    assert colour_at(frame, 205, 100) == (255, 255, 255)  # on the arm
    assert colour_at(frame, 205, 101) == (0, 0, 0)  # its outline
    assert colour_at(frame, 200, 100 + 14) != (255, 255, 255)  # past the end of the arm
