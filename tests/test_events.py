"""Input events: strict validation of what the network sends, and the drop-oldest queue."""

from __future__ import annotations

import json
import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfb.events import EVENT_TYPES, MAX_KEY_CHARS, EventError, EventQueue, InputEvent, parse_event


def parse(obj: object) -> InputEvent:
    return parse_event(obj, client_id=7, time=12.5)


def test_pointer_event() -> None:
    event = parse(
        {"type": "pointerdown", "x": 10, "y": 20.5, "button": 2, "buttons": 4, "modifiers": ["shift", "ctrl"]}
    )
    assert event == InputEvent(
        "pointerdown", 7, x=10.0, y=20.5, button=2, buttons=4, modifiers=("ctrl", "shift"), time=12.5
    )
    assert isinstance(event.x, float)


def test_pointer_defaults_and_outside_the_frame() -> None:
    event = parse({"type": "pointermove", "x": -5, "y": 1e6})
    assert (event.button, event.buttons, event.modifiers) == (0, 0, ())
    assert (event.x, event.y) == (-5.0, 1e6)


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [(-5, 1e6, (0.0, 48.0)), (70.5, -0.0, (64.0, 0.0)), (-1e7, 1e7, (0.0, 48.0)), (63.5, 47.25, (63.5, 47.25))],
)
def test_with_bounds_coordinates_are_clamped_into_the_frame(x: float, y: float, expected: tuple[float, float]) -> None:
    for kind in ("pointermove", "wheel"):
        event = parse_event({"type": kind, "x": x, "y": y, "dx": 0, "dy": 0}, client_id=1, time=0.0, bounds=(64, 48))
        assert (event.x, event.y) == expected and math.copysign(1, event.y) == math.copysign(1, expected[1])


def test_wheel_event() -> None:
    event = parse({"type": "wheel", "x": 1, "y": 2, "dx": -16, "dy": 48.0})
    assert (event.type, event.x, event.y, event.dx, event.dy) == ("wheel", 1.0, 2.0, -16.0, 48.0)


def test_key_event() -> None:
    event = parse({"type": "keydown", "key": "a", "code": "KeyA", "repeat": True, "modifiers": ["meta"]})
    assert (event.key, event.code, event.repeat, event.modifiers) == ("a", "KeyA", True, ("meta",))
    assert event.x is None
    assert parse({"type": "keyup", "key": "Enter"}).code == ""


def test_key_strings_are_cut_short() -> None:
    event = parse({"type": "keydown", "key": "k" * 10_000, "code": "c" * 100})
    assert len(event.key) == MAX_KEY_CHARS and len(event.code) == MAX_KEY_CHARS


def test_resize_event_rounds_to_pixels() -> None:
    event = parse({"type": "resize", "width": 1279.6, "height": 720})
    assert (event.width, event.height) == (1280, 720)


def test_event_is_frozen() -> None:
    event = parse({"type": "pointerup", "x": 1, "y": 1})
    with pytest.raises(AttributeError):
        event.x = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ([], "event: expected an object, got list"),
        ({"type": "click", "x": 1, "y": 1}, "event.type: expected one of"),
        ({"x": 1}, "got None"),
        ({"type": "pointermove", "y": 1}, "event.x: expected a number, got None"),
        ({"type": "pointermove", "x": "1", "y": 1}, "event.x: expected a number, got '1'"),
        ({"type": "pointermove", "x": True, "y": 1}, "event.x: expected a number, got True"),
        ({"type": "pointermove", "x": math.nan, "y": 1}, "event.x: expected a finite number"),
        ({"type": "pointermove", "x": math.inf, "y": 1}, "event.x: expected a finite number"),
        ({"type": "pointermove", "x": 1e300, "y": 1}, "event.x: expected a finite number within"),
        ({"type": "pointerdown", "x": 1, "y": 1, "button": 1.5}, "event.button: expected an integer in [-1, 31]"),
        (
            {"type": "pointerdown", "x": 1, "y": 1, "button": 99},
            "event.button: expected an integer in [-1, 31], got 99",
        ),
        ({"type": "pointerdown", "x": 1, "y": 1, "buttons": -1}, "event.buttons: expected an integer in [0, 65535]"),
        ({"type": "pointerdown", "x": 1, "y": 1, "modifiers": "shift"}, "event.modifiers: expected a short list"),
        ({"type": "pointerdown", "x": 1, "y": 1, "modifiers": ["hyper"]}, "event.modifiers: expected names from"),
        ({"type": "pointerdown", "x": 1, "y": 1, "modifiers": [1]}, "event.modifiers: expected names from"),
        ({"type": "wheel", "x": 1, "y": 1, "dx": 1}, "event.dy: expected a number, got None"),
        ({"type": "keydown", "code": "KeyA"}, "event.key: expected a string, got None"),
        ({"type": "keydown", "key": 5}, "event.key: expected a string, got 5"),
        ({"type": "keydown", "key": "a", "repeat": 1}, "event.repeat: expected a boolean, got 1"),
        ({"type": "keydown", "key": "\ud800"}, "event.key: expected valid Unicode text"),
        ({"type": "resize", "width": 0, "height": 10}, "event.width: expected a size in [1, 65536]"),
        ({"type": "resize", "width": 10, "height": math.inf}, "event.height: expected a size in [1, 65536], got inf"),
        ({"type": "resize", "width": 10, "height": 1e9}, "event.height: expected a size in [1, 65536]"),
    ],
)
def test_rejects_invalid_events(obj: object, expected: str) -> None:
    with pytest.raises(EventError) as info:
        parse(obj)
    assert expected in str(info.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(EVENT_TYPES) + ["nope"])},
    optional={
        k: json_values
        for k in ("x", "y", "dx", "dy", "button", "buttons", "key", "code", "repeat", "modifiers", "width", "height")
    },
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(event_like, json_values))
def test_random_events_are_valid_or_rejected_with_event_error(obj: object) -> None:
    try:
        event = parse(obj)
    except EventError:
        return
    assert event.type in EVENT_TYPES and event.client_id == 7
    for value in (event.x, event.y, event.dx, event.dy):
        assert value is None or (isinstance(value, float) and math.isfinite(value))
    assert len(event.key) <= MAX_KEY_CHARS and len(event.code) <= MAX_KEY_CHARS
    json.dumps([event.key, event.code, event.modifiers])  # safe to log or forward


