"""Quality tiers (rfb.tiers) and the policy that moves viewers between them (rfb.adapt).

The policy is driven tick by tick (no clock); the tiers run in a real FanOut with the
test encoders, whose payloads name the frame they encoded and its size.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from rfb.adapt import AdaptPolicy, Tick, TierChooser
from rfb.events import InputEvent
from rfb.fanout import FanOut
from rfb.frames import RawFrame, frame_from_array
from rfb.tiers import DEFAULT_LADDER, Tier, check_ladder, split_key, tier_key, to_display
from tests.conftest import EncoderLog, ProtocolClient, eventually, start_test_display, wait_until
from tests.test_fanout import Harness

pytestmark = pytest.mark.timeout(60)

LATE = Tick(frames=10, median_s=0.5, window_full=True)
COMFORTABLE = Tick(frames=30, median_s=0.01, window_full=False)
STILL = Tick(frames=0, median_s=None, window_full=False)


# ---------------------------------------------------------------- the policy


def chooser(**options: Any) -> TierChooser:
    return TierChooser(AdaptPolicy(**options), fps=30.0)


def feed(c: TierChooser, tick: Tick, seconds: float) -> list[int]:
    return [c.observe(tick) for _ in range(round(seconds / c.policy.tick))]


def test_sustained_late_acks_move_one_tier_down_after_down_after() -> None:
    c = chooser()
    tiers = feed(c, LATE, 2.0)
    assert tiers == [0, 0, 0, 1]  # four ticks of 0.5 s: down on the fourth
    assert feed(c, LATE, 2.0) == [1, 1, 1, 2]


def test_a_late_spell_shorter_than_down_after_moves_nothing() -> None:
    c = chooser()
    for _ in range(10):
        feed(c, LATE, 1.5)
        feed(c, COMFORTABLE, 0.5)
    assert c.tier == 0


def test_a_full_window_with_nothing_drawn_is_late_too() -> None:
    c = chooser()
    assert feed(c, Tick(frames=0, median_s=None, window_full=True), 2.0)[-1] == 1


def test_moving_up_takes_three_times_as_long_as_moving_down() -> None:
    c = chooser(down_after=2.0, up_after=6.0)
    feed(c, LATE, 2.0)
    assert c.tier == 1
    assert feed(c, COMFORTABLE, 5.5)[-1] == 1
    assert c.observe(COMFORTABLE) == 0


def test_a_still_scene_is_no_evidence_and_restarts_both_streaks() -> None:
    c = chooser()
    feed(c, LATE, 1.5)
    c.observe(STILL)
    assert feed(c, LATE, 1.5)[-1] == 0
    c = chooser()
    feed(c, LATE, 2.0)
    feed(c, COMFORTABLE, 5.5)
    c.observe(STILL)
    assert feed(c, COMFORTABLE, 5.5)[-1] == 1


def test_a_median_between_comfortable_and_late_holds_the_tier() -> None:
    c = chooser()
    feed(c, LATE, 2.0)
    bound = c.policy.late_s(30.0)
    assert feed(c, Tick(frames=30, median_s=bound * 0.75, window_full=False), 30.0)[-1] == 1


def test_a_move_up_that_cannot_be_held_doubles_the_wait_before_the_next() -> None:
    c = chooser(down_after=2.0, up_after=6.0, up_after_max=20.0)
    feed(c, LATE, 2.0)
    feed(c, COMFORTABLE, 6.0)
    assert c.tier == 0
    feed(c, LATE, 2.0)  # the upper tier failed at once
    assert c.tier == 1 and c.up_after == 12.0
    assert feed(c, COMFORTABLE, 11.5)[-1] == 1
    assert c.observe(COMFORTABLE) == 0
    feed(c, LATE, 2.0)
    feed(c, COMFORTABLE, 24.0)
    assert c.up_after == 20.0  # capped at up_after_max


def test_the_tier_stays_within_the_ladder() -> None:
    c = chooser()
    feed(c, LATE, 60.0)
    assert c.tier == len(DEFAULT_LADDER) - 1
    feed(c, COMFORTABLE, 600.0)
    assert c.tier == 0


def test_the_late_bound_is_frame_intervals_with_a_floor() -> None:
    policy = AdaptPolicy()
    assert policy.late_s(10.0) == pytest.approx(0.2)
    assert policy.late_s(60.0) == pytest.approx(0.15)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"tick": 0}, "tick must be a positive"),
        ({"down_after": -1}, "down_after must be a positive"),
        ({"up_after": 10.0, "up_after_max": 5.0}, "up_after_max"),
        ({"late_min_s": -0.1}, "late_min_s must be >= 0"),
        ({"ladder": ()}, "starts with Tier()"),
        ({"ladder": (Tier(), Tier(bitrate=0.5), Tier(bitrate=0.7))}, "must cost at most"),
    ],
)
def test_policy_refuses_what_cannot_work(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdaptPolicy(**options)


# ---------------------------------------------------------------- tiers


def test_group_keys_name_base_and_tier() -> None:
    assert tier_key("webcodecs", 0) == "webcodecs"
    assert tier_key("webcodecs", 2) == "webcodecs@2"
    assert split_key("webcodecs@2") == ("webcodecs", 2)
    assert split_key("png") == ("png", 0)
    with pytest.raises(ValueError, match="like 'webcodecs@1'"):
        split_key("webcodecs@x")


def test_a_resolution_tier_gives_even_sizes_and_never_too_small_ones() -> None:
    half = Tier(shrink=2)
    assert half.size((1280, 720)) == (640, 360)
    assert half.size((1278, 718)) == (638, 358)
    assert half.size((642, 362)) == (320, 180)  # 321x181 rounded down to even
    assert half.size((4, 6)) == (4, 6)  # 2x3 would be below H.264's minimum: not scaled
    assert Tier().size((641, 480)) == (641, 480)


@pytest.mark.parametrize("pixel_format", ["rgb24", "rgba8"])
def test_scaling_averages_each_block(pixel_format: str) -> None:
    rng = np.random.default_rng(1)
    channels = 3 if pixel_format == "rgb24" else 4
    data = rng.integers(0, 256, (8, 12, channels), dtype=np.uint8)
    frame = RawFrame(data, 12, 8, pixel_format, timestamp_us=77)  # type: ignore[arg-type]
    small = Tier(shrink=2).scale(frame)
    expected = data[..., :3].astype(np.float64).reshape(4, 2, 6, 2, 3).mean(axis=(1, 3))
    assert (small.width, small.height, small.pixel_format, small.timestamp_us) == (6, 4, "rgb24", 77)
    assert np.abs(small.data.astype(np.float64) - expected).max() <= 0.5


def test_a_full_size_tier_passes_the_frame_through() -> None:
    frame = frame_from_array(np.zeros((8, 12, 3), np.uint8))
    assert Tier(bitrate=0.2, every=3).scale(frame) is frame


def test_ladders_are_checked() -> None:
    assert check_ladder(DEFAULT_LADDER) == DEFAULT_LADDER
    with pytest.raises(ValueError, match="every must be a positive integer"):
        Tier(every=0)
    with pytest.raises(ValueError, match=r"bitrate must be a fraction in \(0, 1\]"):
        Tier(bitrate=1.5)


def test_pointer_events_of_a_smaller_stream_land_in_display_pixels() -> None:
    event = InputEvent("pointermove", 1, x=100.0, y=50.0)
    assert to_display(event, (640, 360), (1280, 720)) == replace(event, x=200.0, y=100.0)
    key = InputEvent("keydown", 1, key="a")
    assert to_display(key, (640, 360), (1280, 720)) is key
    assert to_display(event, (1280, 720), (1280, 720)) is event


# ---------------------------------------------------------------- tiers in the fan-out

LADDER = (Tier(), Tier(bitrate=0.5), Tier(bitrate=0.25, every=2, shrink=2))


class TierHarness(Harness):
    """The fan-out harness on an adaptive fan-out; frames are uniform (scaling keeps their marker)."""

    def __init__(self, log: EncoderLog, policy: AdaptPolicy) -> None:
        super().__init__(log)
        self.fanout.close()
        self.fanout = FanOut(
            self.routes,
            frames=self.store,
            post=lambda callback: callback(),
            keyframe_interval_min=0.0,
            fps=30.0,
            bitrate=8_000_000,
            adaptive=policy,
        )

    def publish(self, marker: int, width: int = 64, height: int = 48) -> None:
        raw = frame_from_array(np.full((height, width, 3), marker, np.uint8))
        self.store.put(replace(raw, timestamp_us=time.monotonic_ns() // 1000))
        self.published += 1
        self.fanout.wake()

    def sizes(self, client_id: int) -> list[tuple[bytes, int, int]]:
        with self._lock:
            return [(p.data[:2], p.width, p.height) for p, _ in self.received[client_id]]


@pytest.fixture
def log() -> EncoderLog:
    return EncoderLog()


@pytest.fixture
def tiers(log: EncoderLog) -> Any:
    h = TierHarness(log, AdaptPolicy(ladder=LADDER))
    yield h
    h.fanout.close()


def acking(h: TierHarness, member: Any, client_id: int, n: int) -> None:
    """Wait for ``n`` payloads to viewer ``client_id``, acking each."""
    wait_until(lambda: len(h.got(client_id)) >= n, what=f"{n} payloads for viewer {client_id}")
    for _, seq in h.got(client_id):
        h.fanout.ack(member, seq)


def test_a_moved_viewer_gets_its_tier_from_a_keyframe_and_the_others_keep_the_full_stream(
    tiers: TierHarness, log: EncoderLog
) -> None:
    fast, slow = tiers.join(1), tiers.join(2)
    tiers.publish(10)
    acking(tiers, fast, 1, 1)
    acking(tiers, slow, 2, 1)
    tiers.fanout.move(slow, 2)
    assert (slow.group, slow.tier, slow.needs_keyframe) == ("webcodecs@2", 2, True)
    tiers.publish(20)
    acking(tiers, fast, 1, 2)
    wait_until(lambda: (b"\x14", 32, 24) in [(d[1:], w, h) for d, w, h in tiers.sizes(2)], what="picture 20 in tier 2")
    assert tiers.sizes(1) == [(b"I\x0a", 64, 48), (b"P\x14", 64, 48)]  # untouched by the move
    # The new tier starts with an IDR: of picture 20, or of picture 10 (the current one
    # when its encoder woke for the moved viewer, before 20 was published), then P 20.
    assert tiers.sizes(2) in (
        [(b"I\x0a", 64, 48), (b"I\x14", 32, 24)],
        [(b"I\x0a", 64, 48), (b"I\x0a", 32, 24), (b"P\x14", 32, 24)],
    ), tiers.sizes(2)
    configs = {e.name: [] for e in log.instances}
    for encoder in log.instances:
        configs[encoder.name].append(
            (encoder.config.width, encoder.config.height, encoder.config.bitrate, encoder.config.fps)
        )
    assert configs["test-h264"] == [(64, 48, 8_000_000, 30.0), (32, 24, 2_000_000, 15.0)]
    stats = tiers.fanout.stats()
    assert (stats["webcodecs@2"].tier, stats["webcodecs@2"].viewers, stats["webcodecs"].viewers) == (2, 1, 1)
    assert (stats["webcodecs@2"].bitrate, stats["webcodecs@2"].width) == (2_000_000, 32)


def test_each_tier_encodes_once_per_frame_whatever_its_viewers(tiers: TierHarness) -> None:
    members = {i: tiers.join(i) for i in range(1, 7)}
    for i in (3, 4):
        tiers.fanout.move(members[i], 1)
    for i in (5, 6):
        tiers.fanout.move(members[i], 2)
    for n in range(1, 9):
        tiers.publish(n)
        for i, m in members.items():
            acking(tiers, m, i, 1)
        time.sleep(0.05)
        for i, m in members.items():
            for _, seq in tiers.got(i):
                tiers.fanout.ack(m, seq)
    stats = tiers.fanout.stats()
    for key in ("webcodecs", "webcodecs@1", "webcodecs@2"):
        assert stats[key].encodes <= tiers.published, (key, stats[key])
        assert stats[key].viewers == 2
    # Viewers of one tier got the very same payloads.
    assert tiers.got(5) == tiers.got(6) and tiers.got(3) == tiers.got(4)


def test_a_frame_rate_tier_skips_frames_yet_encodes_the_last_one(tiers: TierHarness) -> None:
    viewer = tiers.join(1)
    tiers.fanout.move(viewer, 2)  # every 2nd frame at 30 fps
    tiers.publish(1)
    acking(tiers, viewer, 1, 1)
    for n in range(2, 12):  # faster than the tier's 15 fps
        tiers.publish(n)
        time.sleep(0.005)
        for _, seq in tiers.got(1):
            tiers.fanout.ack(viewer, seq)
    wait_until(lambda: tiers.got(1)[-1][0] == b"P\x0b", what="the last frame, after its interval")
    stats = tiers.fanout.stats()["webcodecs@2"]
    assert stats.frames_encoded < tiers.published
    assert stats.dropped_before_encode >= 1


def test_a_payload_encoded_for_the_old_tier_is_not_delivered_after_a_move(tiers: TierHarness) -> None:
    viewer = tiers.join(1)
    tiers.publish(1)
    acking(tiers, viewer, 1, 1)
    group = tiers.fanout._groups["webcodecs"]
    original = group._execute

    def move_during_encode(job: Any) -> None:
        if job.version == 2:
            tiers.fanout.move(viewer, 2)
        original(job)

    group._execute = move_during_encode  # type: ignore[method-assign]
    with tiers.fanout.lock:  # the old tier's next encode is an IDR of frame 2, a payload the viewer could take
        viewer.needs_keyframe = True
        tiers.publish(2)
    wait_until(lambda: len(tiers.got(1)) >= 2, what="the new tier's keyframe")
    tiers.settle()
    assert tiers.sizes(1) == [(b"I\x01", 64, 48), (b"I\x02", 32, 24)]  # nothing more from the old tier


def test_an_emptied_tier_closes_its_encoder(tiers: TierHarness, log: EncoderLog) -> None:
    viewer = tiers.join(1)
    tiers.publish(1)
    acking(tiers, viewer, 1, 1)
    tiers.fanout.move(viewer, 1)
    acking(tiers, viewer, 1, 2)
    tiers.fanout.move(viewer, 0)
    acking(tiers, viewer, 1, 3)
    assert [kind for kind, _ in tiers.got(1)] == [b"I\x01", b"I\x01", b"I\x01"]
    wait_until(lambda: len(log.open_instances()) == 1, what="the tier's encoder to close")
    assert tiers.fanout.stats()["webcodecs"].encoder_builds == 2  # it was empty while the viewer was away


def test_a_viewer_of_a_smaller_tier_gets_no_full_size_stills(tiers: TierHarness) -> None:
    viewer = tiers.join(1)
    quiet = tiers.fanout.join(2, "webcodecs", lambda *_: None, wants_stills=False)
    tiers.fanout.move(viewer, 1)
    tiers.fanout.move(quiet, 1)
    assert viewer.wants_stills and not quiet.wants_stills  # same size: as asked
    tiers.fanout.move(viewer, 2)
    tiers.fanout.move(quiet, 2)
    assert not viewer.wants_stills and not quiet.wants_stills
    tiers.fanout.move(viewer, 0)
    tiers.fanout.move(quiet, 0)
    assert viewer.wants_stills and not quiet.wants_stills


def test_only_h264_viewers_have_tiers(tiers: TierHarness) -> None:
    viewer = tiers.join(1, "image")
    with pytest.raises(ValueError, match="tiers are 0..2 of H.264 groups"):
        tiers.fanout.move(viewer, 1)
    h264 = tiers.join(2)
    with pytest.raises(ValueError, match="no tier 3"):
        tiers.fanout.move(h264, 3)


# ---------------------------------------------------------------- a viewer of a display


@pytest.mark.anyio
async def test_a_viewer_moved_to_a_smaller_tier_is_reconfigured_and_points_in_display_pixels(
    test_encoders: EncoderLog,
) -> None:
    display = start_test_display(64, 48, adaptive=AdaptPolicy(ladder=LADDER), still_after=None)
    try:
        client = await ProtocolClient.connect(display)
        await eventually(lambda: len(display.viewers) == 1, what="the viewer to join")
        display.publish(np.full((48, 64, 3), 10, np.uint8))
        first = await client.next_payload()
        await client.ack(first.seq, decode_ms=1.0)
        member = next(iter(display._registry._viewers.values())).member
        display._fanout.move(member, 2)
        display.publish(np.full((48, 64, 3), 20, np.uint8))
        second = await client.next_payload()
        assert (second.header["width"], second.header["height"], second.header["keyframe"]) == (32, 24, True)
        assert client.configs[-1]["width"] == 32 and client.configs[-1]["height"] == 24
        (info,) = display.viewers
        assert (info.group, info.tier) == ("webcodecs@2", 2)
        assert display.stats.groups["webcodecs@2"].viewers == 1
        await client.event(type="pointermove", x=16, y=12, buttons=0)
        events = await eventually(display.poll_events, what="the pointer event")
        assert (events[0].x, events[0].y) == (32.0, 24.0)  # the middle of the 32x24 stream is the display's
        await client.close()
    finally:
        display.close()
    assert len(test_encoders.instances) == 2 and not test_encoders.open_instances()  # each tier's encoder closed


@pytest.mark.gpu
@pytest.mark.anyio
@pytest.mark.parametrize("gpu", [False, True], ids=["host-route", "gpu-route"])
async def test_cuda_frames_in_a_resolution_tier_are_encoded_at_full_size_at_the_tier_bitrate(gpu: bool) -> None:
    """CUDA frames are not scaled (documented): the tier changes bitrate and frame rate only."""
    from rfb.benchmark.metrics import H264Decoder
    from rfb.launch import start
    from tests.gpu import require_cupy

    cp = require_cupy()
    display = start(
        256,
        144,
        host="127.0.0.1",
        port=0,
        gpu=gpu,
        image_encoder=None,
        still_after=None,
        bitrate=4_000_000,
        keyframe_interval_min=0.0,
        adaptive=AdaptPolicy(ladder=LADDER),
    )
    try:
        client = await ProtocolClient.connect(display)
        await eventually(lambda: len(display.viewers) == 1, what="the viewer to join")
        display.publish(cp.full((144, 256, 3), 60, cp.uint8))
        first = await client.next_payload(timeout=20)
        await client.ack(first.seq, decode_ms=1.0)
        member = next(iter(display._registry._viewers.values())).member
        display._fanout.move(member, 2)
        display.publish(cp.full((144, 256, 3), 120, cp.uint8))
        second = await client.next_payload(timeout=20)
        assert (second.header["width"], second.header["height"], second.header["keyframe"]) == (256, 144, True)
        # The tier starts with a keyframe of the picture current when the viewer moved: 60
        # if its encoder woke before the publish (seen on the H200), else 120; 120 follows.
        means: list[int] = []
        payload = second
        with H264Decoder() as decoder:
            for _ in range(4):
                (picture,) = decoder.decode(payload.payload)
                assert picture.shape == (144, 256, 3)
                means.append(round(float(picture.mean())))
                if abs(means[-1] - 120) < 8:
                    break
                await client.ack(payload.seq, decode_ms=1.0)
                payload = await client.next_payload(timeout=20)
        assert abs(means[-1] - 120) < 8 and all(abs(m - 60) < 8 for m in means[:-1]), means
        stats = display.stats.groups["webcodecs@2"]
        assert (stats.bitrate, stats.width, stats.cuda_frames >= 1) == (1_000_000, 256, True)
        await client.close()
    finally:
        display.close()
