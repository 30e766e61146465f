"""Quality tiers of the H.264 stream: the same picture at lower bitrate, frame rate, then size.

A viewer on a slow link is served from a lower tier instead of stalling the chain;
each tier is a fan-out group of its own ("webcodecs", "webcodecs@1", "webcodecs@2"...),
with its own encoder, so that a frame costs one encode per tier in use whatever the
number of viewers, and the top tier ("webcodecs" itself) is exactly what it would be
without tiers. Tier groups are created when a viewer is first moved there and close
their encoder when their last viewer leaves, like any group (rfb.fanout). Which viewer goes where is
rfb.adapt's business.

The ladder steps down bitrate first (cheap: the same frames, smaller), then frame rate
(the tier's encoder takes every Nth new frame), then resolution (the frame is scaled
down on the host by whole-pixel box averaging, to an even size every H.264 route
takes). CUDA frames are not scaled: a resolution tier encodes them at full size, at
its bitrate and frame rate (scaling on the GPU is not done).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

from rfb.encoders.checks import video_size_problem
from rfb.events import InputEvent
from rfb.frames import RawFrame
from rfb.stills import host_rgb

SEPARATOR = "@"


@dataclass(frozen=True, slots=True)
class Tier:
    """One rung: a share of the display's bitrate, a frame-rate divider, a size divider.

    ``bitrate``: fraction of ``serve(bitrate=...)`` (0 < b <= 1). ``every``: the tier
    encodes every Nth new frame (1: all). ``shrink``: width and height are divided by
    this whole number (1: full size).
    """

    bitrate: float = 1.0
    every: int = 1
    shrink: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.bitrate <= 1:
            raise ValueError(f"tier bitrate must be a fraction in (0, 1], got {self.bitrate!r}")
        for name in ("every", "shrink"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"tier {name} must be a positive integer, got {value!r}")

    def size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The encoded size for frames of ``size``: divided, rounded down to even; ``size`` when too small."""
        if self.shrink == 1:
            return size
        width, height = (size[0] // self.shrink) // 2 * 2, (size[1] // self.shrink) // 2 * 2
        if video_size_problem(width, height) is not None:
            return size
        return width, height

    def frame_size(self, frame: RawFrame) -> tuple[int, int]:
        """The size ``frame`` is encoded at: :meth:`size` for host frames; CUDA frames are not scaled."""
        return self.size(frame.size) if frame.memory == "cpu" else frame.size

    def scale(self, frame: RawFrame) -> RawFrame:
        """``frame`` at :meth:`frame_size` (a new host frame), or ``frame`` itself when nothing changes."""
        width, height = self.frame_size(frame)
        if (width, height) == frame.size:
            return frame
        data = host_rgb(frame)  # rgb24 as it is; rgba8, pitched and nv12 frames as RGB
        n = self.shrink
        block = data[: height * n, : width * n].reshape(height, n, width, n, 3)
        small = block.mean(axis=(1, 3), dtype=np.float32)
        out = np.ascontiguousarray(np.rint(small).astype(np.uint8))
        return RawFrame(out, width, height, "rgb24", timestamp_us=frame.timestamp_us)


DEFAULT_LADDER: tuple[Tier, ...] = (
    Tier(),  # the display's own settings: what a fast viewer gets
    Tier(bitrate=0.35),
    Tier(bitrate=0.15, every=2),
    Tier(bitrate=0.06, every=2, shrink=2),
)


def check_ladder(ladder: Sequence[Tier]) -> tuple[Tier, ...]:
    """A ladder starts at the full stream and never gets dearer going down."""
    ladder = tuple(ladder)
    if not ladder or ladder[0] != Tier():
        raise ValueError(f"a tier ladder starts with Tier() (the full stream), got {ladder[:1]!r}")
    for upper, lower in pairwise(ladder):
        if lower.bitrate > upper.bitrate or lower.every < upper.every or lower.shrink < upper.shrink:
            raise ValueError(f"each tier must cost at most the one above it, got {lower!r} below {upper!r}")
    return ladder


def tier_key(base: str, index: int) -> str:
    """The group key of tier ``index`` of group ``base``: the base itself for the top tier."""
    return base if index == 0 else f"{base}{SEPARATOR}{index}"


def split_key(key: str) -> tuple[str, int]:
    """``(base group, tier index)`` of a group key."""
    base, sep, index = key.partition(SEPARATOR)
    if not sep:
        return key, 0
    if not index.isdigit() or int(index) < 1:
        raise ValueError(f"expected a group key like 'webcodecs@1', got {key!r}")
    return base, int(index)


def with_tier(frame: RawFrame, tier: Tier) -> RawFrame:
    """``frame`` as ``tier`` encodes it (scaled, keeping its timestamp)."""
    scaled = tier.scale(frame)
    return scaled if scaled is frame else replace(scaled, timestamp_us=frame.timestamp_us)


def to_display(event: InputEvent, stream: tuple[int, int], display: tuple[int, int]) -> InputEvent:
    """A pointer event of a viewer shown ``stream``-sized frames, in the display's frame pixels."""
    if event.x is None or event.y is None or stream == display:
        return event
    return replace(event, x=event.x * display[0] / stream[0], y=event.y * display[1] / stream[1])
