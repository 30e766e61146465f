"""The connection guard: a cap on open connections, and a deadline for the HTTP request.

uvicorn closes idle keep-alive connections, but a connection that never finishes its
first request (a slowloris client sending one header byte now and then, or a socket
that says nothing at all) stays open for ever, and nothing limits how many there are.
The guard hooks uvicorn's HTTP protocol class (``uvicorn.Config(http=...)`` takes a
class) so that every new connection:

- is refused at once with a 503 when ``max_connections`` are already open (HTTP and
  WebSocket alike, viewers included);
- is aborted if a request head has not arrived ``request_timeout`` seconds after the
  connection was made, or after the previous response on it completed (uvicorn's own
  keep-alive timeout stops counting as soon as a byte arrives, so a client that
  dribbles its second request would otherwise stay). The hello timeout then covers
  the WebSocket that follows an upgrade.

Each of the two logs one warning, then at most one a minute with the count since
(rfb.throttle): a flood of sockets costs a line a minute, not a line a socket.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rfb.throttle import Throttle

logger = logging.getLogger("rfb.server")

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 20\r\n\r\ntoo many connections"
)


class ConnectionGuard:
    """Counts and limits the connections of one server; ``protocol_class`` is what uvicorn runs."""

    def __init__(self, *, max_connections: int, request_timeout: float) -> None:
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a positive integer, got {max_connections!r}")
        if (
            isinstance(request_timeout, bool)
            or not isinstance(request_timeout, (int, float))
            or not (0 < request_timeout < float("inf"))
        ):
            raise ValueError(
                f"hello_timeout (the time a connection has for its request) must be a positive "
                f"number of seconds, got {request_timeout!r}"
            )
        self.max_connections = max_connections
        self.request_timeout = float(request_timeout)
        self.refused = 0  # connections turned away at the cap
        self.timed_out = 0  # connections aborted for not finishing their request in time
        self._throttle = Throttle(logger)

    def protocol_class(self, base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
        """``base`` (uvicorn's H11Protocol or HttpToolsProtocol) with this guard on each new connection."""
        guard = self

        class GuardedProtocol(base):  # type: ignore[valid-type, misc]  # mypy cannot check a base given at run time
            _rfb_deadline: asyncio.TimerHandle | None = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                self._rfb_deadline = guard._admit(self, transport)

            def on_response_complete(self) -> None:
                super().on_response_complete()
                self._rfb_cancel()
                if not self.transport.is_closing():  # keep-alive: the next request head has its own deadline
                    self._rfb_deadline = guard._arm(self, self.transport)

            def connection_lost(self, exc: Exception | None) -> None:
                self._rfb_cancel()  # nothing of a closed connection outlives it
                super().connection_lost(exc)

            def _rfb_cancel(self) -> None:
                if self._rfb_deadline is not None:
                    self._rfb_deadline.cancel()
                    self._rfb_deadline = None

        GuardedProtocol.__name__ = GuardedProtocol.__qualname__ = f"Guarded{base.__name__}"
        return GuardedProtocol

    def _admit(self, protocol: Any, transport: Any) -> asyncio.TimerHandle | None:
        """Refuse the connection past the cap; else arm its request deadline (returned)."""
        open_now = len(protocol.connections)  # uvicorn's set of every open connection, this one included
        if open_now > self.max_connections:
            self.refused += 1
            self._throttle.warning(
                "refused",
                "refused a connection with 503: %d are open, the limit (max_connections=%d)",
                open_now - 1,
                self.max_connections,
            )
            transport.write(_BUSY)
            transport.close()
            return None
        return self._arm(protocol, transport)

    def _arm(self, protocol: Any, transport: Any) -> asyncio.TimerHandle:
        """The deadline for the next request head: the request being served now must be replaced."""
        return asyncio.get_running_loop().call_later(
            self.request_timeout, self._deadline, protocol, transport, protocol.cycle
        )

    def _deadline(self, protocol: Any, transport: Any, cycle: Any) -> None:
        """Abort the connection if no request head arrived since the deadline was armed."""
        if transport.is_closing() or transport.get_protocol() is not protocol or protocol.cycle is not cycle:
            return  # closed, upgraded to a WebSocket, or a new request arrived (its response re-arms)
        if cycle is not None and not cycle.response_complete:
            return  # a pipelined request still being answered: its response re-arms
        self.timed_out += 1
        self._throttle.warning(
            "timed_out",
            "aborted a connection from %s that sent no complete request within %g s",
            transport.get_extra_info("peername"),
            self.request_timeout,
        )
        transport.abort()
