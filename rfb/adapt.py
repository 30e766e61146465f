"""Which quality tier each H.264 viewer is served from, judged from its own link.

The server sees two things about a viewer's link without any help from the browser:
how late its acks come (publish to drawn ack, rfb.latency) and how many bytes its
sender got onto the socket. A link that cannot carry the stream shows as acks that
come later and later, then as a window that stays full; the fan-out already skips
such a viewer (docs/fanout.md, backpressure), so it stays correct but stutters and
lags. Serving it a cheaper tier (rfb.tiers) makes it smooth again, and costs nobody
else anything: each tier is encoded once, for all the viewers in it.

Moves need *sustained* evidence, judged once per ``tick``:

- A tick is **late** when the median ack delay of the frames drawn in it exceeds
  ``late_frames`` frame intervals (and ``late_min_s``), or when nothing was drawn while
  the window stayed full. ``down_after`` seconds of late ticks in a row move the viewer
  one tier down.
- A tick is **comfortable** when frames were drawn with a median under half that
  bound and the window was not full. ``up_after`` seconds of them in a row (3x
  ``down_after``: hysteresis) move it one tier up. A move up that is followed by a move
  down within ``up_after`` doubles the wait before the next move up (up to
  ``up_after_max``), so a link that can almost carry the tier above does not flap.
- Any other tick (nothing drawn and room in the window: a still scene) is no evidence
  either way: both streaks start again.

A move takes effect at the next keyframe of the new tier: the viewer needs one there,
and gets it like any joiner (a new tier group starts with an IDR).

The bytes per second each viewer's sender writes are measured too, and shown in
``display.viewers``; they say what the link carried (the tier's bitrate, when it keeps
up), not what it could carry, so no move rests on them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rfb.tiers import DEFAULT_LADDER, Tier, check_ladder

if TYPE_CHECKING:
    from rfb.fanout import FanOut, Member


@dataclass(frozen=True)
class AdaptPolicy:
    """The numbers of adaptation (``serve(adaptive=AdaptPolicy(...))``; ``adaptive=True``: these defaults)."""

    ladder: Sequence[Tier] = DEFAULT_LADDER
    tick: float = 0.5  # seconds per judgement
    late_frames: float = 2.0  # a median ack delay beyond this many frame intervals is late
    late_min_s: float = 0.15  # and beyond this: the delay includes the round trip and the encode
    down_after: float = 2.0  # seconds of late ticks before a move down
    up_after: float = 6.0  # seconds of comfortable ticks before a move up
    up_after_max: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ladder", check_ladder(self.ladder))
        for name in ("tick", "late_frames", "down_after", "up_after", "up_after_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"AdaptPolicy.{name} must be a positive number of seconds, got {value!r}")
        if self.late_min_s < 0:
            raise ValueError(f"AdaptPolicy.late_min_s must be >= 0, got {self.late_min_s!r}")
        if self.up_after_max < self.up_after:
            raise ValueError(f"AdaptPolicy.up_after_max ({self.up_after_max}) must be >= up_after ({self.up_after})")

    def late_s(self, fps: float) -> float:
        """The ack delay (median of a tick) beyond which a tick is late, for a stream of ``fps``."""
        return max(self.late_frames / fps, self.late_min_s)


@dataclass(frozen=True, slots=True)
class Tick:
    """What one tick showed of a viewer's link."""

    frames: int  # drawn acks in the tick
    median_s: float | None  # their median publish-to-ack delay
    window_full: bool  # every slot of the in-flight window was taken at the end of the tick


@dataclass
class TierChooser:
    """One viewer's tier, moved on sustained evidence (the rules are in the module docstring)."""

    policy: AdaptPolicy
    fps: float
    tier: int = 0
    _late: float = field(default=0.0, init=False)  # seconds of late ticks in a row
    _comfortable: float = field(default=0.0, init=False)
    _up_after: float = field(default=0.0, init=False)
    _since_up: float | None = field(default=None, init=False)  # since the last move up, until up_after passed

    def __post_init__(self) -> None:
        self._up_after = self.policy.up_after

    @property
    def up_after(self) -> float:
        """The comfortable time needed now before a move up (grows when moves up fail)."""
        return self._up_after

    def observe(self, tick: Tick) -> int:
        """Judge one tick; return the tier to serve from now (the same, or one step away)."""
        policy = self.policy
        step = policy.tick
        if self._since_up is not None:
            self._since_up += step
            if self._since_up > self._up_after:
                self._since_up = None
        bound = policy.late_s(self.fps)
        if (tick.median_s is not None and tick.median_s > bound) or (tick.frames == 0 and tick.window_full):
            self._late += step
            self._comfortable = 0.0
        elif tick.median_s is not None and tick.median_s < bound / 2 and not tick.window_full:
            self._comfortable += step
            self._late = 0.0
        else:
            self._late = self._comfortable = 0.0
        if self._late >= policy.down_after - 1e-9 and self.tier < len(policy.ladder) - 1:
            if self._since_up is not None:  # the tier above could not be held: wait longer next time
                self._up_after = min(self._up_after * 2, policy.up_after_max)
            self._move(self.tier + 1)
            self._since_up = None
        elif self._comfortable >= self._up_after - 1e-9 and self.tier > 0:
            self._move(self.tier - 1)
            self._since_up = 0.0
        return self.tier

    def _move(self, tier: int) -> None:
        self.tier = tier
        self._late = self._comfortable = 0.0


async def adapt(
    fanout: FanOut,
    member: Member,
    policy: AdaptPolicy,
    sent_bytes: Callable[[], int],
    throughput: Callable[[float], None],
) -> None:
    """Judge ``member``'s link every tick and move it between tiers; runs until cancelled.

    ``sent_bytes``: bytes its sender has written so far; ``throughput`` is told the
    bytes per second of each tick (what ``display.viewers`` shows).
    """
    chooser = TierChooser(policy, fanout.fps, tier=member.tier)
    before = sent_bytes()
    while member.active:
        await asyncio.sleep(policy.tick)
        now_sent = sent_bytes()
        throughput((now_sent - before) / policy.tick)
        before = now_sent
        summary = member.latency.summary(policy.tick)
        median = summary.median_ms / 1000.0 if summary.median_ms is not None else None
        tier = chooser.observe(Tick(summary.frames, median, fanout.window_full(member)))
        if tier != member.tier:
            fanout.move(member, tier)
