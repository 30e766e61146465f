"""Where a server bound to a host can be reached from, and what a listening failure means.

``python -m rfb demo`` binds loopback by default; bound to a wildcard or a LAN address
it must say which URLs other machines use, what a page opened there gets (a plain
http:// page is not a secure context, so no WebCodecs), and who can watch without a
token. Nothing here sends a packet or asks a name server.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def bind_problem(exc: OSError, host: str, port: int) -> str:
    """One line for a failure to listen, naming the address and what to try."""
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} is already in use on {host} (another rfb demo?): "
            f"choose another with --port N, or --port 0 for any free port"
        )
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on {where} ({exc.strerror}): ports below 1024 need privileges; try --port 0"
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: {host!r} is not an address of this machine ({exc.strerror or exc})"
    return f"cannot listen on {where}: {exc}"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the demo on this machine (names other than localhost count as not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


def lan_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, asked of its network interfaces (Linux).

    The kernel answers (one ioctl per interface): no name lookup, which could wait on a
    DNS server, and no packet. Elsewhere, or when it fails, the answer is empty and the
    caller says "this machine's address" instead.
    """
    try:
        import fcntl
        import struct

        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, AttributeError, OSError):
        return []
    found = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for name in names:
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on this interface
                continue
            address = ipaddress.ip_address(answer[20:24])
            if not address.is_loopback:
                found.add(str(address))
    return sorted(found, key=ipaddress.ip_address)


def lan_urls(url: str, host: str) -> list[str]:
    """``url`` as other machines reach it, when ``host`` is a wildcard (0.0.0.0 or ::)."""
    if host not in WILDCARD_HOSTS:
        return []  # loopback: nobody else can reach it; a specific address: ``url`` already names it
    local = urlsplit(url)
    return [
        urlunsplit(local._replace(netloc=f"{a}:{local.port}")) for a in lan_addresses() or ["<this machine's address>"]
    ]


def network_warnings(url: str, host: str, *, token: bool) -> list[str]:
    """What a demo bound beyond loopback must tell: what a LAN page gets, and who can watch."""
    if is_loopback(host):
        return []
    port = urlsplit(url).port
    warnings = [
        "a page opened as plain http:// from another machine is not a secure context: the browser has "
        "no WebCodecs there and gets JPEG images, not H.264 (for H.264, forward the port instead: "
        f"ssh -L {port}:127.0.0.1:{port} this-machine, then open the URL with 127.0.0.1)"
    ]
    if not token:
        warnings.append("--no-token on a network address: anyone who can reach this port can watch and steer the view")
    return warnings
