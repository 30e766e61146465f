"""The public object: a Display that takes frames from a render loop and streams them to viewers.

``publish()`` is the only thing a render loop calls per frame, so it is cheap, thread-safe
and never blocks on the network: it validates the frame, stores it as "the latest" and
wakes the encode groups (rfb.fanout). The server runs on a thread of its own
(rfb.server.ServerThread), so the caller may block its own thread or event loop freely.

Two ways to start one with a server of its own, with the same arguments (rfb.launch)::

    display = await rfb.serve(640, 480)          # from asyncio; await display.aclose()
    display = rfb.start(640, 480)                # from a plain script; display.close()

Both are context managers (``async with`` / ``with``). A third way serves it from your
own Starlette or FastAPI application, on its event loop and port (rfb.asgi)::

    display = rfb.Display(640, 480)
    app.mount("/viz", display.asgi_app())        # await display.aclose() at shutdown

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
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from starlette.types import ASGIApp

from rfb import protocol
from rfb.adapt import AdaptPolicy
from rfb.asgi import LoopServing, MountedApp
from rfb.encoders.base import Transport
from rfb.encoders.checks import image_size_problem, video_size_problem
from rfb.events import TARGET_SIZE, EventQueue, InputEvent
from rfb.failover import FailoverPolicy
from rfb.fanout import FanOut, GroupStats
from rfb.frames import FrameError, RawFrame, frame_from_array, is_device_array
from rfb.framestore import FrameStore
from rfb.guard import ConnectionGuard
from rfb.latency import LatencySummary
from rfb.recording import Recording
from rfb.resize import (
    DEFAULT_MAX_SIZE,
    RESIZE_POLICIES,
    MatchViewer,
    ResizePolicy,
    Target,
    check_max_size,
    check_pixel_ratio,
)
from rfb.routes import resolve_routes
from rfb.server import Authenticate, OriginGrants, ServerThread, create_app
from rfb.session import SessionRegistry, SessionSettings, Viewer, ViewerInfo
from rfb.stills import StillStats, host_rgb, png_bytes

logger = logging.getLogger("rfb.display")

__all__ = ["Display", "DisplayStats", "FrameStore", "RANDOM_TOKEN"]


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
    groups: dict[str, GroupStats]  # by group: "webcodecs" (and its tiers "webcodecs@1"...), "image" (JPEG), "png"
    latency: dict[int, LatencySummary]  # by client id, over the last stats_interval (1 s by default)
    stills: StillStats | None = None  # lossless stills of settled frames (rfb.stills)


class Display:
    """A framebuffer served to web browsers. Build it with :func:`serve` or :func:`start`,
    or build it here and mount its :meth:`asgi_app` in your application.

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
      A notebook widget of this display needs none: its page tells the kernel its origin
      over the widget's comm, and that origin is accepted while the widget lives (rfb.widget).
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
    - ``resize_policy``: ``"fixed"`` keeps ``width`` x ``height`` as the target size;
      ``"match_viewer"`` makes ``target_size`` follow one viewer's area in device
      pixels, within ``max_size`` (aspect kept), debounced (rfb.resize). The
      application renders at ``target_size`` and publishes with
      ``pixel_ratio=target_pixel_ratio``; a ``target_size`` event says when it changed.
    - ``still_after``: seconds without a new frame before every viewer that gets lossy
      frames (H.264, JPEG) is sent the last one losslessly, once (PNG, drawn over the
      video until the next frame); None: only on :meth:`refresh_still`.
    - ``adaptive``: serve each H.264 viewer from a quality tier its link can carry
      (lower bitrate, then frame rate, then size; each tier encoded once for all its
      viewers), moved on sustained evidence (rfb.adapt). True: the default
      :class:`rfb.adapt.AdaptPolicy`; False (the default): everybody gets the full stream.
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
        resize_policy: ResizePolicy = "fixed",
        max_size: tuple[int, int] = DEFAULT_MAX_SIZE,
        still_after: float | None = 0.3,
        adaptive: bool | AdaptPolicy = False,
    ) -> None:
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self._width, self._height = width, height
        if resize_policy not in RESIZE_POLICIES:
            raise ValueError(f"resize_policy: expected one of {RESIZE_POLICIES}, got {resize_policy!r}")
        if token is not RANDOM_TOKEN and token is not None and (not isinstance(token, str) or not token):
            raise ValueError(f"token must be a non-empty string, or None to disable the check; got {token!r}")
        self.token: str | None = secrets.token_urlsafe(24) if token is RANDOM_TOKEN else token
        guard = ConnectionGuard(max_connections=max_connections, request_timeout=hello_timeout)
        routes = resolve_routes(video_encoder, image_encoder, gpu=gpu, device_id=device_id)
        self._video = "webcodecs" in routes
        problem = self._size_problem(width, height)
        if problem is not None:
            raise ValueError(problem)
        initial = Target(width, height)
        self._resize: MatchViewer | None = None
        self._fixed_target = initial
        if resize_policy == "match_viewer":
            limit = check_max_size(max_size, video=self._video)
            self._resize = MatchViewer(initial, max_size=limit, even=self._video)
        self._settle_timer: asyncio.TimerHandle | None = None
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
        self._recording: Recording | None = None
        self._fanout = FanOut(
            routes,
            frames=self._frames,
            post=self._post,
            fps=fps,
            bitrate=bitrate,
            device_id=device_id,
            max_inflight=max_inflight,
            keyframe_interval_min=keyframe_interval_min,
            failover=failover,
            still_after=still_after,
            adaptive=_adapt_policy(adaptive),
        )
        self.host = host
        self._port = port
        self._guard = guard
        self._allowed_origins = allowed_origins
        self._allowed_hosts = allowed_hosts
        # Notebook pages whose widgets of this display reported their origin over the comm (rfb.widget).
        self._origin_grants = OriginGrants()
        # How it is served is chosen once: its own thread (_start) or a host application (asgi_app).
        self._server: ServerThread | LoopServing | None = None

    # ------------------------------------------------------------ the render loop's side

    def publish(self, frame: Any, *, pixel_ratio: float | None = None) -> None:
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

        ``pixel_ratio``: the frame's pixels per CSS pixel (``target_pixel_ratio`` for a
        frame rendered at ``target_size``). Viewers then fit it at no more than its
        logical size (width / pixel_ratio CSS pixels): one frame pixel per device pixel
        on a screen of that devicePixelRatio. Without it a viewer's fit fills its window.
        """
        if self._closed:
            raise RuntimeError("display is closed")
        ratio = None if pixel_ratio is None else check_pixel_ratio(pixel_ratio, "publish(pixel_ratio=...)")
        raw = self._as_frame(frame)
        problem = self._size_problem(raw.width, raw.height)
        if problem is not None:
            raise FrameError(problem)
        changes: dict[str, Any] = {} if ratio is None else {"pixel_ratio": ratio}
        if raw.timestamp_us is None:
            changes["timestamp_us"] = time.monotonic_ns() // 1000
        if changes:
            raw = replace(raw, **changes)
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
            need = (
                "copies them (own_frames=True)"
                if self._frames.own_frames
                else "converts and downloads them for a CPU route"
            )
            raise FrameError(
                f"expected CuPy for CUDA frames: this display {need} with CuPy, which is unusable: {reason}"
            )

    def poll_events(self) -> list[InputEvent]:
        """Every viewer's input events since the last poll, oldest first."""
        return self._events.drain()

    # ------------------------------------------------------------ the size to render at

    @property
    def target_size(self) -> tuple[int, int]:
        """The (width, height) to render at: serve()'s size, or the driving viewer's (``resize_policy``)."""
        return (self._resize.target if self._resize is not None else self._fixed_target).size

    @property
    def target_pixel_ratio(self) -> float:
        """The ``pixel_ratio`` to publish a frame of ``target_size`` with (1.0 with the fixed policy)."""
        return (self._resize.target if self._resize is not None else self._fixed_target).pixel_ratio

    @property
    def driver(self) -> int | None:
        """The client id of the viewer whose size ``target_size`` follows; None with the fixed policy."""
        return self._resize.driver if self._resize is not None else None

    def set_driver(self, client_id: int | None) -> None:
        """Make the viewer ``client_id`` (``InputEvent.client_id``, ``ViewerInfo.client_id``) drive the size.

        None goes back to the default: the first viewer still connected. When the chosen
        viewer leaves, the default applies again.
        """
        policy = self._resize
        if policy is None:
            raise RuntimeError("set_driver needs resize_policy='match_viewer'; this display's size is fixed")
        if self._closed:
            raise RuntimeError("display is closed")
        if client_id is not None:
            connected = sorted(v.client_id for v in self.viewers)
            if client_id not in connected:
                raise ValueError(
                    f"set_driver: expected the client id of a connected viewer {connected}, got {client_id!r}"
                )
        policy.choose(client_id, time.monotonic())
        self._post(lambda: self._schedule_settle(policy.due))

    def _on_resize(self, event: InputEvent) -> None:
        """A viewer's area changed (on the server loop): tell the policy, wait out its debounce."""
        policy = self._resize
        if policy is not None and event.width is not None and event.height is not None:
            ratio = event.pixel_ratio if event.pixel_ratio is not None else 1.0
            self._schedule_settle(policy.report(event.client_id, event.width, event.height, ratio, time.monotonic()))

    def _schedule_settle(self, due: float | None) -> None:
        """(Re)arm the one timer that settles the pending target at ``due`` (server loop only)."""
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None
        if due is not None and not self._closed:  # a closing display asks for no new size
            delay = max(0.0, due - time.monotonic())
            self._settle_timer = asyncio.get_running_loop().call_later(delay, self._settle)

    def _settle(self) -> None:
        self._settle_timer = None
        policy = self._resize
        assert policy is not None
        target = policy.settle(time.monotonic())
        if target is not None:
            driver = policy.driver
            logger.info(
                "target size %dx%d at pixel ratio %g, following viewer %s",
                target.width,
                target.height,
                target.pixel_ratio,
                driver,
            )
            self._events.put(
                InputEvent(
                    TARGET_SIZE,
                    driver if driver is not None else 0,
                    width=target.width,
                    height=target.height,
                    pixel_ratio=target.pixel_ratio,
                    time=time.monotonic(),
                )
            )
        self._schedule_settle(policy.due)

    # ------------------------------------------------------------ stills and captures

    def refresh_still(self) -> None:
        """Send every viewer of lossy frames the current frame losslessly now, once.

        What ``still_after`` does when the scene settles, on demand (also with
        ``still_after=None``). Viewers that already hold this frame's still, and PNG
        viewers, get nothing more. Returns at once; the PNG is made on a thread of its own.
        """
        if self._closed:
            raise RuntimeError("display is closed")
        self._fanout.refresh_still()

    def capture(self, format: str = "png") -> bytes | Any:
        """The last published frame: PNG bytes (``format="png"``) or an ``(H, W, 3)`` uint8 RGB array ("array").

        For notebooks and papers: exactly the pixels published (alpha dropped, nv12
        converted to RGB as the encoders do), whatever viewers received. A CUDA frame is
        copied down once. The array is the caller's own copy. Raises ``LookupError``
        before the first publish.
        """
        if format not in ("png", "array"):
            raise ValueError(f"format must be 'png' or 'array', got {format!r}")
        lease = self._frames.take()
        if lease is None:
            raise LookupError("nothing to capture: no frame has been published yet")
        try:
            rgb = host_rgb(lease.frame)
            if format == "png":
                return png_bytes(rgb)
            return rgb.copy() if rgb is lease.frame.data else rgb
        finally:
            self._frames.release(lease.frame)

    # ------------------------------------------------------------ recordings

    def record(self, path: str | os.PathLike[str], *, queue_size: int = 256, fragment_s: float = 0.5) -> Recording:
        """Record the H.264 stream as it is sent into fragmented MP4 at ``path``, until :meth:`stop_recording`.

        No second encode: the recording receives the access units the video viewers get
        (on a display whose viewers take images, the H.264 group runs for it alone). It
        starts at a keyframe it asks for, keeps the publish timestamps, starts a new file
        at a new size (``run.mp4``, ``run-001.mp4``...), and a crash leaves every file
        playable up to its last fragment (rfb.recording). One recording at a time; also
        a context manager (``with display.record("run.mp4"): ...``).
        """
        if self._closed:
            raise RuntimeError("display is closed")
        if self._recording is not None and self._recording.recording:
            raise RuntimeError(f"already recording to {self._recording.path}; stop_recording() first")
        self._recording = Recording(self._fanout, path, queue_size=queue_size, fragment_s=fragment_s)
        return self._recording

    def stop_recording(self) -> Recording | None:
        """Finish the recording in progress (its files are complete when this returns); None if none."""
        recording, self._recording = self._recording, None
        if recording is not None:
            recording.stop()
        return recording

    # ------------------------------------------------------------ introspection

    @property
    def url(self) -> str:
        """The viewer URL, token included (a mounted display has none: it lives at its mount path)."""
        if self.mounted:
            raise RuntimeError(
                "a mounted display has no URL of its own: open the path where your application mounts "
                "its asgi_app()" + (", with ?token=<display.token>" if self.token else "")
            )
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        netloc = f"[{host}]" if ":" in host else host
        query = f"?token={quote(self.token, safe='')}" if self.token else ""
        return f"http://{netloc}:{self.port}/{query}"

    @property
    def port(self) -> int | None:
        """The port it listens on (``port=0``: the one picked); None when mounted in an application."""
        if isinstance(self._server, LoopServing):
            return None
        return self._server.port if self._server is not None else self._port

    @property
    def mounted(self) -> bool:
        """Served by a host application through :meth:`asgi_app`, not by a server of its own."""
        return isinstance(self._server, LoopServing)

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
        """The thread running the event loop that serves the viewers (read-only; e.g. for its CPU share)."""
        return self._server.thread if self._server is not None else None

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
            stills=self._fanout.still_stats(),
        )

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------ lifecycle

    def _start(self) -> concurrent.futures.Future[None]:
        """Serve on a thread of its own (what serve() and start() do)."""
        self._check_unserved("start a server for it")
        app = create_app(
            on_websocket=self._on_websocket,
            health=self._health,
            allowed_origins=self._allowed_origins,
            allowed_hosts=self._allowed_hosts,
            bound_host=self.host,
            token=self.token,
            granted=self._origin_grants,
        )
        self._server = ServerThread(
            app,
            host=self.host,
            port=self._port,
            ws_max_size=self._settings.max_message_bytes,
            before_stop=self._close_viewers,
            after_stop=self._release,
            guard=self._guard,
        )
        return self._server.start()

    def asgi_app(self, *, authenticate: Authenticate | None = None) -> ASGIApp:
        """An ASGI app serving this display from your application's event loop (rfb.asgi).

        Mount it under any prefix (``Mount("/viz", display.asgi_app())`` in Starlette,
        ``app.mount("/viz", ...)`` in FastAPI): the page is at ``/viz/``, its socket at
        ``/viz/ws``, with this display's token, Origin and Host rules (``allowed_hosts``:
        add the names your application is reached by). ``authenticate(websocket)``,
        plain or async, is asked who connects before the ``hello`` is read: None refuses
        the viewer (close 4001), anything else is its ``principal``, on its events and in
        ``viewers``; the token must match too. ``host``, ``port`` and ``max_connections``
        do not apply: your server listens. Close it with ``await display.aclose()`` in
        your application's shutdown. One app per display.
        """
        return self._mount(authenticate=authenticate)

    def _mount(
        self,
        *,
        authenticate: Authenticate | None = None,
        allowed_origins: Sequence[str] = (),
        allowed_hosts: Sequence[str] = (),
        abort: Callable[[set[tuple[str, int]] | None], int] | None = None,
    ) -> ASGIApp:
        """The app, with the serving side's own origins and hosts allowed besides the display's."""
        self._check_unserved("mount it")
        app = create_app(
            on_websocket=self._on_websocket,
            health=self._health,
            allowed_origins=[*(self._allowed_origins or ()), *allowed_origins],
            allowed_hosts=[*(self._allowed_hosts or ()), *allowed_hosts],
            token=self.token,
            authenticate=authenticate,
            granted=self._origin_grants,
        )
        serving = LoopServing(before_stop=self._close_viewers, after_stop=self._release, abort=abort)
        self._server = serving
        return MountedApp(app, serving, self.aclose)

    def _check_unserved(self, what: str) -> None:
        if self._closed:
            raise RuntimeError(f"display is closed: cannot {what}")
        if self._server is not None:
            how = "mounted in an application (asgi_app)" if self.mounted else "served by its own server"
            raise RuntimeError(f"this display is already {how}: cannot {what}; a display is served one way, once")

    def _post(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop that serves the viewers (from an encode thread).

        RuntimeError when there is none (yet, or any more): the fan-out drops the batch.
        """
        loop = self._server.loop if self._server is not None else None
        if loop is None:
            raise RuntimeError("no event loop serves this display")
        loop.call_soon_threadsafe(callback)

    def _stop(self) -> concurrent.futures.Future[None]:
        self._closed = True
        if self._server is not None:
            return self._server.stop()
        self._release()  # never served: no viewer, nothing runs but what the display built
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        done.set_result(None)
        return done

    def close(self) -> None:
        """Close every viewer (1001), stop the encoders and the server, join its thread. Idempotent."""
        self._check_not_server_thread(blocking=True)
        self._stop().result()
        if self._server is not None:
            self._server.join()
        self._run_close_hooks()

    async def aclose(self) -> None:
        """:meth:`close` for asyncio: waits without blocking the caller's event loop.

        A mounted display closes this way, on (or off) the loop that serves it.
        """
        self._check_not_server_thread(blocking=False)
        await asyncio.wrap_future(self._stop())
        if self._server is not None:
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

    def widget(
        self, *, transport: str = "auto", height: int | None = None, only: str | None = None, overlay: bool = True
    ) -> Any:
        """A notebook widget (anywidget) that shows this display live; needs ``rfb[notebook]``.

        ``transport``: "auto" tries a WebSocket to this display's port and falls back to
        the widget's comm; "comm" and "websocket" force one. For the WebSocket, each view
        first tells the kernel its page's origin over the comm, and the display accepts
        that origin (no ``allowed_origins`` needed; the token still is). Each widget, and
        each view of one, is a viewer of its own (rfb.widget, docs/viewer.md "In a
        notebook"). ``height``: CSS pixels (None: the frame's aspect ratio at the cell's
        width); ``only``: "image" or "png" as the page's ``transport=``; ``overlay``: show
        the stats readout.
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
        """Run a viewer over ``channel`` (rfb.channel) on the loop that serves the viewers; thread-safe."""
        if self._closed:
            raise RuntimeError("display is closed")
        loop = self._server.loop if self._server is not None else None
        if loop is None:
            raise RuntimeError(
                "the display is not served yet: start it with rfb.start()/rfb.serve(), or mount its asgi_app() "
                "and let the app take a request, before showing a widget"
            )
        return asyncio.run_coroutine_threadsafe(self._on_websocket(channel), loop)

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

    def _check_not_server_thread(self, *, blocking: bool) -> None:
        server = self._server
        if isinstance(server, ServerThread) and threading.current_thread() is server.thread:
            raise RuntimeError("close the display from your own code, not from its server thread (it would deadlock)")
        if blocking and isinstance(server, LoopServing) and server.serving_here():
            raise RuntimeError(
                "this display is served by your application's event loop: 'await display.aclose()' "
                "there (close() would block the loop it waits for)"
            )

    async def _close_viewers(self) -> None:
        self._schedule_settle(None)
        stuck = await self._registry.close_all(protocol.CLOSE_GOING_AWAY, "server shutting down", timeout=1.0)
        if stuck:  # peers that stopped reading: the close frame cannot reach them
            logger.warning(
                "aborting %d viewers that do not read (the close frame is stuck behind their data)", len(stuck)
            )
            if self._server is not None:  # viewers come through a server; it is there while they are
                self._server.abort_connections({peer for v in stuck if (peer := v.peer) is not None})
            await self._registry.wait_finished(stuck, timeout=1.0)

    def _release(self) -> None:
        self.stop_recording()
        self._fanout.close()
        self._frames.clear()

    async def _on_websocket(self, websocket: Any) -> None:
        if self._closed:  # a mounted app outlives its display: the host may still route requests to it
            await websocket.close(protocol.CLOSE_GOING_AWAY, "server shutting down")
            return
        viewer = Viewer(
            websocket,
            client_id=self._registry.next_id(),
            fanout=self._fanout,
            events=self._events,
            settings=self._settings,
            frame_size=lambda: (self._width, self._height),
            principal=_principal_of(websocket),
            on_resize=self._on_resize,
        )
        self._registry.add(viewer)
        try:
            await viewer.run()
        finally:
            self._registry.discard(viewer)
            if self._resize is not None:
                self._schedule_settle(self._resize.left(viewer.client_id, time.monotonic()))
            if viewer.member is not None:  # it had joined (rfb.session logs that): say it is gone too
                logger.info(
                    "viewer %d left the %s group after %d frames; %d viewers remain",
                    viewer.client_id,
                    viewer.member.group,
                    viewer.member.delivered,
                    len(self.viewers),
                )

    def _health(self) -> dict[str, Any]:
        return {
            "status": "closing" if self._closed else "ok",
            "width": self._width,
            "height": self._height,
            "viewers": self._registry.joined(),
            "encoder": self.encoder_name,
            "transports": list(self.transports),
            "published": self._published,
            # A mounted display's connections are its host server's: it has no counts of its own.
            **(
                {}
                if self.mounted
                else {"connections_refused": self._guard.refused, "connections_timed_out": self._guard.timed_out}
            ),
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.viewers)} viewers"
        where = "mounted" if self.mounted else f"{self.host}:{self.port}"
        return f"<Display {self._width}x{self._height} {self.encoder_name} {where} {state}>"


def _principal_of(channel: Any) -> Any:
    """What an ``authenticate`` hook said of a WebSocket viewer (rfb.asgi); None for others (a widget's comm)."""
    scope = getattr(channel, "scope", None)
    return scope.get("rfb.principal") if scope is not None else None


def _adapt_policy(adaptive: bool | AdaptPolicy) -> AdaptPolicy | None:
    if isinstance(adaptive, AdaptPolicy):
        return adaptive
    if isinstance(adaptive, bool):
        return AdaptPolicy() if adaptive else None
    raise ValueError(f"adaptive must be True, False or an rfb.adapt.AdaptPolicy, got {adaptive!r}")
