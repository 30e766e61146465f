"""``python -m rfb.benchmark.browser_latency``: from ``publish()`` to the frame drawn in a real browser.

A real display on 127.0.0.1 publishes an animated pattern at a steady rate; the real
viewer page (``rfb/viewer/``) runs in headless Chromium (the Debian package, driven by
Playwright) and decodes it with WebCodecs (H.264) or as images (JPEG), optionally while
N - 1 other viewers (protocol clients in a child process, as in ``rfb.benchmark.fanout``)
are served the same stream. For each frame we take the time from ``publish()`` to the
moment the viewer sends its ``ack``, which it does right after ``drawImage`` of that
frame returned in its worker. (Compositing and scan-out come after that and are not
included; headless Chromium has no screen.)

Where the per-frame times come from (the server's ``display.latency()`` gives only
publish -> ack, not when each frame arrived in the worker):

- the publish time is in every payload header (``timestamp_us``: ``publish()`` stamps
  frames with ``time.monotonic_ns() // 1000`` of this very process);
- a probe injected into the viewer's worker (the page's ``Worker`` constructor is
  wrapped by an init script, so the viewer's own code runs unchanged) notes, per
  ``seq``, when the payload arrived and when its ack was sent, on the worker's
  ``performance.now()`` clock;
- the two clocks are tied by pings from the worker to a small WebSocket clock server
  in this process (:class:`ClockServer`), before and after the window: the ping with
  the shortest round trip gives the offset, and half that round trip (plus any drift
  between the two syncs) bounds its error. That bound is reported with every result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rfb.benchmark import machine, patterns
from rfb.benchmark.chromium import CHROMIUM, launch
from rfb.benchmark.fanout import (
    DEFAULT_ENCODER,
    Column,
    Publisher,
    ViewerProcess,
    busy_pct,
    latency_columns,
    machine_jiffies,
    parse_counts,
    parse_size,
    prerender,
    render_table,
    section_route,
    start_display,
)
from rfb.benchmark.metrics import percentile
from rfb.benchmark.sections import BenchmarkOptions, SectionReport, write_json_report

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

TRANSPORTS: tuple[str, ...] = ("webcodecs", "image")
START_TIMEOUT_MS = 20_000  # page load, worker start, first frame drawn
SETTLE = 0.5  # seconds after the window for frames published in it to arrive and be acked

# Runs inside the viewer's worker, after the viewer's worker module (imported first).
# It wraps the WebSocket class the viewer opens later: arrival of each binary message
# and each ack sent, keyed by seq, on this worker's performance.now() clock.
WORKER_PROBE_JS = r"""
const RealWebSocket = self.WebSocket;
const utf8 = new TextDecoder("utf-8");
const arrivals = new Map();  // seq -> [timestamp_us, arrived_ms]
let records = [];            // [seq, timestamp_us, arrived_ms, acked_ms, drawn]
self.WebSocket = class TimedWebSocket extends RealWebSocket {
  constructor(...args) {
    super(...args);
    // Registered before the viewer's onmessage: it runs first, on arrival.
    this.addEventListener("message", (e) => {
      if (!(e.data instanceof ArrayBuffer)) return;
      const now = performance.now();
      const length = new DataView(e.data).getUint32(0, true);
      const header = JSON.parse(utf8.decode(new Uint8Array(e.data, 4, length)));
      arrivals.set(header.seq, [header.timestamp_us, now]);
    });
  }
  send(data) {
    if (typeof data === "string" && data.startsWith('{"type":"ack"')) {
      const now = performance.now();
      const ack = JSON.parse(data);
      const arrival = arrivals.get(ack.seq);
      if (arrival) {
        arrivals.delete(ack.seq);
        records.push([ack.seq, arrival[0], arrival[1], now, "decode_ms" in ack ? 1 : 0]);
      }
    }
    super.send(data);
  }
};
/** Round trips to the clock server: [sent_ms, server_ms, received_ms] each, on our clock but server_ms. */
async function sync(url, count) {
  const ws = new RealWebSocket(url);
  const samples = [];
  let fail = null;
  const failed = new Promise((_, reject) => { fail = reject; });
  failed.catch(() => {});  // a failure after the last ping is nobody's business
  const timer = setTimeout(() => fail(new Error(`the clock server at ${url} did not answer within 5 s`)), 5000);
  ws.onerror = () => fail(new Error(`could not reach the clock server at ${url}`));
  ws.onclose = () => fail(new Error(`the clock server at ${url} closed the socket`));
  try {
    await Promise.race([new Promise((resolve) => { ws.onopen = resolve; }), failed]);
    for (let i = 0; i < count; i++) {
      const sent = performance.now();
      const answer = new Promise((resolve) => { ws.onmessage = (e) => resolve(e.data); });
      ws.send("t");
      const reply = await Promise.race([answer, failed]);
      samples.push([sent, Number(reply), performance.now()]);
    }
  } finally {
    clearTimeout(timer);
    ws.onclose = ws.onerror = null;
    ws.close();
  }
  return samples;
}
const channel = new MessageChannel();
channel.port1.onmessage = async (e) => {
  const { id, op } = e.data;
  if (op === "take") {
    channel.port1.postMessage({ id, result: records });
    records = [];
  } else if (op === "sync") {
    try {
      channel.port1.postMessage({ id, result: await sync(e.data.url, e.data.count) });
    } catch (err) {
      channel.port1.postMessage({ id, error: String(err && err.message ? err.message : err) });
    }
  }
};
self.postMessage({ type: "rfb-bench-probe", port: channel.port2 }, [channel.port2]);
"""

# Runs in the page before its scripts: the viewer's Worker starts as a tiny module that
# imports the real worker module, then adds the probe. `window.__rfbBench` talks to it.
PAGE_INIT_JS = r"""
(() => {
  const probe = __PROBE__;
  const RealWorker = window.Worker;
  const waiting = new Map();
  let port = null;
  let nextId = 1;
  const bench = {
    ready: false,
    call(op, args) {
      if (!port) return Promise.reject(new Error("the worker probe has not reported yet"));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        waiting.set(id, (reply) => (reply.error ? reject(new Error(reply.error)) : resolve(reply.result)));
        port.postMessage({ ...args, id, op });
      });
    },
    sync(url, count) { return bench.call("sync", { url, count }); },
    take() { return bench.call("take"); },
  };
  window.__rfbBench = bench;
  window.Worker = class ProbedWorker extends RealWorker {
    constructor(url, options) {
      const source = `import ${JSON.stringify(new URL(url, location.href).href)};\n${probe}`;
      super(URL.createObjectURL(new Blob([source], { type: "text/javascript" })), options);
      this.addEventListener("message", (e) => {
        if (!e.data || e.data.type !== "rfb-bench-probe") return;
        port = e.data.port;
        port.onmessage = (m) => {
          const resolve = waiting.get(m.data.id);
          waiting.delete(m.data.id);
          if (resolve) resolve(m.data);
        };
        bench.ready = true;
      });
    }
  };
})();
""".replace("__PROBE__", json.dumps(WORKER_PROBE_JS))


def _viewport(width: int, height: int) -> ViewportSize:
    return {"width": width, "height": height}


@dataclass(frozen=True, slots=True)
class LatencyOptions:
    size: tuple[int, int] = (1280, 720)
    seconds: float = 5.0
    fps: float = 30.0
    transports: tuple[str, ...] = TRANSPORTS
    viewers: tuple[int, ...] = (1,)  # the page plus N - 1 protocol viewers in a child process
    encoder: str = DEFAULT_ENCODER
    image_encoder: str = "image"
    pattern: str = "scene"
    bitrate: int | None = None
    warmup: float = 1.0
    pings: int = 50
    chromium: Path = CHROMIUM
    viewport: ViewportSize = field(default_factory=lambda: _viewport(1280, 720))

    def __post_init__(self) -> None:
        if not self.viewers or any(n < 1 for n in self.viewers):
            raise ValueError(f"viewers must be positive counts, got {self.viewers}")
        if self.seconds <= 0 or self.fps <= 0 or self.warmup < 0 or self.pings < 1:
            raise ValueError(
                f"seconds, fps and pings must be positive and warmup >= 0; got {self.seconds}, "
                f"{self.fps}, {self.pings}, {self.warmup}"
            )
        unknown = [t for t in self.transports if t not in TRANSPORTS]
        if unknown or not self.transports:
            raise ValueError(f"transports must be drawn from {TRANSPORTS}, got {self.transports}")
        if self.pattern not in patterns.PATTERNS:
            raise ValueError(f"pattern must be one of {patterns.PATTERNS}, got {self.pattern!r}")


@dataclass(frozen=True, slots=True)
class ClockSync:
    """worker ``performance.now()`` ms = Python ``time.monotonic()`` ms + ``offset_ms`` (± ``error_ms``)."""

    offset_ms: float
    error_ms: float


class ClockServer:
    """A WebSocket on 127.0.0.1 that answers every message with this process's ``time.monotonic()`` in ms.

    The worker probe pings it to tie its clock to ours. The server's reading is taken
    between the ping's send and the answer's arrival, so over loopback (a fraction of
    a millisecond per round trip) the offset is known far better than through
    Playwright's ``evaluate`` (milliseconds per round trip).
    """

    def __init__(self) -> None:
        from websockets.sync.server import serve

        self._server = serve(self._answer, "127.0.0.1", 0, compression=None)
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="rfb-bench-clock", daemon=True)
        self._thread.start()

    @staticmethod
    def _answer(ws: Any) -> None:
        for _ in ws:
            ws.send(repr(time.monotonic() * 1e3))

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    def __enter__(self) -> ClockServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def sync_clocks(page: Any, clock_url: str, pings: int) -> ClockSync:
    """The offset from the ping with the shortest round trip; its half round trip bounds the error."""
    samples = page.evaluate("([url, n]) => window.__rfbBench.sync(url, n)", [clock_url, pings])
    sent, server, received = min(samples, key=lambda s: s[2] - s[0])
    return ClockSync((sent + received) / 2 - server, (received - sent) / 2)


@contextmanager
def chromium(options: LatencyOptions) -> Iterator[Any]:
    """A headless Chromium context with the worker probe installed in every page."""
    if not options.chromium.exists():
        raise FileNotFoundError(f"expected Chromium at {options.chromium} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="rfb-bench-chromium-") as profile, sync_playwright() as playwright:
        context = launch(playwright, profile, chromium=options.chromium, viewport=options.viewport)
        try:
            context.add_init_script(PAGE_INIT_JS)
            yield context
        finally:
            context.close()


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode({**dict(parse_qsl(parts.query)), **params})))


@contextmanager
def viewer_page(context: Any, url: str, transport: str) -> Iterator[Any]:
    """The viewer page at ``url``, streaming on ``transport``; closed after, failing on page errors."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(with_query(url, transport="image") if transport == "image" else url)
        page.wait_for_function(
            "() => window.__rfbBench.ready && window.__rfb.stats.framesDrawn > 0", timeout=START_TIMEOUT_MS
        )
        shown = page.evaluate("window.__rfb.stats.transport")
        if shown != transport:
            raise RuntimeError(
                f"expected the viewer on {transport}, got {shown} "
                f"(offered: {page.evaluate('window.__rfb.stats.supported')})"
            )
        yield page
    finally:
        page.close()
    if errors:
        raise RuntimeError(f"uncaught errors in the viewer page: {errors}")


