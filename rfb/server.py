"""The HTTP side: the Starlette app (viewer files, health, the WebSocket door) and its thread.

The app is small on purpose: it serves the viewer, answers ``/healthz``, and at ``/ws``
checks the Origin *before* accepting, then asks the optional ``authenticate`` hook who
is connecting, then hands the socket to the display's session code. Everything about
frames and viewers lives elsewhere. In front of every route
sits the Host check (rfb.hosts); in front of the app, the connection guard
(rfb.guard) limits how many connections are open and how long a request may take to
arrive. ``/healthz`` tells anyone that the server is up, and the details (size,
viewers, routes) only to a caller with the token.

Besides the page's own origin and ``allowed_origins``, the Origin check accepts the
origins in the display's :class:`OriginGrants`: the notebook pages whose widgets of this
display reported their ``location.origin`` over the widget's comm (rfb.widget;
docs/viewer.md, "In a notebook").

:class:`ServerThread` runs uvicorn on a thread of its own with its own event loop, so
that a user's synchronous render loop (or an event loop they block) never stalls the
viewers, and the display can be started from plain scripts as well as from asyncio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import inspect
import ipaddress
import logging
import mimetypes
import re
import socket
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from rfb.guard import ConnectionGuard
from rfb.hosts import AllowedHosts, HostCheck
from rfb.protocol import CLOSE_UNAUTHORIZED
from rfb.session import log_failure
from rfb.throttle import Throttle

logger = logging.getLogger("rfb.server")

Authenticate = Callable[[WebSocket], Any]
"""``authenticate(websocket) -> principal | None``, plain or async: who is connecting, or None to refuse."""
VIEWER_DIR = Path(__file__).resolve().parent / "viewer"

# Explicit types for what the viewer ships: ES modules must be served as JavaScript,
# whatever /etc/mime.types on this machine says.
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
}
_NO_CACHE = {"Cache-Control": "no-cache"}

FALLBACK_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>rfb</title>
<p>The rfb server is running, but the viewer (<code>rfb/viewer/index.html</code>) is not installed.</p>
<p>WebSocket endpoint: <code>/ws</code>; health: <a href="/healthz"><code>/healthz</code></a>.</p>
"""


def create_app(
    *,
    on_websocket: Callable[[WebSocket], Awaitable[None]],
    health: Callable[[], dict[str, Any]],
    allowed_origins: Sequence[str] | None = None,
    allowed_hosts: Sequence[str] | None = None,
    bound_host: str | None = None,
    token: str | None = None,
    viewer_dir: Path = VIEWER_DIR,
    authenticate: Authenticate | None = None,
    granted: OriginGrants | None = None,
) -> Starlette:
    """The app: ``/``, ``/viewer/{path}``, ``/healthz`` and the ``/ws`` WebSocket, behind the Host check.

    ``health()`` is the full report; without ``token`` (``?token=`` or ``Authorization:
    Bearer``) ``/healthz`` answers only its ``status``. ``authenticate(websocket)``
    (plain or async) names who is connecting once the socket is accepted, before its
    ``hello`` is read: None closes it (4001), anything else is the viewer's principal,
    left in ``websocket.scope["rfb.principal"]`` for the session. ``granted``: origins
    accepted besides the same origin and ``allowed_origins`` (the display's notebook
    widgets' pages; the Host check does not widen with them).
    """
    root = viewer_dir.resolve()
    origins = tuple(allowed_origins or ())
    throttle = Throttle(logger)
    hosts = AllowedHosts(
        [*(allowed_hosts or ()), *(o for o in origins if o != "*"), *([bound_host] if bound_host else [])]
    )

    async def index(request: Request) -> Response:
        page = root / "index.html"
        if page.is_file():
            return FileResponse(page, media_type=_MEDIA_TYPES[".html"], headers=_NO_CACHE)
        return HTMLResponse(FALLBACK_PAGE, headers=_NO_CACHE)

    async def viewer_file(request: Request) -> Response:
        path = _resolve_inside(root, request.path_params["path"])
        if path is None:
            return PlainTextResponse("not found", status_code=404)
        media_type = _MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
        return FileResponse(path, media_type=media_type or "application/octet-stream", headers=_NO_CACHE)

    async def healthz(request: Request) -> Response:
        report = health()
        if token is None or has_token(request, token):
            return JSONResponse(report)
        return JSONResponse({"status": report.get("status", "ok")})

    async def websocket_endpoint(websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if not origin_allowed(origin, websocket.headers.get("host"), origins, granted=granted):
            pages = granted.origins() if granted is not None else []
            throttle.warning(
                "origin",
                "refused a WebSocket from origin %r (allowed: same origin%s%s)",
                (origin or "")[:80],
                f", {list(origins)}" if origins else "",
                f", notebook widget pages {pages}" if pages else "",
            )
            await _refuse(websocket, 403, "origin not allowed")
            return
        await websocket.accept()
        if authenticate is not None and not await _authenticated(websocket, authenticate, throttle):
            return
        await on_websocket(websocket)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/viewer/{path:path}", viewer_file),
            Route("/healthz", healthz),
            WebSocketRoute("/ws", websocket_endpoint),
        ],
        middleware=[Middleware(HostCheck, allowed=hosts)],
    )


