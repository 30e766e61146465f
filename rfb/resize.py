"""Which size the application should render at: ``serve(..., resize_policy=...)``.

``"fixed"`` (the default) keeps the size given to ``serve()``; every viewer scales the
frames to its window. ``"match_viewer"`` follows one viewer: the size of its display
area in device pixels (CSS pixels x devicePixelRatio, what its ``resize`` events say),
so that an application rendering at ``display.target_size`` and publishing with
``pixel_ratio=display.target_pixel_ratio`` fills that viewer with one frame pixel per
device pixel: text is as crisp on a 2x screen as the application can draw it.

Which viewer drives: the one chosen with ``display.set_driver(client_id)``, else the
first one that reported a size and is still connected. A window drag reports a size
every 100 ms or so, and re-rendering (and re-keying every encoder) at each would cost
more than it shows: a size becomes the target only once the driver's reports have
stayed the same for :data:`DEBOUNCE_S`. The target is kept within ``max_size`` with
the aspect ratio preserved (a smaller frame then says a smaller pixel ratio, so the
viewer still shows it at the area's size), and within what the display's routes
encode (H.264: even sides, at least 2x4).

:class:`MatchViewer` is a state machine with explicit times: the display calls it on
its server loop and schedules :meth:`MatchViewer.settle` at the time it returns, and
tests drive it with their own clock.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Literal

from rfb.encoders.checks import H264_MAX_SIDE, H264_MIN_HEIGHT, H264_MIN_WIDTH, IMAGE_MAX_SIDE
from rfb.protocol import bounded

ResizePolicy = Literal["fixed", "match_viewer"]
RESIZE_POLICIES: tuple[str, ...] = ("fixed", "match_viewer")

DEBOUNCE_S = 0.25  # a size must stay this long before it becomes the target
DEFAULT_MAX_SIZE = (3840, 2160)  # a 4K frame: beyond this, encoding costs more than most screens show
MIN_PIXEL_RATIO = 0.05  # devicePixelRatio of a page zoomed far out; below it, no display
MAX_PIXEL_RATIO = 64.0  # a zoomed-in high-density screen stays far below


@dataclass(frozen=True, slots=True)
class Target:
    """The size to render at, and the frame's pixels per CSS pixel of the driving viewer."""

    width: int
    height: int
    pixel_ratio: float = 1.0

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


def check_pixel_ratio(value: object, what: str) -> float:
    """``value`` as a pixel ratio (pixels per CSS pixel), or ValueError naming ``what``.

    Checked without converting first: a JSON integer of hundreds of digits is not a
    float, and the message quotes at most 60 characters of what arrived.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not bounded(value, MAX_PIXEL_RATIO)
        or (value < MIN_PIXEL_RATIO)
    ):
        got = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ValueError(f"{what}: expected a number in [{MIN_PIXEL_RATIO:g}, {MAX_PIXEL_RATIO:g}], got {got}")
    return float(value)


def check_max_size(value: object, *, video: bool) -> tuple[int, int]:
    """``max_size`` as (width, height): positive integers within what the routes encode."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in value)
    ):
        raise ValueError(f"max_size: expected (width, height), two positive integers, got {value!r}")
    limit = H264_MAX_SIDE if video else IMAGE_MAX_SIDE
    if max(value) > limit:
        raise ValueError(
            f"max_size: expected sides of at most {limit} (what this display's routes encode), got {value!r}"
        )
    return (value[0], value[1])


def clamp_target(width: int, height: int, pixel_ratio: float, max_size: tuple[int, int], *, even: bool) -> Target:
    """The frame size for a viewer area of ``width`` x ``height`` device pixels.

    Scaled down (never up) to fit ``max_size`` with the aspect ratio kept, then rounded
    down to even sides for H.264 (``even``) and up to its minimum: a frame never
    exceeds the area, so the viewer never crops it. The pixel ratio scales with it.
    """
    scale = min(1.0, max_size[0] / width, max_size[1] / height)
    w, h = math.floor(width * scale), math.floor(height * scale)
    if even:
        w, h = max(H264_MIN_WIDTH, w - w % 2), max(H264_MIN_HEIGHT, h - h % 2)
    else:
        w, h = max(1, w), max(1, h)
    return Target(w, h, round(pixel_ratio * scale, 6))


class MatchViewer:
    """The ``match_viewer`` policy: the debounced, clamped size of the driving viewer.

    Thread-safe: viewers report on the server loop, the application chooses the driver
    and reads the target from its own thread.
    """

    def __init__(self, initial: Target, *, max_size: tuple[int, int], even: bool, debounce: float = DEBOUNCE_S) -> None:
        self._lock = threading.Lock()
        self._max_size = max_size
        self._even = even
        self._debounce = debounce
        self._target = initial
        self._reported: dict[int, tuple[int, int, float]] = {}  # client id -> area; in order of first report
        self._chosen: int | None = None
        self._pending: Target | None = None
        self._due: float | None = None

    @property
    def target(self) -> Target:
        with self._lock:
            return self._target

    @property
    def driver(self) -> int | None:
        """The client id of the viewer the target follows (or will, once it reports a size)."""
        with self._lock:
            return self._driver()

    @property
    def due(self) -> float | None:
        """When :meth:`settle` should run next (the clock of the calls), or None."""
        with self._lock:
            return self._due

    def report(self, client_id: int, width: int, height: int, pixel_ratio: float, now: float) -> float | None:
        """A viewer's area is ``width`` x ``height`` device pixels at ``pixel_ratio``; returns :attr:`due`."""
        with self._lock:
            self._reported[client_id] = (width, height, pixel_ratio)
            return self._update(now)

    def left(self, client_id: int, now: float) -> float | None:
        """A viewer disconnected: the next one drives if it did. Returns :attr:`due`."""
        with self._lock:
            self._reported.pop(client_id, None)
            if self._chosen == client_id:
                self._chosen = None
            return self._update(now)

    def choose(self, client_id: int | None, now: float) -> float | None:
        """Make ``client_id`` the driver (None: the first viewer again). Returns :attr:`due`."""
        with self._lock:
            self._chosen = client_id
            return self._update(now)

    def settle(self, now: float) -> Target | None:
        """The new target if the pending one has waited out the debounce at ``now``, else None."""
        with self._lock:
            if self._pending is None or self._due is None or now < self._due:
                return None
            self._target, self._pending, self._due = self._pending, None, None
            return self._target

    def _driver(self) -> int | None:
        if self._chosen is not None:
            return self._chosen
        return next(iter(self._reported), None)

    def _update(self, now: float) -> float | None:
        driver = self._driver()
        area = self._reported.get(driver) if driver is not None else None
        wanted = None if area is None else clamp_target(*area, self._max_size, even=self._even)
        if wanted is None or wanted == self._target:
            self._pending = self._due = None
        elif wanted != self._pending:
            self._pending, self._due = wanted, now + self._debounce  # a new size restarts the wait
        return self._due