@dataclass
class Window:
    """What one measurement window collected."""

    start: float
    end: float
    published: int
    records: list[list[float]]
    clock: ClockSync
    busy_pct: float | None
    codec: str | None
    client_id: int | None  # the page's, as the server numbered it
    server: dict[int, Any]  # display.latency() over the window, by client id


def collect(page: Any, display: Any, clock: ClockServer, options: LatencyOptions) -> Window:
    """Clock sync, ``options.seconds`` of probe records, clock sync again."""
    page.evaluate("window.__rfbBench.take()")  # forget the start-up frames
    before = sync_clocks(page, clock.url, options.pings)
    t0, published0, busy0 = time.monotonic(), display.stats.published, machine_jiffies()
    records: list[list[float]] = []
    while (left := t0 + options.seconds - time.monotonic()) > 0:
        time.sleep(min(1.0, left))  # take often: the page keeps only what we have not taken
        records += page.evaluate("window.__rfbBench.take()")
    t1, published1, busy1 = time.monotonic(), display.stats.published, machine_jiffies()
    server = display.latency(t1 - t0)  # acks that arrived in the window, timed by the server alone
    time.sleep(SETTLE)
    records += page.evaluate("window.__rfbBench.take()")
    after = sync_clocks(page, clock.url, options.pings)
    drift = abs(before.offset_ms - after.offset_ms) / 2
    sync = ClockSync((before.offset_ms + after.offset_ms) / 2, max(before.error_ms, after.error_ms) + drift)
    stats = page.evaluate("window.__rfb.stats")
    return Window(
        t0,
        t1,
        published1 - published0,
        records,
        sync,
        busy_pct(busy0, busy1),
        stats.get("codec"),
        stats.get("clientId"),
        server,
    )


