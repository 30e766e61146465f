"""``resize_policy="match_viewer"``: the target size, its driver and debounce, and ``pixel_ratio`` on the wire.

The policy (rfb.resize) is driven here with explicit times, so the debounce is tested
without sleeping; the display tests run a real server with protocol clients and wait
for events, never for a duration.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest

from rfb import protocol
from rfb.encoders.base import EncodedPayload
from rfb.events import EventError, InputEvent, parse_event
from rfb.frames import FrameError
from rfb.resize import DEBOUNCE_S, MatchViewer, Target, check_max_size, check_pixel_ratio, clamp_target
from tests.conftest import H264, JPEG, PNG, EncoderLog, ProtocolClient, start_test_display, wait_until

pytestmark = pytest.mark.timeout(60)

MAX = (3840, 2160)


# ---------------------------------------------------------------- the size for an area


def test_an_area_within_max_size_is_the_target_rounded_down_to_even_sides_for_h264() -> None:
    assert clamp_target(2560, 1440, 2.0, MAX, even=True) == Target(2560, 1440, 2.0)
    assert clamp_target(1281, 721, 1.5, MAX, even=True) == Target(1280, 720, 1.5)
    assert clamp_target(1281, 721, 1.5, MAX, even=False) == Target(1281, 721, 1.5)


def test_an_area_beyond_max_size_is_scaled_down_with_its_aspect_and_pixel_ratio() -> None:
    # A 5K screen at 2x: 2560x1440 CSS pixels; the frame is 4K and still covers those CSS pixels.
    assert clamp_target(5120, 2880, 2.0, MAX, even=True) == Target(3840, 2160, 1.5)
    # An ultrawide: the width is the limit, the height follows it.
    target = clamp_target(6880, 2880, 2.0, MAX, even=True)
    assert target.width == 3840 and target.height == 1606 and target.pixel_ratio == pytest.approx(2.0 * 3840 / 6880)
    # Portrait, against a square limit: the height is the limit.
    assert clamp_target(1000, 4000, 1.0, (2000, 2000), even=False) == Target(500, 2000, 0.5)


def test_a_tiny_area_still_gets_a_size_the_routes_encode() -> None:
    assert clamp_target(1, 1, 1.0, MAX, even=True).size == (2, 4)  # H.264's smallest
    assert clamp_target(1, 1, 1.0, MAX, even=False).size == (1, 1)


@pytest.mark.parametrize("bad", [0, -1, 0.01, 65.0, math.nan, math.inf, True, "2", None])
def test_pixel_ratios_outside_sane_bounds_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(f"ratio: expected a number in [0.05, 64], got {bad!r}")):
        check_pixel_ratio(bad, "ratio")


def test_a_pixel_ratio_of_hundreds_of_digits_is_refused_without_converting_it() -> None:
    with pytest.raises(ValueError, match=r"got 1\d{56}\.\.\.$"):  # cut to 60 characters
        check_pixel_ratio(10**400, "ratio")
    with pytest.raises(EventError, match=re.escape("event.pixel_ratio: expected a number in [0.05, 64], got -1000")):
        parse_event({"type": "resize", "width": 1, "height": 1, "pixel_ratio": -(10**400)}, client_id=1, time=0.0)


@pytest.mark.parametrize(
    ("bad", "video", "expected"),
    [
        ((0, 10), True, "two positive integers, got (0, 10)"),
        ((10,), True, "two positive integers, got (10,)"),
        ((10.0, 10), True, "two positive integers"),
        ((16386, 100), True, "at most 16384"),
        ((65501, 100), False, "at most 65500"),
    ],
)
def test_max_size_must_be_two_sizes_the_routes_encode(bad: Any, video: bool, expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        check_max_size(bad, video=video)
    assert check_max_size([16384, 100], video=True) == (16384, 100)


# ---------------------------------------------------------------- the policy, on an explicit clock


def policy() -> MatchViewer:
    return MatchViewer(Target(640, 480), max_size=MAX, even=True, debounce=DEBOUNCE_S)


def test_the_first_reporting_viewer_drives_after_its_size_stays_for_the_debounce() -> None:
    p = policy()
    assert p.driver is None and p.settle(100.0) is None
    assert p.report(1, 1600, 1000, 2.0, now=0.0) == DEBOUNCE_S
    assert p.report(2, 800, 600, 1.0, now=0.1) == DEBOUNCE_S  # not the driver: changes nothing
    assert p.driver == 1
    assert p.settle(DEBOUNCE_S - 0.01) is None and p.target == Target(640, 480)
    assert p.settle(DEBOUNCE_S) == Target(1600, 1000, 2.0) == p.target
    assert p.due is None and p.settle(10.0) is None  # nothing more pending


def test_a_drag_restarts_the_wait_and_only_its_last_size_becomes_the_target() -> None:
    p = policy()
    due = None
    for i, width in enumerate(range(1000, 1400, 40)):  # a report every 100 ms
        due = p.report(1, width, 700, 1.0, now=i * 0.1)
        assert p.settle(i * 0.1) is None
    assert due == pytest.approx(0.9 + DEBOUNCE_S)
    assert p.report(1, 1360, 700, 1.0, now=1.0) == due  # the same size again keeps the wait
    assert p.settle(due) == Target(1360, 700, 1.0)


def test_a_drag_back_to_the_current_size_cancels_the_pending_one() -> None:
    p = policy()
    p.report(1, 640, 480, 1.0, now=0.0)  # already the target: nothing pending
    assert p.due is None
    p.report(1, 700, 480, 1.0, now=0.1)
    assert p.due is not None
    assert p.report(1, 640, 480, 1.0, now=0.2) is None and p.settle(5.0) is None


def test_a_new_pixel_ratio_alone_is_a_new_target() -> None:
    p = policy()
    p.report(1, 640, 480, 1.0, now=0.0)
    assert p.report(1, 640, 480, 2.0, now=1.0) == 1.0 + DEBOUNCE_S
    assert p.settle(2.0) == Target(640, 480, 2.0)


def test_when_the_driver_leaves_the_next_viewer_drives() -> None:
    p = policy()
    p.report(1, 1000, 800, 1.0, now=0.0)
    p.report(2, 1200, 900, 1.0, now=0.0)
    p.report(3, 1400, 1000, 1.0, now=0.0)
    p.settle(1.0)
    assert p.left(1, now=2.0) == 2.0 + DEBOUNCE_S and p.driver == 2
    assert p.settle(3.0) == Target(1200, 900, 1.0)
    p.left(2, now=4.0)
    p.left(3, now=4.0)
    assert p.driver is None and p.due is None and p.target == Target(1200, 900, 1.0)  # the last target stays


def test_a_chosen_driver_drives_until_it_leaves_or_is_unchosen() -> None:
    p = policy()
    p.report(1, 1000, 800, 1.0, now=0.0)
    p.report(2, 1200, 900, 1.0, now=0.0)
    p.settle(1.0)
    assert p.choose(2, now=2.0) is not None and p.driver == 2
    assert p.settle(3.0) == Target(1200, 900, 1.0)
    p.report(1, 1100, 800, 1.0, now=4.0)  # the first viewer's reports no longer matter
    assert p.due is None
    p.choose(None, now=5.0)
    assert p.driver == 1 and p.settle(6.0) == Target(1100, 800, 1.0)
    p.choose(2, now=7.0)
    p.left(2, now=7.0)
    assert p.driver == 1 and p.due is None  # back to the first viewer, whose size is the target


def test_a_chosen_viewer_that_has_not_reported_yet_drives_once_it_does() -> None:
    p = policy()
    p.report(1, 1000, 800, 1.0, now=0.0)
    p.choose(5, now=0.1)
    assert p.driver == 5 and p.due is None
    p.report(5, 900, 700, 1.0, now=0.2)
    assert p.settle(1.0) == Target(900, 700, 1.0)


# ---------------------------------------------------------------- the wire


def test_resize_events_carry_the_viewers_pixel_ratio() -> None:
    event = parse_event({"type": "resize", "width": 1600, "height": 1000, "pixel_ratio": 2}, client_id=3, time=1.0)
    assert (event.width, event.height, event.pixel_ratio) == (1600, 1000, 2.0)
    assert parse_event({"type": "resize", "width": 10, "height": 10}, client_id=3, time=1.0).pixel_ratio is None
    for bad in (0, -1, 1e9, "2", True):
        with pytest.raises(EventError, match=re.escape("event.pixel_ratio: expected a number in [0.05, 64], got ")):
            parse_event({"type": "resize", "width": 10, "height": 10, "pixel_ratio": bad}, client_id=3, time=1.0)


def test_target_size_events_are_never_accepted_from_a_viewer() -> None:
    with pytest.raises(EventError, match="event.type: expected one of"):
        parse_event({"type": "target_size", "width": 10, "height": 10}, client_id=3, time=1.0)


def test_the_payload_header_carries_a_pixel_ratio_only_when_one_was_given() -> None:
    image = EncodedPayload(b"x", True, 64, 48, "image", mime="image/png")
    plain = protocol.payload_header(image, seq=1, timestamp_us=1000)
    assert "pixel_ratio" not in plain
    header = protocol.payload_header(image, seq=1, timestamp_us=1000, pixel_ratio=1.5)
    assert header == {**plain, "pixel_ratio": 1.5} and list(header)[-1] == "pixel_ratio"
    video = EncodedPayload(b"x", True, 64, 48, "webcodecs", codec="avc1.42E01F")
    assert protocol.payload_header(video, seq=2, timestamp_us=0, pixel_ratio=2.0)["pixel_ratio"] == 2.0


# ---------------------------------------------------------------- a display with real viewers


def drain(display: Any, seen: list[InputEvent]) -> list[InputEvent]:
    """``seen`` with the display's new events added: every event so far, in order."""
    seen.extend(display.poll_events())
    return seen


