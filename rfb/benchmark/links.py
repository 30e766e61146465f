"""``python -m rfb.benchmark.links``: viewers on slow and fast links at once, with quality tiers.

Each viewer reaches the display through a loopback TCP proxy of its own
(:class:`ThrottledLink`) that carries at most ``rate`` bits per second each way
(a token bucket: a chunk leaves once the bucket has paid for it) and adds ``delay``
seconds each way, as an SSH tunnel over a VPN would. Behind it, a real WebSocket
viewer (:class:`LinkViewer`, the ``websockets`` package) says hello, decodes every
H.264 payload with FFmpeg's decoder as a browser would, and acks it as drawn.

Per link it reports what the viewer got over the measured window: frames drawn per
second, the server's publish -> ack latency (p50, p95: ``display.latency``), the
longest gap between two payloads, the bits per second that crossed the link, and the
tiers it was served from (rfb.tiers, chosen by rfb.adapt). The same harness runs in
``tests/test_tiers_proxy.py`` with generous bounds; the speeds belong here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CHUNK = 16 * 1024  # bytes read from a socket at a time: a 2 Mbit/s link carries one in 65 ms
QUEUED_CHUNKS = 16  # chunks in flight inside the proxy before it stops reading (TCP backpressure)


class ThrottledLink:
    """A loopback TCP proxy to ``127.0.0.1:upstream`` with a byte rate and a delay per direction.

    ``rate_bps``: bits per second each way. ``delay_s``: added one-way delay. Every
    connection gets its own pair of buckets; :meth:`close` ends them all.
    """

    def __init__(self, upstream: int, rate_bps: float, delay_s: float = 0.0) -> None:
        if not rate_bps > 0 or delay_s < 0:
            raise ValueError(f"expected a positive rate and a delay >= 0, got {rate_bps!r} bit/s, {delay_s!r} s")
        self.upstream, self.rate_bps, self.delay_s = upstream, rate_bps, delay_s
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.carried = 0  # bytes delivered towards the viewer

    async def start(self) -> int:
        """Listen on 127.0.0.1 (a free port); returns it."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        for reader, writer, down in ((client_reader, server_writer, False), (server_reader, client_writer, True)):
            task = asyncio.create_task(self._pipe(reader, writer, down))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, down: bool) -> None:
        """Read, pay the bucket (reading waits: the sender feels the link), deliver after the delay."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUED_CHUNKS)
        sender = asyncio.create_task(self._deliver(queue, writer, down))
        paid_until = time.monotonic()
        try:
            while data := await reader.read(CHUNK):
                now = time.monotonic()
                paid_until = max(paid_until, now) + len(data) * 8 / self.rate_bps
                await asyncio.sleep(paid_until - now)
                await queue.put((paid_until + self.delay_s, data))
            await queue.put(None)
            await sender
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
            writer.close()

    async def _deliver(
        self, queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter, down: bool
    ) -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()
            if down:
                self.carried += len(data)
        if writer.can_write_eof():
            writer.write_eof()


@dataclass
class LinkViewer:
    """A viewer behind a link: decodes each H.264 payload and acks it as drawn (with its decode time)."""

    token: str | None
    port: int  # the link's
    client_id: int | None = None
    arrivals: list[tuple[float, int, int]] = field(default_factory=list)  # (time, bytes, width) per payload
    decode_errors: int = 0
    _task: asyncio.Task[None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, timeout: float = 10.0) -> LinkViewer:
        self._task = asyncio.create_task(self._run())
        done, _ = await asyncio.wait(
            {self._task, asyncio.ensure_future(self._ready.wait())},
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self._task in done:
            self._task.result()  # raises what ended it
        if not self._ready.is_set():
            raise TimeoutError(f"the viewer behind port {self.port} received no payload within {timeout:g} s")
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        from websockets.asyncio.client import connect

        from rfb import protocol
        from rfb.benchmark.metrics import H264Decoder

        hello: dict[str, Any] = {"type": "hello", "supported": [protocol.H264_ANNEXB], "client": "rfb-links"}
        if self.token is not None:
            hello["token"] = self.token
        decoder = H264Decoder()
        async with connect(
            f"ws://127.0.0.1:{self.port}/ws",
            proxy=None,
            compression=None,
            max_size=None,
            open_timeout=10,
            close_timeout=1,
        ) as ws:
            await ws.send(json.dumps(hello))
            async for message in ws:
                if isinstance(message, str):
                    obj = json.loads(message)
                    if obj.get("type") == "config":
                        self.client_id = obj.get("client_id", self.client_id)
                        decoder = H264Decoder()  # a new size: what a browser's reconfigure does
                    continue
                arrived = time.monotonic()
                header, payload = protocol.unpack_payload(message)
                try:
                    decoder.decode(payload)
                except Exception:  # counted: the test asserts there are none (PyAV raises its own errors)
                    self.decode_errors += 1
                self.arrivals.append((arrived, len(message), int(header.get("width") or 0)))
                self._ready.set()
                decode_ms = (time.monotonic() - arrived) * 1e3
                await ws.send(f'{{"type":"ack","seq":{int(header["seq"])},"decode_ms":{decode_ms:.3f}}}')


@dataclass
class LinkResult:
    """What one link's viewer got over the measured window."""

    mbit: float
    client_id: int | None
    fps: float
    p50_ms: float | None
    p95_ms: float | None
    max_gap_s: float
    bitrate_mbit: float
    tiers: tuple[int, ...]  # every tier it was seen in during the window
    final_tier: int
    group: str | None  # the fan-out group it was in at the end
    sent_mbit: float | None  # what the server's sender wrote per second over the last tick (ViewerInfo)
    width: int  # of the last payload
    decode_errors: int


