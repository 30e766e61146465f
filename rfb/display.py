"""The public object: a Display that takes frames from a render loop and streams them to viewers.

``publish()`` is the only thing a render loop calls per frame, so it is cheap, thread-safe
and never blocks on the network: it validates the frame, stores it as "the latest" and
wakes the encode groups (rfb.fanout). The server runs on a thread of its own
(rfb.server.ServerThread), so the caller may block its own thread or event loop freely.

Two ways to start one, with the same arguments::

    display = await rfb.serve(640, 480)          # from asyncio; await display.aclose()
    display = rfb.display.start(640, 480)        # from a plain script; display.close()

Both are context managers (``async with`` / ``with``).

Frames are NumPy arrays, CUDA arrays (CuPy, PyTorch, JAX, anything with
``__cuda_array_interface__`` or a CUDA ``__dlpack__``) or :class:`~rfb.frames.RawFrame`.
CUDA frames are accepted whatever ``gpu`` says: ``gpu=True`` only prefers routes that
encode on the GPU. A route that reads host memory (libx264, the image route) gets a
CUDA frame through one download, converted on the GPU first (rfb.encodegroup).
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

from rfb import protocol
from rfb.encoders.base import Transport
from rfb.encoders.checks import image_size_problem, video_size_problem
from rfb.events import EventQueue, InputEvent
from rfb.failover import FailoverPolicy
from rfb.fanout import FanOut, GroupStats
from rfb.frames import FrameError, RawFrame, is_device_array, frame_from_array
from rfb.framestore import FrameStore
from rfb.guard import ConnectionGuard
from rfb.latency import LatencySummary
from rfb.routes import resolve_routes
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
    groups: dict[str, GroupStats]  # by group: "webcodecs", "image" (JPEG), "png"
    latency: dict[int, LatencySummary]  # by client id, over the last stats_interval (1 s by default)


class Display:
    """A framebuffer served to web browsers. Build it with :func:`serve` or :func:`start`.

    Options (all keyword-only):

    - ``host``/``port``: where to listen (127.0.0.1 by default; ``port=0`` picks a free port).
    - ``fps``, ``bitrate``: handed to the encoder (``EncoderConfig``).
    - ``device_id``: the CUDA device the encoders and the display's device buffers use;
      CUDA frames must live on it.
    - ``gpu``: prefer routes that take CUDA frames without a host copy (NVENC; on GPUs
      without NVENC, NV12 made on the GPU for libx264). When none can run here a CPU
      route is used and a warning says why. Without it such routes run only when named.
    - ``video_encoder``: an H.264 route by name (it must be available), or None for the
      best available one. ``image_encoder``: the JPEG route, or None for no images (PNG
      viewers are served by the built-in image route in lossless mode).
    - ``own_frames``: copy each frame at ``publish()`` (host frames with NumPy, CUDA
      frames device to device with CuPy) so the caller may reuse its array at once.
    - ``max_inflight``: unacked payloads per viewer before it is skipped (docs/fanout.md).
    - ``keyframe_interval_min``: at most one forced IDR per this many seconds.
    - ``failover``: when a route that keeps failing is set aside for the next one, and
      how long a route may take to start (:class:`rfb.failover.FailoverPolicy`).
    - ``token``: the secret a viewer sends in ``hello`` (random by default; None: no check).
    - ``allowed_origins``: origins besides the page's own allowed to connect ("*": any).
    - ``allowed_hosts``: names besides IP addresses, ``localhost``, ``host`` and the
      hosts of ``allowed_origins`` that a request's Host header may carry ("*": any);
      the defence against DNS rebinding (rfb.hosts). Add your machine's LAN name here
      when you serve on ``0.0.0.0`` and open the viewer by name.
    - ``max_connections``: open connections (viewers and HTTP requests together) beyond
      which new ones get a 503 (rfb.guard).
    - ``max_message_bytes``, ``event_queue_size``: limits on viewers. ``hello_timeout``:
      seconds a new connection has to send its HTTP request, and then its ``hello``.
    - ``stats_interval``: seconds between ``stats`` messages (latency, fps) to each
      viewer, also the window of ``ViewerInfo.latency``; 0 sends none.
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
        allowed_hosts: Sequence[str] | None = None,
        max_connections: int = 100,
        device_id: int = 0,
        max_message_bytes: int = 64 * 1024,
        event_queue_size: int = 1024,
        keyframe_interval_min: float = 0.25,
        hello_timeout: float = 10.0,
        stats_interval: float = 1.0,
        failover: FailoverPolicy | None = None,
    ) -> None:
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self._width, self._height = width, height
        if token is not RANDOM_TOKEN and token is not None and (not isinstance(token, str) or not token):
            raise ValueError(f"token must be a non-empty string, or None to disable the check; got {token!r}")
        self.token: str | None = secrets.token_urlsafe(24) if token is RANDOM_TOKEN else token
        guard = ConnectionGuard(max_connections=max_connections, request_timeout=hello_timeout)
        routes = resolve_routes(video_encoder, image_encoder, gpu=gpu, device_id=device_id)
        self._video = "webcodecs" in routes
        problem = self._size_problem(width, height)
        if problem is not None:
            raise ValueError(problem)
        self._device_id = device_id
        # Frames that a route cannot take from device memory as they are pass through CuPy.
        self._cuda_needs_cupy = own_frames or any(not candidates[0].reads_cuda for candidates in routes.values())
        self._closed = False
        self._close_hooks: list[Callable[[], None]] | None = []  # run once closed (widgets' final still); then None
        self._close_hooks_lock = threading.Lock()
        self._published = 0
        self._publish_lock = threading.Lock()
        self._frames = FrameStore(own_frames=own_frames)
        self._events = EventQueue(event_queue_size)
        self._registry = SessionRegistry()
        self._settings = SessionSettings(self.token, max_message_bytes, hello_timeout, stats_interval)
        self._fanout = FanOut(
            routes, frames=self._frames, post=self._post, fps=fps, bitrate=bitrate,
            device_id=device_id, max_inflight=max_inflight, keyframe_interval_min=keyframe_interval_min,
            failover=failover,
        )
        self.host = host
        app = create_app(on_websocket=self._on_websocket, health=self._health, allowed_origins=allowed_origins,
                         allowed_hosts=allowed_hosts, bound_host=host, token=self.token)
        # Last: the server thread owns an event loop, so nothing that may raise comes after it.
        self._server = ServerThread(
            app, host=host, port=port, ws_max_size=max_message_bytes,
            before_stop=self._close_viewers, after_stop=self._release,
            guard=guard,
        )

    # ------------------------------------------------------------ the render loop's side

    def publish(self, frame: Any) -> None:
        """Show ``frame`` to every viewer: validate, keep as the latest frame, wake the encoders.

        ``frame``: a NumPy array, a CUDA array (on ``device_id``) or a RawFrame. Never
        encodes here and never waits for viewers; a frame replaced before an encoder got
        to it is simply skipped (latest frame wins).

        With ``own_frames=False`` the display keeps a reference to your array (host or
        device) until a newer one replaces it and the encoders are done with it: publish a
        fresh array per frame. Writing into a published array races with its encode
        (a viewer may see the old picture, the new one, or a mix). With
        ``own_frames=True`` the frame is copied before this returns (for CUDA frames:
        after the work queued on the default stream, or on the stream the array names),
        so you may overwrite it at once.
        """
        if self._closed:
            raise RuntimeError("display is closed")
        raw = self._as_frame(frame)
        problem = self._size_problem(raw.width, raw.height)
        if problem is not None:
            raise FrameError(problem)
        if raw.timestamp_us is None:
            raw = replace(raw, timestamp_us=time.monotonic_ns() // 1000)
        self._frames.put(raw)
        with self._publish_lock:
            self._published += 1
            self._width, self._height = raw.width, raw.height
        self._fanout.wake()

    def _size_problem(self, width: int, height: int) -> str | None:
        """Why no route of this display could encode a frame of this size (rfb.encoders.checks).

        A display with H.264 viewers takes only what H.264 can encode, so that no viewer
        silently misses a frame its neighbours see; an image-only display takes up to JPEG's
        limit.
        """
        return video_size_problem(width, height) if self._video else image_size_problem(width, height)

    def _as_frame(self, frame: Any) -> RawFrame:
        """Validate ``frame`` in the caller's stack: host arrays here, CUDA ones by rfb.gpu."""
        if isinstance(frame, RawFrame) or not is_device_array(frame):
            raw = frame_from_array(frame)
        else:
            from rfb.gpu.arrays import cuda_frame

            raw = cuda_frame(frame, device_id=self._device_id)  # the device, when the array does not say
        if raw.memory == "cuda":
            self._check_cuda_frame(raw)
        return raw

    def _check_cuda_frame(self, raw: RawFrame) -> None:
        from rfb.gpu.arrays import check_cuda_frame
        from rfb.gpu.context import cupy_available

        check_cuda_frame(raw)  # a RawFrame made by hand: its data must be what it claims
        if raw.device_id != self._device_id:
            raise FrameError(
                f"this display encodes on CUDA device {self._device_id} (device_id={self._device_id}), "
                f"got a frame on device {raw.device_id}; start the display with device_id={raw.device_id}"
            )
        reason = cupy_available() if self._cuda_needs_cupy else None
        if reason is not None:
            need = "copies them (own_frames=True)" if self._frames.own_frames else "converts and downloads them for a CPU route"
            raise FrameError(f"expected CuPy for CUDA frames: this display {need} with CuPy, which is unusable: {reason}")

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
    def routes(self) -> dict[str, str]:
        """The route each group runs (or will run first), by group: "webcodecs", "image", "png".

        What ``gpu=True`` actually resolved to, so that a program can say which routes it
        got (``rfb demo`` logs them); :func:`rfb.routes.gpu_fallback_reasons` says why a GPU route
        was passed over.
        """
        return {key: name for key in self._fanout.groups if (name := self._fanout.encoder_name(key)) is not None}

    @property
    def server_thread(self) -> threading.Thread | None:
        """The thread running the server's event loop (read-only; e.g. for its CPU share)."""
        return self._server.thread

    @property
    def viewers(self) -> tuple[ViewerInfo, ...]:
        return self._registry.snapshot()

    def latency(self, window_s: float = 1.0) -> dict[int, LatencySummary]:
        """Each viewer's drawn frames over the last ``window_s`` seconds (at most 60), by client id.

        Latency runs from ``publish()`` to the arrival of the viewer's ack for the drawn
        frame, on this process's clock: no clock agreement with the browser is needed.
        """
        return self._registry.latency(window_s)

    @property
    def stats(self) -> DisplayStats:
        """Counters, per-group stats and each viewer's latency over the last ``stats_interval``.

        Cheap enough to read every frame: with 8 viewers whose latency logs are full
        (8192 samples each), 128 us on the 2-core development machine (best of 5 x 200
        reads, ``timeit`` of ``display.stats`` with the test encoders).
        """
        groups = self._fanout.stats()
        return DisplayStats(
            published=self._published,
            dropped_before_encode=sum(g.dropped_before_encode for g in groups.values()),
            keyframes_forced=sum(g.keyframes_forced for g in groups.values()),
            events_received=self._events.received,
            events_dropped=self._events.dropped,
            viewers=self._registry.joined(),
            groups=groups,
            latency=self._registry.latency(self._settings.stats_interval or 1.0),
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
        self._run_close_hooks()

    async def aclose(self) -> None:
        """:meth:`close` for asyncio: waits without blocking the caller's event loop."""
        self._check_not_server_thread()
        self._closed = True
        await asyncio.wrap_future(self._server.stop())
        self._server.join()
        self._run_close_hooks()

    def _run_close_hooks(self) -> None:
        with self._close_hooks_lock:
            hooks, self._close_hooks = self._close_hooks or [], None
        for hook in hooks:
            try:
                hook()
            except Exception:  # one widget's failure must not stop the others' final still
                logger.exception("a close hook of the display failed")

    # ------------------------------------------------------------ notebooks

    def widget(self, *, transport: str = "auto", height: int | None = None, only: str | None = None,
               overlay: bool = True) -> Any:
        """A notebook widget (anywidget) that shows this display live; needs ``rfb[notebook]``.

        ``transport``: "auto" tries a WebSocket to this display's port and falls back to
        the widget's comm; "comm" and "websocket" force one. Each widget, and each view of
        one, is a viewer of its own (rfb.widget, docs/viewer.md "In a notebook"). ``height``:
        CSS pixels (None: the frame's aspect ratio at the cell's width); ``only``: "image"
        or "png" as the page's ``transport=``; ``overlay``: show the stats readout.
        """
        from rfb.widget import DisplayWidget

        return DisplayWidget(self, transport=transport, height=height, only=only, overlay=overlay)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        """A display as the last expression of a notebook cell shows its widget (or, without anywidget, why not)."""
        try:
            from rfb.widget import widget_bundle
        except ImportError as exc:
            return {"text/plain": f"{self!r}\n(pip install 'rfb[notebook]' to see it here: {exc}; or open {self.url})"}
        return widget_bundle(self, include, exclude)

    def _serve_channel(self, channel: Any) -> concurrent.futures.Future[None]:
        """Run a viewer over ``channel`` (rfb.channel) on the server loop, as for a WebSocket; thread-safe."""
        if self._closed:
            raise RuntimeError("display is closed")
        return asyncio.run_coroutine_threadsafe(self._on_websocket(channel), self._server.loop)

    def _on_close(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` once, after the display has closed (at once if it has)."""
        with self._close_hooks_lock:
            if self._close_hooks is not None:
                self._close_hooks.append(hook)
                return
        hook()

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
            if viewer.member is not None:  # it had joined (rfb.session logs that): say it is gone too
                logger.info("viewer %d left the %s group after %d frames; %d viewers remain",
                            viewer.client_id, viewer.member.group, viewer.member.delivered, len(self.viewers))

    def _health(self) -> dict[str, Any]:
        return {
            "status": "closing" if self._closed else "ok",
            "width": self._width,
            "height": self._height,
            "viewers": self._registry.joined(),
            "encoder": self.encoder_name,
            "transports": list(self.transports),
            "published": self._published,
            "connections_refused": self._server.guard.refused,
            "connections_timed_out": self._server.guard.timed_out,
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.viewers)} viewers"
        return f"<Display {self._width}x{self._height} {self.encoder_name} {self.host}:{self.port} {state}>"


async def serve(
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
    allowed_hosts: Sequence[str] | None = None,
    max_connections: int = 100,
    device_id: int = 0,
    max_message_bytes: int = 64 * 1024,
    event_queue_size: int = 1024,
    keyframe_interval_min: float = 0.25,
    hello_timeout: float = 10.0,
    stats_interval: float = 1.0,
    failover: FailoverPolicy | None = None,
) -> Display:
    """Start a display and its server; returns once it accepts connections.

    ``await rfb.serve(1280, 720, port=0)`` from asyncio; ``async with`` it, or ``await
    display.aclose()``. The options, all keyword-only, are :class:`Display`'s (spelled
    out here so that ``help()`` and editors show them):

    - ``host``, ``port``: where to listen (127.0.0.1, this machine only, by default;
      ``port=0`` picks a free port, ``display.port`` says which).
    - ``fps``, ``bitrate``: the encoder's frame rate and H.264 bitrate (bits/s).
    - ``gpu``: prefer the routes that take CUDA frames without a host copy; a CPU route
      is used, with a logged reason, where none can run.
    - ``own_frames``: copy each frame at ``publish()`` so the caller may reuse its array.
    - ``video_encoder``: an H.264 route by name (``python -m rfb doctor`` lists them), or
      None for the best one here. ``image_encoder``: the JPEG route, or None for no images.
    - ``max_inflight``: unacknowledged frames per viewer before it skips frames.
    - ``token``: the secret in the viewer URL (random by default; None: no check).
    - ``allowed_origins``: origins besides the page's own that may connect ("*": any).
    - ``allowed_hosts``: host names besides IP addresses, ``localhost``, ``host`` and
      the hosts of ``allowed_origins`` that a request may name (the defence against DNS
      rebinding; add your LAN name when serving on 0.0.0.0; "*": any).
    - ``max_connections``: open connections beyond which new ones get a 503.
    - ``device_id``: the CUDA device that CUDA frames live on.
    - ``max_message_bytes``, ``event_queue_size``: limits on viewers. ``hello_timeout``:
      seconds a connection has to send its request, then its ``hello``.
    - ``keyframe_interval_min``: at most one forced keyframe per this many seconds.
    - ``stats_interval``: seconds between the stats sent to each viewer (0: none).
    - ``failover``: when a route that keeps failing is set aside for the next one
      (:class:`rfb.failover.FailoverPolicy`).
    """
    # locals() holds the parameters only, this being the first statement: Display's options, passed on unchanged
    options = {name: value for name, value in locals().items() if name not in ("width", "height")}
    display = Display(width, height, **options)
    try:
        await asyncio.wrap_future(display._start())
    except BaseException:
        await display.aclose()
        raise
    _log_listening(display)
    return display


def start(
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
    allowed_hosts: Sequence[str] | None = None,
    max_connections: int = 100,
    device_id: int = 0,
    max_message_bytes: int = 64 * 1024,
    event_queue_size: int = 1024,
    keyframe_interval_min: float = 0.25,
    hello_timeout: float = 10.0,
    stats_interval: float = 1.0,
    failover: FailoverPolicy | None = None,
) -> Display:
    """:func:`serve` for synchronous scripts: blocks until the server accepts connections.

    ``with rfb.start(1280, 720, port=0) as display:``, or call ``display.close()``. The
    options are :func:`serve`'s (see there, or :class:`Display`).
    """
    options = {name: value for name, value in locals().items() if name not in ("width", "height")}  # as in serve()
    display = Display(width, height, **options)
    try:
        display._start().result()
    except BaseException:
        display.close()
        raise
    _log_listening(display)
    return display


def _log_listening(display: Display) -> None:
    # Not the URL: it carries the token, a secret that has no place in log files.
    logger.info("rfb display %dx%d listening on %s:%d", display.width, display.height, display.host, display.port)
