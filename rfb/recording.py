"""Recordings: the H.264 stream as it is sent, muxed into fragmented MP4 without a second encode.

A :class:`Recording` joins the display's ``webcodecs`` group like a viewer that never
lags: it is not held to the in-flight window (and acks each payload as it is handed
over), so it is a recipient of every frame the group encodes, and a queue and a writer
thread of its own keep file I/O off the encode thread and the event loop. It costs no
encode: the access units written are the very bytes the viewers receive. A display
whose viewers all take images starts its H.264 group for the recording alone.

- **Start.** Joining asks for a keyframe (every member starts by needing one), so the
  file starts at an IDR of the current picture.
- **Timestamps.** Each access unit gets its frame's publish timestamp
  (``RawFrame.timestamp_us``, or the publish time), relative to the segment's first
  one, on a 90 kHz time base (MP4's usual video clock). The same picture encoded again
  (an IDR forced for a viewer while nothing new is published) is written one tick
  after the previous unit, since MP4 needs strictly increasing timestamps and the
  frames after it depend on it.
- **Never slows viewers.** When the writer falls behind by ``queue_size`` units, the
  unit that does not fit is dropped, a keyframe is requested, and nothing is written
  until one comes: the file has a gap (``gaps`` counts them) but stays decodable.
- **Size changes.** MP4 has one size per track, so a new size starts a new segment
  file next to the first: ``run.mp4``, then ``run-001.mp4``, ``run-002.mp4``...
  (``files`` lists them), each starting at its own IDR and at time 0.
- **Crashes.** The files are fragmented MP4 (``empty_moov``, a fragment per keyframe
  and at least every ``fragment_s`` seconds, flushed to the OS as written), so a
  process that dies leaves a file playable up to its last complete fragment.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfb.encoders.base import EncodedPayload
from rfb.protocol import unpack_payload

if TYPE_CHECKING:
    from rfb.fanout import FanOut

logger = logging.getLogger("rfb.recording")

__all__ = ["Recording", "TIME_BASE", "segment_path"]

TIME_BASE = Fraction(1, 90_000)
RECORDER_CLIENT_ID = 0  # viewers count from 1
GROUP = "webcodecs"


def segment_path(path: Path, index: int) -> Path:
    """The file of segment ``index``: ``path`` itself for 0, then ``stem-001.suffix``..."""
    return path if index == 0 else path.with_name(f"{path.stem}-{index:03d}{path.suffix}")


class Recording:
    """One recording of a display's H.264 stream; stop it with :meth:`stop` (or ``with``)."""

    def __init__(
        self, fanout: FanOut, path: str | os.PathLike[str], *, queue_size: int = 256, fragment_s: float = 0.5
    ) -> None:
        import av  # noqa: F401 (PyAV muxes; fail here, before joining, when it is missing)

        if GROUP not in fanout.routes:
            raise RuntimeError(f"recording needs an H.264 route; this display has none (groups: {list(fanout.routes)})")
        if queue_size < 1 or not fragment_s > 0:
            raise ValueError(f"expected queue_size >= 1 and fragment_s > 0, got {queue_size!r} and {fragment_s!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fragment_s = fragment_s
        self.files: list[Path] = []
        self.frames = 0  # access units written, over every segment
        self.gaps = 0  # times the writer fell behind and a keyframe was awaited
        self.error: BaseException | None = None  # what stopped the writer, if anything did
        self._fanout = fanout
        self._queue: queue.Queue[tuple[EncodedPayload, int] | None] = queue.Queue(queue_size)
        self._skipping = False  # after a drop: nothing is queued until the next keyframe
        self._stopped = False
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None
        self._t0 = 0
        self._last_pts = -1
        self._thread = threading.Thread(target=self._run, name="rfb-recording", daemon=True)
        # Joined first: a closed display raises here, before a thread exists. Units that
        # come before the thread starts wait in the queue.
        self._member = fanout.join(RECORDER_CLIENT_ID, GROUP, self._deliver, wants_stills=False, paced=False)
        self._thread.start()

    @property
    def recording(self) -> bool:
        return not self._stopped

    def stop(self, timeout: float = 10.0) -> None:
        """Leave the group, write what is queued, close the file. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._fanout.leave(self._member)
        self._queue.put(None)  # blocks only while the writer drains a full queue
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error(
                "recording writer did not finish within %.1f s; %s may lack its last fragment",
                timeout,
                self.files[-1] if self.files else self.path,
            )

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "recording" if self.recording else "stopped"
        return f"<Recording {self.path} {state} frames={self.frames} files={len(self.files)} gaps={self.gaps}>"

    # ------------------------------------------------------------ the event loop's side

    def _deliver(self, payload: EncodedPayload, seq: int, message: bytes) -> None:
        """Take one access unit (on the event loop): ack it at once, queue it for the writer."""
        self._fanout.ack(self._member, seq, drawn=False)
        if self._stopped:
            return
        if self._skipping and not payload.keyframe:
            return
        header, _ = unpack_payload(message)
        try:
            self._queue.put_nowait((payload, int(header["timestamp_us"])))
        except queue.Full:
            if not self._skipping:
                self.gaps += 1
                logger.warning(
                    "recording %s: the writer fell %d units behind; skipping to the next keyframe",
                    self.path,
                    self._queue.maxsize,
                )
            self._skipping = True
            self._fanout.request_keyframe(self._member)  # again for a keyframe that found no room either
            return
        self._skipping = False

    # ------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                self._write(*item)
        except Exception as exc:  # a full disk must not take the display down: say so and stop writing
            self.error = exc
            logger.exception("recording %s failed; the file ends at its last complete fragment", self.path)
            self._stopped = True
            self._fanout.leave(self._member)
        finally:
            self._close_segment()

    def _write(self, payload: EncodedPayload, timestamp_us: int) -> None:
        import av

        size = (payload.width, payload.height)
        if self._container is None or size != self._size:
            if not payload.keyframe:
                return  # a segment starts at an IDR; the group sends one after a size change
            self._open_segment(size, timestamp_us)
        pts = max(round((timestamp_us - self._t0) / TIME_BASE / 1_000_000), self._last_pts + 1)
        self._last_pts = pts
        packet = av.Packet(payload.data)
        packet.stream = self._stream
        packet.pts = packet.dts = pts
        packet.time_base = TIME_BASE
        packet.is_keyframe = payload.keyframe
        self._container.mux(packet)
        self.frames += 1

    def _open_segment(self, size: tuple[int, int], timestamp_us: int) -> None:
        import av

        self._close_segment()
        path = segment_path(self.path, len(self.files))
        options = {
            "movflags": "frag_keyframe+empty_moov+default_base_moof",
            "frag_duration": str(round(self.fragment_s * 1_000_000)),
            "flush_packets": "1",
        }
        self._container = av.open(str(path), "w", format="mp4", options=options)
        self._stream = self._container.add_mux_stream("h264", width=size[0], height=size[1], time_base=TIME_BASE)
        self._size, self._t0, self._last_pts = size, timestamp_us, -1
        self.files.append(path)
        logger.info("recording %dx%d H.264 to %s", *size, path)

    def _close_segment(self) -> None:
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            container.close()