async def _authenticated(websocket: WebSocket, authenticate: Authenticate, throttle: Throttle) -> bool:
    """Run the hook; keep its principal in the scope, or close the socket and say why."""
    try:
        principal = authenticate(websocket)
        if inspect.isawaitable(principal):
            principal = await principal
    except Exception as exc:  # boundary: the application's hook failing refuses this viewer only
        log_failure(exc, "the authenticate hook raised; refusing the connection")
        await websocket.close(1011, "internal error: authentication failed")
        return False
    if principal is None:
        throttle.warning("authenticate", "refused a WebSocket: the authenticate hook returned None")
        await websocket.close(CLOSE_UNAUTHORIZED, "unauthorized: not authenticated")
        return False
    websocket.scope["rfb.principal"] = principal
    return True


def has_token(request: Request, token: str) -> bool:
    """The request carries ``token`` as ``?token=`` or as an ``Authorization: Bearer`` header."""
    expected = token.encode("utf-8")
    offered = [request.query_params.get("token")]
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        offered.append(credentials.strip())
    return any(o is not None and hmac.compare_digest(o.encode("utf-8", "surrogatepass"), expected) for o in offered)


async def _refuse(websocket: WebSocket, status: int, reason: str) -> None:
    """Refuse before accept: an HTTP error response where the server supports it, else close 4003."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse(reason, status_code=status))
    else:
        await websocket.close(4003, reason)


def _resolve_inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it is a regular file inside ``root`` (no traversal, no dotfiles)."""
    if not relative or "\x00" in relative or any(part.startswith(".") for part in relative.split("/")):
        return None
    try:
        path = (root / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def origin_allowed(
    origin: str | None, host: str | None, allowed: Sequence[str] = (), *, granted: OriginGrants | None = None
) -> bool:
    """Same origin as the Host header, listed in ``allowed`` ("*" allows any), or granted
    by one of the display's notebook widgets (``granted``).

    A missing Origin is allowed: browsers always send one on WebSocket requests, so its
    absence means a non-browser client, which CSRF-style attacks cannot use anyway.
    """
    if origin is None:
        return True
    if "*" in allowed:
        return True
    key = _origin_key(origin)
    if key is None:
        return False  # "null" (file://, sandboxed iframes) and garbage
    if host is not None and _host_key(host, key[0]) == key[1:]:
        return True
    if granted is not None and granted.holds(key):
        return True
    return any(_origin_key(a) == key for a in allowed)


_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _host_key(host: str, scheme: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit("//" + host.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


# ---------------------------------------------------------------- origins granted by notebook widgets

MAX_PAGE_ORIGIN_CHARS = 300  # "https://" + a 253-character name + ":65535", with room to spare
MAX_GRANTED_ORIGINS = 16  # distinct notebook page origins per display
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_PAGE_ORIGIN = re.compile(
    rf"(?P<scheme>https?)://(?P<host>\[[0-9a-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[0-9]{{1,5}}))?",
    re.IGNORECASE,
)


def page_origin(value: Any) -> str:
    """``value`` as a notebook page's origin (``location.origin``), lower-cased; ValueError says why not.

    Only ``http`` or ``https``, ``://``, a host name or IP address (IPv6 in brackets) and
    an optional port 1-65535: no path, query, fragment, user name, whitespace or other
    scheme (``javascript:``, ``file://``, ``"null"``, ``vscode-webview://`` are refused).
    """
    if not isinstance(value, str):
        raise ValueError(f"expected the page origin as a string, got {type(value).__name__}")
    if len(value) > MAX_PAGE_ORIGIN_CHARS:
        raise ValueError(f"expected a page origin of at most {MAX_PAGE_ORIGIN_CHARS} characters, got {len(value)}")
    match = _PAGE_ORIGIN.fullmatch(value)
    if match is None:
        raise ValueError(f"expected an origin scheme://host[:port] with scheme http or https, got {value[:80]!r}")
    host, port = match["host"], match["port"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"expected an IPv6 address in brackets, got {host[:80]!r}") from None
    if port is not None and not 0 < int(port) <= 65535:
        raise ValueError(f"expected a port from 1 to 65535, got {port}")
    return value.lower()


class OriginGrants:
    """Origins a display accepts WebSockets from on behalf of its notebook widgets (thread-safe).

    A widget grants the origin its page reported over the widget's comm (rfb.widget),
    checked by :func:`page_origin`; each grant is held by the widget (``holder``) that
    made it, and :meth:`revoke` drops a widget's grants when it closes. At most
    ``limit`` distinct origins are held at once.
    """

    def __init__(self, limit: int = MAX_GRANTED_ORIGINS) -> None:
        self.limit = limit
        self._holders: dict[tuple[str, str, int], set[object]] = {}
        self._names: dict[tuple[str, str, int], str] = {}
        self._lock = threading.Lock()

    def grant(self, origin: Any, holder: object) -> str:
        """Accept ``origin`` for as long as ``holder`` holds it; returns it as kept. ValueError says why not."""
        name = page_origin(origin)
        key = _origin_key(name)
        if key is None:  # page_origin's pattern admits only what _origin_key reads
            raise ValueError(f"expected an origin scheme://host[:port], got {name[:80]!r}")
        with self._lock:
            if key not in self._holders and len(self._holders) >= self.limit:
                raise ValueError(
                    f"expected at most {self.limit} notebook page origins per display, "
                    f"already granted {sorted(self._names.values())}"
                )
            self._holders.setdefault(key, set()).add(holder)
            self._names.setdefault(key, name)
        return name

    def revoke(self, holder: object) -> None:
        """Drop every grant ``holder`` made (an origin that no holder keeps is refused again)."""
        with self._lock:
            for key in [k for k, holders in self._holders.items() if holder in holders]:
                self._holders[key].discard(holder)
                if not self._holders[key]:
                    del self._holders[key], self._names[key]

    def allows(self, origin: str | None) -> bool:
        """``origin`` (an Origin header) is a granted page origin."""
        key = _origin_key(origin) if origin is not None else None
        return key is not None and self.holds(key)

    def holds(self, key: tuple[str, str, int]) -> bool:
        """The origin of ``key`` (as :func:`origin_allowed` reads an Origin header) is granted."""
        with self._lock:
            return key in self._holders

    def origins(self) -> list[str]:
        """The granted origins, sorted."""
        with self._lock:
            return sorted(self._names.values())


class _Server(uvicorn.Server):
    """uvicorn's server, reporting readiness to a future once it listens."""

    def __init__(self, config: uvicorn.Config, ready: concurrent.futures.Future[None]) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self._ready.done():
            self._ready.set_result(None)


class ServerThread:
    """uvicorn serving ``app`` on its own thread and event loop, with a clean, idempotent stop.

    ``before_stop`` runs on the server loop before uvicorn is told to exit (the display
    closes its viewers there); ``after_stop`` runs on the server thread once uvicorn has
    stopped and before the loop closes (the display stops its encode threads there).
    """

    def __init__(
        self,
        app: Starlette,
        *,
        host: str,
        port: int,
        ws_max_size: int,
        before_stop: Callable[[], Awaitable[None]],
        after_stop: Callable[[], None],
        graceful_timeout: int = 2,
        guard: ConnectionGuard | None = None,
    ) -> None:
        self.guard = guard or ConnectionGuard(max_connections=100, request_timeout=10.0)
        self.host = host
        self.loop = asyncio.new_event_loop()
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._before_stop = before_stop
        self._after_stop = after_stop
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            ws_max_size=ws_max_size,
            ws_per_message_deflate=False,  # H.264 and JPEG do not compress: deflate would only cost CPU
            lifespan="off",
            log_config=None,  # never reconfigure the embedding program's logging
            access_log=False,
            timeout_graceful_shutdown=graceful_timeout,
            http=self.guard.protocol_class(AutoHTTPProtocol),
        )
        self._server = _Server(config, self.ready)

    @property
    def port(self) -> int:
        if self._socket is None:
            return self._requested_port
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def start(self) -> concurrent.futures.Future[None]:
        """Bind (errors raise here, in the caller's thread) and start serving; returns ``ready``."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            self.loop.close()
            raise
        self._socket = sock
        self._thread = threading.Thread(target=self._run, name=f"rfb-server-{self.port}", daemon=True)
        self._thread.start()
        return self.ready

    def stop(self) -> concurrent.futures.Future[None]:
        """Ask the server to stop; the returned future completes when the thread is done."""
        with self._lock:
            if self._stopping:
                return self.done
            self._stopping = True
        if self._thread is None:  # never started: nothing runs, release what exists
            try:
                self._after_stop()
            finally:
                self.loop.close()
                self.done.set_result(None)
            return self.done
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        except RuntimeError:  # the loop already closed: the thread is finishing by itself
            pass
        return self.done

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def abort_connections(self, peers: set[tuple[str, int]] | None = None) -> int:
        """Abort (drop, without flushing) the connections from ``peers``, or all of them.

        On the server loop only. For peers that stopped reading: a graceful close would
        wait for them forever, and their socket would outlive the display.
        """
        aborted = 0
        for connection in list(self._server.server_state.connections):
            transport = getattr(connection, "transport", None)
            peer = transport.get_extra_info("peername") if transport is not None else None
            if transport is not None and (peers is None or (peer is not None and tuple(peer[:2]) in peers)):
                transport.abort()
                aborted += 1
        return aborted

    async def _shutdown(self) -> None:
        try:
            await self._before_stop()
        except Exception:  # shutting down must go on whatever the viewers do
            logger.exception("closing viewers failed; stopping the server anyway")
        self._server.should_exit = True

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            assert self._socket is not None
            self.loop.run_until_complete(self._server.serve(sockets=[self._socket]))
            if self.abort_connections():  # whatever outlived uvicorn's graceful shutdown
                logger.warning("aborted connections that did not close within the graceful shutdown")
                self.loop.run_until_complete(asyncio.sleep(0))  # let connection_lost run
        except (Exception, SystemExit) as exc:  # uvicorn exits via SystemExit on startup failure
            logger.exception("the rfb server stopped with an error")
            if not self.ready.done():
                self.ready.set_exception(RuntimeError(f"the rfb server failed to start: {exc!r}"))
        finally:
            try:
                self._after_stop()
            except Exception:
                logger.exception("stopping the encoders failed")
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
            if self._socket is not None:
                self._socket.close()
            if not self.ready.done():
                self.ready.set_exception(RuntimeError("the rfb server stopped before it was ready"))
            self.done.set_result(None)