async def measure_links(
    display: Any, rates_mbit: Sequence[float], *, seconds: float, warmup: float, delay_s: float
) -> list[LinkResult]:
    """Connect one viewer per link rate, let tiers settle for ``warmup`` s, then measure ``seconds``."""
    links = [ThrottledLink(display.port, mbit * 1e6, delay_s) for mbit in rates_mbit]
    viewers: list[LinkViewer] = []
    try:
        for link in links:
            viewers.append(await LinkViewer(display.token, await link.start()).start())
        await asyncio.sleep(warmup)
        seen: list[set[int]] = [set() for _ in viewers]
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            tiers = {info.client_id: info.tier for info in display.viewers}
            for i, viewer in enumerate(viewers):
                if viewer.client_id in tiers:
                    seen[i].add(tiers[viewer.client_id])
            await asyncio.sleep(0.1)
        end = time.monotonic()
        latency = display.latency(end - start)
        final = {info.client_id: info for info in display.viewers}
        return [
            _result(mbit, v, start, end, latency.get(v.client_id), seen[i], final.get(v.client_id))
            for i, (mbit, v) in enumerate(zip(rates_mbit, viewers, strict=True))
        ]
    finally:
        for viewer in viewers:
            await viewer.close()
        for link in links:
            await link.close()


def _result(
    mbit: float, viewer: LinkViewer, start: float, end: float, summary: Any, tiers: set[int], final: Any
) -> LinkResult:
    window = [(t, n, w) for t, n, w in viewer.arrivals if start <= t <= end]
    times = [start] + [t for t, _, _ in window] + [end]
    gaps = np.diff(times) if len(times) > 1 else np.array([end - start])
    return LinkResult(
        mbit=mbit,
        client_id=viewer.client_id,
        fps=summary.fps if summary is not None else 0.0,
        p50_ms=summary.median_ms if summary is not None else None,
        p95_ms=summary.p95_ms if summary is not None else None,
        max_gap_s=round(float(gaps.max()), 3),
        bitrate_mbit=round(sum(n for _, n, _ in window) * 8 / (end - start) / 1e6, 2),
        tiers=tuple(sorted(tiers)),
        final_tier=final.tier if final is not None else -1,
        group=final.group if final is not None else None,
        sent_mbit=(
            round(final.sent_bytes_per_s * 8 / 1e6, 2)
            if final is not None and final.sent_bytes_per_s is not None
            else None
        ),
        width=viewer.arrivals[-1][2] if viewer.arrivals else 0,
        decode_errors=viewer.decode_errors,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def format_results(results: Sequence[LinkResult]) -> str:
    lines = [
        "| link | fps | latency p50 | latency p95 | longest gap | bitrate | tier (seen) | width |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.mbit:g} Mbit/s | {r.fps:.1f} | {_ms(r.p50_ms)} | {_ms(r.p95_ms)} | {r.max_gap_s:.2f} s "
            f"| {r.bitrate_mbit:.2f} Mbit/s | {r.final_tier} ({', '.join(map(str, r.tiers))}) | {r.width} |"
        )
    return "\n".join(lines)


async def _main_async(args: argparse.Namespace) -> list[LinkResult]:
    from rfb.benchmark.fanout import Publisher, prerender
    from rfb.launch import serve

    width, height = args.size
    display = await serve(
        width,
        height,
        port=0,
        fps=args.fps,
        bitrate=int(args.bitrate * 1e6),
        video_encoder=args.encoder,
        image_encoder=None,
        still_after=None,
        adaptive=not args.no_adapt,
    )
    try:
        with Publisher(display, prerender(args.pattern, width, height), args.fps):
            return await measure_links(
                display, args.links, seconds=args.seconds, warmup=args.warmup, delay_s=args.delay_ms / 1e3
            )
    finally:
        await display.aclose()


def parse_rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected link rates in Mbit/s like 2,8,50, got {text!r}") from None
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError(f"expected positive link rates, got {text!r}")
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    from rfb.benchmark import machine, patterns
    from rfb.benchmark.fanout import parse_size

    p = argparse.ArgumentParser(prog="python -m rfb.benchmark.links", description=__doc__.split("\n")[0])
    p.add_argument("--links", type=parse_rates, default=(2.0, 8.0, 50.0), help="Mbit/s per viewer (default 2,8,50)")
    p.add_argument("--delay-ms", type=float, default=20.0, help="added one-way delay per link (default 20)")
    p.add_argument("--size", type=parse_size, default=(640, 360), help="default 640x360")
    p.add_argument("--fps", type=float, default=30.0, help="publish rate (default 30)")
    p.add_argument("--bitrate", type=float, default=6.0, help="the top tier's Mbit/s (default 6)")
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds (default 8)")
    p.add_argument("--warmup", type=float, default=8.0, help="seconds for the tiers to settle first (default 8)")
    p.add_argument("--encoder", default="h264_cpu", help="H.264 route (default h264_cpu)")
    p.add_argument("--pattern", choices=patterns.PATTERNS, default="noise")
    p.add_argument("--no-adapt", action="store_true", help="adaptive=False: every link gets the full stream")
    args = p.parse_args(argv)
    results = asyncio.run(_main_async(args))
    print(f"machine: {machine.one_line(machine.describe())}")
    print(
        f"encoder {args.encoder}, {args.size[0]}x{args.size[1]}, pattern={args.pattern}, {args.fps:g} fps, "
        f"top tier {args.bitrate:g} Mbit/s, {args.delay_ms:g} ms added each way, adaptive={not args.no_adapt}, "
        f"{args.warmup:g} s to settle then {args.seconds:g} s measured"
    )
    print(format_results(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
