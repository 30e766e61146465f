"""A route that keeps failing, or hangs while it starts, never leaves its viewers dark (rfb.failover).

First the rules on their own (a fake clock, no threads), then a FanOut with fake
encoders (back-off and size change), then real displays with a real WebSocket viewer
that decodes what arrives with FFmpeg's H.264 decoder: a route that always raises, one
that breaks after a few frames, and one whose factory never returns, each registered
above ``h264_cpu``, which takes over.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from rfb.benchmark.metrics import H264Decoder
from rfb.encoders import h264_cpu
from rfb.encoders.base import EncodedPayload, EncoderConfig
from rfb.encoders.registry import EncoderEntry, register_video_encoder, unregister_video_encoder
from rfb.failover import FactoryTimeout, Failover, FailoverPolicy, build
from rfb.frames import RawFrame
from tests.conftest import EncoderLog, FakeVideoEncoder, ProtocolClient, Received, eventually, wait_until
from tests.test_fanout import Harness, make

pytestmark = pytest.mark.timeout(60)

SIZE = (64, 48)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entries(*names: str) -> list[EncoderEntry]:
    return [EncoderEntry(name, h264_cpu.create) for name in names]


# ---------------------------------------------------------------- the rules


def test_a_route_is_set_aside_after_limit_failures_in_a_row() -> None:
    a, b = entries("a", "b")
    failover = Failover([a, b], FailoverPolicy(limit=3, backoff=60.0), Clock())
    assert failover.failed(a, SIZE, RuntimeError("one")) is None
    assert failover.failed(a, SIZE, RuntimeError("two")) is None
    record = failover.failed(a, SIZE, RuntimeError("three"))
    assert record is not None
    assert (record.route, record.size, record.failures, record.reason, record.backoff, record.why) == (
        "a",
        SIZE,
        3,
        "RuntimeError: three",
        60.0,
        "failed 3 times in a row",
    )
    assert failover.usable(SIZE) == [b] and failover.set_aside == (record,)


def test_a_success_ends_the_streak() -> None:
    a, b = entries("a", "b")
    failover = Failover([a, b], FailoverPolicy(limit=2), Clock())
    assert failover.failed(a, SIZE, RuntimeError("x")) is None
    failover.succeeded(a)
    assert failover.failed(a, SIZE, RuntimeError("x")) is None, "failures must be in a row"
    assert failover.failed(a, SIZE, RuntimeError("x")) is not None


def test_a_set_aside_route_is_usable_at_another_size_and_counts_afresh_there() -> None:
    a, b = entries("a", "b")
    failover = Failover([a, b], FailoverPolicy(limit=2), Clock())
    failover.failed(a, SIZE, RuntimeError("x"))
    failover.failed(a, SIZE, RuntimeError("x"))
    assert failover.usable(SIZE) == [b] and failover.usable((32, 24)) == [a, b]
    assert failover.failed(a, (32, 24), RuntimeError("x")) is None, "a new size starts a new streak"


def test_after_its_back_off_a_route_gets_one_chance_and_the_back_off_doubles() -> None:
    a, b = entries("a", "b")
    clock = Clock()
    failover = Failover([a, b], FailoverPolicy(limit=3, backoff=10.0, backoff_max=25.0), clock)
    for _ in range(3):
        failover.failed(a, SIZE, RuntimeError("x"))
    assert not failover.retry_due(b, SIZE)
    clock.now += 10.0
    assert failover.retry_due(b, SIZE) and failover.usable(SIZE) == [a, b]
    assert not failover.retry_due(a, SIZE), "nothing better than a itself"
    again = failover.failed(a, SIZE, RuntimeError("still"))
    assert again is not None and (again.failures, again.backoff, again.why) == (
        1,
        20.0,
        "failed again after its back-off",
    )
    clock.now += 20.0
    third = failover.failed(a, SIZE, RuntimeError("still"))
    assert third is not None and third.backoff == 25.0, "capped at backoff_max"
    clock.now += 25.0
    failover.succeeded(a)
    assert failover.set_aside == () and not failover.retry_due(b, SIZE)


def test_a_hung_factory_sets_its_route_aside_at_once() -> None:
    a, b = entries("a", "b")
    failover = Failover([a, b], FailoverPolicy(limit=3), Clock())
    record = failover.failed(a, SIZE, FactoryTimeout("hung"), hung=True)
    assert record is not None and (record.failures, record.why) == (1, "hung while starting")
    assert failover.usable(SIZE) == [b]


@pytest.mark.parametrize(
    "field,value", [("limit", 0), ("limit", 1.5), ("backoff", 0), ("factory_timeout", -1), ("backoff_max", True)]
)
def test_a_policy_refuses_nonsense(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"{field} must be a positive"):
        FailoverPolicy(**{field: value})


# ---------------------------------------------------------------- build(): the factory's deadline


class Closable:
    def __init__(self) -> None:
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()


def test_build_returns_the_encoder_or_raises_what_the_factory_raised() -> None:
    made = Closable()
    assert build(EncoderEntry("ok", lambda config: made), EncoderConfig(*SIZE), 5.0) is made

    def broken(config: EncoderConfig) -> Any:
        raise OSError("no device")

    with pytest.raises(OSError, match="no device"):
        build(EncoderEntry("broken", broken), EncoderConfig(*SIZE), 5.0)


def test_a_build_past_its_deadline_is_abandoned_and_a_late_encoder_closed(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    late = Closable()

    def hangs(config: EncoderConfig) -> Any:
        release.wait(30)
        return late

    with pytest.raises(FactoryTimeout, match=r"route hangs's factory did not return within 0.2 s for 64x48"):
        build(EncoderEntry("hangs", hangs), EncoderConfig(*SIZE), 0.2)
    assert not late.closed.is_set()
    release.set()
    assert late.closed.wait(10), "the encoder that arrived after the deadline must be closed"
    wait_until(lambda: "returned an encoder after its deadline; closing it" in caplog.text, what="the log line")


# ---------------------------------------------------------------- a FanOut with fake encoders


class Breakable(FakeVideoEncoder):
    """Raises on every encode while its route is broken (the flag is the route's, not the instance's)."""

    broken: dict[str, bool] = {}

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        if self.broken.get(self.name):
            raise RuntimeError(f"{self.name} is broken")
        return super().encode(frame, force_keyframe=force_keyframe)


@pytest.fixture
def breakable() -> Iterator[dict[str, bool]]:
    Breakable.broken = {}
    yield Breakable.broken
    Breakable.broken = {}


def routes(log: EncoderLog, *names: str) -> dict[str, list[EncoderEntry]]:
    return {"webcodecs": [EncoderEntry(name, log.factory(Breakable, name)) for name in names]}


def test_the_next_route_encodes_the_picture_that_failed_and_the_first_comes_back_after_its_back_off(
    request: pytest.FixtureRequest, breakable: dict[str, bool], caplog: pytest.LogCaptureFixture
) -> None:
    log = EncoderLog()
    h = make(log, request, routes=routes(log, "first", "second"), failover=FailoverPolicy(limit=3, backoff=0.5))
    a = h.join(1)
    h.publish(1)
    assert h.wait_count(1, 1) == [(b"I\x01", 1)] and h.stats().encoder == "first"
    h.fanout.ack(a, 1)
    breakable["first"] = True
    h.publish(2)
    got = h.wait_count(1, 2)
    assert got[1][0] == b"I\x02", "the picture that failed, as an IDR from the next route"
    stats = h.stats()
    assert (stats.encoder, stats.encoder_errors) == ("second", 3)
    assert [(s.route, s.size, s.failures, s.reason) for s in stats.set_aside] == [
        ("first", SIZE, 3, "RuntimeError: first is broken")
    ]
    assert caplog.text.count("route first set aside for 64x48: it failed 3 times in a row") == 1
    assert "second is tried next; first is tried again in 0.5 s or at another size" in caplog.text
    breakable["first"] = False  # the driver recovers
    wait_until(lambda: h.fanout._groups["webcodecs"]._failover.retry_due(None, SIZE), what="the back-off to pass")
    h.fanout.ack(a, h.last_seq(1))  # wakes the group, which goes back to the first route at once
    assert h.wait_count(1, 3)[2][0] == b"I\x02", "the current picture again, as an IDR from the first route"
    assert h.stats().encoder == "first" and h.stats().set_aside == ()
    h.fanout.ack(a, h.last_seq(1))
    h.publish(3)
    assert h.wait_count(1, 4)[3][0] == b"P\x03"


def test_a_size_change_tries_a_set_aside_route_again(
    request: pytest.FixtureRequest, breakable: dict[str, bool]
) -> None:
    log = EncoderLog()
    h = make(log, request, routes=routes(log, "first", "second"))
    a = h.join(1)
    breakable["first"] = True
    h.publish(1)
    assert h.wait_count(1, 1) == [(b"I\x01", 1)] and h.stats().encoder == "second"
    breakable["first"] = False
    h.fanout.ack(a, 1)
    h.publish(2, 32, 24)
    assert h.wait_count(1, 2)[1][0] == b"I\x02" and h.stats().encoder == "first"


def test_with_every_route_set_aside_each_new_frame_tries_them_again(
    request: pytest.FixtureRequest, breakable: dict[str, bool], caplog: pytest.LogCaptureFixture
) -> None:
    log = EncoderLog()
    h = make(log, request, routes=routes(log, "only"))
    a = h.join(1)
    breakable["only"] = True
    h.publish(1)
    wait_until(lambda: h.stats().set_aside, what="the only route to be set aside")
    h.settle()
    builds = h.stats().encoder_builds
    assert h.got(1) == [] and a.needs_keyframe and builds == 4, "three in a row, then one last try; no spinning"
    assert "no other route is left: each is tried again per new frame" in caplog.text
    assert display_route(h) is None, "no route serves: the group says so"
    breakable["only"] = False
    h.publish(2)
    assert h.wait_count(1, 1) == [(b"I\x02", 1)] and h.stats().set_aside == () and display_route(h) == "only"


def test_closing_does_not_wait_for_a_factory_that_hangs(caplog: pytest.LogCaptureFixture) -> None:
    hangs = Hangs()
    h = Harness(
        EncoderLog(),
        routes={"webcodecs": [EncoderEntry("test-hangs", hangs)]},
        failover=FailoverPolicy(factory_timeout=300.0),
    )
    h.join(1)
    h.publish(1)
    group = h.fanout._groups["webcodecs"]
    wait_until(lambda: any(t.name == "rfb-build-test-hangs" for t in threading.enumerate()), what="the build")
    h.fanout.close(timeout=5.0)
    assert not group._thread.is_alive(), "the group's thread ends although its factory still hangs"
    assert "did not stop within" not in caplog.text
    assert "route test-hangs's build was abandoned: its group stopped for 64x48" in caplog.text
    hangs.release.set()
    assert wait_until(lambda: hangs.built and hangs.built[0].closed.is_set(), what="the late encoder to be closed")


def display_route(h: Any) -> str | None:
    return h.fanout.encoder_name("webcodecs")


# ---------------------------------------------------------------- real viewers decoding real H.264


class AlwaysRaises:
    """A route that starts but cannot encode anything."""

    transport = "webcodecs"
    name = "test-always-raises"

    def __init__(self, config: EncoderConfig) -> None:
        pass

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        raise RuntimeError("this route cannot encode")

    def flush(self) -> list[EncodedPayload]:
        return []

    def close(self) -> None:
        pass


class BreaksAfter:
    """libx264 for the route's first ``limit`` frames, then an error on every frame (a driver that died)."""

    transport = "webcodecs"
    name = "test-breaks-after"
    limit = 4
    encoded = 0

    def __init__(self, config: EncoderConfig) -> None:
        self._encoder = h264_cpu.create(config)

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        if BreaksAfter.encoded >= BreaksAfter.limit:
            raise RuntimeError(f"broke after {BreaksAfter.limit} frames")
        BreaksAfter.encoded += 1
        return self._encoder.encode(frame, force_keyframe=force_keyframe)

    def flush(self) -> list[EncodedPayload]:
        return self._encoder.flush()

    def close(self) -> None:
        self._encoder.close()