def measure_transport(
    context: Any, clock: ClockServer, options: LatencyOptions, transport: str, viewers: int, frames: Sequence[Any]
) -> dict[str, Any]:
    """One display, ``viewers - 1`` protocol viewers in a child process, and the measured page."""
    display = start_display(options.size, options.fps, options.bitrate, options.encoder, options.image_encoder)
    lifetime = 2 * START_TIMEOUT_MS / 1e3 + options.warmup + options.seconds + 60
    try:
        with (
            Publisher(display, frames, options.fps),
            ViewerProcess(display, transport, viewers - 1, lifetime=lifetime)
            if viewers > 1
            else nullcontext() as others,
            viewer_page(context, display.url, transport) as page,
        ):
            time.sleep(options.warmup)
            window = collect(page, display, clock, options)
            counts = others.counts(window.start, window.end) if others is not None else None
        encoder = display.stats.groups[transport].encoder
    finally:
        display.close()
    row = {"viewers": viewers, **summarize(transport, encoder, options, window)}
    rates = [n / row["seconds"] for n in counts["frames"]] if counts else []
    row["others_fps_min"] = round(min(rates), 2) if rates else None
    row["others_fps_median"] = round(statistics.median(rates), 2) if rates else None
    others_latency = latency_columns(v for k, v in window.server.items() if k != window.client_id)
    row.update({f"others_{key}": value for key, value in others_latency.items()})
    return row


