"""Shared fixtures: small test encoders, a running display, and a protocol-speaking client.

- :class:`EncoderLog` + :class:`FakeVideoEncoder` / :class:`FakeImageEncoder`: encoders
  cheap enough for 32 viewers on a 2-core machine. Each payload names the frame it came
  from (the first pixel's RGB and the size), so a test can tell which frame arrived, and
  every instance records ``encode`` calls and whether ``close`` ran.
- ``test_encoders`` fixture: registers them as "test-h264" and "test-image" for one test.
- ``display`` fixture: a display on 127.0.0.1, port 0, with the test encoders; closed after.
- :class:`ProtocolClient`: an asyncio WebSocket client speaking docs/protocol.md, for
  tests that want real sockets without a browser. Async tests use ``@pytest.mark.anyio``.
- Hypothesis profiles: no test has a wall-clock deadline (a shared, loaded machine makes
  any deadline a coin toss); with ``CI=true``, examples are also derandomized, so a CI run
  is repeatable. ``HYPOTHESIS_PROFILE`` picks a profile by name.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from rfb import protocol
from rfb.encoders.base import EncodedPayload, EncoderConfig
from rfb.frames import RawFrame
from tests.support.ci import IN_CI


def _load_hypothesis_profile() -> None:
    try:
        from hypothesis import settings
    except ImportError:  # hypothesis is a test extra; tests that use it import it themselves
        return
    settings.register_profile("dev", deadline=None)
    settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev"))


_load_hypothesis_profile()

H264 = protocol.H264_ANNEXB
JPEG = protocol.IMAGE_JPEG
PNG = protocol.IMAGE_PNG
TEST_CODEC = "avc1.42001f"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------- test encoders


@dataclass
class EncoderLog:
    """Every encoder instance the test factories built, in order."""

    instances: list[Any] = field(default_factory=list)
    fail_factory: set[str] = field(default_factory=set)  # names whose factory raises

    @property
    def encodes(self) -> int:
        return sum(e.encodes for e in self.instances)

    def open_instances(self) -> list[Any]:
        return [e for e in self.instances if not e.closed]

    def factory(self, cls: type, name: str) -> Callable[[EncoderConfig], Any]:
        def build(config: EncoderConfig) -> Any:
            if name in self.fail_factory:
                raise RuntimeError(f"{name}: told to fail by the test")
            encoder = cls(config, name)
            self.instances.append(encoder)
            return encoder

        return build


def frame_marker(frame: RawFrame) -> bytes:
    """What a fake payload says about its frame: the first pixel's RGB, then width, height."""
    first = bytes(frame.data[0, 0, :3].tobytes())
    return first + frame.width.to_bytes(2, "little") + frame.height.to_bytes(2, "little")


class FakeVideoEncoder:
    """A stand-in H.264 route: an IDR first and when forced, otherwise "P" frames.

    ``fail_on`` (a first-pixel red value) makes ``encode`` raise for matching frames, so
    tests can exercise the encoder-error path.
    """

    transport = "webcodecs"

    def __init__(self, config: EncoderConfig, name: str = "test-h264") -> None:
        self.name = name
        self.config = config
        self.encodes = 0
        self.closed = False
        self.fail_on: int | None = None
        self._started = False
        self.thread_names: set[str] = set()

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        assert not self.closed, "encode() after close()"
        self.thread_names.add(threading.current_thread().name)
        if (frame.width, frame.height) != (self.config.width, self.config.height):
            raise ValueError(f"expected {self.config.width}x{self.config.height}, got {frame.width}x{frame.height}")
        if self.fail_on is not None and int(frame.data[0, 0, 0]) == self.fail_on:
            raise RuntimeError("told to fail by the test")
        self.encodes += 1
        key = force_keyframe or not self._started
        self._started = True
        data = (b"I" if key else b"P") + frame_marker(frame)
        return [EncodedPayload(data, key, frame.width, frame.height, "webcodecs", codec=TEST_CODEC)]

    def flush(self) -> list[EncodedPayload]:
        return []

    def close(self) -> None:
        self.closed = True


class FakeImageEncoder(FakeVideoEncoder):
    """A stand-in image route: every payload is a keyframe."""

    transport = "image"

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        assert not self.closed, "encode() after close()"
        self.encodes += 1
        return [EncodedPayload(b"M" + frame_marker(frame), True, frame.width, frame.height, "image", mime=JPEG)]


@pytest.fixture
def test_encoders() -> Iterator[EncoderLog]:
    """Registers "test-h264" (webcodecs) and "test-image" (image) for this test."""
    from rfb.encoders.registry import register_video_encoder, unregister_video_encoder

    log = EncoderLog()
    register_video_encoder("test-h264", log.factory(FakeVideoEncoder, "test-h264"), replace=True)
    register_video_encoder("test-image", log.factory(FakeImageEncoder, "test-image"), transport="image", replace=True)
    try:
        yield log
    finally:
        for name in ("test-h264", "test-image"):
            unregister_video_encoder(name)


