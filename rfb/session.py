"""One viewer's connection: the hello handshake, inbound control messages, and its sender.

Each viewer has exactly one writer, its sender task, fed by a small queue. The fan-out
hands it payloads on the event loop (never blocking), and a slow or dead socket stalls
only its own sender. Once a second (``stats_interval``) a ``stats`` message tells the
viewer its own latency and frame rate as the server measured them (rfb.latency).
Everything a viewer sends is parsed by :mod:`rfb.protocol` and
:mod:`rfb.events`; a malformed message earns an ``error`` reply and changes nothing,
for this viewer or any other.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from rfb import protocol
from rfb.adapt import adapt
from rfb.channel import Channel
from rfb.encoders.base import EncodedPayload, Transport
from rfb.events import EventQueue, InputEvent, parse_event
from rfb.fanout import FanOut, Member
from rfb.latency import LatencySummary
from rfb.protocol import Ack, EventMessage, Hello, ProtocolError, RequestKeyframe
from rfb.throttle import Throttle
from rfb.tiers import to_display

logger = logging.getLogger("rfb.session")
REFUSALS = Throttle(logger)  # refused handshakes: any client can repeat them from fresh connections

CLOSE_FLUSH_TIMEOUT = 2.0  # how long a requested close may wait behind queued messages
MAX_QUEUED_ERRORS = 4  # error replies beyond this are dropped: a flood earns no echo
MAX_LOGGED_ERRORS = 10  # kinds of rejection logged per viewer; each kind is logged once, then counted
MAX_LOGGED_FAILURES = 32  # distinct internal failures whose traceback is logged, per process
MIN_STATS_INTERVAL = 0.05  # seconds; stats_interval=0 turns the messages off


@dataclass(frozen=True, slots=True)
class SessionSettings:
    token: str | None
    max_message_bytes: int = 64 * 1024
    hello_timeout: float = 10.0
    stats_interval: float = 1.0  # seconds between ``stats`` messages; 0: none

    def __post_init__(self) -> None:
        interval = self.stats_interval
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not (interval == 0 or MIN_STATS_INTERVAL <= interval < float("inf"))
        ):
            raise ValueError(f"stats_interval must be 0 (off) or at least {MIN_STATS_INTERVAL} s, got {interval!r}")


@dataclass(frozen=True, slots=True)
class ViewerInfo:
    """A snapshot of one connected viewer, for ``display.viewers``.

    ``group`` is the fan-out group it is in ("webcodecs", "image" for JPEG, "png"; on an
    adaptive display an H.264 viewer may be in a cheaper tier, "webcodecs@1"...).
    ``latency`` covers the last ``stats_interval`` (1 s by default): what its last
    ``stats`` message said, recomputed now.
    """

    client_id: int
    transport: Transport
    client: str | None
    remote: str | None
    connected_at: float
    inflight: int
    needs_keyframe: bool
    delivered: int
    dropped: int
    rejected_messages: int
    decode_ms: float | None
    group: str
    latency: LatencySummary
    principal: Any = None  # what the app's authenticate hook said about this viewer (rfb.asgi)
    tier: int = 0  # its quality tier (rfb.tiers; 0: the full stream), "webcodecs@<tier>" as ``group``
    sent_bytes_per_s: float | None = None  # bytes/s its sender wrote over the last tick (adaptive displays)


class _ErrorText(str):
    """An ``error`` reply in the send queue, counted so that a flood of them stays bounded."""


class _StatsText(str):
    """A ``stats`` message in the send queue: at most one waits, so a stuck socket costs nothing."""


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


class Viewer:
    """The server side of one connection, from accept to disconnect.

    The connection is a :class:`rfb.channel.Channel`: a Starlette ``WebSocket``, or a
    relay such as a notebook widget's comm. The session is the same over either.
    """

    def __init__(
        self,
        websocket: Channel,
        *,
        client_id: int,
        fanout: FanOut,
        events: EventQueue,
        settings: SessionSettings,
        frame_size: Callable[[], tuple[int, int]],
        principal: Any = None,
        on_resize: Callable[[InputEvent], None] | None = None,
    ) -> None:
        self.client_id = client_id
        self.principal = principal
        self._ws = websocket
        self._fanout = fanout
        self._events = events
        self._settings = settings
        self._frame_size = frame_size
        self._on_resize = on_resize  # the display's resize policy (rfb.resize) hears this viewer's size
        self._queue: deque[str | bytes | _Close] = deque()
        self._wakeup = asyncio.Event()
        self._queued_payloads = 0
        self._queued_errors = 0
        self._queued_stats = False
        self._joined = asyncio.Event()
        self._close: _Close | None = None
        self._last_config: tuple[Any, ...] | None = None
        self.member: Member | None = None
        self.hello: Hello | None = None
        self.connected_at = time.time()
        self.dropped = 0
        self.rejected = 0
        self._logged_kinds: set[str] = set()
        self.decode_ms: float | None = None
        self.sent_bytes = 0  # written to the socket: a link's throughput, as rfb.adapt measures it
        self.sent_bytes_per_s: float | None = None
        self.finished = asyncio.Event()

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve the connection until either side closes it; always leaves the fan-out."""
        sender = asyncio.create_task(self._send_loop(), name=f"rfb-send-{self.client_id}")
        receiver = asyncio.create_task(self._receive_loop(), name=f"rfb-recv-{self.client_id}")
        reporter = asyncio.create_task(self._stats_loop(), name=f"rfb-stats-{self.client_id}")
        adapter = asyncio.create_task(self._adapt_loop(), name=f"rfb-adapt-{self.client_id}")
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done and self._close is not None:
                await asyncio.wait({sender}, timeout=CLOSE_FLUSH_TIMEOUT)  # let the close frame out
        finally:
            for task in (adapter, reporter, receiver, sender):
                task.cancel()
            await asyncio.gather(adapter, reporter, receiver, sender, return_exceptions=True)
            if self.member is not None:
                self._fanout.leave(self.member)
            self.finished.set()

    def close(self, code: int, reason: str) -> None:
        """Close this viewer after nothing else: queued messages are dropped. Idempotent."""
        if self._close is not None:
            return
        self._close = _Close(code, _close_reason(reason))
        self._queue.clear()
        self._queued_payloads = self._queued_errors = 0
        self._queued_stats = False
        self._queue.append(self._close)
        self._wakeup.set()

    @property
    def peer(self) -> tuple[str, int] | None:
        """The client's (host, port), as the server's transport knows it."""
        client = self._ws.client
        return (client.host, client.port) if client else None

    def info(self) -> ViewerInfo | None:
        member, hello = self.member, self.hello
        if member is None or hello is None:
            return None
        peer = self.peer
        return ViewerInfo(
            self.client_id,
            member.transport,
            hello.client,
            f"{peer[0]}:{peer[1]}" if peer else None,
            self.connected_at,
            len(member.inflight),
            member.needs_keyframe,
            member.delivered,
            self.dropped,
            self.rejected,
            self.decode_ms,
            member.group,
            member.latency.summary(self._stats_window),
            self.principal,
            member.tier,
            self.sent_bytes_per_s,
        )

    @property
    def _stats_window(self) -> float:
        return self._settings.stats_interval or 1.0

    # ------------------------------------------------------------ outbound

    def deliver(self, payload: EncodedPayload, seq: int, message: bytes) -> None:
        """Queue one encoded message (on the event loop, from the fan-out). Never blocks."""
        member = self.member
        if self._close is not None or member is None:
            return
        if self._queued_payloads >= self._fanout.max_inflight:
            # Only a client that acks frames it has not received gets here: it pays alone.
            self.dropped += 1
            self._fanout.discard(member, seq)
            return
        config = (payload.transport, payload.codec, payload.width, payload.height)
        if config != self._last_config:
            self._send_config(payload.transport, payload.codec, payload.width, payload.height)
        self._queued_payloads += 1
        self._push(message)

    def _send_config(self, transport: Transport, codec: str | None, width: int, height: int) -> None:
        self._last_config = (transport, codec, width, height)
        self._push(
            protocol.config_message(
                transport=transport, codec=codec, width=width, height=height, client_id=self.client_id
            )
        )

    def _reject(self, exc: ProtocolError) -> None:
        """Count, log the first of its kind, and reply ``error``: a flood costs one line per kind."""
        self.rejected += 1
        kind = str(exc).split(":", 1)[0][:40]
        if kind not in self._logged_kinds and len(self._logged_kinds) < MAX_LOGGED_ERRORS:
            self._logged_kinds.add(kind)
            logger.warning(
                "viewer %d: rejected a message: %s (more like it are counted in rejected_messages)", self.client_id, exc
            )
        if self._queued_errors < MAX_QUEUED_ERRORS and self._close is None:
            self._queued_errors += 1
            self._push(_ErrorText(protocol.error_message(str(exc))))

    def _push(self, item: str | bytes) -> None:
        self._queue.append(item)
        self._wakeup.set()

    async def _send_loop(self) -> None:
        ws = self._ws
        try:
            while True:
                while not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                item = self._queue.popleft()
                if isinstance(item, _Close):
                    await ws.close(item.code, item.reason)
                    return
                if isinstance(item, bytes):
                    self._queued_payloads -= 1
                    await ws.send_bytes(item)
                    self.sent_bytes += len(item)
                else:
                    if isinstance(item, _ErrorText):
                        self._queued_errors -= 1
                    elif isinstance(item, _StatsText):
                        self._queued_stats = False
                    await ws.send_text(item)
        except (WebSocketDisconnect, WebSocketDisconnected, OSError) as exc:
            logger.debug("viewer %d: send failed, the socket is gone (%r)", self.client_id, exc)
        except Exception as exc:  # boundary: one viewer's failure must never reach the others
            log_failure(exc, f"viewer {self.client_id}: sending failed; closing this viewer")
            try:
                await ws.close(1011, "internal error")
            except (WebSocketDisconnect, WebSocketDisconnected, OSError, RuntimeError):
                pass

    async def _stats_loop(self) -> None:
        """Every ``stats_interval`` once joined: this viewer's latency and fps, as a ``stats`` message."""
        interval = self._settings.stats_interval
        if not interval:
            return
        await self._joined.wait()
        member = self.member
        assert member is not None
        while self._close is None:
            await asyncio.sleep(interval)
            if self._close is not None or self._queued_stats:
                continue  # the last one has not left yet: a stuck socket gets no pile of them
            summary = member.latency.summary(interval)
            self._queued_stats = True
            self._push(
                _StatsText(
                    protocol.stats_message(
                        median_ms=summary.median_ms,
                        p95_ms=summary.p95_ms,
                        fps=summary.fps,
                        window_s=summary.window_s,
                    )
                )
            )

    async def _adapt_loop(self) -> None:
        """On an adaptive display, move this H.264 viewer between quality tiers (rfb.adapt)."""
        policy = self._fanout.adaptive
        if policy is None:
            return
        await self._joined.wait()
        member = self.member
        assert member is not None
        if member.transport != "webcodecs":
            return

        def measured(rate: float) -> None:
            self.sent_bytes_per_s = rate

        try:
            await adapt(self._fanout, member, policy, lambda: self.sent_bytes, measured)
        except Exception as exc:  # boundary: the viewer goes on at its tier, unadapted, rather than closing
            log_failure(exc, f"viewer {self.client_id}: adapting its tier failed; it stays where it is")

    # ------------------------------------------------------------ inbound

    async def _receive_loop(self) -> None:
        try:
            if not await self._handshake():
                return
            while self._close is None:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = self._inbound_text(message)
                if text is not None:
                    self._handle(text)
        except (WebSocketDisconnect, WebSocketDisconnected, OSError) as exc:
            logger.debug("viewer %d: receive ended (%r)", self.client_id, exc)
        except Exception as exc:  # boundary: a bug in the connection's own code closes this viewer only
            log_failure(exc, f"viewer {self.client_id}: receiving failed; closing this viewer")
            self.close(1011, "internal error")

    async def _handshake(self) -> bool:
        """Wait for a valid hello, check the token, choose a transport, join the fan-out."""
        try:
            message = await asyncio.wait_for(self._ws.receive(), self._settings.hello_timeout)
        except TimeoutError:
            self.close(protocol.CLOSE_BAD_HELLO, f"bad hello: none within {self._settings.hello_timeout:g} s")
            return False
        if message["type"] == "websocket.disconnect":
            return False
        text = self._inbound_text(message, before_hello=True)
        if text is None:
            return False
        try:
            hello = protocol.parse_client_message(text)
        except ProtocolError as exc:
            self.close(protocol.CLOSE_BAD_HELLO, f"bad hello: {exc}")
            return False
        if not isinstance(hello, Hello):
            self.close(protocol.CLOSE_BAD_HELLO, f"bad hello: expected 'hello' first, got {type(hello).__name__}")
            return False
        if not self._authorized(hello.token):
            REFUSALS.warning("token", "viewer %d: refused, wrong or missing token", self.client_id)
            self.close(protocol.CLOSE_UNAUTHORIZED, "unauthorized")
            return False
        groups = self._fanout.groups
        group = protocol.choose_group(hello.supported, groups)
        if group is None:
            offered = [name for name, g in protocol.MEDIA_GROUPS.items() if g in groups]
            self.close(
                protocol.CLOSE_NO_TRANSPORT,
                f"no supported transport: server sends {offered}, client takes {list(hello.supported)}",
            )
            return False
        self.hello = hello
        width, height = self._frame_size()
        transport = protocol.GROUP_TRANSPORTS[group]
        self._send_config(transport, self._fanout.current_config(group, (width, height)), width, height)
        self.member = self._fanout.join(self.client_id, group, self.deliver)
        self._joined.set()
        logger.info("viewer %d (%s) joined the %s group", self.client_id, hello.client or "unknown client", group)
        return True

    def _stream_size(self) -> tuple[int, int]:
        """The frame size a viewer of a quality tier was last configured for: its pointer coordinates are in it."""
        config, member = self._last_config, self.member
        if config is None or member is None or member.tier == 0:
            return self._frame_size()
        return config[2], config[3]

    def _authorized(self, token: str | None) -> bool:
        expected = self._settings.token
        if expected is None:
            return True
        if token is None:
            return False
        return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))

    def _inbound_text(self, message: dict[str, Any], *, before_hello: bool = False) -> str | None:
        """The text of a receive event; a binary or oversized message is refused here."""
        limit = self._settings.max_message_bytes
        text: str | None = message.get("text")
        if text is None:
            data = message.get("bytes") or b""
            if len(data) > limit:
                self.close(protocol.CLOSE_TOO_BIG, "message too big")
            elif before_hello:
                self.close(protocol.CLOSE_BAD_HELLO, "bad hello: expected a JSON text message, got binary")
            else:
                self._reject(ProtocolError(f"expected JSON text messages, got a binary message of {len(data)} bytes"))
            return None
        if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
            self.close(protocol.CLOSE_TOO_BIG, "message too big")
            return None
        return text

    def _handle(self, text: str) -> None:
        member = self.member
        assert member is not None
        try:
            message = protocol.parse_client_message(text)
            if isinstance(message, Ack):
                drawn = message.decode_ms is not None  # an ack without it: dropped, not shown
                self.decode_ms = message.decode_ms if drawn else self.decode_ms
                self._fanout.ack(member, message.seq, drawn=drawn)
            elif isinstance(message, RequestKeyframe):
                self._fanout.request_keyframe(member)
            elif isinstance(message, EventMessage):
                event = parse_event(
                    message.event,
                    client_id=self.client_id,
                    time=time.monotonic(),
                    bounds=self._stream_size(),
                    principal=self.principal,
                )
                self._events.put(to_display(event, self._stream_size(), self._frame_size()))
                if event.type == "resize" and self._on_resize is not None:
                    self._on_resize(event)
            else:
                raise ProtocolError("hello: already received; a second hello is ignored")
        except ProtocolError as exc:
            self._reject(exc)
        except Exception as exc:  # boundary: a server bug met by one message must not end the viewer
            log_failure(exc, f"viewer {self.client_id}: handling a message failed; the message was ignored")
            self._reject(ProtocolError(f"internal error: the server failed on this message ({type(exc).__name__})"))


