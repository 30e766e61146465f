"""Encode once per published frame per transport group, and share the bytes with every viewer.

docs/fanout.md has the design and the reasoning; in short:

- One :class:`EncodeGroup` per transport ("webcodecs", "image"), each with its own
  encoder (built for the current frame size) and its own worker thread, so encoding
  never runs on the caller's thread nor on the server's event loop.
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
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from rfb.encoders.base import EncodedPayload, EncoderBackend, EncoderConfig, Transport
from rfb.encoders.registry import EncoderEntry
from rfb.frames import RawFrame
from rfb.protocol import pack_payload, payload_header

logger = logging.getLogger("rfb.fanout")

Deliver = Callable[[EncodedPayload, int, bytes], None]  # (payload, seq, message), on the event loop


class FrameSource(Protocol):
    """Where groups read the latest published frame (rfb.display.FrameStore)."""

    def take(self) -> tuple[RawFrame, int] | None:
        """The latest frame and its version, leased until :meth:`release`; None before any publish."""

    def release(self, frame: RawFrame) -> None: ...

    @property
    def version(self) -> int: ...


@dataclass(eq=False)
class Member:
    """One viewer as the fan-out sees it. Mutable fields are guarded by the FanOut lock."""

    client_id: int
    transport: Transport
    deliver: Deliver
    inflight: set[int] = field(default_factory=set)  # seqs handed out and not acked yet
    pending: int = 0  # slots reserved for an encode in progress
    needs_keyframe: bool = True
    active: bool = True
    delivered: int = 0

    def has_room(self, max_inflight: int) -> bool:
        return len(self.inflight) + self.pending < max_inflight


@dataclass
class GroupStats:
    """Counters of one group; ``encodes`` counts encoder calls, IDR re-encodes included."""

    transport: Transport
    encoder: str | None = None
    width: int = 0
    height: int = 0
    viewers: int = 0
    encodes: int = 0
    frames_encoded: int = 0
    payloads: int = 0
    keyframes: int = 0
    keyframes_forced: int = 0
    dropped_before_encode: int = 0
    encoder_errors: int = 0
    encoder_builds: int = 0


@dataclass
class _Job:
    frame: RawFrame
    version: int
    new: bool
    force: bool
    fresh: bool
    targets: list[Member]
    missed: list[Member]


class EncodeGroup:
    """Viewers sharing one transport, one encoder and one worker thread."""

    def __init__(self, fanout: FanOut, transport: Transport, candidates: Sequence[EncoderEntry]) -> None:
        self._fanout = fanout
        self.transport = transport
        self.chained = transport == "webcodecs"  # H.264 payloads depend on earlier ones
        self._candidates = list(candidates)
        self.members: list[Member] = []
        self.stats = GroupStats(transport)
        self.codec: str | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._encoder: EncoderBackend | None = None  # touched only by the worker thread
        self._encoder_size: tuple[int, int] | None = None
        self._done_version = fanout.frames.version  # frames before the group existed are not ours
        self._encoded_version = self._done_version
        self._stuck_version = -1  # a frame that broke the encoder or produced nothing: not retried
        self._last_idr = -math.inf
        self._thread = threading.Thread(target=self._run, name=f"rfb-encode-{transport}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("encode thread %s did not stop within %.1f s", self._thread.name, timeout)

    # ------------------------------------------------------------ worker thread

    def _run(self) -> None:
        timeout: float | None = None
        try:
            while True:
                self._wake.wait(timeout)
                self._wake.clear()
                if self._stopping:
                    return
                timeout = self._work()
        finally:
            self._close_encoder()

    def _work(self) -> float | None:
        """Encode until there is nothing to do; return how long to sleep (None: until woken)."""
        while not self._stopping:
            job = self._plan()
            if not isinstance(job, _Job):
                if not self.members:
                    self._close_encoder()  # nobody watches: give the encoder (an NVENC session) back
                return job
            self._execute(job)
        return None

    def _plan(self) -> _Job | float | None:
        """Under the lock: decide whether to encode, with which recipients, forcing an IDR or not."""
        fanout = self._fanout
        with fanout.lock:
            if not self.members:
                return None
            latest = fanout.frames.take()
            if latest is None:
                return None
            frame, version = latest
            if version == self._stuck_version:
                fanout.frames.release(frame)
                return None  # retrying cannot help (and must not spin): wait for the next frame
            new = version != self._done_version
            fresh = self._encoder is None or self._encoder_size != frame.size
            eligible = [m for m in self.members if m.has_room(fanout.max_inflight)]
            needy = [m for m in eligible if m.needs_keyframe]
            wait = self._last_idr + fanout.keyframe_interval_min - time.monotonic()
            force = fresh  # a new encoder starts with an IDR anyway
            if self.chained:
                force = fresh or (bool(needy) and wait <= 0)
                if force:
                    recipients = eligible
                elif new:
                    recipients = [m for m in eligible if not m.needs_keyframe]
                else:
                    recipients = []
            else:
                recipients = eligible if new else needy
            if not recipients:
                fanout.frames.release(frame)
                # A new frame stays pending: an ack wakes us and it is encoded then.
                return wait if self.chained and needy and wait > 0 else None
            # Needy viewers ride along when the encoder happens to emit an IDR anyway.
            targets = recipients + [m for m in needy if m not in recipients] if self.chained else recipients
            for m in targets:
                m.pending += 1
            if force:
                self._last_idr = time.monotonic()  # coalesce attempts too, even if no IDR comes out
            if self.chained:
                missed = [m for m in self.members if m not in targets]
            else:
                missed = [m for m in self.members if m not in targets and new and not m.has_room(fanout.max_inflight)]
            return _Job(frame, version, new, force, fresh, targets, missed)

    def _execute(self, job: _Job) -> None:
        fanout = self._fanout
        payloads: list[EncodedPayload] = []
        try:
            if job.fresh:
                self._rebuild(job.frame.size)
            if self._encoder is not None:
                payloads = self._encode(job)
        finally:
            fanout.frames.release(job.frame)
        messages = []
        for payload in payloads:
            seq = next(fanout.seq)
            header = payload_header(payload, seq=seq, timestamp_us=job.frame.timestamp_us or 0)
            messages.append((payload, seq, pack_payload(header, payload.data)))
        now = time.monotonic()
        batch: list[tuple[Member, EncodedPayload, int, bytes]] = []
        with fanout.lock:
            for m in job.targets:
                m.pending -= 1
            if self._encoder is None:  # no encoder: the chain is broken for everybody
                self._stuck_version = job.version
                for m in self.members:
                    m.needs_keyframe = True
                return
            self._done_version = job.version
            if not messages:
                self._stuck_version = job.version
            for m in job.missed if messages else ():
                if m.active:
                    m.needs_keyframe = True
            for payload, seq, message in messages:
                self._count(payload, now)
                for m in job.targets:
                    if not m.active or (m.needs_keyframe and not payload.keyframe):
                        continue
                    m.needs_keyframe = False
                    m.inflight.add(seq)
                    m.delivered += 1
                    batch.append((m, payload, seq, message))
        if batch:
            fanout.dispatch(batch)

    def _encode(self, job: _Job) -> list[EncodedPayload]:
        assert self._encoder is not None
        stats = self.stats
        try:
            payloads = self._encoder.encode(job.frame, force_keyframe=job.force)
        except Exception:  # the encoder is third-party code: it must never kill the worker
            logger.exception("encoder %s failed on a %dx%d frame; rebuilding it on the next frame",
                             stats.encoder, *job.frame.size)
            stats.encoder_errors += 1
            self._close_encoder()
            return []
        stats.encodes += 1
        if job.force and not job.fresh:
            stats.keyframes_forced += 1
        if job.new:
            stats.frames_encoded += 1
            stats.dropped_before_encode += max(0, job.version - self._encoded_version - 1)
            self._encoded_version = job.version
        return payloads

    def _count(self, payload: EncodedPayload, now: float) -> None:
        self.stats.payloads += 1
        if payload.codec is not None:
            self.codec = payload.codec
        if payload.keyframe:
            self.stats.keyframes += 1
            self._last_idr = now

    def _rebuild(self, size: tuple[int, int]) -> None:
        """Close the encoder and build one for ``size``, falling back along the candidates."""
        self._close_encoder()
        width, height = size
        fanout = self._fanout
        config = EncoderConfig(width, height, fps=fanout.fps, bitrate=fanout.bitrate, device_id=fanout.device_id)
        for entry in self._candidates:
            try:
                encoder = entry.factory(config)
            except Exception as exc:  # factories are plug-ins: any failure means "try the next route"
                logger.warning("encoder %s could not start for %dx%d (%s: %s); trying the next route",
                               entry.name, width, height, type(exc).__name__, exc)
                continue
            self._encoder, self._encoder_size = encoder, size
            self.codec = None
            self.stats.encoder, self.stats.width, self.stats.height = entry.name, width, height
            self.stats.encoder_builds += 1
            logger.info("%s group: encoder %s built for %dx%d", self.transport, entry.name, width, height)
            return
        logger.error("no %s encoder could start for %dx%d (tried %s)",
                     self.transport, width, height, [e.name for e in self._candidates])

    def _close_encoder(self) -> None:
        encoder, self._encoder, self._encoder_size = self._encoder, None, None
        if encoder is None:
            return
        try:
            encoder.close()
        except Exception:  # closing must go on: the next encoder still needs to be built
            logger.exception("closing encoder %s failed", self.stats.encoder)


class FanOut:
    """All encode groups of one display, the shared lock, and the display-wide ``seq``."""

    def __init__(
        self,
        routes: Mapping[Transport, Sequence[EncoderEntry]],
        *,
        frames: FrameSource,
        post: Callable[[Callable[[], None]], None],
        fps: float = 30.0,
        bitrate: int = 8_000_000,
        device_id: int = 0,
        max_inflight: int = 2,
        keyframe_interval_min: float = 0.25,
    ) -> None:
        if not isinstance(max_inflight, int) or max_inflight < 1:
            raise ValueError(f"max_inflight must be a positive integer, got {max_inflight!r}")
        self.routes = {t: list(c) for t, c in routes.items() if c}
        self.frames = frames
        self._post = post  # runs a callback on the event loop, from any thread
        self.fps, self.bitrate, self.device_id = fps, bitrate, device_id
        self.max_inflight = max_inflight
        self.keyframe_interval_min = keyframe_interval_min
        self.lock = threading.Lock()
        self.seq = itertools.count(1)
        self._groups: dict[Transport, EncodeGroup] = {}
        self._closed = False

    @property
    def transports(self) -> tuple[Transport, ...]:
        return tuple(self.routes)

    def wake(self) -> None:
        """A frame was published: every group looks at it."""
        for group in list(self._groups.values()):
            group.wake()

    def join(self, client_id: int, transport: Transport, deliver: Deliver) -> Member:
        """Add a viewer; it needs a keyframe, so its group encodes one promptly."""
        member = Member(client_id, transport, deliver)
        with self.lock:
            if self._closed:
                raise RuntimeError("display is closed")
            group = self._groups.get(transport)
            if group is None:
                group = self._groups[transport] = EncodeGroup(self, transport, self.routes[transport])
            group.members.append(member)
        group.wake()
        return member

    def leave(self, member: Member) -> None:
        with self.lock:
            member.active = False
            group = self._groups.get(member.transport)
            if group is not None and member in group.members:
                group.members.remove(member)
        if group is not None:
            group.wake()  # an empty group closes its encoder

    def ack(self, member: Member, seq: int) -> None:
        """Acking ``seq`` frees it and every older slot of this viewer."""
        with self.lock:
            before = len(member.inflight)
            member.inflight = {s for s in member.inflight if s > seq}
            freed = len(member.inflight) < before
        if freed:
            self._wake_group(member)

    def discard(self, member: Member, seq: int) -> None:
        """The viewer could not take ``seq`` after all: free its slot; it needs a keyframe."""
        with self.lock:
            member.inflight.discard(seq)
            member.needs_keyframe = True
        self._wake_group(member)

    def request_keyframe(self, member: Member) -> None:
        with self.lock:
            member.needs_keyframe = True
        self._wake_group(member)

    def current_config(self, transport: Transport, size: tuple[int, int]) -> str | None:
        """The codec last produced for ``size`` by that transport's group, if any."""
        group = self._groups.get(transport)
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

    def stats(self) -> dict[Transport, GroupStats]:
        with self.lock:
            out = {}
            for transport, group in self._groups.items():
                out[transport] = replace(group.stats, viewers=len(group.members))
            return out

    def encoder_name(self, transport: Transport) -> str | None:
        group = self._groups.get(transport)
        if group is not None and group.stats.encoder is not None:
            return group.stats.encoder
        candidates = self.routes.get(transport)
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

    def _wake_group(self, member: Member) -> None:
        group = self._groups.get(member.transport)
        if group is not None:
            group.wake()
