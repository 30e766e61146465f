"""The demo scene: an animated, interactive picture to see rfb working end to end.

What it shows (so that a glance tells whether frames, input and latency work):

- a diagonal colour gradient that scrolls continuously (motion exercises the encoder);
- shapes orbiting the centre (``space`` hides or shows them);
- blobs: press on an empty spot to create one, drag one to move it, wheel over one to
  resize it; ``c`` cycles the palette, ``x`` or ``Backspace`` clears the blobs;
- a crosshair at the last pointer position, drawn by the server: the distance between
  it and the local mouse pointer is the round-trip latency made visible.

The scene is deterministic: :meth:`Scene.render` depends only on ``t`` and on the
events handled so far, which is what makes it testable. Rendering is NumPy only and
cheap (the background is a precomputed periodic tile from which each frame copies a
window; shapes touch only their bounding boxes), so that on a small machine the CPU
goes to the encoder, not to the demo.

``rfb demo --gpu`` serves with ``gpu=True`` and publishes CUDA frames: each frame is
still rendered by NumPy, then copied to the GPU once (:class:`DeviceUpload`). That copy
stands in for a GPU renderer, so that the GPU encode routes (``jpeg_gpu``,
``h264_gpu_nv12``, NVENC) see what a CuPy/PyTorch/JAX program would hand them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

PERIOD = 256  # px: the background repeats horizontally with this period
SCROLL_PX_PER_S = 60.0
MAX_BLOBS = 32
MIN_RADIUS, MAX_RADIUS, DEFAULT_RADIUS = 6, 200, 36

# Each palette: three colour stops the gradient cycles through, then the orbiters' colours.
PALETTES: tuple[tuple[tuple[tuple[int, int, int], ...], tuple[tuple[int, int, int], ...]], ...] = (
    (((20, 40, 90), (40, 110, 140), (90, 40, 110)), ((255, 210, 60), (250, 110, 80), (120, 230, 140))),
    (((90, 30, 20), (150, 90, 30), (60, 20, 60)), ((90, 200, 255), (240, 240, 240), (160, 120, 255))),
    (((15, 15, 15), (70, 70, 70), (35, 35, 35)), ((255, 80, 80), (80, 255, 80), (80, 80, 255))),
)
BLOB_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),
    (255, 120, 200),
    (120, 255, 230),
    (255, 240, 120),
)
CROSSHAIR = (255, 255, 255)
CROSSHAIR_OUTLINE = (0, 0, 0)

# What a viewer can do, as ``rfb demo --help`` and its start-up log list it (Scene.handle does it).
# The browser sends keys only once the picture has the focus: a click gives it.
CONTROLS: tuple[tuple[str, str], ...] = (
    ("press on an empty spot", "make a blob (click the picture first: keys need its focus)"),
    ("drag a blob", "move it"),
    ("wheel over a blob", "resize it"),
    ("space", "hide or show the orbiting shapes"),
    ("c", "next palette"),
    ("x or Backspace", "clear the blobs"),
    ("the white crosshair", "your pointer as the server last saw it: its lag behind the mouse is the round trip"),
)


class Publisher(Protocol):
    """The part of a Display the demo loop needs."""

    def publish(self, frame: Any) -> Any: ...

    def poll_events(self) -> list[Any]: ...


@dataclass(slots=True)
class Blob:
    x: float
    y: float
    radius: float
    colour: tuple[int, int, int]


class Scene:
    """The demo picture for one frame size. Not thread-safe: handle and render from one thread."""

    def __init__(self, width: int, height: int) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"the demo scene needs at least 16x16 pixels, got {width}x{height}")
        self.width = width
        self.height = height
        self.palette = 0
        self.show_orbiters = True
        self.blobs: list[Blob] = []
        self.pointer: tuple[float, float] | None = None
        self._dragging: int | None = None
        self._created = 0
        self._tiles: dict[int, np.ndarray] = {}

    # ---------------------------------------------------------------- input

    def handle(self, event: Any) -> None:
        """Apply one input event (an rfb InputEvent, or anything with the same attributes)."""
        kind = getattr(event, "type", None)
        if kind in ("pointerdown", "pointermove", "pointerup", "wheel"):
            x, y = float(event.x), float(event.y)
            self.pointer = (x, y)
            if kind == "pointerdown":
                self._press(x, y)
            elif kind == "pointermove" and self._dragging is not None:
                blob = self.blobs[self._dragging]
                blob.x, blob.y = x, y
            elif kind == "pointerup":
                self._dragging = None
            elif kind == "wheel":
                self._wheel(x, y, float(getattr(event, "dy", 0.0) or 0.0))
        elif kind == "keydown" and not getattr(event, "repeat", False):
            key = getattr(event, "key", "")
            if key == " ":
                self.show_orbiters = not self.show_orbiters
            elif key in ("c", "C"):
                self.palette = (self.palette + 1) % len(PALETTES)
            elif key in ("x", "X", "Backspace"):
                self.blobs.clear()
                self._dragging = None

    def _blob_at(self, x: float, y: float) -> int | None:
        for i in range(len(self.blobs) - 1, -1, -1):  # topmost first
            b = self.blobs[i]
            if (b.x - x) ** 2 + (b.y - y) ** 2 <= b.radius**2:
                return i
        return None

    def _press(self, x: float, y: float) -> None:
        hit = self._blob_at(x, y)
        if hit is None:
            colour = BLOB_COLOURS[self._created % len(BLOB_COLOURS)]
            self._created += 1
            self.blobs.append(Blob(x, y, DEFAULT_RADIUS, colour))
            if len(self.blobs) > MAX_BLOBS:
                del self.blobs[0]
            hit = len(self.blobs) - 1
        self._dragging = hit

    def _wheel(self, x: float, y: float, dy: float) -> None:
        hit = self._blob_at(x, y)
        if hit is None and self.blobs:
            hit = len(self.blobs) - 1
        if hit is not None:
            blob = self.blobs[hit]
            blob.radius = float(np.clip(blob.radius * math.exp(-dy / 500.0), MIN_RADIUS, MAX_RADIUS))

    # ---------------------------------------------------------------- drawing

    def render(self, t: float) -> np.ndarray:
        """A new (height, width, 3) uint8 frame for time ``t`` in seconds."""
        tile = self._tile(self.palette)
        offset = int(t * SCROLL_PX_PER_S) % PERIOD
        frame = tile[:, offset : offset + self.width].copy()
        if self.show_orbiters:
            self._draw_orbiters(frame, t)
        for blob in self.blobs:
            _disc(frame, blob.x, blob.y, blob.radius + 3, (0, 0, 0))
            _disc(frame, blob.x, blob.y, blob.radius, blob.colour)
        if self.pointer is not None:
            self._draw_crosshair(frame, *self.pointer)
        return frame

    def _tile(self, palette: int) -> np.ndarray:
        """The background, one period wider than the frame, so any scroll offset is a slice."""
        tile = self._tiles.get(palette)
        if tile is None:
            stops = np.array(PALETTES[palette][0] + PALETTES[palette][0][:1], dtype=np.float32)
            phase = (np.arange(PERIOD, dtype=np.float32) / PERIOD) * (len(stops) - 1)
            lower = np.floor(phase).astype(np.intp)
            frac = (phase - lower)[:, None]
            lut = stops[lower] * (1 - frac) + stops[lower + 1] * frac  # (PERIOD, 3)
            xs = np.arange(self.width + PERIOD)[None, :]
            ys = np.arange(self.height)[:, None]
            index = (xs + ys // 2) % PERIOD  # diagonal stripes: scrolling x moves them diagonally
            shade = (0.65 + 0.35 * (1 - ys / max(self.height - 1, 1)))[..., None]  # lighter at the top
            tile = np.ascontiguousarray((lut[index] * shade).clip(0, 255).astype(np.uint8))
            self._tiles[palette] = tile
        return tile

    def _draw_orbiters(self, frame: np.ndarray, t: float) -> None:
        colours = PALETTES[self.palette][1]
        cx, cy = self.width / 2, self.height / 2
        orbit = 0.32 * min(self.width, self.height)
        radius = max(4.0, 0.05 * min(self.width, self.height))
        for i, colour in enumerate(colours):
            angle = t * (0.6 + 0.25 * i) + i * 2 * math.pi / len(colours)
            _disc(frame, cx + orbit * math.cos(angle), cy + orbit * math.sin(angle) * 0.8, radius, colour)

    def _draw_crosshair(self, frame: np.ndarray, x: float, y: float) -> None:
        """A white cross with a black outline, so it shows on any colour (blobs are white too)."""
        xi = min(max(int(x), 0), self.width - 1)
        yi = min(max(int(y), 0), self.height - 1)
        arm = 12
        x0, x1 = max(xi - arm, 0), xi + arm + 1
        y0, y1 = max(yi - arm, 0), yi + arm + 1
        frame[max(yi - 1, 0) : yi + 2, x0:x1] = CROSSHAIR_OUTLINE
        frame[y0:y1, max(xi - 1, 0) : xi + 2] = CROSSHAIR_OUTLINE
        frame[yi, x0:x1] = CROSSHAIR
        frame[y0:y1, xi] = CROSSHAIR


def _disc(frame: np.ndarray, x: float, y: float, radius: float, colour: tuple[int, int, int]) -> None:
    """Fill a disc, touching only its bounding box (clipped to the frame)."""
    height, width = frame.shape[:2]
    x0, x1 = max(int(x - radius), 0), min(int(x + radius) + 1, width)
    y0, y1 = max(int(y - radius), 0), min(int(y + radius) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - y
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - x
    mask = xx * xx + yy * yy <= radius * radius
    frame[y0:y1, x0:x1][mask] = colour


class DeviceUpload:
    """Copies each rendered frame to the GPU: the demo's stand-in for a GPU renderer.

    Every call returns a *new* CuPy array, allocated from CuPy's memory pool, rather
    than writing into one or two buffers kept here. Why: a display with
    ``own_frames=False`` (the demo's) keeps a reference to the published array until a
    newer frame replaced it *and* its encoders are done with it, and tells the caller
    neither. A double buffer would overwrite frame N while frame N+2 is rendered, which
    races with a slow encode of N (a CPU route downloading 4K, a viewer that joined
    late). A fresh array is safe by construction, and costs no ``cudaMalloc`` per frame:
    the pool hands back the block of a frame the display has let go of, so in steady
    state the same few device buffers are reused. The copy is finished (its stream
    synchronised) before the array is returned, which is what ``publish()`` expects of
    a CUDA frame.
    """

    def __init__(self, device_id: int = 0) -> None:
        from rfb.gpu.context import import_cupy

        self._cp = import_cupy()
        self.device_id = device_id
        self.uploads = 0

    def __call__(self, frame: np.ndarray) -> Any:
        """``frame`` (host, uint8) as a CuPy array of the same shape on ``device_id``."""
        if frame.dtype != np.uint8 or frame.ndim != 3:
            raise ValueError(f"expected a (H, W, 3|4) uint8 frame, got {frame.dtype} of shape {frame.shape}")
        cp = self._cp
        with cp.cuda.Device(self.device_id):
            device = cp.empty(frame.shape, dtype=cp.uint8)
            device.set(np.ascontiguousarray(frame))  # one host-to-device copy, on this thread's current stream
            cp.cuda.get_current_stream().synchronize()
        self.uploads += 1
        return device


async def animate(
    display: Publisher,
    scene: Scene,
    *,
    fps: float,
    stop: asyncio.Event,
    to_frame: Callable[[np.ndarray], Any] | None = None,
) -> int:
    """Render and publish at ``fps`` until ``stop`` is set; returns the number of frames published.

    Events are applied between frames and rendering runs in a worker thread, one step
    at a time: the scene is never touched by two threads at once, and the event loop
    (which also runs the server) stays responsive while NumPy works. ``to_frame``, when
    given, turns each rendered frame into what is published (``rfb demo --gpu``: a
    :class:`DeviceUpload`); it runs in the same worker step as the render.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    loop = asyncio.get_running_loop()
    period = 1.0 / fps
    start = loop.time()
    frames = 0
    next_at = start

    def step(t: float) -> Any:
        frame = scene.render(t)
        return frame if to_frame is None else to_frame(frame)

    while not stop.is_set():
        for event in display.poll_events():
            scene.handle(event)
        frame = await asyncio.to_thread(step, loop.time() - start)
        display.publish(frame)
        frames += 1
        next_at += period
        now = loop.time()
        if next_at < now:  # running late: skip the missed ticks instead of bursting
            next_at = now
        try:
            await asyncio.wait_for(stop.wait(), timeout=next_at - now)
        except TimeoutError:
            pass
    return frames
