"""What a viewer's session needs of its connection, and a connection relayed from another thread.

A viewer (rfb.session.Viewer) speaks the protocol over a *channel*: receive a message,
send text, send bytes, close. A Starlette ``WebSocket`` is one as it is. A
:class:`RelayChannel` is one whose far end is reached through a callable, such as a
notebook widget's comm (rfb.widget): a viewer on it joins the same fan-out group as
the WebSocket viewers and gets the same payloads, so one encode still serves all.

The relay's two ends live on different threads. The viewer runs on the display's
server loop; the far end (a Jupyter kernel's shell thread, for a comm) calls
:meth:`RelayChannel.feed` and :meth:`RelayChannel.hang_up` from wherever its messages
arrive, and those hand the message to the server loop with ``call_soon_threadsafe``.
Outbound messages are handed to ``send`` on the server loop: the callable must be
safe to call from that thread (ipykernel's IOPub thread takes messages from any
thread).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = ["Channel", "ChannelClosed", "RelayChannel", "RelaySend"]


class ChannelClosed(ConnectionError):
    """The channel's far end is gone: nothing more can be sent on it.

    A ``ConnectionError`` (so an ``OSError``): the session treats it as it treats a
    socket that went away.
    """


class Channel(Protocol):
    """The four operations a session uses, with Starlette's ``WebSocket`` signatures.

    ``receive()`` returns ASGI-shaped messages: ``{"type": "websocket.receive", "text": ...}``
    or ``{..., "bytes": ...}``, and ``{"type": "websocket.disconnect", "code": ...}``
    once the far end has gone. ``client`` is the peer's (host, port), or None.
    """

    @property
    def client(self) -> Any: ...

    async def receive(self) -> dict[str, Any]: ...

    async def send_text(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


RelaySend = Callable[[dict[str, Any], Sequence[bytes]], None]
"""How a relay reaches its far end: ``send(content, buffers)``, a JSON-able dict and binary buffers."""


class RelayChannel:
    """A channel whose far end is reached by ``send`` and speaks through :meth:`feed`.

    Outbound messages become ``send({"op": "text", "text": ...}, [])``,
    ``send({"op": "bytes"}, [payload])`` and ``send({"op": "close", "code": ..., "reason": ...}, [])``.
    ``send`` raising ``ChannelClosed`` (or any ``OSError``) ends the session like a dead socket.

    ``idle_timeout``: a relay has no socket whose end the network reports, so a far end
    that vanished (a browser tab closed) would stay a viewer for ever. With a timeout,
    the far end must be heard (a message, or :meth:`touch`) at least that often, or the
    channel reports a disconnect (code 1001).
    """

    def __init__(
        self,
        send: RelaySend,
        *,
        loop: asyncio.AbstractEventLoop,
        peer: str = "relay",
        idle_timeout: float | None = None,
    ) -> None:
        self._send = send
        self._loop = loop
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._closed = False  # our side closed it, or the far end hung up
        self._idle_timeout = idle_timeout
        self._heard = time.monotonic()
        self.peer = peer

    @property
    def client(self) -> None:
        """A relay has no socket address: the session shows None as its remote."""
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    # ---------------------------------------------------------------- the far end's side (any thread)

    def feed(self, data: str | bytes) -> None:
        """A message from the far end; thread-safe. Ignored once closed."""
        self.touch()
        key = "text" if isinstance(data, str) else "bytes"
        self._post({"type": "websocket.receive", key: data})

    def touch(self) -> None:
        """The far end is alive (a keep-alive without a message for the session); thread-safe."""
        self._heard = time.monotonic()

    def hang_up(self, code: int = 1001) -> None:
        """The far end is gone (a view closed, a comm closed); thread-safe and idempotent."""
        self._post({"type": "websocket.disconnect", "code": code})

    def _post(self, message: dict[str, Any]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, message)
        except RuntimeError:  # the server loop has closed: the session is over already
            pass

    def _deliver(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.disconnect":
            self._closed = True
        self._inbox.put_nowait(message)

    # ---------------------------------------------------------------- the session's side (the server loop)

    async def receive(self) -> dict[str, Any]:
        timeout = self._idle_timeout
        while True:
            if timeout is None:
                return await self._inbox.get()
            try:
                return await asyncio.wait_for(self._inbox.get(), timeout)
            except TimeoutError:
                silent = time.monotonic() - self._heard
                if silent >= timeout:
                    reason = f"not heard from for {silent:.1f} s"
                    try:  # if the far end is only slow, it learns to reconnect
                        await self.close(1001, reason)
                    except OSError:
                        self._closed = True
                    return {"type": "websocket.disconnect", "code": 1001, "reason": reason}

    async def send_text(self, data: str) -> None:
        self._out({"op": "text", "text": data}, ())

    async def send_bytes(self, data: bytes) -> None:
        self._out({"op": "bytes"}, (data,))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self._closed:
            return
        self._out({"op": "close", "code": code, "reason": reason or ""}, ())
        self._closed = True

    def _out(self, content: dict[str, Any], buffers: Sequence[bytes]) -> None:
        if self._closed:
            raise ChannelClosed(f"{self.peer}: expected an open channel to send {content['op']!r} on, but it is closed")
        self._send(content, buffers)
