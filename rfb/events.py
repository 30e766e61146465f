"""Input events from viewers: strict validation and the bounded queue poll_events() drains.

Events arrive from the network, so every field is checked here before user code sees
it: the type must be one docs/protocol.md lists, numbers must be finite and in a sane
range, strings are cut to a short length. A render loop can then use ``event.x``
without defending itself against NaN or a megabyte-long ``key``.

The queue sits between the server's event loop (producer) and the user's render loop
(consumer), which may run on different threads. It drops the *oldest* event when full:
the user wants the most recent pointer position, not a backlog from before a stall.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from rfb.protocol import ProtocolError, bounded
from rfb.resize import check_pixel_ratio

POINTER_TYPES = frozenset({"pointerdown", "pointerup", "pointermove"})
KEY_TYPES = frozenset({"keydown", "keyup"})
EVENT_TYPES = POINTER_TYPES | KEY_TYPES | {"wheel", "resize"}
# Made by the display, never accepted from the wire: the size to render at changed
# (``resize_policy="match_viewer"``, rfb.resize).
TARGET_SIZE = "target_size"
MODIFIERS = frozenset({"shift", "ctrl", "alt", "meta"})

MAX_COORDINATE = 1e7  # far outside any frame, yet keeps arithmetic on x/y ordinary
MAX_KEY_CHARS = 64
MAX_SIZE = 65_536


class EventError(ProtocolError):
    """An input event that does not follow docs/protocol.md."""


@dataclass(frozen=True, slots=True)
class InputEvent:
    """One input event from one viewer.

    Fields that do not apply to ``type`` keep their defaults. ``x``/``y`` are frame
    pixels (``(0, 0)`` is the top-left pixel of the published frame). ``resize`` says
    the viewer's area in device pixels (``width``, ``height``) and its devicePixelRatio
    (``pixel_ratio``, None from a viewer that does not send it); ``target_size`` says the
    size to render at and the pixel ratio to publish with (``client_id``: the driving
    viewer). ``time`` is the
    server's ``time.monotonic()`` when the event arrived, so it compares with the
    render loop's own monotonic clock. ``principal`` is what the application's
    ``authenticate`` hook returned for this viewer (None without a hook; rfb.asgi).
    """

    type: str
    client_id: int
    x: float | None = None
    y: float | None = None
    button: int = 0
    buttons: int = 0
    dx: float = 0.0
    dy: float = 0.0
    key: str = ""
    code: str = ""
    repeat: bool = False
    modifiers: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None
    pixel_ratio: float | None = None
    time: float = 0.0
    principal: Any = None


def parse_event(
    obj: Any, *, client_id: int, time: float, bounds: tuple[int, int] | None = None, principal: Any = None
) -> InputEvent:
    """Validate one raw ``event`` object from the wire, or raise :class:`EventError`.

    The event carries ``principal``, the viewer's, as it was established at connection.

    With ``bounds`` (the frame's width and height), pointer and wheel coordinates are
    clamped into ``[0, width] x [0, height]``: a drag that leaves the canvas, or a
    hostile client, never hands the render loop a point outside the frame.
    """
    if not isinstance(obj, dict):
        raise EventError(f"event: expected an object, got {type(obj).__name__}")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise EventError(f"event.type: expected one of {sorted(EVENT_TYPES)}, got {_short(kind)}")
    if kind == "resize":
        return InputEvent(
            kind,
            client_id,
            width=_size(obj, "width"),
            height=_size(obj, "height"),
            pixel_ratio=_pixel_ratio(obj),
            time=time,
            principal=principal,
        )
    modifiers = _modifiers(obj)
    if kind in KEY_TYPES:
        repeat = obj.get("repeat", False)
        if not isinstance(repeat, bool):
            raise EventError(f"event.repeat: expected a boolean, got {_short(repeat)}")
        return InputEvent(
            kind,
            client_id,
            key=_text(obj, "key", required=True),
            code=_text(obj, "code", required=False),
            repeat=repeat,
            modifiers=modifiers,
            time=time,
            principal=principal,
        )
    x, y = _number(obj, "x"), _number(obj, "y")
    if bounds is not None:
        x, y = min(float(bounds[0]), max(0.0, x)), min(float(bounds[1]), max(0.0, y))  # max(0.0, -0.0) is 0.0
    if kind == "wheel":
        return InputEvent(
            kind,
            client_id,
            x=x,
            y=y,
            dx=_number(obj, "dx"),
            dy=_number(obj, "dy"),
            modifiers=modifiers,
            time=time,
            principal=principal,
        )
    return InputEvent(
        kind,
        client_id,
        x=x,
        y=y,
        button=_integer(obj, "button", -1, 31, default=0),
        buttons=_integer(obj, "buttons", 0, 0xFFFF, default=0),
        modifiers=modifiers,
        time=time,
        principal=principal,
    )


def _number(obj: dict[str, Any], key: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventError(f"event.{key}: expected a number, got {_short(value)}")
    if not bounded(value, MAX_COORDINATE):
        raise EventError(f"event.{key}: expected a finite number within ±{MAX_COORDINATE:g}, got {_short(value)}")
    return float(value)


def _integer(obj: dict[str, Any], key: str, low: int, high: int, *, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise EventError(f"event.{key}: expected an integer in [{low}, {high}], got {_short(value)}")
    return value


def _size(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventError(f"event.{key}: expected a positive number, got {_short(value)}")
    if not bounded(value, MAX_SIZE) or not 1 <= round(value) <= MAX_SIZE:
        raise EventError(f"event.{key}: expected a size in [1, {MAX_SIZE}], got {_short(value)}")
    return round(value)


def _pixel_ratio(obj: dict[str, Any]) -> float | None:
    value = obj.get("pixel_ratio")
    if value is None:
        return None
    try:
        return check_pixel_ratio(value, "event.pixel_ratio")
    except ValueError as exc:
        raise EventError(str(exc)) from None


def _text(obj: dict[str, Any], key: str, *, required: bool) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise EventError(f"event.{key}: expected a string, got {_short(value)}")
    value = value[:MAX_KEY_CHARS]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EventError(f"event.{key}: expected valid Unicode text, got a lone surrogate") from None
    return value


def _modifiers(obj: dict[str, Any]) -> tuple[str, ...]:
    value = obj.get("modifiers", [])
    if not isinstance(value, list) or len(value) > len(MODIFIERS) * 2:
        raise EventError(f"event.modifiers: expected a short list drawn from {sorted(MODIFIERS)}, got {_short(value)}")
    unknown = [m for m in value if not isinstance(m, str) or m not in MODIFIERS]
    if unknown:
        raise EventError(f"event.modifiers: expected names from {sorted(MODIFIERS)}, got {_short(unknown)}")
    return tuple(sorted(set(value)))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class EventQueue:
    """A bounded, thread-safe queue of InputEvents that drops the oldest when full."""

    def __init__(self, maxsize: int) -> None:
        if not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"event_queue_size must be a positive integer, got {maxsize!r}")
        self._events: deque[InputEvent] = deque(maxlen=maxsize)
        self._lock = threading.Lock()
        self.received = 0
        self.dropped = 0

    def put(self, event: InputEvent) -> None:
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self.dropped += 1  # deque(maxlen) evicts the oldest on append
            self._events.append(event)
            self.received += 1

    def drain(self) -> list[InputEvent]:
        """Every queued event, oldest first, leaving the queue empty."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)
