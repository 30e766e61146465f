"""One fan-out group: the viewers that share an encoder, and the worker thread that runs it.

docs/fanout.md has the rules; this module is their implementation. A group is one
transport and one format ("webcodecs", "image" for JPEG, "png"). Everything a group
decides (recipients, forced IDRs) is decided under the fan-out's one lock, before the
encode; the encode itself runs outside it, on the group's own thread.

Routes that keep failing are set aside and the next candidate serves the viewers
(rfb.failover has the rules); a frame whose encode failed is encoded again, by a
rebuilt encoder or the next route, so that a static scene is not lost with it.

CUDA frames: a route registered with ``reads_cuda=True`` takes them as they are. Any other
route reads host memory only, so the group wraps its encoder in
:class:`rfb.gpu.HostFrameAdapter` the first time a CUDA frame comes (converted on the
GPU, one download per frame: NV12 for video, RGB for images). Making the device's
CUDA context current is each route's business (they all enter ``cupy.cuda.Device`` or
push the primary context around their device work), so the group does not; this is
also why a route's factory may run on a thread of its own (under a deadline) while its
encoder then runs on the group's.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from rfb.encoders.base import EncodedPayload, EncoderBackend, EncoderConfig, Transport
from rfb.encoders.registry import EncoderEntry
from rfb.failover import BuildCancelled, FactoryTimeout, Failover, FailoverPolicy, SetAside, build, describe
from rfb.frames import RawFrame
from rfb.framestore import FrameSource
from rfb.latency import LatencyWindow
from rfb.protocol import GROUP_TRANSPORTS, pack_payload, payload_header
from rfb.tiers import Tier, split_key

if TYPE_CHECKING:
    from rfb.gpu.adapter import HostFormat

logger = logging.getLogger("rfb.fanout")

Deliver = Callable[[EncodedPayload, int, bytes], None]  # (payload, seq, message), on the event loop

# What a host-only route is handed for a CUDA frame (HostFrameAdapter's ``prefer``):
# H.264 encoders eat NV12, made on the GPU at half the bytes of RGB; the image route
# encodes RGB as it is (from NV12 it would convert back on the CPU).
HOST_FORMATS: dict[Transport, HostFormat] = {"webcodecs": "nv12", "image": "rgb24"}


@dataclass(eq=False)
class Member:
    """One viewer as the fan-out sees it. Mutable fields are guarded by the FanOut lock."""

    client_id: int
    group: str
    deliver: Deliver
    # seq -> where its latency starts (monotonic s); None for a still, which adds no sample
    inflight: dict[int, float | None] = field(default_factory=dict)
    pending: int = 0  # slots reserved for an encode in progress
    needs_keyframe: bool = True
    active: bool = True
    delivered: int = 0
    wants_stills: bool = True  # lossy viewers get lossless stills (rfb.stills); a recorder does not
    paced: bool = True  # held to max_inflight; a recorder is not (it takes every frame, acked at once)
    shown: int = 0  # the frame version of the last payload delivered
    shown_payload: EncodedPayload | None = None  # that payload (its configuration)
    still: int = 0  # the frame version of the last still delivered; reset by any payload after it
    latency: LatencyWindow = field(default_factory=LatencyWindow)  # has its own lock
    stills_asked: bool = field(init=False)  # wants_stills at join: a resolution tier turns stills off meanwhile

    def __post_init__(self) -> None:
        self.stills_asked = self.wants_stills

    @property
    def transport(self) -> Transport:
        return GROUP_TRANSPORTS[split_key(self.group)[0]]

    @property
    def tier(self) -> int:
        """The quality tier it is served from (0: the full stream; rfb.tiers)."""
        return split_key(self.group)[1]

    def has_room(self, max_inflight: int) -> bool:
        return not self.paced or len(self.inflight) + self.pending < max_inflight


@dataclass
class GroupStats:
    """Counters of one group; ``encodes`` counts encoder calls, IDR re-encodes included."""

    group: str
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
    encoder_errors: int = 0  # encode() raising
    encoder_builds: int = 0
    build_failures: int = 0  # a route's factory raising or passing its deadline
    set_aside: tuple[SetAside, ...] = ()  # routes this group no longer builds at a size, and why
    cuda_frames: int = 0  # encodes of a CUDA frame (through a HostFrameAdapter for host-only routes)
    tier: int = 0  # the quality tier (rfb.tiers): 0 is the full stream
    bitrate: int = 0  # what its encoder was built with (H.264), bits/s
    fps: float = 0.0


class _EncodeFailed(Exception):
    """encode() raised; the encoder is closed and the failure counted and logged."""


@dataclass
class _Job:
    frame: RawFrame
    version: int
    new: bool
    force: bool
    fresh: bool
    targets: list[Member]
    missed: list[Member]
    started: float  # where the latency of these payloads starts: publish, or this re-encode


class GroupHost(Protocol):
    """What a group needs from the fan-out that owns it (:class:`rfb.fanout.FanOut`).

    Spelled out here so that this module depends on no fan-out: the fan-out creates
    groups and hands itself over, and a group only reads these.
    """

    lock: threading.Lock  # guards members, their windows and every group decision
    frames: FrameSource
    seq: Iterator[int]  # display-wide payload numbers
    fps: float
    bitrate: int
    device_id: int
    max_inflight: int
    keyframe_interval_min: float

    def dispatch(self, batch: list[tuple[Member, EncodedPayload, int, bytes]]) -> None: ...


class EncodeGroup:
    """Viewers sharing one group key, one encoder and one worker thread."""

    def __init__(
        self,
        fanout: GroupHost,
        key: str,
        candidates: Sequence[EncoderEntry],
        policy: FailoverPolicy | None = None,
        tier: Tier | None = None,
    ) -> None:
        self._fanout = fanout
        self.key = key
        self.transport: Transport = GROUP_TRANSPORTS[split_key(key)[0]]
        self._tier = tier or Tier()
        self._last_new_at = -math.inf  # when this group last took a new frame (frame-rate tiers)
        self.chained = self.transport == "webcodecs"  # H.264 payloads depend on earlier ones
        self._failover = Failover(candidates, policy or FailoverPolicy())
        self._last_resort_version = -1  # the frame on which every set-aside route was tried once
        self._dark = False  # no route could start; said once until one does
        self._traced: set[str] = set()  # routes whose failure was logged with its traceback (once each)
        self.members: list[Member] = []
        self.stats = GroupStats(key, self.transport, tier=split_key(key)[1])
        self.codec: str | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._stopped = threading.Event()  # what a build in progress watches
        self._encoder: EncoderBackend | None = None  # touched only by the worker thread
        self._entry: EncoderEntry | None = None  # the route self._encoder came from
        self._encoder_size: tuple[int, int] | None = None
        self._done_version = fanout.frames.version  # frames before the group existed are not ours
        self._encoded_version = self._done_version
        self._last_encoded: int | None = None  # the version of the picture this group encoded last
        self._stuck_version = -1  # a frame that broke the encoder or produced nothing: not retried
        self._last_idr = -math.inf
        self._thread = threading.Thread(target=self._run, name=f"rfb-encode-{key}", daemon=True)
        self._thread.start()

    @property
    def route_name(self) -> str | None:
        """The route serving now; before the first build, the one that would; None when none could start."""
        if self.stats.encoder_builds == 0 and not self._dark:
            return self._failover.candidates[0].name
        return self.stats.encoder

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self._stopping = True
        self._stopped.set()
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
            lease = fanout.frames.take()
            if lease is None:
                return None
            frame, version, published_at = lease
            if version == self._stuck_version:
                fanout.frames.release(frame)
                return None  # retrying cannot help (and must not spin): wait for the next frame
            size = self._tier.frame_size(frame)
            new = version != self._done_version
            fresh = self._encoder is None or self._encoder_size != size or self._failover.retry_due(self._entry, size)
            eligible = [m for m in self.members if m.has_room(fanout.max_inflight)]
            needy = [m for m in eligible if m.needs_keyframe]
            now = time.monotonic()
            wait = self._last_idr + fanout.keyframe_interval_min - now
            skip = self._skip(new, fresh, version, now)
            if skip is not None:
                new = False  # a frame-rate tier passes this frame over, unless a newer one is not coming
                wait = skip if not needy or wait <= 0 else min(wait, skip)
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
                if skip is not None:
                    return wait
                return wait if self.chained and needy and wait > 0 else None
            # Needy viewers ride along when the encoder happens to emit an IDR anyway.
            targets = recipients + [m for m in needy if m not in recipients] if self.chained else recipients
            for m in targets:
                m.pending += 1
            if force:
                self._last_idr = now  # coalesce attempts too, even if no IDR comes out
            if new:
                self._last_new_at = now
            if self.chained:
                missed = [m for m in self.members if m not in targets]
            else:
                missed = [m for m in self.members if m not in targets and new and not m.has_room(fanout.max_inflight)]
            # A frame encoded again (for a joiner, after a loss) is the current picture:
            # its latency starts now, not when a static scene was last published.
            return _Job(frame, version, new, force, fresh, targets, missed, published_at if new else now)

    def _skip(self, new: bool, fresh: bool, version: int, now: float) -> float | None:
        """For a tier that encodes every Nth frame: seconds until this new frame is due; None: take it.

        A frame is taken once N frames were published since the last one taken, or once N
        frame intervals have passed (so the last frame of a scene that stops is not lost).
        """
        every = self._tier.every
        if every == 1 or not new or fresh or version - self._encoded_version >= every:
            return None
        due = self._last_new_at + every / self._fanout.fps - now
        return due if due > 0 else None

    def _execute(self, job: _Job) -> None:
        fanout = self._fanout
        payloads: list[EncodedPayload] = []
        broken = False
        try:
            if job.fresh:
                self._rebuild(self._tier.frame_size(job.frame), job.version)
            while self._encoder is not None:
                try:
                    payloads = self._encode(job)
                    break
                except _EncodeFailed:
                    # The chain is broken for everybody; the same picture goes out as an IDR
                    # from a rebuilt encoder, or the next route once this one is set aside.
                    broken = job.force = job.fresh = True
                    self._rebuild(self._tier.frame_size(job.frame), job.version)
        finally:
            fanout.frames.release(job.frame)
        messages = []
        for payload in payloads:
            seq = next(fanout.seq)
            header = payload_header(
                payload, seq=seq, timestamp_us=job.frame.timestamp_us or 0, pixel_ratio=job.frame.pixel_ratio
            )
            messages.append((payload, seq, pack_payload(header, payload.data)))
        now = time.monotonic()
        batch: list[tuple[Member, EncodedPayload, int, bytes]] = []
        with fanout.lock:
            for m in job.targets:
                m.pending -= 1
            moved = [m for m in job.targets if m.group != self.key]  # to another tier while we encoded
            if self._encoder is None or broken:  # the chain is broken for everybody
                for m in self.members:
                    m.needs_keyframe = True
            if self._encoder is None:
                self._stuck_version = job.version
                return
            self._done_version = job.version
            if not messages:
                self._stuck_version = job.version
            for m in job.missed if messages else ():
                if m.active and m.group == self.key:
                    m.needs_keyframe = True
            for payload, seq, message in messages:
                self._count(payload, now)
                for m in job.targets:
                    if not m.active or m in moved or (m.needs_keyframe and not payload.keyframe):
                        continue
                    m.needs_keyframe = False
                    m.inflight[seq] = job.started
                    m.delivered += 1
                    m.shown, m.shown_payload, m.still = job.version, payload, 0
                    batch.append((m, payload, seq, message))
        if batch:
            fanout.dispatch(batch)

    def _encode(self, job: _Job) -> list[EncodedPayload]:
        """Encode ``job``'s frame; on failure close the encoder, count it, and raise :class:`_EncodeFailed`."""
        stats = self.stats
        entry = self._entry
        assert entry is not None
        try:
            encoder = self._encoder_for(job.frame)
            payloads = encoder.encode(self._tier.scale(job.frame), force_keyframe=job.force)
        except Exception as exc:  # the encoder is third-party code: it must never kill the worker
            stats.encoder_errors += 1
            self._close_encoder()
            self._failed(
                entry,
                self._tier.frame_size(job.frame),
                exc,
                f"failed on a {job.frame.width}x{job.frame.height} {job.frame.memory} frame",
                "rebuilding it for the same picture",
            )
            raise _EncodeFailed from exc
        self._failover.succeeded(entry)
        self.stats.set_aside = self._failover.set_aside
        self._dark = False
        stats.encodes += 1
        if job.frame.memory == "cuda":
            stats.cuda_frames += 1
        if job.force and not job.fresh:
            stats.keyframes_forced += 1
        if job.version != self._last_encoded:
            # A picture this group had not encoded yet: new, or published before the group
            # existed (a first viewer joining a static scene, or joining while it is published).
            stats.frames_encoded += 1
            self._last_encoded = job.version
        if job.new:
            stats.dropped_before_encode += max(0, job.version - self._encoded_version - 1)
            self._encoded_version = job.version
        return payloads

    def _encoder_for(self, frame: RawFrame) -> EncoderBackend:
        """The encoder, wrapped once for CUDA frames if its route reads host memory only."""
        from rfb.gpu.adapter import HostFrameAdapter

        encoder, entry = self._encoder, self._entry
        assert encoder is not None and entry is not None
        if frame.memory == "cuda" and not entry.reads_cuda and not isinstance(encoder, HostFrameAdapter):
            encoder = self._encoder = HostFrameAdapter(encoder, prefer=HOST_FORMATS[self.transport])
            logger.info(
                "%s group: route %s reads host memory; CUDA frames reach it through one download each",
                self.key,
                entry.name,
            )
        return encoder

    def _count(self, payload: EncodedPayload, now: float) -> None:
        self.stats.payloads += 1
        if payload.codec is not None:
            self.codec = payload.codec
        if payload.keyframe:
            self.stats.keyframes += 1
            self._last_idr = now

    def _rebuild(self, size: tuple[int, int], version: int) -> None:
        """Close the encoder and build one for ``size``: the first candidate that is not set aside and starts.

        When every candidate is set aside, they are tried again, best first, once per published
        frame (quietly: their set-aside was logged), so that a group whose routes all failed is
        not dark for good.
        """
        self._close_encoder()
        width, height = size
        fanout = self._fanout
        tier = self._tier
        config = EncoderConfig(
            width,
            height,
            fps=fanout.fps / tier.every,
            bitrate=max(1, round(fanout.bitrate * tier.bitrate)),
            device_id=fanout.device_id,
        )
        routes = self._failover.usable(size)
        if not routes and version != self._last_resort_version:
            self._last_resort_version = version
            routes = self._failover.candidates
        for entry in routes:
            try:
                encoder = build(entry, config, self._failover.policy.factory_timeout, self._stopped)
            except BuildCancelled as exc:
                logger.warning("%s", exc)
                return
            except Exception as exc:  # factories are plug-ins: any failure means "try the next route"
                self.stats.build_failures += 1
                self._failed(
                    entry,
                    size,
                    exc,
                    f"could not start for {width}x{height}",
                    "trying the next route",
                    hung=isinstance(exc, FactoryTimeout),
                )
                continue
            self._encoder, self._entry, self._encoder_size = encoder, entry, size
            self.codec = None
            self.stats.encoder, self.stats.width, self.stats.height = entry.name, width, height
            self.stats.bitrate, self.stats.fps = config.bitrate, config.fps
            self.stats.encoder_builds += 1
            logger.info("%s group: encoder %s built for %dx%d", self.key, entry.name, width, height)
            return
        self.stats.encoder = None
        if not self._dark:
            self._dark = True
            logger.error(
                "no %s encoder could start for %dx%d (routes %s; set aside: %s)",
                self.key,
                width,
                height,
                [e.name for e in self._failover.candidates],
                [a.route for a in self._failover.set_aside] or "none",
            )

    def _failed(
        self, entry: EncoderEntry, size: tuple[int, int], error: Exception, what: str, then: str, *, hung: bool = False
    ) -> None:
        """Log one failure of ``entry`` and count it; the route is set aside when its streak is long enough."""
        if self._failover.held(entry.name, size):  # tried as a last resort: its set-aside was logged
            logger.debug("set-aside route %s %s (%s)", entry.name, what, describe(error))
            return
        record = self._failover.failed(entry, size, error, hung=hung)
        if record is None:
            trace = entry.name not in self._traced
            self._traced.add(entry.name)
            logger.warning(
                "encoder %s %s (%s); %s", entry.name, what, describe(error), then, exc_info=error if trace else None
            )
            return
        self.stats.set_aside = self._failover.set_aside
        usable = self._failover.usable(size)
        nxt = (
            f"{usable[0].name} is tried next" if usable else "no other route is left: each is tried again per new frame"
        )
        logger.warning(
            "%s group: route %s set aside for %dx%d: it %s (last: %s: %s); "
            "%s; %s is tried again in %g s or at another size",
            self.key,
            entry.name,
            *size,
            record.why,
            what,
            record.reason,
            nxt,
            entry.name,
            record.backoff,
        )

    def _close_encoder(self) -> None:
        encoder, self._encoder, self._entry, self._encoder_size = self._encoder, None, None, None
        if encoder is None:
            return
        try:
            encoder.close()
        except Exception:  # closing must go on: the next encoder still needs to be built
            logger.exception("closing encoder %s failed", self.stats.encoder)