def targets(display: Any, seen: list[InputEvent]) -> list[InputEvent]:
    return [e for e in drain(display, seen) if e.type == "target_size"]


@pytest.mark.anyio
async def test_match_viewer_follows_the_first_viewer_then_the_chosen_one(test_encoders: EncoderLog) -> None:
    display = start_test_display(64, 48, resize_policy="match_viewer")
    try:
        assert display.target_size == (64, 48) and display.target_pixel_ratio == 1.0 and display.driver is None
        a = await ProtocolClient.connect(display)
        b = await ProtocolClient.connect(display, supported=(JPEG,))
        await a.recv()  # config: joined
        await b.recv()
        await a.event(type="resize", width=1601, height=1000, pixel_ratio=2)
        seen: list[InputEvent] = []
        wait_until(lambda: targets(display, seen), what="a target_size event")
        await b.event(type="resize", width=500, height=400, pixel_ratio=1)
        wait_until(
            lambda: [e for e in drain(display, seen) if e.type == "resize" and e.width == 500],
            what="the second viewer's resize event",
        )  # the viewers' own reports still arrive
        (first,) = targets(display, seen)
        ids = sorted(v.client_id for v in display.viewers)
        assert (first.width, first.height, first.pixel_ratio, first.client_id) == (1600, 1000, 2.0, ids[0])
        assert display.target_size == (1600, 1000) and display.target_pixel_ratio == 2.0 and display.driver == ids[0]
        assert display._resize.due is None  # the second viewer's size is pending nowhere

        display.set_driver(ids[1])
        assert display.driver == ids[1]
        wait_until(lambda: len(targets(display, seen)) == 2, what="a second target_size event")
        assert display.target_size == (500, 400) and targets(display, seen)[1].client_id == ids[1]

        await b.close()  # the chosen driver leaves: the first viewer drives again
        wait_until(lambda: len(targets(display, seen)) == 3, what="the target back at the first viewer's size")
        assert display.target_size == (1600, 1000) and display.driver == ids[0]
        await a.close()
    finally:
        display.close()