# ---------------------------------------------------------------- queue


def test_queue_drops_the_oldest_and_counts() -> None:
    queue = EventQueue(3)
    for i in range(5):
        queue.put(parse({"type": "pointermove", "x": i, "y": 0}))
    assert len(queue) == 3
    assert [e.x for e in queue.drain()] == [2.0, 3.0, 4.0]
    assert (queue.received, queue.dropped) == (5, 2)
    assert queue.drain() == []


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="event_queue_size must be a positive integer, got 0"):
        EventQueue(0)


def test_queue_is_safe_across_threads() -> None:
    queue = EventQueue(10_000)
    event = parse({"type": "pointermove", "x": 0, "y": 0})
    drained: list[InputEvent] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            drained.extend(queue.drain())
        drained.extend(queue.drain())

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [threading.Thread(target=lambda: [queue.put(event) for _ in range(2000)]) for _ in range(4)]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    stop.set()
    consumer.join()
    assert len(drained) + queue.dropped == 8000 and queue.received == 8000


# ---------------------------------------------------------------- every numeric field, any JSON number

NUMBER_SPELLINGS = [
    "1" + "0" * 400,
    "-1" + "0" * 400,
    "9" * 4000,
    "-0",
    "-0.0",
    "0e0",
    "1e308",
    "-1e308",
    "1e309",
    "1E+400",
    "-1e400",
    "2.5e-400",
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "nan",
    "inf",
    "1e",
    "01",
]
json_numbers = st.one_of(
    st.sampled_from(NUMBER_SPELLINGS),
    st.integers(min_value=-(10**500), max_value=10**500).map(str),
    st.floats().map(lambda f: json.dumps(f)),  # NaN and Infinity too, as Python spells them
)
NUMERIC_FIELDS = [
    ("pointermove", "x"),
    ("pointermove", "y"),
    ("pointerdown", "button"),
    ("pointerdown", "buttons"),
    ("wheel", "x"),
    ("wheel", "y"),
    ("wheel", "dx"),
    ("wheel", "dy"),
    ("resize", "width"),
    ("resize", "height"),
]
_BASE = {
    "pointermove": {"x": 1, "y": 1},
    "pointerdown": {"x": 1, "y": 1},
    "wheel": {"x": 1, "y": 1, "dx": 0, "dy": 0},
    "resize": {"width": 10, "height": 10},
}


def event_text(kind: str, field: str, number: str) -> str:
    """An ``event`` message whose ``field`` is the JSON number spelled ``number``, exactly as sent."""
    others = {k: v for k, v in _BASE[kind].items() if k != field}
    body = ",".join([f'"type":"{kind}"', *(f'"{k}":{v}' for k, v in others.items()), f'"{field}":{number}'])
    return '{"type":"event","event":{' + body + "}}"


@pytest.mark.parametrize(("kind", "field"), NUMERIC_FIELDS)
def test_a_huge_integer_in_any_numeric_field_is_an_event_error(kind: str, field: str) -> None:
    from rfb.protocol import parse_client_message

    message = parse_client_message(event_text(kind, field, "1" + "0" * 400))
    with pytest.raises(EventError, match=f"event.{field}: expected"):
        parse(message.event)  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NUMERIC_FIELDS), json_numbers)
def test_any_json_number_in_any_field_is_valid_or_a_protocol_error(field: tuple[str, str], number: str) -> None:
    from rfb.protocol import ProtocolError, parse_client_message

    try:
        event = parse(parse_client_message(event_text(*field, number)).event)  # type: ignore[union-attr]
    except ProtocolError:
        return
    for name in ("x", "y", "dx", "dy", "width", "height"):
        value = getattr(event, name)
        assert value is None or (math.isfinite(value) and abs(value) <= 1e7), (name, value)