class Hangs:
    """A factory stuck in a driver call until the test lets it go; what it returns then must be closed."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.built: list[Closable] = []

    def __call__(self, config: EncoderConfig) -> Closable:
        self.release.wait(30)
        encoder = Closable()
        self.built.append(encoder)
        return encoder


@pytest.fixture
def route_above_h264_cpu() -> Iterator[Any]:
    """Registers a route by a name and factory, above every built-in route, for one test."""
    names: list[str] = []

    def register(name: str, factory: Any) -> None:
        register_video_encoder(name, factory, priority=1000, replace=True)
        names.append(name)

    yield register
    for name in names:
        unregister_video_encoder(name)


def grey(value: int) -> np.ndarray:
    return np.full((SIZE[1], SIZE[0], 3), value, np.uint8)


async def watch(display: Any, frames: int) -> list[Received]:
    """Publish ``frames`` greys one at a time; a viewer receives, acks and keeps each payload."""
    client = await ProtocolClient.connect(display)
    try:
        await eventually(lambda: len(display.viewers) == 1, what="the viewer to join")
        chunks = []
        for i in range(frames):
            display.publish(grey(20 + 20 * i))
            chunk = await client.next_payload(timeout=10)
            await client.ack(chunk.seq)
            chunks.append(chunk)
        return chunks
    finally:
        await client.close()


def decode(chunks: list[Received]) -> list[np.ndarray]:
    with H264Decoder() as decoder:
        return [picture for chunk in chunks for picture in decoder.decode(chunk.payload)]


def assert_every_grey_decodes(chunks: list[Received]) -> None:
    pictures = decode(chunks)
    assert len(pictures) == len(chunks)
    means = [round(float(p.mean())) for p in pictures]
    assert all(abs(m - (20 + 20 * i)) <= 6 for i, m in enumerate(means)), f"pictures in order, none lost: {means}"


def start(**options: Any) -> Any:
    from rfb.launch import start as start_display

    # still_after=None: a lossless still arriving while a build hangs is not part of the H.264 chain these tests decode
    return start_display(
        *SIZE, host="127.0.0.1", port=0, image_encoder=None, keyframe_interval_min=0.0, still_after=None, **options
    )


@pytest.mark.anyio
async def test_a_route_that_always_raises_hands_its_viewers_to_h264_cpu(
    route_above_h264_cpu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    route_above_h264_cpu("test-always-raises", AlwaysRaises)
    display = start()
    try:
        assert display.routes == {"webcodecs": "test-always-raises"}, "chosen first, by priority"
        chunks = await watch(display, 10)
        assert chunks[0].keyframe
        assert_every_grey_decodes(chunks)
        stats = display.stats.groups["webcodecs"]
        assert stats.encoder == "h264_cpu" and display.routes == {"webcodecs": "h264_cpu"}
        assert [s.route for s in stats.set_aside] == ["test-always-raises"] and stats.encoder_errors == 3
        assert caplog.text.count("route test-always-raises set aside for 64x48: it failed 3 times in a row") == 1
    finally:
        display.close()


@pytest.mark.anyio
async def test_a_route_that_breaks_after_some_frames_hands_over_with_a_keyframe(route_above_h264_cpu: Any) -> None:
    BreaksAfter.encoded = 0
    route_above_h264_cpu("test-breaks-after", BreaksAfter)
    display = start()
    try:
        chunks = await watch(display, 10)
        assert [c.keyframe for c in chunks[: BreaksAfter.limit + 1]] == [True, False, False, False, True]
        assert_every_grey_decodes(chunks)  # the frame that broke the route arrives, from h264_cpu
        assert display.routes == {"webcodecs": "h264_cpu"}
    finally:
        display.close()


@pytest.mark.anyio
async def test_a_route_whose_factory_hangs_is_abandoned_for_h264_cpu(
    route_above_h264_cpu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rfb.fanout")
    hangs = Hangs()
    route_above_h264_cpu("test-hangs", hangs)
    display = start(failover=FailoverPolicy(factory_timeout=0.5))
    try:
        chunks = await watch(display, 6)
        assert chunks[0].keyframe
        assert_every_grey_decodes(chunks)
        stats = display.stats.groups["webcodecs"]
        assert stats.encoder == "h264_cpu" and stats.build_failures == 1
        assert [(s.route, s.why) for s in stats.set_aside] == [("test-hangs", "hung while starting")]
        assert "route test-hangs's factory did not return within 0.5 s for 64x48" in caplog.text
    finally:
        hangs.release.set()
        display.close()
    await eventually(lambda: hangs.built and hangs.built[0].closed.is_set(), what="the late encoder to be closed")
    assert len(hangs.built) == 1, "one abandoned build, not one per frame"


@pytest.mark.anyio
async def test_viewers_waiting_for_a_keyframe_get_one_from_the_next_route(route_above_h264_cpu: Any) -> None:
    """Two viewers, one of them joined while the route was failing: both get the same IDR."""
    route_above_h264_cpu("test-always-raises", AlwaysRaises)
    display = start()
    try:
        first = await ProtocolClient.connect(display)
        second = await ProtocolClient.connect(display)
        await eventually(lambda: len(display.viewers) == 2, what="both viewers to join")
        display.publish(grey(100))
        a, b = await asyncio.gather(first.next_payload(timeout=10), second.next_payload(timeout=10))
        assert a.keyframe and a.seq == b.seq and a.payload == b.payload
        (picture,) = decode([a])
        assert abs(float(picture.mean()) - 100) <= 6
        await first.close()
        await second.close()
    finally:
        display.close()
