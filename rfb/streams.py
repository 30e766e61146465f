"""Several named displays behind one server and one port: ``/streams/<name>/`` each.

Two views of one simulation, published from one program, reach a laptop through one
SSH tunnel::

    with rfb.Server(port=8765) as server:
        left = server.add("left", rfb.Display(640, 480))
        right = server.add("right", rfb.Display(640, 480))
        server.start()
        print("open", server.url)      # the index, which links to each stream

Each display is mounted as its own ASGI app (rfb.asgi) on the server's event loop, so
each keeps its own page, socket, token and viewers; the server adds the listening
socket, the connection guard (rfb.guard), the Host check (rfb.hosts) in front of
everything, and an index at ``/`` that lists the streams, with their tokens, only to a
caller holding the server's token (like ``/healthz``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import re
import secrets
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, Router

from rfb.display import RANDOM_TOKEN, Display
from rfb.guard import ConnectionGuard
from rfb.hosts import AllowedHosts, HostCheck
from rfb.server import Authenticate, ServerThread, has_token

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

_NO_CACHE = {"Cache-Control": "no-cache"}


class Server:
    """One uvicorn on one port serving named displays at ``/streams/<name>/``.

    Options (keyword-only), as :func:`rfb.serve` has them: ``host``, ``port``
    (0: any free one), ``token`` (the index's and ``/healthz``'s secret; random by
    default, None: none), ``allowed_origins``, ``allowed_hosts``, ``max_connections``,
    ``hello_timeout``, ``max_message_bytes``; and ``authenticate``, the hook every
    stream's viewers pass (:meth:`rfb.display.Display.asgi_app`). Each display keeps its
    own token, checked by its socket; the index hands it out in each stream's link. The
    server owns the displays added to it: closing the server closes them.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = RANDOM_TOKEN,
        allowed_origins: Sequence[str] | None = None,
        allowed_hosts: Sequence[str] | None = None,
        max_connections: int = 100,
        hello_timeout: float = 10.0,
        max_message_bytes: int = 64 * 1024,
        authenticate: Authenticate | None = None,
    ) -> None:
        if token is not RANDOM_TOKEN and token is not None and (not isinstance(token, str) or not token):
            raise ValueError(f"token must be a non-empty string, or None to disable the check; got {token!r}")
        self.token: str | None = secrets.token_urlsafe(24) if token is RANDOM_TOKEN else token
        self.host = host
        self._authenticate = authenticate
        self._displays: dict[str, Display] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._streams = Router(routes=[])
        self._origins = tuple(allowed_origins or ())
        self._hosts = (*(allowed_hosts or ()), host)  # the displays' sockets answer to the server's names too
        hosts = AllowedHosts([*self._hosts, *(o for o in self._origins if o != "*")])
        app = Starlette(
            routes=[Route("/", self._index), Route("/healthz", self._healthz), Mount("/streams", app=self._streams)],
            middleware=[Middleware(HostCheck, allowed=hosts)],
        )
        self._thread = ServerThread(
            app,
            host=host,
            port=port,
            ws_max_size=max_message_bytes,
            before_stop=self._close_displays,
            after_stop=lambda: None,
            guard=ConnectionGuard(max_connections=max_connections, request_timeout=hello_timeout),
        )

    # ------------------------------------------------------------ the streams

    def add(self, name: str, display: Display) -> Display:
        """Serve ``display`` (built, not yet served) at ``/streams/<name>/``; returns it.

        ``name``: letters, digits, ``_``, ``.``, ``-``, at most 64, starting with a letter
        or digit (it is a path segment and a link). Works before and after :meth:`start`.
        """
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(
                f"stream name: expected 1-64 letters, digits, '_', '.' or '-' starting with a letter or "
                f"digit, got {name!r}"
            )
        if not isinstance(display, Display):
            raise TypeError(f"expected an rfb.Display for stream {name!r}, got {type(display).__name__}")
        with self._lock:
            if self._closed:
                raise RuntimeError("the server is closed")
            if name in self._displays:
                raise ValueError(f"a stream named {name!r} is already served; names: {sorted(self._displays)}")
            app = display._mount(
                authenticate=self._authenticate,
                allowed_origins=self._origins,
                allowed_hosts=self._hosts,
                abort=self._thread.abort_connections,
            )
            self._displays[name] = display
            # A new list, assigned at once: the router on the server thread sees the old or the new one.
            self._streams.routes = [*self._streams.routes, Mount(f"/{name}", app=app)]
        return display

    @property
    def displays(self) -> dict[str, Display]:
        """The displays by name (a copy)."""
        with self._lock:
            return dict(self._displays)

    # ------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        return self._thread.port

    @property
    def url(self) -> str:
        """The index URL, token included."""
        return self._base_url() + "/" + self._query(self.token)

    def stream_url(self, name: str) -> str:
        """One stream's viewer URL, its display's token included."""
        display = self.displays.get(name)
        if display is None:
            raise KeyError(f"no stream named {name!r}; names: {sorted(self.displays)}")
        return f"{self._base_url()}/streams/{name}/{self._query(display.token)}"

    def _base_url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        netloc = f"[{host}]" if ":" in host else host
        return f"http://{netloc}:{self.port}"

    @staticmethod
    def _query(token: str | None) -> str:
        return f"?token={quote(token, safe='')}" if token else ""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Server:
        """Listen and serve; returns once it accepts connections (bind errors raise here)."""
        try:
            self._thread.start().result()
        except BaseException:
            self.close()
            raise
        return self

    async def astart(self) -> Server:
        """:meth:`start` for asyncio."""
        try:
            await asyncio.wrap_future(self._thread.start())
        except BaseException:
            await self.aclose()
            raise
        return self

    def close(self) -> None:
        """Close every stream's viewers and encoders, then the server. Idempotent."""
        if threading.current_thread() is self._thread.thread:
            raise RuntimeError("close the server from your own code, not from its server thread (it would deadlock)")
        self._stop().result()
        self._thread.join()

    async def aclose(self) -> None:
        await asyncio.wrap_future(self._stop())
        self._thread.join()

    def _stop(self) -> concurrent.futures.Future[None]:
        with self._lock:
            self._closed = True
        if self._thread.thread is None:  # never served: close the displays here
            for display in self.displays.values():
                display.close()
        return self._thread.stop()

    async def _close_displays(self) -> None:
        await asyncio.gather(*(display.aclose() for display in self.displays.values()))

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ the index

    async def _index(self, request: Request) -> Response:
        if self.token is not None and not has_token(request, self.token):
            return PlainTextResponse(
                "this rfb server lists its streams only with its token: open the URL the program printed",
                status_code=401,
                headers=_NO_CACHE,
            )
        items = "\n".join(
            f'<li><a href="streams/{quote(name)}/{html.escape(self._query(display.token))}">{html.escape(name)}</a> '
            f"{display.width}x{display.height}, {len(display.viewers)} viewers</li>"
            for name, display in self.displays.items()
        )
        page = f'<!doctype html>\n<meta charset="utf-8">\n<title>rfb streams</title>\n<ul>\n{items}\n</ul>\n'
        return HTMLResponse(page, headers=_NO_CACHE)

    async def _healthz(self, request: Request) -> Response:
        status = "closing" if self._closed else "ok"
        if self.token is not None and not has_token(request, self.token):
            return JSONResponse({"status": status})
        streams: dict[str, Any] = {name: display._health() for name, display in self.displays.items()}
        return JSONResponse(
            {
                "status": status,
                "streams": streams,
                "connections_refused": self._thread.guard.refused,
                "connections_timed_out": self._thread.guard.timed_out,
            }
        )

    def __repr__(self) -> str:
        return f"<rfb.Server {self.host}:{self.port} streams={sorted(self.displays)}>"
