"""A display served by someone else's event loop: the ASGI app a host application mounts.

``display.asgi_app()`` is an ordinary ASGI app (the viewer page, ``/healthz`` and the
``/ws`` socket, behind the same Host, Origin and token checks as a served display) that
a Starlette or FastAPI application mounts under any prefix::

    display = rfb.Display(640, 480)
    app = Starlette(routes=[Mount("/viz", display.asgi_app())], lifespan=...)

No second uvicorn, no second port, no thread of rfb's own: the host application's
server runs the app on its event loop, and that loop, captured on the app's first call
(a request, a WebSocket or a lifespan event), is where the encode threads post their
deliveries. Mounted apps get no lifespan events from Starlette, so the host's shutdown
calls ``await display.aclose()``: it closes the viewers on that loop and stops the
encoders off it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("rfb.server")


class LoopServing:
    """The serving side of a mounted display: the host's loop, and a stop that runs on it.

    It has what :class:`rfb.server.ServerThread` offers the display (``loop``,
    ``thread``, ``stop()``, ``join()``, ``abort_connections()``) without owning a loop,
    a thread or a socket: connection limits and timeouts belong to the host's server.
    ``abort`` aborts stuck viewers' connections where the caller owns the transports
    (:class:`rfb.streams.Server` does); elsewhere they are left to the host's server.
    """

    port: int | None = None
    guard = None

    def __init__(
        self,
        *,
        before_stop: Callable[[], Awaitable[None]],
        after_stop: Callable[[], None],
        abort: Callable[[set[tuple[str, int]] | None], int] | None = None,
    ) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._before_stop = before_stop
        self._after_stop = after_stop
        self._abort = abort
        self._lock = threading.Lock()
        self._stopping = False

    def bind(self) -> None:
        """Make the running loop the one that serves the viewers (on the app's first call).

        A display serves one loop at a time: its viewers' tasks live there. A new loop is
        taken only once the old one has closed (a test client's portal, a restarted app).
        """
        loop = asyncio.get_running_loop()
        if loop is self.loop:
            return
        with self._lock:
            if self.loop is not None and self.loop is not loop and not self.loop.is_closed():
                raise RuntimeError(
                    f"a mounted display serves the event loop that first called its app ({self.loop!r}); "
                    f"it was called from another one ({loop!r}): mount it in one application"
                )
            self.loop, self.thread = loop, threading.current_thread()

    def serving_here(self) -> bool:
        """The caller runs on the serving loop's thread while that loop runs (blocking it would deadlock)."""
        loop = self.loop
        return loop is not None and loop.is_running() and threading.current_thread() is self.thread

    def stop(self) -> concurrent.futures.Future[None]:
        """Close the viewers on the serving loop, then stop the encoders off it. Idempotent."""
        with self._lock:
            if self._stopping:
                return self.done
            self._stopping = True
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running():  # no loop runs a viewer: only release
            self._release_now()
            return self.done
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        except RuntimeError:  # the loop closed in between
            self._release_now()
        return self.done

    def join(self, timeout: float | None = None) -> None:
        """Nothing to join: the host application owns the thread."""

    def abort_connections(self, peers: set[tuple[str, int]] | None = None) -> int:
        if self._abort is None:
            logger.warning(
                "%s viewers do not read; their connections belong to the host application's server",
                len(peers) if peers is not None else "all",
            )
            return 0
        return self._abort(peers)

    async def _shutdown(self) -> None:
        try:
            await self._before_stop()
        except Exception:  # shutting down must go on whatever the viewers do
            logger.exception("closing viewers failed; stopping the encoders anyway")
        try:
            await asyncio.to_thread(self._after_stop)  # joins encode threads: never on the host's loop
        except Exception:
            logger.exception("stopping the encoders failed")
        finally:
            self.done.set_result(None)

    def _release_now(self) -> None:
        try:
            self._after_stop()
        finally:
            self.done.set_result(None)


class MountedApp:
    """The display's Starlette app, binding the loop that calls it and answering lifespan events.

    Run as a whole application (``uvicorn.run(display.asgi_app())``) it gets lifespan
    events: startup binds the loop, shutdown closes the display. Mounted, it gets none,
    and its first request binds the loop.
    """

    def __init__(self, app: ASGIApp, serving: LoopServing, aclose: Callable[[], Awaitable[None]]) -> None:
        self.app = app
        self.serving = serving
        self._aclose = aclose

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.serving.bind()
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self._aclose()
                except Exception as exc:  # report it to the server, as the ASGI lifespan spec asks
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return
