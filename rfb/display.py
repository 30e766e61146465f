"""The public object: a Display that takes frames from a render loop and streams them to viewers.

``publish()`` is the only thing a render loop calls per frame, so it is cheap, thread-safe
and never blocks on the network: it validates the frame, stores it as "the latest" and
wakes the encode groups (rfb.fanout). The server runs on a thread of its own
(rfb.server.ServerThread), so the caller may block its own thread or event loop freely.

Two ways to start one, with the same arguments::

    display = await rfb.serve(640, 480)          # from asyncio; await display.aclose()
    display = rfb.display.start(640, 480)        # from a plain script; display.close()

Both are context managers (``async with`` / ``with``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import numpy as np

from rfb import protocol
from rfb.encoders.base import EncoderUnavailable, Transport
from rfb.encoders.registry import EncoderEntry, encoder_status, get_entry, select_encoder
from rfb.events import EventQueue, InputEvent
from rfb.fanout import FanOut, GroupStats
from rfb.frames import FrameError, RawFrame, frame_from_array
from rfb.server import ServerThread, create_app
from rfb.session import SessionRegistry, SessionSettings, Viewer, ViewerInfo

logger = logging.getLogger("rfb.display")

__all__ = ["Display", "DisplayStats", "FrameStore", "RANDOM_TOKEN", "serve", "start"]


class _RandomToken:
    def __repr__(self) -> str:
        return "<random per server>"


RANDOM_TOKEN: Any = _RandomToken()  # the default: a fresh secrets.token_urlsafe() per display


@dataclass(frozen=True, slots=True)
class DisplayStats:
    published: int
    dropped_before_encode: int
    keyframes_forced: int
    events_received: int
    events_dropped: int
    viewers: int
    groups: dict[Transport, GroupStats]


class FrameStore:
    """The latest published frame, leased to encode groups while they encode it.

    With ``own_frames=True`` host frames are copied into a small pool of display-owned
    buffers: a buffer is reused only when it is neither the latest frame nor leased,
    so the caller may overwrite its own array right after ``publish()``.
    """

    def __init__(self, *, own_frames: bool, pool_size: int = 4) -> None:
        self._own = own_frames
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self._latest: RawFrame | None = None
        self._version = 0
        self._pool: list[np.ndarray] = []
        self._leases: dict[int, int] = {}  # id(array) -> number of holders

    @property
    def version(self) -> int:
        return self._version

    def put(self, frame: RawFrame) -> int:
        if self._own:
            frame = self._owned_copy(frame)
        with self._lock:
            self._latest = frame
            self._version += 1
            if self._own:
                self._unlease(frame.data)  # the copy's own lease; "latest" protects it now
            return self._version

    def take(self) -> tuple[RawFrame, int] | None:
        with self._lock:
            if self._latest is None:
                return None
            if self._own:
                key = id(self._latest.data)
                self._leases[key] = self._leases.get(key, 0) + 1
            return self._latest, self._version

    def release(self, frame: RawFrame) -> None:
        if self._own:
            with self._lock:
                self._unlease(frame.data)

    def clear(self) -> None:
        with self._lock:
            self._latest = None
            self._pool.clear()
            self._leases.clear()

    def _unlease(self, array: Any) -> None:
        key = id(array)
        count = self._leases.get(key, 0) - 1
        if count > 0:
            self._leases[key] = count
        else:
            self._leases.pop(key, None)

    def _owned_copy(self, frame: RawFrame) -> RawFrame:
        if frame.memory != "cpu":
            return self._owned_device_copy(frame)
        with self._lock:
            buffer = self._free_buffer(frame.data.shape)
            self._leases[id(buffer)] = self._leases.get(id(buffer), 0) + 1  # ours until put() installs it
        np.copyto(buffer, frame.data)  # outside the lock: encoders keep taking the previous frame
        return replace(frame, data=buffer)

    def _owned_device_copy(self, frame: RawFrame) -> RawFrame:
        """Hook for GPU frames: a device-to-device copy into a display-owned CUDA buffer."""
        raise NotImplementedError(
            "own_frames=True does not copy CUDA frames yet; pass own_frames=False and publish a fresh "
            "device array per frame (the display keeps a reference until it is encoded)"
        )

    def _free_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        busy = set(self._leases)
        if self._latest is not None:
            busy.add(id(self._latest.data))
        for buffer in self._pool:
            if buffer.shape == shape and id(buffer) not in busy:
                return buffer
        self._pool = [b for b in self._pool if b.shape == shape or id(b) in busy]  # a new size retires the rest
        buffer = np.empty(shape, np.uint8)
        if len(self._pool) < self._pool_size:
            self._pool.append(buffer)
        return buffer


class Display:
    """A framebuffer served to web browsers. Build it with :func:`serve` or :func:`start`.

    Options (all keyword-only):

    - ``host``/``port``: where to listen (127.0.0.1 by default; ``port=0`` picks a free port).
    - ``fps``, ``bitrate``, ``device_id``: handed to the encoder (``EncoderConfig``).
    - ``gpu``: prefer routes that take CUDA frames without a host copy.
    - ``video_encoder``: an H.264 route by name (it must be available), or None for the
      best available one. ``image_encoder``: the image route, or None for no images.
    - ``own_frames``: copy host frames at ``publish()`` so the caller may reuse its array.
    - ``max_inflight``: unacked payloads per viewer before it is skipped (docs/fanout.md).
    - ``keyframe_interval_min``: at most one forced IDR per this many seconds.
    - ``token``: the secret a viewer sends in ``hello`` (random by default; None: no check).
    - ``allowed_origins``: origins besides the page's own allowed to connect ("*": any).
    - ``max_message_bytes``, ``event_queue_size``, ``hello_timeout``: limits on viewers.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        fps: float = 30,
        bitrate: int = 8_000_000,
        gpu: bool = False,
        own_frames: bool = False,
        video_encoder: str | None = None,
        image_encoder: str | None = "image",
        max_inflight: int = 2,
        token: str | None = RANDOM_TOKEN,
        allowed_origins: Sequence[str] | None = None,
        device_id: int = 0,
        max_message_bytes: int = 64 * 1024,
        event_queue_size: int = 1024,
        keyframe_interval_min: float = 0.25,
        hello_timeout: float = 10.0,
    ) -> None:
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self._width, self._height = width, height
        if token is not RANDOM_TOKEN and token is not None and (not isinstance(token, str) or not token):
            raise ValueError(f"token must be a non-empty string, or None to disable the check; got {token!r}")
        self.token: str | None = secrets.token_urlsafe(24) if token is RANDOM_TOKEN else token
        routes = resolve_routes(video_encoder, image_encoder, gpu=gpu)
        self._video = "webcodecs" in routes
        if self._video and (width % 2 or height % 2):
            raise ValueError(_odd_message(width, height))
        self._closed = False
        self._published = 0
        self._publish_lock = threading.Lock()
        self._frames = FrameStore(own_frames=own_frames)
        self._events = EventQueue(event_queue_size)
        self._registry = SessionRegistry()
        self._settings = SessionSettings(self.token, max_message_bytes, hello_timeout)
        self._fanout = FanOut(
            routes, frames=self._frames, post=self._post, fps=fps, bitrate=bitrate,
            device_id=device_id, max_inflight=max_inflight, keyframe_interval_min=keyframe_interval_min,
        )
        self.host = host
        app = create_app(on_websocket=self._on_websocket, health=self._health, allowed_origins=allowed_origins)
        # Last: the server thread owns an event loop, so nothing that may raise comes after it.
        self._server = ServerThread(
            app, host=host, port=port, ws_max_size=max_message_bytes,
            before_stop=self._close_viewers, after_stop=self._release,
        )

    # ------------------------------------------------------------ the render loop's side

    def publish(self, frame: Any) -> None:
        """Show ``frame`` to every viewer: validate, keep as the latest frame, wake the encoders.

        Never encodes here and never waits for viewers; a frame replaced before an encoder
        got to it is simply skipped (latest frame wins). With ``own_frames=False`` the
        display keeps a reference to your array until a newer one replaces it, so publish
        a fresh array per frame (or pass ``own_frames=True`` to have it copied).
        """
        if self._closed:
            raise RuntimeError("display is closed")
        raw = frame_from_array(frame)
        if self._video and (raw.width % 2 or raw.height % 2):
            raise FrameError(_odd_message(raw.width, raw.height))
        if raw.timestamp_us is None:
            raw = replace(raw, timestamp_us=time.monotonic_ns() // 1000)
        self._frames.put(raw)
        with self._publish_lock:
            self._published += 1
            self._width, self._height = raw.width, raw.height
        self._fanout.wake()

    def poll_events(self) -> list[InputEvent]:
        """Every viewer's input events since the last poll, oldest first."""
        return self._events.drain()

    # ------------------------------------------------------------ introspection

    @property
    def url(self) -> str:
        """The viewer URL, token included."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        netloc = f"[{host}]" if ":" in host else host
        query = f"?token={quote(self.token, safe='')}" if self.token else ""
        return f"http://{netloc}:{self.port}/{query}"

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def encoder_name(self) -> str | None:
        """The video route in use (or chosen), else the image route."""
        return self._fanout.encoder_name("webcodecs") or self._fanout.encoder_name("image")

    @property
    def transports(self) -> tuple[Transport, ...]:
        return self._fanout.transports

    @property
    def viewers(self) -> tuple[ViewerInfo, ...]:
        return self._registry.snapshot()

    @property
    def stats(self) -> DisplayStats:
        groups = self._fanout.stats()
        return DisplayStats(
            published=self._published,
            dropped_before_encode=sum(g.dropped_before_encode for g in groups.values()),
            keyframes_forced=sum(g.keyframes_forced for g in groups.values()),
            events_received=self._events.received,
            events_dropped=self._events.dropped,
            viewers=len(self.viewers),
            groups=groups,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------ lifecycle

    def _start(self) -> concurrent.futures.Future[None]:
        return self._server.start()

    def _post(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the server's event loop (from an encode thread)."""
        self._server.loop.call_soon_threadsafe(callback)

    def close(self) -> None:
        """Close every viewer (1001), stop the encoders and the server, join its thread. Idempotent."""
        self._check_not_server_thread()
        self._closed = True
        self._server.stop().result()
        self._server.join()

    async def aclose(self) -> None:
        """:meth:`close` for asyncio: waits without blocking the caller's event loop."""
        self._check_not_server_thread()
        self._closed = True
        await asyncio.wrap_future(self._server.stop())
        self._server.join()

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Display:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _check_not_server_thread(self) -> None:
        if threading.current_thread() is self._server.thread:
            raise RuntimeError("close the display from your own code, not from its server thread (it would deadlock)")

    async def _close_viewers(self) -> None:
        stuck = await self._registry.close_all(protocol.CLOSE_GOING_AWAY, "server shutting down", timeout=1.0)
        if stuck:  # peers that stopped reading: the close frame cannot reach them
            logger.warning("aborting %d viewers that do not read (the close frame is stuck behind their data)",
                           len(stuck))
            self._server.abort_connections({peer for v in stuck if (peer := v.peer) is not None})
            await self._registry.wait_finished(stuck, timeout=1.0)

    def _release(self) -> None:
        self._fanout.close()
        self._frames.clear()

    async def _on_websocket(self, websocket: Any) -> None:
        viewer = Viewer(
            websocket, client_id=self._registry.next_id(), fanout=self._fanout, events=self._events,
            settings=self._settings, frame_size=lambda: (self._width, self._height),
        )
        self._registry.add(viewer)
        try:
            await viewer.run()
        finally:
            self._registry.discard(viewer)

    def _health(self) -> dict[str, Any]:
        return {
            "status": "closing" if self._closed else "ok",
            "width": self._width,
            "height": self._height,
            "viewers": len(self.viewers),
            "encoder": self.encoder_name,
            "transports": list(self.transports),
            "published": self._published,
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.viewers)} viewers"
        return f"<Display {self._width}x{self._height} {self.encoder_name} {self.host}:{self.port} {state}>"


