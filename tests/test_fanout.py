"""Fan-out: one encode per published frame per group, backpressure, keyframe rules (docs/fanout.md).

The first half drives :class:`rfb.fanout.FanOut` directly (deliveries land in lists);
the second half runs 1, 8 and 32 real WebSocket viewers against a running display.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from rfb.display import FrameStore
from rfb.encoders.base import EncodedPayload, EncoderConfig
from rfb.encoders.registry import EncoderEntry
from rfb.failover import FailoverPolicy
from rfb.fanout import FanOut, Member
from rfb.frames import RawFrame, frame_from_array
from rfb.latency import LatencyWindow
from tests.conftest import (
    TEST_CODEC,
    EncoderLog,
    FakeImageEncoder,
    FakeVideoEncoder,
    ProtocolClient,
    Received,
    eventually,
    start_test_display,
    wait_until,
)
from tests.gpu import FakeCudaArray, skip_if_cupy_works

pytestmark = pytest.mark.timeout(60)


def frame(marker: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A frame whose first pixel's red value is ``marker`` (what fake payloads report)."""
    array = np.zeros((height, width, 3), np.uint8)
    array[0, 0] = (marker, 0, 0)
    return array


class Harness:
    """A FanOut with a FrameStore and recording viewers; callbacks run on the worker thread."""

    def __init__(
        self,
        log: EncoderLog,
        *,
        max_inflight: int = 2,
        interval: float = 0.0,
        routes: dict[str, list[EncoderEntry]] | None = None,
        failover: FailoverPolicy | None = None,
    ) -> None:
        self.log = log
        self.store = FrameStore(own_frames=False)
        self.routes = routes or {
            "webcodecs": [EncoderEntry("test-h264", log.factory(FakeVideoEncoder, "test-h264"))],
            "image": [EncoderEntry("test-image", log.factory(FakeImageEncoder, "test-image"), transport="image")],
        }
        self.fanout = FanOut(
            self.routes,
            frames=self.store,
            post=lambda callback: callback(),
            max_inflight=max_inflight,
            keyframe_interval_min=interval,
            failover=failover,
        )
        self.received: dict[int, list[tuple[EncodedPayload, int]]] = {}
        self._lock = threading.Lock()
        self.published = 0

    def join(self, client_id: int, transport: str = "webcodecs") -> Member:
        self.received[client_id] = []

        def deliver(payload: EncodedPayload, seq: int, message: bytes) -> None:
            with self._lock:
                self.received[client_id].append((payload, seq))

        return self.fanout.join(client_id, transport, deliver)

    def publish(self, marker: int, width: int = 64, height: int = 48) -> None:
        raw = frame_from_array(frame(marker, width, height))
        self.store.put(replace(raw, timestamp_us=time.monotonic_ns() // 1000))
        self.published += 1
        self.fanout.wake()

    def got(self, client_id: int) -> list[tuple[bytes, int]]:
        """(kind+marker, seq) per delivery: kind is b"I", b"P" or b"M"."""
        with self._lock:
            return [(p.data[:2], seq) for p, seq in self.received[client_id]]

    def wait_count(self, client_id: int, n: int) -> list[tuple[bytes, int]]:
        wait_until(lambda: len(self.got(client_id)) >= n, what=f"{n} payloads for viewer {client_id}")
        return self.got(client_id)

    def last_seq(self, client_id: int) -> int:
        return self.got(client_id)[-1][1]

    def stats(self, transport: str = "webcodecs") -> Any:
        return self.fanout.stats()[transport]

    def settle(self) -> None:
        """Let the worker act on whatever is pending, to check that it did *not* do something."""
        time.sleep(0.2)


@pytest.fixture
def log() -> EncoderLog:
    return EncoderLog()


@pytest.fixture
def harness(log: EncoderLog) -> Iterator[Harness]:
    h = Harness(log)
    yield h
    h.fanout.close()


def make(log: EncoderLog, request: pytest.FixtureRequest, **options: Any) -> Harness:
    h = Harness(log, **options)
    request.addfinalizer(h.fanout.close)
    return h


# ---------------------------------------------------------------- keyframes and deltas


def test_first_payload_is_a_keyframe_then_deltas(harness: Harness) -> None:
    a = harness.join(1)
    harness.publish(1)
    assert harness.wait_count(1, 1) == [(b"I\x01", 1)]
    harness.fanout.ack(a, 1)
    harness.publish(2)
    assert harness.wait_count(1, 2)[1] == (b"P\x02", 2)
    assert harness.log.encodes == 2 and harness.stats().keyframes == 1


def test_encoding_runs_on_the_group_thread(harness: Harness) -> None:
    harness.join(1)
    harness.publish(1)
    harness.wait_count(1, 1)
    assert harness.log.instances[0].thread_names == {"rfb-encode-webcodecs"}


def test_ack_frees_that_seq_and_every_older_one(harness: Harness) -> None:
    a = harness.join(1)
    harness.publish(1)
    harness.wait_count(1, 1)
    harness.publish(2)
    harness.wait_count(1, 2)
    assert set(a.inflight) == {1, 2}
    harness.fanout.ack(a, 2)
    assert not a.inflight


def test_a_full_viewer_is_skipped_and_then_needs_a_keyframe(log: EncoderLog, request: pytest.FixtureRequest) -> None:
    h = make(log, request, max_inflight=1)
    a, b = h.join(1), h.join(2)
    h.publish(1)
    assert h.wait_count(1, 1) == [(b"I\x01", 1)] and h.wait_count(2, 1) == [(b"I\x01", 1)]
    h.fanout.ack(a, 1)  # b never acks frame 1
    h.publish(2)
    assert h.wait_count(1, 2)[1] == (b"P\x02", 2)
    assert b.needs_keyframe and h.got(2) == [(b"I\x01", 1)]
    assert log.encodes == 2
    h.fanout.ack(a, 2)
    h.fanout.ack(b, 1)  # b has room again: the latest frame is re-encoded as an IDR, unprompted
    assert h.wait_count(2, 2)[1] == (b"I\x02", 3)
    assert h.wait_count(1, 3)[2] == (b"I\x02", 3)  # a stays on the chain
    assert h.stats().keyframes_forced == 1 and log.encodes == 3


def test_a_frame_nobody_can_take_is_not_encoded_until_an_ack(log: EncoderLog, request: pytest.FixtureRequest) -> None:
    h = make(log, request, max_inflight=1)
    a = h.join(1)
    h.publish(1)
    h.wait_count(1, 1)
    h.publish(2)
    h.publish(3)
    h.settle()
    assert log.encodes == 1, "frames with no recipient must not be encoded"
    h.fanout.ack(a, 1)
    assert h.wait_count(1, 2)[1] == (b"P\x03", 2)  # latest wins; nothing was missed, so no IDR
    assert h.stats().dropped_before_encode == 1 and h.stats().frames_encoded == 2


def test_forced_keyframes_are_coalesced(log: EncoderLog, request: pytest.FixtureRequest) -> None:
    h = make(log, request, interval=3600.0)
    a, b = h.join(1), h.join(2)
    h.publish(1)
    h.wait_count(1, 1)
    h.wait_count(2, 1)
    h.fanout.ack(a, 1)
    h.fanout.ack(b, 1)
    for marker in range(2, 7):
        h.fanout.request_keyframe(b)  # a viewer asking on every frame must not get an IDR per frame
        h.publish(marker)
        got = h.wait_count(1, marker)
        h.fanout.ack(a, got[-1][1])
    assert [kind[:1] for kind, _ in h.got(1)] == [b"I", b"P", b"P", b"P", b"P", b"P"]
    assert h.got(2) == [(b"I\x01", 1)]
    assert h.stats().keyframes_forced == 0 and log.encodes == 6


def test_a_static_scene_reaches_a_late_joiner(harness: Harness) -> None:
    a = harness.join(1)
    harness.publish(1)
    harness.wait_count(1, 1)
    harness.fanout.ack(a, 1)
    harness.join(2)  # nothing is published after this
    assert harness.wait_count(2, 1) == [(b"I\x01", 2)]
    assert harness.wait_count(1, 2)[1] == (b"I\x01", 2)
    assert harness.published == 1 and harness.log.encodes == 2


def test_a_frame_published_before_the_group_existed_counts_as_encoded_once(harness: Harness) -> None:
    harness.publish(1)  # nobody watches yet: no group, no encode
    a = harness.join(1)
    assert harness.wait_count(1, 1) == [(b"I\x01", 1)]
    harness.fanout.ack(a, 1)
    harness.join(2)  # the same picture again, as an IDR for the joiner: not a new frame
    harness.wait_count(2, 1)
    harness.publish(2)
    harness.wait_count(1, 3)
    stats = harness.stats()
    assert harness.log.encodes == 3 and stats.frames_encoded == 2 and stats.dropped_before_encode == 0


def test_a_late_joiner_gets_its_keyframe_after_the_coalescing_window(
    log: EncoderLog, request: pytest.FixtureRequest
) -> None:
    h = make(log, request, interval=0.3)
    h.join(1)
    h.publish(1)
    h.wait_count(1, 1)
    h.join(2)  # inside the window: served when it ends, with no new frame
    assert h.wait_count(2, 1) == [(b"I\x01", 2)]


def test_a_needy_viewer_rides_along_on_any_idr(harness: Harness) -> None:
    a, b = harness.join(1), harness.join(2)
    harness.publish(1)
    harness.wait_count(2, 1)
    harness.fanout.ack(a, 1)
    harness.fanout.ack(b, 1)
    harness.fanout.request_keyframe(b)
    assert harness.wait_count(2, 2)[1] == (b"I\x01", 2)
    assert harness.stats().keyframes_forced == 1


def test_a_new_size_rekeys_the_group(harness: Harness) -> None:
    a = harness.join(1)
    harness.publish(1)
    harness.wait_count(1, 1)
    harness.fanout.ack(a, 1)
    harness.publish(2, width=32, height=24)
    harness.wait_count(1, 2)
    payload = harness.received[1][1][0]
    assert (payload.keyframe, payload.width, payload.height) == (True, 32, 24)
    first, second = harness.log.instances
    assert first.closed and not second.closed and (second.config.width, second.config.height) == (32, 24)
    assert harness.stats().encoder_builds == 2


def test_an_encoder_error_is_survived_and_the_frame_encoded_again_by_a_rebuilt_encoder(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    a = harness.join(1)
    harness.publish(1)
    harness.wait_count(1, 1)
    harness.fanout.ack(a, 1)
    harness.log.instances[0].fail_on = 5
    harness.publish(5)
    assert harness.wait_count(1, 2)[1] == (b"I\x05", 2), "the picture that failed comes out of the new encoder"
    first, second = harness.log.instances
    assert first.closed and not second.closed and len(harness.log.instances) == 2
    stats = harness.stats()
    assert (stats.encoder_errors, stats.encoder_builds, stats.set_aside) == (1, 2, ())
    assert (
        "failed on a 64x48 cpu frame (RuntimeError: told to fail by the test); rebuilding it for the same picture"
        in caplog.text
    )
    harness.fanout.ack(a, 2)
    harness.publish(6)
    assert harness.wait_count(1, 3)[2] == (b"P\x06", 3)


def test_a_failing_factory_falls_back_to_the_next_route(
    log: EncoderLog, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    routes = {
        "webcodecs": [
            EncoderEntry("bad", log.factory(FakeVideoEncoder, "bad")),
            EncoderEntry("good", log.factory(FakeVideoEncoder, "good")),
        ]
    }
    log.fail_factory.add("bad")
    h = make(log, request, routes=routes)
    h.join(1)
    h.publish(1)
    assert h.wait_count(1, 1) == [(b"I\x01", 1)]
    assert h.stats().encoder == "good" and "encoder bad could not start for 64x48" in caplog.text


def test_no_route_can_start_then_one_can(log: EncoderLog, request: pytest.FixtureRequest) -> None:
    routes = {"webcodecs": [EncoderEntry("bad", log.factory(FakeVideoEncoder, "bad"))]}
    log.fail_factory.add("bad")
    h = make(log, request, routes=routes)
    a = h.join(1)
    h.publish(1)
    h.settle()
    assert h.got(1) == [] and a.needs_keyframe and not a.inflight and a.pending == 0
    log.fail_factory.clear()
    h.publish(2)
    assert h.wait_count(1, 1) == [(b"I\x02", 1)]


class SilentEncoder(FakeImageEncoder):
    """An encoder that outputs nothing (as a buffering encoder might)."""

    def encode(self, frame: Any, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        self.encodes += 1
        return []


def test_an_encoder_that_outputs_nothing_is_not_retried_in_a_loop(
    log: EncoderLog, request: pytest.FixtureRequest
) -> None:
    routes = {"image": [EncoderEntry("silent", log.factory(SilentEncoder, "silent"), transport="image")]}
    h = make(log, request, routes=routes)
    h.join(1, "image")
    h.publish(1)
    wait_until(lambda: log.encodes == 1, what="the first encode")
    h.settle()
    assert log.encodes == 1 and h.got(1) == []
    h.publish(2)
    wait_until(lambda: log.encodes == 2, what="the next frame's encode")


def test_images_are_resent_only_to_viewers_that_need_them(harness: Harness) -> None:
    a = harness.join(1, "image")
    harness.publish(1)
    assert harness.wait_count(1, 1) == [(b"M\x01", 1)]
    harness.fanout.ack(a, 1)
    harness.join(2, "image")
    assert harness.wait_count(2, 1) == [(b"M\x01", 2)]
    harness.settle()
    assert harness.got(1) == [(b"M\x01", 1)]
    assert harness.stats("image").encodes == 2


def test_each_transport_group_encodes_once(harness: Harness) -> None:
    for client_id in (1, 2, 3):
        harness.join(client_id, "webcodecs")
    for client_id in (4, 5):
        harness.join(client_id, "image")
    harness.publish(1)
    for client_id in (1, 2, 3, 4, 5):
        harness.wait_count(client_id, 1)
    stats = harness.fanout.stats()
    assert stats["webcodecs"].encodes == 1 and stats["image"].encodes == 1
    assert (stats["webcodecs"].viewers, stats["image"].viewers) == (3, 2)


def test_an_empty_group_gives_its_encoder_back(harness: Harness) -> None:
    a = harness.join(1)
    harness.publish(1)
    harness.wait_count(1, 1)
    harness.fanout.leave(a)
    wait_until(lambda: harness.log.instances[0].closed, what="the idle encoder to close")


def test_close_stops_every_thread_and_encoder(log: EncoderLog) -> None:
    before = set(threading.enumerate())
    h = Harness(log)
    h.join(1)
    h.join(2, "image")
    h.publish(1)
    h.wait_count(1, 1)
    h.wait_count(2, 1)
    h.fanout.close()
    h.fanout.close()  # idempotent
    assert set(threading.enumerate()) == before
    assert len(log.instances) == 2 and not log.open_instances()
    with pytest.raises(RuntimeError, match="display is closed"):
        h.join(3)


# ---------------------------------------------------------------- latency


def test_a_latency_window_summarises_the_recent_samples_only() -> None:
    window = LatencyWindow(horizon_s=10.0, now=0.0)
    for i in range(20):
        window.add(1.0 + i * 0.1, 0.020 + 0.001 * (i - 10))  # acked at 1.0 .. 2.9 s
    recent = window.summary(1.0, now=3.0)  # acked at 2.0 .. 2.9: 20 .. 29 ms
    assert (recent.frames, recent.fps, recent.median_ms, recent.p95_ms, recent.max_ms) == (10, 10.0, 24.5, 28.55, 29.0)
    assert window.summary(100.0, now=12.5).frames == 5  # the 10 s horizon caps any window
    assert window.total == 20


def test_a_latency_window_is_bounded_and_honest_when_empty() -> None:
    window = LatencyWindow(max_samples=3, now=0.0)
    empty = window.summary(1.0, now=0.5)
    assert (empty.frames, empty.fps, empty.median_ms, empty.p95_ms) == (0, 0.0, None, None)
    for i in range(5):
        window.add(0.1 * i, 0.01)
    joined = window.summary(1.0, now=0.5)
    assert joined.frames == 3 and joined.fps == 6.0  # 3 frames over the 0.5 s since it started
    with pytest.raises(ValueError, match="expected a finite latency >= 0 s, got -1"):
        window.add(1.0, -1)
    with pytest.raises(ValueError, match="expected a positive window, got 0"):
        window.summary(0)


def test_a_drawn_ack_measures_from_publish_to_the_ack(harness: Harness) -> None:
    a = harness.join(1)
    before = time.monotonic()
    harness.publish(1)
    harness.wait_count(1, 1)
    time.sleep(0.05)
    harness.fanout.ack(a, 1)
    after = time.monotonic()
    summary = a.latency.summary(60)
    assert summary.frames == 1 and summary.median_ms is not None
    assert 50 <= summary.median_ms <= (after - before) * 1000


def test_dropped_acks_and_implicitly_freed_seqs_add_no_latency_sample(harness: Harness) -> None:
    a = harness.join(1)
    for marker in (1, 2):
        harness.publish(marker)
        harness.wait_count(1, marker)
    harness.fanout.ack(a, 2, drawn=False)  # frees 1 and 2; neither was shown
    assert not a.inflight and a.latency.summary(60).frames == 0
    harness.publish(3)
    harness.wait_count(1, 3)
    harness.fanout.ack(a, 3)
    harness.fanout.ack(a, 3)  # a duplicate ack counts once
    assert a.latency.summary(60).frames == 1


def test_a_frame_encoded_again_for_a_joiner_starts_its_latency_at_the_re_encode(harness: Harness) -> None:
    a = harness.join(1)
    harness.publish(1)
    harness.wait_count(1, 1)
    published = a.inflight[1]
    harness.fanout.ack(a, 1)
    joined = time.monotonic()
    b = harness.join(2)  # a static scene: frame 1 is encoded again, as an IDR
    ((_, seq),) = harness.wait_count(2, 1)
    assert published < joined <= b.inflight[seq], "a static scene's age is not the joiner's latency"


# ---------------------------------------------------------------- CUDA frames


class RecordingEncoder:
    """Records the frames it is handed, without reading them (they may be device memory)."""

    transport = "webcodecs"

    def __init__(self, config: EncoderConfig, seen: list[RawFrame]) -> None:
        self.name = "recording"
        self.seen = seen

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        self.seen.append(frame)
        return [
            EncodedPayload(
                b"I" + bytes([len(self.seen)]), True, frame.width, frame.height, "webcodecs", codec=TEST_CODEC
            )
        ]

    def flush(self) -> list[EncodedPayload]:
        return []

    def close(self) -> None:
        pass


def cuda_raw_frame(width: int = 64, height: int = 48) -> RawFrame:
    """A cuda RawFrame over host memory: valid to describe, never to dereference."""
    return RawFrame(FakeCudaArray(np.zeros((height, width, 3), np.uint8)), width, height, memory="cuda")


def recording_harness(
    log: EncoderLog, request: pytest.FixtureRequest, *, reads_cuda: bool
) -> tuple[Harness, list[RawFrame]]:
    seen: list[RawFrame] = []
    entry = EncoderEntry("recording", lambda config: RecordingEncoder(config, seen), reads_cuda=reads_cuda)
    h = make(log, request, routes={"webcodecs": [entry]})
    h.join(1)
    return h, seen


def test_a_cuda_reading_route_gets_cuda_frames_as_they_are(log: EncoderLog, request: pytest.FixtureRequest) -> None:
    h, seen = recording_harness(log, request, reads_cuda=True)
    frame = cuda_raw_frame()
    h.store.put(frame)
    h.fanout.wake()
    h.wait_count(1, 1)
    assert seen == [frame] and seen[0].data is frame.data  # no copy, no adapter
    assert h.stats().cuda_frames == 1


def test_a_host_only_route_never_sees_a_cuda_frame(
    log: EncoderLog, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    skip_if_cupy_works()  # with CuPy the adapter would really download this (host) pointer
    h, seen = recording_harness(log, request, reads_cuda=False)
    h.store.put(cuda_raw_frame())
    h.fanout.wake()
    wait_until(lambda: h.stats().set_aside, what="the adapter to fail without CuPy, every time")
    assert seen == [] and "CuPy is not installed" in caplog.text and "64x48 cuda frame" in caplog.text
    h.publish(1)  # host frames still reach the rebuilt encoder (the one route, as a last resort), untouched
    h.wait_count(1, 1)
    assert [f.memory for f in seen] == ["cpu"]


# ---------------------------------------------------------------- real WebSocket viewers


async def acking_reader(client: ProtocolClient, stop: asyncio.Event) -> None:
    """Receive and ack every payload until ``stop`` (a well-behaved viewer)."""
    while not stop.is_set():
        try:
            message = await client.recv(timeout=0.1)
        except TimeoutError:
            continue
        if message.kind in ("video_chunk", "image_frame"):
            await client.ack(message.seq)


def markers(client: ProtocolClient) -> list[int]:
    return [m.payload[1] for m in client.payloads]


@pytest.mark.anyio
@pytest.mark.parametrize("viewers", [1, 8, 32])
async def test_n_viewers_cost_one_encode_per_frame(test_encoders: EncoderLog, viewers: int) -> None:
    display = start_test_display()
    try:
        clients = [await ProtocolClient.connect(display) for _ in range(viewers)]
        await eventually(lambda: len(display.viewers) == viewers, what="every viewer to join")
        stop = asyncio.Event()
        readers = [asyncio.create_task(acking_reader(c, stop)) for c in clients]
        frames = 6
        for marker in range(1, frames + 1):
            display.publish(frame(marker))
            await eventually(
                lambda n=marker: all(len(c.payloads) >= n for c in clients), what=f"frame {marker} everywhere"
            )
        stop.set()
        await asyncio.gather(*readers)
        assert test_encoders.encodes == frames, "N viewers must not cost N encodes"
        reference = [(m.seq, m.keyframe, m.payload) for m in clients[0].payloads]
        assert reference[0][1] and markers(clients[0]) == list(range(1, frames + 1))
        for client in clients[1:]:
            assert [(m.seq, m.keyframe, m.payload) for m in client.payloads] == reference  # one message for all
        assert display.stats.groups["webcodecs"].viewers == viewers
        for client in clients:
            await client.close()
    finally:
        display.close()


@pytest.mark.anyio
async def test_a_viewer_that_never_acks_costs_the_others_nothing(test_encoders: EncoderLog) -> None:
    display = start_test_display(max_inflight=2)
    try:
        fast = [await ProtocolClient.connect(display) for _ in range(8)]
        slow = await ProtocolClient.connect(display)
        await eventually(lambda: len(display.viewers) == 9, what="every viewer to join")
        stop = asyncio.Event()
        readers = [asyncio.create_task(acking_reader(c, stop)) for c in fast]
        frames = 20
        for marker in range(1, frames + 1):
            display.publish(frame(marker))
            await eventually(
                lambda n=marker: all(len(c.payloads) >= n for c in fast), what=f"frame {marker} everywhere"
            )
        stop.set()
        await asyncio.gather(*readers)
        for client in fast:
            assert markers(client) == list(range(1, frames + 1))
        received = []
        while True:
            try:
                received.append(await slow.next_payload(timeout=0.3))
            except TimeoutError:
                break
        assert len(received) == 2 and received[0].keyframe  # its window, then nothing
        assert test_encoders.encodes == frames and display.stats.keyframes_forced == 0
        for client in [*fast, slow]:
            await client.close()
    finally:
        display.close()


@pytest.mark.anyio
async def test_a_late_joiner_starts_on_a_keyframe(display: Any) -> None:
    early = await ProtocolClient.connect(display)
    stop = asyncio.Event()
    reader = asyncio.create_task(acking_reader(early, stop))
    for marker in range(1, 6):
        display.publish(frame(marker))
        await eventually(lambda n=marker: len(early.payloads) >= n, what=f"frame {marker}")
    late = await ProtocolClient.connect(display)  # the scene is static from here on
    first: Received = await late.next_payload()
    assert first.keyframe and first.payload[1] == 5
    assert late.configs[-1]["codec"] == "avc1.42001f"
    stop.set()
    await reader
    assert [m.keyframe for m in early.payloads][:5] == [True, False, False, False, False]
    await early.close()
    await late.close()