def summarize(transport: str, encoder: str | None, options: LatencyOptions, window: Window) -> dict[str, Any]:
    """The server's latency summary of the page, and the probe's per-frame breakdown (ms).

    The probe's rows cover the frames *published* inside the window; the server's
    summary the acks that *arrived* inside it: the same frames but for one or two at
    the edges.
    """
    t0_ms, t1_ms, offset = window.start * 1e3, window.end * 1e3, window.clock.offset_ms
    total, arrival, draw, dropped = [], [], [], 0
    for _seq, stamp_us, arrived, acked, drawn in window.records:
        published_ms = stamp_us / 1e3
        if not t0_ms <= published_ms <= t1_ms:
            continue
        if not drawn:
            dropped += 1
            continue
        total.append(acked - offset - published_ms)
        arrival.append(arrived - offset - published_ms)
        draw.append(acked - arrived)
    span = window.end - window.start
    server = window.server.get(window.client_id) if window.client_id is not None else None

    def q(values: list[float], p: float) -> float | None:
        return round(percentile(values, p), 2) if values else None

    return {
        "transport": transport,
        "encoder": encoder,
        "codec": window.codec,
        "width": options.size[0],
        "height": options.size[1],
        "fps_target": options.fps,
        "seconds": round(span, 3),
        "published_fps": round(window.published / span, 2),
        "frames_published": window.published,
        # the server's view: publish() -> the drawn ack's arrival, on its own clock
        "server_frames": server.frames if server else 0,
        "latency_ms_median": server.median_ms if server else None,
        "latency_ms_p95": server.p95_ms if server else None,
        "latency_ms_p99": server.p99_ms if server else None,
        "latency_ms_max": server.max_ms if server else None,
        # the probe's view in the page's worker, tied to the server's clock
        "drawn_fps": round(len(total) / span, 2),
        "frames_drawn": len(total),
        "frames_dropped_by_viewer": dropped,
        "probe_latency_ms_median": q(total, 50),
        "probe_latency_ms_p95": q(total, 95),
        "to_arrival_ms_min": round(min(arrival), 2) if arrival else None,
        "to_arrival_ms_median": q(arrival, 50),
        "to_arrival_ms_p95": q(arrival, 95),
        "arrival_to_ack_ms_median": q(draw, 50),
        "arrival_to_ack_ms_p95": q(draw, 95),
        "clock_error_ms": round(window.clock.error_ms, 3),
        "machine_busy_pct": window.busy_pct,
    }


