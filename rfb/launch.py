"""``serve()`` and ``start()``: a :class:`~rfb.display.Display` with a server of its own.

Both build the display and start its uvicorn on a thread and event loop of its own
(rfb.server.ServerThread), returning once it accepts connections: ``serve()`` awaited from
asyncio, ``start()`` from a plain script. Their options are the display's, spelled out
here rather than passed as ``**options`` so that ``help(rfb.serve)`` and editors show
them; ``tests/test_readme.py`` checks that no option of :class:`Display` is missing.
A display served from your own ASGI application instead is :mod:`rfb.asgi`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from rfb.adapt import AdaptPolicy
from rfb.display import RANDOM_TOKEN, Display
from rfb.failover import FailoverPolicy
from rfb.resize import DEFAULT_MAX_SIZE, ResizePolicy

logger = logging.getLogger("rfb.display")  # where users already filter a display's start-up line

__all__ = ["serve", "start"]


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
    resize_policy: ResizePolicy = "fixed",
    max_size: tuple[int, int] = DEFAULT_MAX_SIZE,
    still_after: float | None = 0.3,
    adaptive: bool | AdaptPolicy = False,
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
    - ``resize_policy``: ``"fixed"`` (``width`` x ``height`` stay the target size) or
      ``"match_viewer"``: ``display.target_size`` follows one viewer's area in device
      pixels (``display.set_driver(client_id)`` picks which; the first by default),
      within ``max_size``, and a ``target_size`` event in ``poll_events()`` says when.
    - ``still_after``: seconds without a new frame before H.264 and JPEG viewers get the
      last one losslessly, once (None: only on ``display.refresh_still()``).
    - ``adaptive``: move H.264 viewers on slow links to cheaper quality tiers, each
      encoded once (True, or an :class:`rfb.adapt.AdaptPolicy`; off by default).
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
    resize_policy: ResizePolicy = "fixed",
    max_size: tuple[int, int] = DEFAULT_MAX_SIZE,
    still_after: float | None = 0.3,
    adaptive: bool | AdaptPolicy = False,
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
