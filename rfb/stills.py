"""Exact stills: the last frame once more, losslessly, when the scene settles.

H.264 at streaming bitrates and JPEG are not exact, and a scientist reading values off
a picture that has stopped moving wants the exact pixels. So when no new frame has been
published for ``still_after`` seconds (or when ``display.refresh_still()`` asks), the
last frame is encoded *once* as PNG and that one message goes to every viewer that does
not already have it losslessly (the ``png`` group has), whatever its group. The viewer
draws it over the video and drops it as soon as the next frame is drawn
(docs/fanout.md, "Exact stills"; docs/protocol.md, the ``still`` flag).

Rules, all decided under the fan-out's lock:

- A viewer gets the still of frame *v* only once its own group's payload of *v* was
  delivered and acked (nothing in flight): the still then reaches the client after that
  payload, so the video cannot draw *v* over it, and it never competes with video for
  the in-flight window. The still takes one slot and is acked like any payload.
- A still is offered only while *v* is still the latest frame; any payload delivered
  to the viewer afterwards hides the still, so it is offered again when that settles.
- The still is made from a lease on the frame store, like any encode, so a frame
  published meanwhile never changes the pixels under it (``own_frames`` or not).
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rfb.encoders.base import EncodedPayload
from rfb.frames import RawFrame
from rfb.protocol import pack_payload, still_header

if TYPE_CHECKING:
    from rfb.encodegroup import Member
    from rfb.fanout import FanOut

logger = logging.getLogger("rfb.stills")

__all__ = ["StillChannel", "StillStats", "host_rgb", "png_bytes"]

PNG_MIME = "image/png"
# Lossless groups: their viewers already hold every frame's exact pixels.
LOSSLESS_GROUPS = frozenset({"png"})


def host_rgb(frame: RawFrame) -> np.ndarray:
    """The frame as a host ``(H, W, 3)`` uint8 RGB array; CUDA frames are copied down once.

    Alpha is dropped (the viewer ignores it too); nv12 is converted with the matrix
    every route encodes with. The array may be the frame's own (host rgb24): copy it
    before handing it to a caller who may keep it.
    """
    from rfb.gpu.convert import to_host_rgb

    return to_host_rgb(frame)


def png_bytes(rgb: np.ndarray) -> bytes:
    """One PNG of an ``(H, W, 3)`` uint8 array, at the image route's zlib level (fast, still lossless)."""
    from PIL import Image

    from rfb.encoders.image import PNG_COMPRESS_LEVEL

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()


@dataclass
class StillStats:
    """``encodes``: PNG encodes (one per settled frame); ``sent``: stills handed to viewers."""

    still_after: float | None
    encodes: int = 0
    sent: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class _Still:
    version: int
    png: bytes
    width: int
    height: int
    timestamp_us: int


class StillChannel:
    """One thread that encodes the settled frame once and offers it to every lossy viewer."""

    def __init__(self, fanout: FanOut, still_after: float | None) -> None:
        if still_after is not None and (
            isinstance(still_after, bool)
            or not isinstance(still_after, (int, float))
            or not math.isfinite(still_after)
            or still_after < 0
        ):
            raise ValueError(
                f"still_after must be a number of seconds >= 0, or None for no automatic stills; got {still_after!r}"
            )
        self._fanout = fanout
        self.still_after = None if still_after is None else float(still_after)
        self.stats = StillStats(self.still_after)
        self._still: _Still | None = None  # touched by the channel's thread only
        self._failed_version = -1
        self._refresh = False
        self._stopping = False
        self._wake = threading.Event()
        # Started by the first wake-up: a display that fails to start, or never publishes, has no thread to stop.
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def wake(self) -> None:
        """Something changed (a publish, an ack, a joiner): look again."""
        self._running()
        self._wake.set()

    def refresh(self) -> None:
        """Make and send the current frame's still now, without waiting for the scene to settle."""
        self._refresh = True
        self.wake()

    def stop(self, timeout: float) -> None:
        with self._start_lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            logger.error("still thread did not stop within %.1f s", timeout)

    def _running(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="rfb-stills", daemon=True)
                self._thread.start()

    # ------------------------------------------------------------ the channel's thread

    def _run(self) -> None:
        timeout: float | None = None
        while True:
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stopping:
                return
            try:
                timeout = self._step()
            except Exception:  # boundary: a bug here must not end stills for the display's lifetime
                logger.exception("still channel step failed")
                timeout = None

    def _step(self) -> float | None:
        """Encode the settled frame if due, offer it; return how long to sleep (None: until woken)."""
        frames = self._fanout.frames
        if (
            self.still_after is None
            and not self._refresh
            and (self._still is None or self._still.version != frames.version)
        ):
            return None  # stills on demand only, and none asked for
        lease = frames.take()
        if lease is None:
            self._refresh = False  # "now" has no frame: the first one waits for its settle time
            return None
        frame, version, published_at = lease
        try:
            if self._still is None or self._still.version != version:
                if version == self._failed_version:
                    return None
                if not self._refresh:
                    if self.still_after is None:
                        return None
                    wait = published_at + self.still_after - time.monotonic()
                    if wait > 0:
                        return wait
                if not self._anyone_lossy():
                    self._refresh = False
                    return None  # nobody to send it to; a joiner wakes the channel
                self._refresh = False
                self._still = self._encode(frame, version)
                if self._still is None:
                    return None
            self._refresh = False
        finally:
            frames.release(frame)
        self._offer(self._still)
        return None

    def _encode(self, frame: RawFrame, version: int) -> _Still | None:
        try:
            png = png_bytes(host_rgb(frame))
        except Exception as exc:  # a frame the still cannot be made from must not retry forever
            self.stats.errors += 1
            self._failed_version = version
            logger.warning(
                "could not make a lossless still of a %dx%d %s %s frame: %r",
                frame.width,
                frame.height,
                frame.memory,
                frame.pixel_format,
                exc,
            )
            return None
        self.stats.encodes += 1
        return _Still(version, png, frame.width, frame.height, frame.timestamp_us or 0)

    def _anyone_lossy(self) -> bool:
        with self._fanout.lock:
            return any(self._lossy(m) for m in self._fanout.members())

    @staticmethod
    def _lossy(member: Member) -> bool:
        return member.active and member.wants_stills and member.group not in LOSSLESS_GROUPS

    def _offer(self, still: _Still) -> None:
        """Send ``still`` to every lossy viewer that has drawn its frame and has nothing in flight."""
        fanout = self._fanout
        with fanout.lock:
            if fanout.frames.version != still.version:
                return  # a newer frame is on its way: this still would be stale
            recipients = [
                m
                for m in fanout.members()
                if self._lossy(m)
                and m.shown == still.version
                and m.still != still.version
                and not m.needs_keyframe
                and not m.inflight
                and m.pending == 0
                and m.shown_payload is not None
            ]
            if not recipients:
                return
            seq = next(fanout.seq)
            payload = EncodedPayload(still.png, True, still.width, still.height, "image", mime=PNG_MIME)
            message = pack_payload(still_header(payload, seq=seq, timestamp_us=still.timestamp_us), still.png)
            batch = []
            for m in recipients:
                m.still = still.version
                m.inflight[seq] = None  # a still adds no latency sample: its frame was drawn already
                # Handed with the payload it lies over, so the viewer's session sees no change of configuration.
                assert m.shown_payload is not None
                batch.append((m, m.shown_payload, seq, message))
            self.stats.sent += len(batch)
            # Posted under the lock: a payload of a newer frame is posted after it, so it reaches the viewer after.
            fanout.dispatch(batch)
