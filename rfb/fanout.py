"""Encode once per published frame per group, and share the bytes with every viewer.

docs/fanout.md has the design and the reasoning; in short:

- One :class:`~rfb.encodegroup.EncodeGroup` per group: a transport and a format
  ("webcodecs" for H.264, "image" for JPEG, "png"), each with its own encoder (built
  for the current frame size) and its own worker thread, so encoding never runs on
  the caller's thread nor on the server's event loop.
- Recipients are chosen *before* encoding, under one lock: a viewer with
  ``max_inflight`` unacked payloads is not a recipient. A frame nobody can take is not
  encoded (it stays pending and is encoded when an ack makes room, unless a newer frame
  replaces it first).
- H.264 frames form a chain: a viewer that misses one payload of its group "needs a
  keyframe" and receives nothing until the group produces an IDR. Forced IDRs are
  coalesced (one per ``keyframe_interval_min``) so that one slow viewer cannot turn
  every frame into an IDR for everybody.
- The binary message (header + payload) is built once per payload, with a display-wide
  ``seq``, and handed to the event loop with ``call_soon_threadsafe``.
- A route that keeps failing (or whose factory hangs) is set aside for its group and
  the next candidate serves (:mod:`rfb.failover`), so a broken route never leaves its
  viewers dark while another one could serve them.
- Each viewer's drawn acks give its latency (from ``publish()`` to the ack's arrival),
  kept per member (:class:`rfb.latency.LatencyWindow`).
- When the scene settles, one lossless still of the last frame is shared by every
  lossy viewer, next to the groups (:mod:`rfb.stills`).
- With adaptation on, an H.264 viewer on a slow link is moved to a cheaper quality
  tier, a group of its own ("webcodecs@1"...) made when its first viewer comes, whose
  encoder is closed when its last one leaves (:mod:`rfb.tiers`, :mod:`rfb.adapt`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

from rfb.adapt import AdaptPolicy
from rfb.encodegroup import Deliver, EncodeGroup, GroupStats, Member
from rfb.encoders.base import EncodedPayload, Transport
from rfb.encoders.registry import EncoderEntry
from rfb.failover import FailoverPolicy
from rfb.framestore import FrameSource
from rfb.protocol import GROUP_TRANSPORTS
from rfb.stills import StillChannel, StillStats
from rfb.tiers import split_key, tier_key

logger = logging.getLogger("rfb.fanout")

__all__ = ["Deliver", "FanOut", "FrameSource", "GroupStats", "Member"]


class FanOut:
    """All encode groups of one display, the shared lock, and the display-wide ``seq``."""

    def __init__(
        self,
        routes: Mapping[str, Sequence[EncoderEntry]],
        *,
        frames: FrameSource,
        post: Callable[[Callable[[], None]], None],
        fps: float = 30.0,
        bitrate: int = 8_000_000,
        device_id: int = 0,
        max_inflight: int = 2,
        keyframe_interval_min: float = 0.25,
        failover: FailoverPolicy | None = None,
        still_after: float | None = None,
        adaptive: AdaptPolicy | None = None,
    ) -> None:
        """``routes``: candidates per group key ("webcodecs", "image", "png"), best first.

        ``failover``: when a group sets a failing route aside, and how long a route may
        take to start (:class:`rfb.failover.FailoverPolicy`; its defaults when None).
        ``still_after``: seconds without a new frame before lossy viewers get a lossless
        still of the last one (:mod:`rfb.stills`); None: only on :meth:`refresh_still`.
        ``adaptive``: H.264 viewers are moved between the quality tiers of its ladder
        (:mod:`rfb.adapt`); None: every viewer gets the full stream.
        """
        if not isinstance(max_inflight, int) or max_inflight < 1:
            raise ValueError(f"max_inflight must be a positive integer, got {max_inflight!r}")
        unknown = [key for key in routes if key not in GROUP_TRANSPORTS]
        if unknown:
            raise ValueError(f"route keys must be drawn from {list(GROUP_TRANSPORTS)}, got {unknown}")
        self.routes = {key: list(c) for key, c in routes.items() if c}
        self.frames = frames
        self._post = post  # runs a callback on the event loop, from any thread
        self.fps, self.bitrate, self.device_id = fps, bitrate, device_id
        self.max_inflight = max_inflight
        self.keyframe_interval_min = keyframe_interval_min
        self.failover = failover or FailoverPolicy()
        self.adaptive = adaptive
        self.lock = threading.Lock()
        self.seq: Iterator[int] = itertools.count(1)
        self._groups: dict[str, EncodeGroup] = {}
        self._closed = False
        self.stills = StillChannel(self, still_after)

    @property
    def groups(self) -> tuple[str, ...]:
        """The group keys a viewer may join."""
        return tuple(self.routes)

    @property
    def transports(self) -> tuple[Transport, ...]:
        """The transports those groups send, each once."""
        return tuple(dict.fromkeys(GROUP_TRANSPORTS[key] for key in self.routes))

    def wake(self) -> None:
        """A frame was published: every group looks at it."""
        for group in list(self._groups.values()):
            group.wake()
        self.stills.wake()

    def join(
        self, client_id: int, key: str, deliver: Deliver, *, wants_stills: bool = True, paced: bool = True
    ) -> Member:
        """Add a viewer to group ``key``; it needs a keyframe, so its group encodes one promptly.

        ``wants_stills=False``: no lossless stills for this member. ``paced=False``: not
        held to ``max_inflight``, so it receives every frame its group encodes (a
        recorder, which must never miss one because its acks are on their way).
        """
        if key not in self.routes:
            raise ValueError(f"no group {key!r} here; groups: {list(self.routes)}")
        member = Member(client_id, key, deliver, wants_stills=wants_stills, paced=paced)
        with self.lock:
            if self._closed:
                raise RuntimeError("display is closed")
            group = self._group(key)
            group.members.append(member)
        group.wake()
        self.stills.wake()
        return member

    def move(self, member: Member, tier: int) -> None:
        """Serve ``member`` from quality tier ``tier`` of its group (0: the full stream).

        It needs a keyframe there, so the first payload it gets from the new tier is an
        IDR; payloads of the old tier still in flight are acked as usual, and one that
        its old group was encoding when it moved is not delivered to it. In a tier of a
        smaller size it gets no lossless stills (they are full size).
        """
        base, _ = split_key(member.group)
        ladder = self.adaptive.ladder if self.adaptive is not None else ()
        if GROUP_TRANSPORTS[base] != "webcodecs" or not 0 <= tier < max(len(ladder), 1):
            raise ValueError(f"no tier {tier} for group {base!r}: tiers are 0..{len(ladder) - 1} of H.264 groups")
        key = tier_key(base, tier)
        with self.lock:
            if self._closed or not member.active or member.group == key:
                return
            old = self._groups.get(member.group)
            if old is not None and member in old.members:
                old.members.remove(member)
            member.group = key
            member.needs_keyframe = True
            # A still is full size: one the viewer of a smaller picture cannot draw, on its slowest link.
            member.wants_stills = member.stills_asked and (ladder[tier].shrink if ladder else 1) == 1
            group = self._group(key)
            group.members.append(member)
        logger.info("viewer %d moved to tier %d (%s group)", member.client_id, tier, key)
        if old is not None:
            old.wake()  # an empty tier closes its encoder
        group.wake()

    def window_full(self, member: Member) -> bool:
        """Whether every in-flight slot of ``member`` is taken (its link is the bottleneck)."""
        with self.lock:
            return not member.has_room(self.max_inflight)

    def _group(self, key: str) -> EncodeGroup:
        """The group of ``key``, started on demand; call with :attr:`lock` held."""
        group = self._groups.get(key)
        if group is None:
            base, tier = split_key(key)
            ladder = self.adaptive.ladder if self.adaptive is not None else ()
            group = self._groups[key] = EncodeGroup(
                self, key, self.routes[base], self.failover, tier=ladder[tier] if tier else None
            )
        return group

    def leave(self, member: Member) -> None:
        with self.lock:
            member.active = False
            group = self._groups.get(member.group)
            if group is not None and member in group.members:
                group.members.remove(member)
        if group is not None:
            group.wake()  # an empty group closes its encoder

    def ack(self, member: Member, seq: int, *, drawn: bool = True) -> None:
        """Acking ``seq`` frees it and every older slot of this viewer.

        A ``drawn`` ack (the viewer showed the frame) adds one latency sample: from
        where the frame's latency started (its publish) to now.
        """
        now = time.monotonic()
        with self.lock:
            started = member.inflight.get(seq)
            before = len(member.inflight)
            member.inflight = {s: t for s, t in member.inflight.items() if s > seq}
            freed = len(member.inflight) < before
        if drawn and started is not None:
            member.latency.add(now, max(0.0, now - started))
        if freed:
            self._wake_group(member)

    def discard(self, member: Member, seq: int) -> None:
        """The viewer could not take ``seq`` after all: free its slot; it needs a keyframe."""
        with self.lock:
            member.inflight.pop(seq, None)
            member.needs_keyframe = True
        self._wake_group(member)

    def members(self) -> list[Member]:
        """Every member of every group; call with :attr:`lock` held."""
        return [m for group in self._groups.values() for m in group.members]

    def refresh_still(self) -> None:
        """Send every lossy viewer a lossless still of the current frame now (rfb.stills)."""
        self.stills.refresh()

    def still_stats(self) -> StillStats:
        return replace(self.stills.stats)

    def request_keyframe(self, member: Member) -> None:
        with self.lock:
            member.needs_keyframe = True
        self._wake_group(member)

    def current_config(self, key: str, size: tuple[int, int]) -> str | None:
        """The codec last produced for ``size`` by group ``key``, if any."""
        group = self._groups.get(key)
        if group is None or (group.stats.width, group.stats.height) != size:
            return None
        return group.codec

    def dispatch(self, batch: list[tuple[Member, EncodedPayload, int, bytes]]) -> None:
        """Hand encoded messages to the event loop (called from a worker thread)."""

        def deliver_all() -> None:
            for member, payload, seq, message in batch:
                if not member.active:
                    continue
                try:
                    member.deliver(payload, seq, message)
                except Exception:  # boundary: one viewer's failure must not starve the rest of the batch
                    logger.exception("delivering seq %d to viewer %d failed", seq, member.client_id)

        try:
            self._post(deliver_all)
        except RuntimeError:  # the loop is closed: the display is shutting down
            logger.debug("dropping %d messages: the event loop is closed", len(batch))

    def stats(self) -> dict[str, GroupStats]:
        """Each running group's counters, by group key."""
        with self.lock:
            return {key: replace(group.stats, viewers=len(group.members)) for key, group in self._groups.items()}

    def encoder_name(self, key: str) -> str | None:
        """The route group ``key`` runs (or would run first); None while none of its routes can start."""
        group = self._groups.get(key)
        if group is not None:
            return group.route_name
        candidates = self.routes.get(key)
        return candidates[0].name if candidates else None

    def close(self, timeout: float = 5.0) -> None:
        """Stop every worker thread; each closes its own encoder on the way out. Idempotent."""
        with self.lock:
            self._closed = True
            groups = list(self._groups.values())
            for group in groups:
                for m in group.members:
                    m.active = False
                group.members.clear()
        for group in groups:
            group.stop(timeout)
        self.stills.stop(timeout)

    def _wake_group(self, member: Member) -> None:
        group = self._groups.get(member.group)
        if group is not None:
            group.wake()
        self.stills.wake()  # room came: a still may be waiting for it