class SessionRegistry:
    """The live viewers of one display: client ids, snapshots, and closing them all."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._viewers: dict[int, Viewer] = {}

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, viewer: Viewer) -> None:
        self._viewers[viewer.client_id] = viewer

    def discard(self, viewer: Viewer) -> None:
        self._viewers.pop(viewer.client_id, None)

    def joined(self) -> int:
        """How many viewers have joined (what ``len(snapshot())`` says, without building one)."""
        return sum(1 for v in list(self._viewers.values()) if v.member is not None and v.hello is not None)

    def snapshot(self) -> tuple[ViewerInfo, ...]:
        infos = (v.info() for v in list(self._viewers.values()))
        return tuple(i for i in infos if i is not None)

    def latency(self, window_s: float) -> dict[int, LatencySummary]:
        """Each joined viewer's latency summary over the last ``window_s`` seconds."""
        return {
            v.client_id: m.latency.summary(window_s)
            for v in list(self._viewers.values())
            if (m := v.member) is not None
        }

    async def close_all(self, code: int, reason: str, timeout: float) -> list[Viewer]:
        """Close every viewer; return those still not finished after ``timeout`` seconds.

        A viewer stays unfinished when its peer stopped reading: the close frame waits
        behind a full socket buffer. The caller then aborts those connections.
        """
        viewers = list(self._viewers.values())
        for viewer in viewers:
            viewer.close(code, reason)
        return await self.wait_finished(viewers, timeout)

    @staticmethod
    async def wait_finished(viewers: list[Viewer], timeout: float) -> list[Viewer]:
        """Wait until each of ``viewers`` has finished, at most ``timeout``; return the others."""
        if not viewers:
            return []
        waits = {asyncio.ensure_future(v.finished.wait()): v for v in viewers}
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for w in pending:
            w.cancel()
        return [waits[w] for w in pending]


_logged_failures: set[tuple[str, str, int]] = set()


def log_failure(exc: BaseException, what: str) -> None:
    """Log ``what`` with the traceback the first time this failure (type and place) is met.

    A client that can trigger a server bug can trigger it on every message and from
    every connection: the traceback is worth one line, not one per message.
    """
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    key = (type(exc).__name__, tb.tb_frame.f_code.co_filename if tb else "", tb.tb_lineno if tb else 0)
    if key not in _logged_failures and len(_logged_failures) < MAX_LOGGED_FAILURES:
        _logged_failures.add(key)
        logger.error("%s", what, exc_info=exc)
    else:
        logger.debug("%s (%s: %s; traceback logged before)", what, type(exc).__name__, exc)


def _close_reason(reason: str) -> str:
    """A close reason fits in 123 UTF-8 bytes (RFC 6455 §5.5): cut it at a character boundary."""
    return reason.encode("utf-8", "replace")[:123].decode("utf-8", "ignore")