def start_test_display(width: int = 64, height: int = 48, **options: Any) -> Any:
    """A display on 127.0.0.1:0 with the test encoders (override any option).

    No lossless stills unless a test asks (``still_after=...``): on a loaded machine a
    pause between two publishes can pass the settle time, and a still would then arrive
    among the payloads a test counts.
    """
    from rfb.launch import start

    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "video_encoder": "test-h264",
        "image_encoder": "test-image",
        "keyframe_interval_min": 0.0,
        "still_after": None,
    }
    settings.update(options)
    return start(width, height, **settings)


@pytest.fixture
def display(test_encoders: EncoderLog) -> Iterator[Any]:
    """A running 64x48 display with the test encoders, closed after the test."""
    display = start_test_display()
    try:
        yield display
    finally:
        display.close()


# ---------------------------------------------------------------- protocol client


@dataclass
class Received:
    """One server message: ``kind`` is "config", "error", "stats", "video_chunk" or "image_frame"."""

    kind: str
    header: dict[str, Any]
    payload: bytes = b""

    @property
    def seq(self) -> int:
        return int(self.header["seq"])

    @property
    def keyframe(self) -> bool:
        return bool(self.header.get("keyframe", self.kind == "image_frame"))


class ProtocolClient:
    """A viewer without a browser: hello, receive payloads, ack, send events.

    ``connect()`` opens the socket (and sends hello unless ``hello=None``); ``recv()``
    returns the next message; ``next_payload()`` skips control messages (configs are
    kept in ``configs``, errors in ``errors``, stats in ``stats``). Every wait has a
    deadline so that a broken server fails the test instead of hanging it.
    """

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.configs: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.stats: list[dict[str, Any]] = []
        self.payloads: list[Received] = []

    @classmethod
    async def connect(
        cls,
        display: Any,
        *,
        supported: tuple[str, ...] | list[str] | None = (H264,),
        token: str | None | type[Ellipsis] = ...,
        origin: str | None = None,
        hello: dict[str, Any] | None | type[Ellipsis] = ...,
        **connect_options: Any,
    ) -> ProtocolClient:
        """Open a socket to ``display`` and say hello (``hello=None``: say nothing).

        ``token`` defaults to the display's; ``connect_options`` go to websockets' ``connect``
        (``max_queue``, ``sock``...).
        """
        from websockets.asyncio.client import connect

        ws = await connect(
            f"ws://127.0.0.1:{display.port}/ws",
            origin=origin,
            proxy=None,
            compression=None,
            max_size=None,
            open_timeout=5,
            close_timeout=2,
            **connect_options,
        )
        client = cls(ws)
        if hello is ...:
            hello = {"type": "hello", "supported": list(supported or []), "client": "pytest"}
            tok = display.token if token is ... else token
            if tok is not None:
                hello["token"] = tok
        if hello is not None:
            await client.send(hello)
        return client

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(json.dumps(message) if isinstance(message, dict) else message)

    async def recv(self, timeout: float = 5.0) -> Received:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(data, bytes):
            header, payload = protocol.unpack_payload(data)
            message = Received(header["type"], header, payload)
            self.payloads.append(message)
            return message
        obj = json.loads(data)
        if obj["type"] == "config":
            self.configs.append(obj)
        elif obj["type"] == "error":
            self.errors.append(obj["message"])
        elif obj["type"] == "stats":
            self.stats.append(obj)
        return Received(obj["type"], obj)

    async def next_payload(self, timeout: float = 5.0) -> Received:
        deadline = time.monotonic() + timeout
        while True:
            message = await self.recv(max(0.01, deadline - time.monotonic()))
            if message.kind in ("video_chunk", "image_frame"):
                return message

    async def next_error(self, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            message = await self.recv(max(0.01, deadline - time.monotonic()))
            if message.kind == "error":
                return str(message.header["message"])

    async def next_stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next ``stats`` message, acking (as drawn, decode_ms=1) any payload met on the way."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.recv(max(0.01, deadline - time.monotonic()))
            if message.kind == "stats":
                return message.header
            if message.kind in ("video_chunk", "image_frame"):
                await self.ack(message.seq, decode_ms=1.0)

    async def ack(self, seq: int, decode_ms: float | None = None) -> None:
        message: dict[str, Any] = {"type": "ack", "seq": seq}
        if decode_ms is not None:
            message["decode_ms"] = decode_ms
        await self.send(message)

    async def request_keyframe(self, reason: str = "test") -> None:
        await self.send({"type": "request_keyframe", "reason": reason})

    async def event(self, **event: Any) -> None:
        await self.send({"type": "event", "event": event})

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        """Wait for the server to close; returns (code, reason), discarding other messages."""
        from websockets.exceptions import ConnectionClosed

        deadline = time.monotonic() + timeout
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return (rcvd.code, rcvd.reason) if rcvd is not None else (None, None)

    async def close(self) -> None:
        await self.ws.close()

    async def __aenter__(self) -> ProtocolClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """:func:`eventually` for synchronous tests."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