def run_all(options: LatencyOptions, say: Any = None) -> list[dict[str, Any]]:
    frames = prerender(options.pattern, *options.size)
    rows = []
    with chromium(options) as context, ClockServer() as clock:
        for transport in options.transports:
            for n in options.viewers:
                if say is not None:
                    say(f"browser latency {transport}, {n} viewers, at {options.size[0]}x{options.size[1]}")
                rows.append(measure_transport(context, clock, options, transport, n, frames))
    return rows


LATENCY_COLUMNS: list[Column] = [
    ("transport", "transport", ""),
    ("encoder", "encoder", ""),
    ("viewers", "viewers", "d"),
    ("pub fps", "published_fps", ".1f"),
    ("drawn fps", "drawn_fps", ".1f"),
    ("median ms", "latency_ms_median", ".1f"),
    ("p95 ms", "latency_ms_p95", ".1f"),
    ("p99 ms", "latency_ms_p99", ".1f"),
    ("max ms", "latency_ms_max", ".1f"),
    ("probe med", "probe_latency_ms_median", ".1f"),
    ("arrive med", "to_arrival_ms_median", ".1f"),
    ("draw med", "arrival_to_ack_ms_median", ".1f"),
    ("clock ±ms", "clock_error_ms", ".2f"),
    ("others fps min", "others_fps_min", ".1f"),
    ("others ms", "others_latency_ms_median", ".1f"),
    ("busy %", "machine_busy_pct", ".0f"),
]


def format_table(rows: list[dict[str, Any]]) -> str:
    """median..max: the server's; probe/arrive/draw: the worker probe's medians (docs/performance.md)."""
    return render_table(rows, LATENCY_COLUMNS)


def run(options: BenchmarkOptions) -> SectionReport:
    """The ``browser_latency`` section of ``python -m rfb.benchmark``: both transports, one viewer, each size.

    Each transport measures ``options.frames`` frames' worth of time (``frames / fps`` seconds).
    """
    report = SectionReport("browser_latency")
    encoder, seconds = section_route(options), options.frames / options.fps
    for size in options.sizes:
        latency = LatencyOptions(
            size=size,
            seconds=seconds,
            fps=options.fps,
            pattern=options.pattern,
            encoder=encoder,
            bitrate=options.bitrate,
        )
        try:
            report.rows += run_all(latency, options.say)
        except (FileNotFoundError, ImportError) as exc:
            report.skipped.append({"route": f"browser {size[0]}x{size[1]}", "reason": str(exc)})
    report.notes.append(
        f"headless Chromium, pattern={options.pattern}, {options.fps:g} fps published, "
        f"{seconds:g} s per transport; publish() -> ack after drawImage"
    )
    report.table = format_table(report.rows)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfb.benchmark.browser_latency", description=__doc__.split("\n")[0])
    p.add_argument("--size", type=parse_size, default=(1280, 720), help="default 1280x720")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per transport (default 5)")
    p.add_argument("--fps", type=float, default=30.0, help="publish rate (default 30)")
    p.add_argument("--transport", choices=(*TRANSPORTS, "both"), default="both")
    p.add_argument(
        "--viewers",
        type=parse_counts,
        default=(1,),
        help="viewers per run: the page plus N-1 protocol viewers in a child process (default 1)",
    )
    p.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"H.264 route (default {DEFAULT_ENCODER})")
    p.add_argument("--pattern", choices=patterns.PATTERNS, default="scene")
    p.add_argument("--chromium", type=Path, default=CHROMIUM, help=f"browser binary (default {CHROMIUM})")
    p.add_argument("--json", dest="json_path", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    try:
        options = LatencyOptions(
            size=args.size,
            seconds=args.seconds,
            fps=args.fps,
            encoder=args.encoder,
            pattern=args.pattern,
            transports=TRANSPORTS if args.transport == "both" else (args.transport,),
            chromium=args.chromium,
            viewers=args.viewers,
        )
        rows = run_all(options, lambda m: print(f"... {m}", file=sys.stderr, flush=True))
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = machine.describe()
    print(f"machine: {machine.one_line(info)}")
    print(
        f"headless Chromium, {options.size[0]}x{options.size[1]}, pattern={options.pattern}, {options.fps:g} fps "
        f"published, {options.seconds:g} s per transport; latency: publish() -> ack sent after drawImage"
    )
    print(format_table(rows))
    if args.json_path:
        write_json_report(
            args.json_path,
            "rfb.benchmark.browser_latency",
            argv,
            machine=info,
            options={**asdict(options), "chromium": str(options.chromium)},
            rows=rows,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
