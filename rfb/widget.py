"""The notebook widget: a display's live view inline in a notebook (JupyterLab, and wherever anywidget runs).

Built on anywidget (``pip install 'rfb[notebook]'``). The browser side is the viewer
itself: the model carries the package's viewer files (``rfb/viewer/*.js``, the page's
markup and style), and ``viewer/widget.js`` mounts them in the output cell, so there is
no build step and no second copy of the viewer.

Frames and events travel over the widget's comm, which reaches the browser wherever the
notebook does (a remote JupyterHub, an SSH tunnel) with no extra port. Each view of the
widget opens *connections* on the comm; each is a :class:`rfb.channel.RelayChannel`
served by the display like a WebSocket (the same hello, acks and events, the same
fan-out group, so one encode serves WebSocket and comm viewers alike). Where the browser
can reach the display's own port, "auto" uses a WebSocket instead; the overlay says which.

The page's origin: before a view tries the WebSocket it sends ``{view, op: "origin",
origin: location.origin}`` on the comm, and the display accepts WebSocket handshakes
from that origin (:class:`rfb.server.OriginGrants`; the token and the Host check still
apply) until the widget closes. Only a page holding the kernel can send on the comm, and
such a page can already run any code in it, so trusting its origin grants nothing new
(docs/viewer.md, "In a notebook"). The kernel answers ``{view, op: "origin", ok}``
(with ``origin`` as kept, or the ``reason`` it was refused).

Threads: comm messages arrive on the kernel's shell thread and are handed to the
display's server loop (``call_soon_threadsafe``); messages to the browser are sent from
the server loop, through ipykernel's IOPub thread, which takes them from any thread.
The kernel must be free to read comm messages: a cell that blocks the kernel (a render
loop in the cell itself) leaves acks unread, and the comm viewer waits after
``max_inflight`` frames. Run the render loop in a thread or an asyncio task.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from rfb.channel import RelayChannel
from rfb.server import VIEWER_DIR, OriginGrants

if TYPE_CHECKING:
    from rfb.display import Display

logger = logging.getLogger("rfb.widget")

__all__ = ["DisplayWidget", "TRANSPORTS", "widget_bundle"]

TRANSPORTS = ("auto", "comm", "websocket")
IDLE_TIMEOUT = 20.0  # seconds: a comm connection not heard from (viewer/widget.js says "alive" every 5 s) is gone
VIEWER_MODULES = ("app.js", "controls.js", "input.js", "overlay.js", "protocol.js", "relay.js", "view.js", "worker.js")


def _viewer_sources() -> dict[str, str]:
    return {name: (VIEWER_DIR / name).read_text("utf-8") for name in VIEWER_MODULES}


class DisplayWidget(anywidget.AnyWidget):
    """A live view of a :class:`~rfb.display.Display`; build it with ``display.widget()``.

    Every view of it (the cell's output, a copy in another panel) is a viewer of its own
    and shows in ``display.viewers``. :meth:`close` ends them all; re-running the cell
    removes the old view, whose connection closes with it. Once the display closes, the
    views keep the last frame they drew.
    """

    _esm = VIEWER_DIR / "widget.js"
    _modules = traitlets.Dict().tag(sync=True)
    _page = traitlets.Unicode().tag(sync=True)
    _style = traitlets.Unicode().tag(sync=True)
    url = traitlets.Unicode().tag(sync=True)
    token = traitlets.Unicode().tag(sync=True)
    transport = traitlets.Unicode("auto").tag(sync=True)
    only = traitlets.Unicode().tag(sync=True)
    overlay = traitlets.Bool(True).tag(sync=True)
    frame_width = traitlets.Int().tag(sync=True)
    frame_height = traitlets.Int().tag(sync=True)
    height = traitlets.Int(0).tag(sync=True)
    closed = traitlets.Bool(False).tag(sync=True)
    idle_timeout = IDLE_TIMEOUT  # a closed tab sends no close: its connections end when they fall silent

    def __init__(
        self,
        display: Display,
        *,
        transport: str = "auto",
        height: int | None = None,
        only: str | None = None,
        overlay: bool = True,
    ) -> None:
        self._links: dict[tuple[str, int], RelayChannel] = {}
        self._lock = threading.Lock()  # first: ipywidgets' __del__ calls close() even when __init__ raised
        self._grants: OriginGrants | None = None  # the display's, while this widget may grant page origins
        self._holder = object()  # what holds this widget's grants
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
        if only not in (None, "image", "png"):
            raise ValueError(f"only must be None, 'image' or 'png', got {only!r}")
        if height is not None and (isinstance(height, bool) or not isinstance(height, int) or height <= 0):
            raise ValueError(f"height must be a positive number of CSS pixels or None, got {height!r}")
        if display.closed:
            raise RuntimeError("display is closed: expected an open display to show")
        super().__init__(
            _modules=_viewer_sources(),
            _page=(VIEWER_DIR / "index.html").read_text("utf-8"),
            _style=(VIEWER_DIR / "style.css").read_text("utf-8"),
            url=display.url,
            token=display.token or "",
            transport=transport,
            only=only or "",
            overlay=overlay,
            frame_width=display.width,
            frame_height=display.height,
            height=height or 0,
        )
        self._display = display
        self._grants = display._origin_grants
        self.on_msg(self._on_custom)
        display._on_close(self._display_closed)

    @property
    def display(self) -> Display:
        return self._display

    def connections(self) -> int:
        """Comm connections open now (views linked over the comm)."""
        with self._lock:
            return len(self._links)

    def close(self) -> None:
        """Close the widget: every comm connection ends (its viewer leaves), then the comm.

        The origins its pages reported are refused again (unless another widget of the
        display holds them too).
        """
        with self._lock:
            links, self._links = list(self._links.values()), {}
            grants, self._grants = self._grants, None
        if grants is not None:
            grants.revoke(self._holder)
        for channel in links:
            channel.hang_up()
        super().close()

    # ---------------------------------------------------------------- comm messages (the kernel's thread)

    def _on_custom(self, _widget: Any, content: Any, buffers: Sequence[bytes]) -> None:
        if isinstance(content, dict) and content.get("op") == "origin" and isinstance(content.get("view"), str):
            self._page_origin(content["view"], content.get("origin"))
            return
        if (
            not isinstance(content, dict)
            or not isinstance(content.get("view"), str)
            or isinstance(content.get("conn"), bool)
            or not isinstance(content.get("conn"), int)
        ):
            logger.warning("widget: ignored a comm message without a view and connection id: %.80r", content)
            return
        key = (content["view"], content["conn"])
        op = content.get("op")
        if op == "open":
            self._open(key)
            return
        with self._lock:
            channel = self._links.get(key) if op != "close" else self._links.pop(key, None)
        if channel is None:
            return  # a connection already closed on our side: its last messages find nobody
        if op == "alive":
            channel.touch()
        elif op == "text" and isinstance(content.get("text"), str):
            channel.feed(content["text"])
        elif op == "bytes" and buffers:
            channel.feed(bytes(buffers[0]))
        elif op == "close":
            channel.hang_up()
        else:
            logger.warning(
                "widget: ignored a comm message with op %.40r (expected open, text, bytes, alive or close)", op
            )

    def _page_origin(self, view: str, origin: Any) -> None:
        """A view's page says its origin before it tries the WebSocket: the display accepts WebSockets from it.

        Only a page that holds this kernel can send on the widget's comm (Jupyter
        authenticates it), and such a page can already run any code in the kernel; a
        page of another origin is still refused, and every viewer still needs the token.
        """
        kept, reason = "", ""
        with self._lock:  # close() revokes under this lock: no grant outlives the widget
            if self._grants is None:
                reason = "expected an open widget, but it is closed"
            else:
                try:
                    kept = self._grants.grant(origin, self._holder)
                except ValueError as exc:
                    reason = str(exc)
        if reason:
            logger.warning(
                "widget: refused the page origin that view %.40r reported: %s; its WebSocket to the display "
                "is refused unless allowed_origins lists that origin, and transport 'auto' uses the comm",
                view,
                reason,
            )
            self.send({"view": view, "op": "origin", "ok": False, "reason": reason})
            return
        logger.debug(
            "widget: view %.40r reported its page origin %s; the display accepts WebSockets from it", view, kept
        )
        self.send({"view": view, "op": "origin", "ok": True, "origin": kept})

    def _open(self, key: tuple[str, int]) -> None:
        display = self._display
        if display.closed:
            self._send_to(key, {"op": "close", "code": 1001, "reason": "display closed"}, ())
            return
        loop = display._server.loop if display._server is not None else None
        if loop is None:  # a mounted display before its host app's first call: nothing serves viewers yet
            self._send_to(key, {"op": "close", "code": 1013, "reason": "display not serving yet"}, ())
            return
        channel = RelayChannel(
            lambda content, buffers: self._send_to(key, content, buffers),
            loop=loop,
            peer=f"widget view {key[0]} connection {key[1]}",
            idle_timeout=self.idle_timeout,
        )
        with self._lock:
            old = self._links.pop(key, None)
            self._links[key] = channel
        if old is not None:
            old.hang_up()
        try:
            done = display._serve_channel(channel)
        except RuntimeError:  # closed in between
            self._forget(key, channel)
            self._send_to(key, {"op": "close", "code": 1001, "reason": "display closed"}, ())
            return
        done.add_done_callback(lambda future: self._ended(future, key, channel))

    def _ended(self, future: Any, key: tuple[str, int], channel: RelayChannel) -> None:
        """A comm viewer's session is over; one that failed says why in the log (never silently)."""
        if not future.cancelled() and future.exception() is not None:
            logger.error("the comm viewer %s ended with an error", key, exc_info=future.exception())
        self._forget(key, channel)

    def _forget(self, key: tuple[str, int], channel: RelayChannel) -> None:
        with self._lock:
            if self._links.get(key) is channel:
                del self._links[key]

    # ---------------------------------------------------------------- to the browser (the server loop)

    def _send_to(self, key: tuple[str, int], content: dict[str, Any], buffers: Sequence[bytes]) -> None:
        self.send({"view": key[0], "conn": key[1], **content}, buffers=list(buffers) or None)

    def _display_closed(self) -> None:
        self.closed = True


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def widget_bundle(display: Display, include: Any = None, exclude: Any = None) -> dict[str, Any] | tuple[Any, Any]:
    """What a display shows as a cell's result: its widget, where the front end shows widgets.

    A terminal IPython asks for text only (``include``): it gets the display's repr, and
    no widget is built for nobody to see. So does a closed display.
    """
    text = repr(display)
    if display.closed or (include is not None and WIDGET_MIME not in include) or (exclude and WIDGET_MIME in exclude):
        return {"text/plain": text}
    widget = DisplayWidget(display)
    bundle = widget._repr_mimebundle_(
        include=include,  # type: ignore[arg-type]  # anywidget types each keyword as dict; IPython passes sets or None
        exclude=exclude,
    )
    if bundle is None:  # a widget without a view: nothing but the text to show
        return {"text/plain": text}
    data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
    return {**data, "text/plain": text}, metadata
