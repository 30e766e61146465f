"""The Host header check: the server answers only to names it was meant to be reached by.

DNS rebinding lets a page on ``evil.example`` re-point its own name at 127.0.0.1 and
then read this server's answers as same-origin responses: the browser sends
``Host: evil.example``. So every HTTP request and WebSocket upgrade is refused (403)
unless its Host names:

- an IP address (any: a rebinding page can only ever send its own *name*, so a literal
  address was typed by a person, e.g. ``http://192.168.1.20:8765`` for ``--host 0.0.0.0``),
- ``localhost`` (what an SSH tunnel to ``localhost:PORT`` sends),
- the host the server is bound to, a host of ``allowed_origins``, or an ``allowed_hosts``
  entry (``"*"`` turns the check off).

The port is not compared: rebinding changes the name, never the port. A request with no
Host header at all (HTTP/1.0 tools) comes from no browser and is let through.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from rfb.throttle import Throttle

logger = logging.getLogger("rfb.server")


class AllowedHosts:
    """The names a Host header may carry (besides IP addresses and ``localhost``)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.any = False
        self.names: set[str] = {"localhost"}
        for name in names:
            if name == "*":
                self.any = True
            elif (host := host_name(name) if "://" not in name else _url_host(name)) is not None:
                self.names.add(host)

    def __contains__(self, host: str | None) -> bool:
        if host is None or self.any:
            return True
        name = host_name(host)
        return name is not None and (name in self.names or _is_ip(name))


def host_name(host: str) -> str | None:
    """The lower-case name (or bare IP address) of a Host header value, without the port."""
    try:
        parts = urlsplit("//" + host.strip())
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    return parts.hostname.lower().rstrip(".") if parts.hostname else None


def _url_host(url: str) -> str | None:
    try:
        name = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return name.lower().rstrip(".") if name else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostCheck:
    """ASGI middleware: refuse (403, plain text) any request whose Host is not allowed."""

    def __init__(self, app: ASGIApp, allowed: AllowedHosts) -> None:
        self.app = app
        self.allowed = allowed
        self._throttle = Throttle(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if host in self.allowed:
            await self.app(scope, receive, send)
            return
        self._throttle.warning(
            "host",
            "refused a request for Host %r: not an IP address, localhost or an allowed "
            "host (serve(..., allowed_hosts=[...]) adds names)",
            host[:80],
        )
        response = PlainTextResponse("host not allowed", status_code=403)
        if scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
            await response(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 4003, "reason": "host not allowed"})


def _header(scope: Scope, name: bytes) -> Any:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