@pytest.mark.anyio
async def test_a_published_pixel_ratio_reaches_the_viewers_with_its_frame(test_encoders: EncoderLog) -> None:
    display = start_test_display(64, 48)
    try:
        client = await ProtocolClient.connect(display, supported=(H264,))
        display.publish(np.zeros((48, 64, 3), np.uint8), pixel_ratio=2)
        first = await client.next_payload()
        assert first.header["pixel_ratio"] == 2.0
        await client.ack(first.seq, 1.0)
        display.publish(np.zeros((48, 64, 3), np.uint8))
        second = await client.next_payload()
        assert "pixel_ratio" not in second.header
        bad_ratio = re.escape("publish(pixel_ratio=...): expected a number in [0.05, 64], got 0")
        with pytest.raises(ValueError, match=bad_ratio):
            display.publish(np.zeros((48, 64, 3), np.uint8), pixel_ratio=0)
        with pytest.raises(FrameError):  # the frame is still checked
            display.publish(np.zeros((47, 64, 3), np.uint8), pixel_ratio=2)
        await client.close()
    finally:
        display.close()


@pytest.mark.anyio
async def test_the_fixed_policy_keeps_its_size_whatever_viewers_report(test_encoders: EncoderLog) -> None:
    display = start_test_display(64, 48)
    try:
        client = await ProtocolClient.connect(display)
        await client.recv()
        await client.event(type="resize", width=1000, height=800, pixel_ratio=2)
        seen: list[InputEvent] = []
        wait_until(lambda: [e for e in drain(display, seen) if e.type == "resize"], what="the resize event")
        assert not targets(display, seen)
        assert display.target_size == (64, 48) and display.target_pixel_ratio == 1.0 and display.driver is None
        with pytest.raises(RuntimeError, match="set_driver needs resize_policy='match_viewer'"):
            display.set_driver(1)
        await client.close()
    finally:
        display.close()