def resolve_routes(
    video_encoder: str | None, image_encoder: str | None, *, gpu: bool
) -> dict[Transport, list[EncoderEntry]]:
    """The encode routes per transport, best first, each followed by its fallbacks.

    A video encoder asked for by name must be available; otherwise a missing H.264 or
    image route only narrows what viewers may receive. No route at all is an error.
    """
    routes: dict[Transport, list[EncoderEntry]] = {}
    reasons = []
    for transport, name in (("webcodecs", video_encoder), ("image", image_encoder)):
        if transport == "image" and name is None:
            continue
        try:
            first = select_encoder(name, transport=transport, gpu=gpu and transport == "webcodecs")
        except (EncoderUnavailable, KeyError) as exc:
            if transport == "webcodecs" and name is not None:
                raise
            reasons.append(f"{transport}: {exc}")
            logger.warning("no %s route: %s", transport, exc)
            continue
        others = [s.name for s in encoder_status() if s.available and s.transport == transport and s.name != first.name]
        routes[transport] = [first, *(get_entry(n) for n in others)]
    if not routes:
        raise EncoderUnavailable("no encode route can run here: " + "; ".join(reasons))
    return routes


def _odd_message(width: int, height: int) -> str:
    odd = " and ".join(f"{n} {v}" for n, v in (("width", width), ("height", height)) if v % 2)
    return f"H.264 (4:2:0) needs even frame dimensions, got {width}x{height}: {odd} is odd"


async def serve(width: int, height: int, **options: Any) -> Display:
    """Start a display and its server; returns once it accepts connections. See :class:`Display`."""
    display = Display(width, height, **options)
    try:
        await asyncio.wrap_future(display._start())
    except BaseException:
        await display.aclose()
        raise
    logger.info("rfb display %dx%d at %s", width, height, display.url)
    return display


def start(width: int, height: int, **options: Any) -> Display:
    """:func:`serve` for synchronous scripts: blocks until the server accepts connections."""
    display = Display(width, height, **options)
    try:
        display._start().result()
    except BaseException:
        display.close()
        raise
    logger.info("rfb display %dx%d at %s", width, height, display.url)
    return display