def test_match_viewer_options_are_checked_at_construction(test_encoders: EncoderLog) -> None:
    bad_policy = re.escape("resize_policy: expected one of ('fixed', 'match_viewer'), got 'auto'")
    with pytest.raises(ValueError, match=bad_policy):
        start_test_display(resize_policy="auto")
    with pytest.raises(ValueError, match=re.escape("max_size: expected sides of at most 16384")):
        start_test_display(resize_policy="match_viewer", max_size=(20000, 100))
    display = start_test_display(resize_policy="match_viewer")
    try:
        unknown = re.escape("set_driver: expected the client id of a connected viewer [], got 9")
        with pytest.raises(ValueError, match=unknown):
            display.set_driver(9)
    finally:
        display.close()


@pytest.mark.gpu
@pytest.mark.anyio
async def test_a_cuda_frame_keeps_its_pixel_ratio_on_every_route_of_a_gpu_display() -> None:
    """CUDA frames, own_frames copies and GPU routes (which rebuild frames to encode) keep the ratio."""
    from rfb.launch import start
    from tests.gpu import require_cupy

    cp = require_cupy()
    display = start(128, 96, port=0, gpu=True, own_frames=True, resize_policy="match_viewer", still_after=None)
    try:
        clients = [await ProtocolClient.connect(display, supported=(kind,)) for kind in (H264, JPEG, PNG)]
        wait_until(lambda: len(display.viewers) == 3, what="three viewers")
        display.publish(cp.zeros((96, 128, 3), cp.uint8), pixel_ratio=1.5)
        for client in clients:
            payload = await client.next_payload(timeout=10)
            assert payload.header["pixel_ratio"] == 1.5, (display.routes, payload.header)
            await client.close()
    finally:
        display.close()
