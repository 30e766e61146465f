"""``python -m rfb.benchmark.fanout``: what serving N viewers at once costs the server.

A real display on 127.0.0.1 (port 0) encodes an animated pattern published at a
steady rate; N real WebSocket viewers (the ``websockets`` package) say hello and ack
every payload as soon as it arrives. The viewers run in a **separate process**
(this module, with ``--client-process``), so the server process's CPU time is the
display's alone: server thread, encode thread and encoder threads, plus a publisher
that only hands pre-rendered frames to ``publish()``.

Per N it reports the frames each viewer received per second (min and median), the
encodes per published frame (1.0 means one encode serves everybody), the frames
replaced before an encoder got to them, the CPU of both processes, the bytes on the
wire, and the server's own publish -> ack latency (``display.latency``; the viewers
ack with ``decode_ms`` so that the server logs each frame as drawn). The "slow
viewer" variant makes one of the N viewers never ack: the others' rate should not
change, and the silent one should get no more than its in-flight window.

``--device-frames`` publishes CuPy arrays instead (uploaded once, before the run), as
a GPU renderer would: GPU routes (``jpeg_gpu``, ``h264_gpu_nv12``, NVENC) take them in
place, CPU routes through one download each. On one GPU machine this compares the whole
publish -> ack path of the GPU routes with the CPU ones.

``--links 2,8,50`` runs the links benchmark instead (:mod:`rfb.benchmark.links`): one
viewer per link rate, each behind a throttled loopback proxy, on an adaptive display.

Timing uses ``time.monotonic()``, which on Linux is the same clock in both
processes, so arrival times taken by the client process are cut to the server's
measurement window exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rfb.benchmark import machine, patterns
from rfb.benchmark.sections import BenchmarkOptions, SectionReport, write_json_report

DEFAULT_VIEWERS: tuple[int, ...] = (1, 8, 32)
DEFAULT_ENCODER = "h264_cpu"
READY_TIMEOUT = 30.0  # seconds for every viewer to connect and receive a first payload
RESULT_TIMEOUT = 30.0  # seconds for the client process to report after the window closes
PRERENDERED = 30  # distinct frames published in a cycle (rendering is not what we time)


@dataclass(frozen=True, slots=True)
class FanoutOptions:
    viewers: tuple[int, ...] = DEFAULT_VIEWERS
    size: tuple[int, int] = (1280, 720)
    seconds: float = 5.0
    fps: float = 30.0
    encoder: str = DEFAULT_ENCODER
    pattern: str = "scene"
    bitrate: int | None = None  # None: the encode benchmark's automatic bitrate for the size
    warmup: float = 1.0  # seconds after every viewer has a first frame, before the window opens
    slow_variant: bool = True
    device_frames: bool = False  # publish CuPy arrays (a GPU renderer's output) instead of NumPy ones

    def __post_init__(self) -> None:
        if not self.viewers or any(n < 1 for n in self.viewers):
            raise ValueError(f"viewers must be positive counts, got {self.viewers}")
        if self.seconds <= 0 or self.fps <= 0 or self.warmup < 0:
            raise ValueError(
                f"seconds and fps must be positive, warmup >= 0; got {self.seconds}, {self.fps}, {self.warmup}"
            )
        if self.pattern not in patterns.PATTERNS:
            raise ValueError(f"pattern must be one of {patterns.PATTERNS}, got {self.pattern!r}")


def auto_bitrate(size: tuple[int, int], fps: float, bitrate: int | None) -> int:
    """``bitrate``, or the encode benchmark's automatic choice for ``size`` at ``fps``."""
    return BenchmarkOptions(sizes=(size,), fps=fps, bitrate=bitrate).bitrate_for(*size)


# ---------------------------------------------------------------- shared with browser_latency


def prerender(pattern: str, width: int, height: int, count: int = PRERENDERED) -> list[np.ndarray]:
    """``count`` frames of ``pattern``, read-only, so publishing them costs no rendering."""
    frames = [patterns.make(pattern, width, height, i) for i in range(count)]
    for frame in frames:
        frame.setflags(write=False)
    return frames


def to_device(frames: Sequence[np.ndarray]) -> list[Any]:
    """The frames as CuPy arrays on the current device, copied once and finished, so that
    publishing them is what publishing a GPU renderer's output costs (no upload in the loop)."""
    from rfb.gpu.context import import_cupy

    cp = import_cupy()
    device = [cp.asarray(frame) for frame in frames]
    cp.cuda.get_current_stream().synchronize()
    return device


class Publisher:
    """Publishes a cycle of frames to a display at a steady rate, on a thread of its own.

    The schedule is absolute (frame k is due at start + k / fps), so a slow publish
    does not stretch the rate; when it falls more than one period behind it skips
    ahead instead of bursting, and counts the frames it skipped in ``late``.
    """

    def __init__(self, display: Any, frames: Sequence[Any], fps: float) -> None:
        if not frames:
            raise ValueError("expected at least one frame to publish")
        self._display = display
        self._frames = list(frames)
        self._period = 1.0 / fps
        self._stop = threading.Event()
        self.published = 0
        self.late = 0
        self._thread = threading.Thread(target=self._run, name="rfb-bench-publisher", daemon=True)

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            self._display.publish(self._frames[self.published % len(self._frames)])
            self.published += 1
            due += self._period
            behind = time.monotonic() - due
            if behind > self._period:
                skipped = int(behind / self._period)
                self.late += skipped
                due += skipped * self._period
            self._stop.wait(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def cpu_seconds(pid: int | str = "self", tid: int | None = None) -> float | None:
    """User + system CPU time of a process (or one of its threads) from /proc; None elsewhere."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid is not None else f"/proc/{pid}/stat"
    try:
        with open(path, encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces: cut after it
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine from /proc/stat, all cores; None elsewhere.

    Other programs share the machine: a benchmark row says how busy it was in total.
    """
    try:
        with open("/proc/stat", encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError):
        return None
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def busy_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """How busy the whole machine was between two :func:`machine_jiffies` readings, in %."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)


def server_thread_id(display: Any) -> int | None:
    """The OS thread id of the display's event-loop thread (for its share of the CPU)."""
    thread = display.server_thread
    return thread.native_id if thread is not None else None


# ---------------------------------------------------------------- the server side


class ViewerProcess:
    """``viewers`` protocol viewers of ``display`` in a child process; the last ``silent`` never ack.

    Entering starts it and waits until every viewer has a first payload; :meth:`counts`
    asks for what each viewer received in a window of ``time.monotonic()``; leaving
    ends it (closing its stdin tells it to give up; it is killed if it lingers).
    """

    def __init__(self, display: Any, transport: str, viewers: int, *, silent: int = 0, lifetime: float) -> None:
        self._config = {
            "url": f"ws://127.0.0.1:{display.port}/ws",
            "token": display.token,
            "viewers": viewers,
            "slow": silent,
            "transport": transport,
            "lifetime": lifetime,
        }
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None, "the viewer process has not started"
        return self._proc.pid

    def __enter__(self) -> ViewerProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "rfb.benchmark.fanout", "--client-process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        try:
            self._send(self._config)
            read_json_line(self._proc, READY_TIMEOUT, "'ready' (every viewer connected with a first frame)")
        except BaseException:
            self.close()
            raise
        return self

    def counts(self, start: float, end: float) -> dict[str, Any]:
        """Per viewer, ``frames`` and ``bytes`` that arrived in [start, end]; ``lost``: viewers already gone."""
        assert self._proc is not None, "the viewer process has not started"
        self._send({"window": [start, end]})
        return read_json_line(self._proc, RESULT_TIMEOUT, "the viewers' counts")

    def _send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message) + "\n")
        self._proc.stdin.flush()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # EOF: a client still waiting for its window gives up
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_json_line(proc: subprocess.Popen[str], timeout: float, what: str) -> dict[str, Any]:
    """The next line the client process prints, as JSON, within ``timeout`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise RuntimeError(f"expected {what} from the viewer process, but it said nothing for {timeout:g} s")
    line = proc.stdout.readline()
    if not line:  # end of its output: it is exiting (its traceback, if any, went to stderr)
        try:
            state = f"exited with {proc.wait(timeout=5)}"
        except subprocess.TimeoutExpired:
            state = "closed its output"
        raise RuntimeError(f"expected {what} from the viewer process, but it {state}")
    message: dict[str, Any] = json.loads(line)
    return message


def start_display(
    size: tuple[int, int], fps: float, bitrate: int | None, encoder: str, image_encoder: str | None = None
) -> Any:
    """A display on 127.0.0.1, port 0, with ``encoder`` (H.264 or image) and optionally an image route."""
    from rfb.encoders.registry import get_entry
    from rfb.launch import start

    video = get_entry(encoder).transport == "webcodecs"
    return start(
        *size,
        host="127.0.0.1",
        port=0,
        fps=fps,
        bitrate=auto_bitrate(size, fps, bitrate),
        video_encoder=encoder if video else None,
        image_encoder=image_encoder or (None if video else encoder),
    )


def run_case(options: FanoutOptions, viewers: int, *, slow: bool, frames: Sequence[Any]) -> dict[str, Any]:
    """One measurement: ``viewers`` viewers (one of them silent if ``slow``)."""
    from rfb.encoders.registry import get_entry

    transport = get_entry(options.encoder).transport
    lifetime = READY_TIMEOUT + options.warmup + options.seconds + RESULT_TIMEOUT
    display = start_display(options.size, options.fps, options.bitrate, options.encoder)
    try:
        with (
            Publisher(display, frames, options.fps) as publisher,
            ViewerProcess(display, transport, viewers, silent=int(slow), lifetime=lifetime) as clients,
        ):
            time.sleep(options.warmup)
            before = _snapshot(display, publisher, clients.pid)
            time.sleep(options.seconds)
            after = _snapshot(display, publisher, clients.pid)
            latency = display.latency(after["t"] - before["t"])  # by client id; the silent viewer has none
            result = clients.counts(before["t"], after["t"])
        encoder = display.stats.groups[transport].encoder
    finally:
        display.close()
    row = _row(options, viewers, slow, encoder, transport, before, after, result)
    row.update(latency_columns(latency.values()))
    return row


def latency_columns(summaries: Iterable[Any]) -> dict[str, float | None]:
    """The server's publish -> ack latency over viewers: median of their medians, worst p95."""
    drawn = [s for s in summaries if s.frames]
    return {
        "latency_ms_median": round(statistics.median(s.median_ms for s in drawn), 2) if drawn else None,
        "latency_ms_p95_worst": max(s.p95_ms for s in drawn) if drawn else None,
    }


def _snapshot(display: Any, publisher: Publisher, client_pid: int) -> dict[str, Any]:
    tid = server_thread_id(display)
    cpu = cpu_seconds()
    stats = display.stats
    return {
        "t": time.monotonic(),
        "published": stats.published,
        "late": publisher.late,
        "groups": {name: asdict(g) for name, g in stats.groups.items()},
        "cpu": cpu if cpu is not None else time.process_time(),
        "loop_cpu": cpu_seconds("self", tid) if tid is not None else None,
        "client_cpu": cpu_seconds(client_pid),
        "machine": machine_jiffies(),
    }


def _row(
    options: FanoutOptions,
    viewers: int,
    slow: bool,
    encoder: str | None,
    transport: str,
    before: dict[str, Any],
    after: dict[str, Any],
    result: dict[str, Any],
) -> dict[str, Any]:
    span = after["t"] - before["t"]
    g0, g1 = before["groups"][transport], after["groups"][transport]
    published = after["published"] - before["published"]
    counts = result["frames"]  # per viewer, in the window; the silent one last
    acking = counts[:-1] if slow else counts
    rates = [c / span for c in acking]

    def pct(key: str) -> float | None:
        if before[key] is None or after[key] is None:
            return None
        percent: float = round(100 * (after[key] - before[key]) / span, 1)
        return percent

    return {
        "viewers": viewers,
        "silent_viewers": 1 if slow else 0,
        "encoder": encoder,
        "width": options.size[0],
        "height": options.size[1],
        "fps_target": options.fps,
        "seconds": round(span, 3),
        "published_fps": round(published / span, 2),
        "publisher_late": after["late"] - before["late"],
        "delivered_fps_min": round(min(rates), 2) if rates else None,
        "delivered_fps_median": round(statistics.median(rates), 2) if rates else None,
        "silent_viewer_frames": counts[-1] if slow else None,
        "viewers_lost": result["lost"],  # connections that ended before the counts were taken
        "encodes_per_frame": round((g1["encodes"] - g0["encodes"]) / published, 3) if published else None,
        "keyframes": g1["keyframes"] - g0["keyframes"],
        "dropped_before_encode": g1["dropped_before_encode"] - g0["dropped_before_encode"],
        "server_cpu_pct": pct("cpu"),
        "event_loop_cpu_pct": pct("loop_cpu"),
        "client_cpu_pct": pct("client_cpu"),
        "mbit_per_s": round(8 * sum(result["bytes"]) / span / 1e6, 2),
        "machine_busy_pct": busy_pct(before["machine"], after["machine"]),
    }


def run_all(options: FanoutOptions, say: Any = None) -> list[dict[str, Any]]:
    """Every N of ``options.viewers``, and the silent-viewer variant for each N >= 2."""
    frames: Sequence[Any] = prerender(options.pattern, *options.size)
    if options.device_frames:
        frames = to_device(frames)
    rows = []
    for n in options.viewers:
        for slow in (False, True) if options.slow_variant and n >= 2 else (False,):
            if say is not None:
                say(f"fanout {n} viewers{' (one silent)' if slow else ''} at {options.size[0]}x{options.size[1]}")
            rows.append(run_case(options, n, slow=slow, frames=frames))
    return rows


Column = tuple[str, str, str]  # (title, row key, format spec); None values print as "-"

FANOUT_COLUMNS: list[Column] = [
    ("viewers", "label", ">"),
    ("pub fps", "published_fps", ".1f"),
    ("fps min", "delivered_fps_min", ".1f"),
    ("fps med", "delivered_fps_median", ".1f"),
    ("silent", "silent_viewer_frames", "d"),
    ("enc/frame", "encodes_per_frame", ".3f"),
    ("dropped", "dropped_before_encode", "d"),
    ("server %", "server_cpu_pct", ".0f"),
    ("loop %", "event_loop_cpu_pct", ".0f"),
    ("client %", "client_cpu_pct", ".0f"),
    ("Mbit/s", "mbit_per_s", ".1f"),
    ("lat ms", "latency_ms_median", ".1f"),
    ("p95 worst", "latency_ms_p95_worst", ".1f"),
    ("busy %", "machine_busy_pct", ".0f"),
]


def render_table(rows: list[dict[str, Any]], columns: list[Column]) -> str:
    """A fixed-width text table: each column as wide as its title or its widest cell."""
    cells = [[("-" if r.get(key) is None else format(r[key], spec)) for _, key, spec in columns] for r in rows]
    widths = [max([len(title), *(len(line[i]) for line in cells)]) for i, (title, _, _) in enumerate(columns)]

    # Text columns (no format spec) align left, numbers right.
    def cell(text: str, width: int, spec: str) -> str:
        return text.ljust(width) if not spec else text.rjust(width)

    header = " ".join(cell(title, w, spec) for (title, _, spec), w in zip(columns, widths, strict=True))
    body = [
        " ".join(cell(c, w, spec) for c, w, (_, _, spec) in zip(line, widths, columns, strict=True)) for line in cells
    ]
    return "\n".join([header, "-" * len(header), *body])


def format_table(rows: list[dict[str, Any]]) -> str:
    """The fan-out table; ``N+s`` labels the variant where one of N viewers never acks."""
    labelled = [{**r, "label": f"{r['viewers']}{'+s' if r['silent_viewers'] else ''}"} for r in rows]
    return render_table(labelled, FANOUT_COLUMNS)


def section_route(options: BenchmarkOptions) -> str:
    """The H.264 route a section runs: the first one ``--routes`` names, else the default."""
    from rfb.encoders.registry import get_entry

    for name in options.routes or ():
        if get_entry(name).transport == "webcodecs":
            return name
    return DEFAULT_ENCODER


def run(options: BenchmarkOptions) -> SectionReport:
    """The ``fanout`` section of ``python -m rfb.benchmark``: 1, 8, 32 viewers at each size.

    Each case measures ``options.frames`` frames' worth of time (``frames / fps`` seconds).
    """
    report = SectionReport("fanout")
    encoder, seconds = section_route(options), options.frames / options.fps
    for size in options.sizes:
        fan = FanoutOptions(
            viewers=DEFAULT_VIEWERS,
            size=size,
            seconds=seconds,
            fps=options.fps,
            encoder=encoder,
            pattern=options.pattern,
            bitrate=options.bitrate,
        )
        report.rows += run_all(fan, options.say)
    report.notes.append(
        f"encoder {encoder}, pattern={options.pattern}, {options.fps:g} fps published, "
        f"{seconds:g} s per case, viewers in a separate process; N+s: one of N silent"
    )
    report.table = format_table(report.rows)
    return report


# ---------------------------------------------------------------- the viewers' process


async def _viewer(
    config: dict[str, Any], ack: bool, log: list[tuple[float, int]], first: asyncio.Event, sockets: list[Any]
) -> None:
    """One viewer: hello, then record (arrival time, bytes) of each payload and ack it at once (as drawn)."""
    from websockets.asyncio.client import connect

    from rfb import protocol

    supported = [protocol.H264_ANNEXB] if config["transport"] == "webcodecs" else [protocol.IMAGE_JPEG]
    hello = {"type": "hello", "supported": supported, "client": "rfb-benchmark-fanout", "token": config["token"]}
    async with connect(
        config["url"], proxy=None, compression=None, max_size=None, open_timeout=10, close_timeout=2
    ) as ws:
        sockets.append(ws)
        await ws.send(json.dumps(hello))
        async for message in ws:
            if isinstance(message, str):
                continue  # config (and error) messages
            arrived = time.monotonic()
            log.append((arrived, len(message)))
            first.set()
            if ack:  # with decode_ms (our handling time): the server logs it as drawn, with its latency
                header, _ = protocol.unpack_payload(message)
                handled_ms = (time.monotonic() - arrived) * 1e3
                await ws.send(f'{{"type":"ack","seq":{int(header["seq"])},"decode_ms":{handled_ms:.3f}}}')


async def _clients(config: dict[str, Any]) -> None:
    n, slow = config["viewers"], config["slow"]
    logs: list[list[tuple[float, int]]] = [[] for _ in range(n)]
    firsts = [asyncio.Event() for _ in range(n)]
    sockets: list[Any] = []
    tasks = [asyncio.create_task(_viewer(config, i < n - slow, logs[i], firsts[i], sockets)) for i in range(n)]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(config["lifetime"]):  # never outlive a vanished parent
            await _all_ready(firsts, tasks)
            print(json.dumps({"ready": True}), flush=True)
            line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return  # the parent closed our stdin: it wants no counts
        t0, t1 = json.loads(line)["window"]
        inside = [[b for t, b in log if t0 <= t <= t1] for log in logs]
        lost = sum(task.done() for task in tasks)
        print(
            json.dumps({"frames": [len(b) for b in inside], "bytes": [sum(b) for b in inside], "lost": lost}),
            flush=True,
        )
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _all_ready(firsts: list[asyncio.Event], tasks: list[asyncio.Task[None]]) -> None:
    """Wait until every viewer has a first payload; a viewer that failed raises its error here."""
    ready = asyncio.ensure_future(asyncio.gather(*(f.wait() for f in firsts)))
    try:
        waiting: list[asyncio.Future[Any]] = [ready, *tasks]
        done, _ = await asyncio.wait(waiting, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    for task in done:
        if task is not ready:
            task.result()  # raises the viewer's error
            raise RuntimeError("a viewer's connection closed before the measurement")
    if not done:
        raise TimeoutError(f"not every viewer had a first payload within {READY_TIMEOUT:g} s")


def client_main() -> int:
    asyncio.run(_clients(json.loads(sys.stdin.readline())))
    return 0


# ---------------------------------------------------------------- command line


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (1280, 720), with the encode benchmark's parsing and messages."""
    from rfb.benchmark.__main__ import parse_sizes

    sizes = parse_sizes(text)
    if len(sizes) != 1:
        raise argparse.ArgumentTypeError(f"expected one size like 1280x720, got {text!r}")
    return sizes[0]


def parse_counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected viewer counts like 1,8,32, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfb.benchmark.fanout", description=__doc__.split("\n")[0])
    p.add_argument("--viewers", type=parse_counts, default=DEFAULT_VIEWERS, help="default 1,8,32")
    p.add_argument("--size", type=parse_size, default=(1280, 720), help="default 1280x720")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per case (default 5)")
    p.add_argument("--fps", type=float, default=30.0, help="publish rate (default 30)")
    p.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"encode route (default {DEFAULT_ENCODER})")
    p.add_argument("--pattern", choices=patterns.PATTERNS, default="scene")
    p.add_argument("--no-silent", action="store_true", help="skip the one-silent-viewer variant")
    p.add_argument(
        "--device-frames",
        action="store_true",
        help="publish CuPy arrays (needs a GPU): GPU routes take them in place, CPU routes download each once",
    )
    p.add_argument("--json", dest="json_path", default=None, help="also write the results to this JSON file")
    p.add_argument(
        "--links",
        default=None,
        help="Mbit/s per viewer, like 2,8,50: run python -m rfb.benchmark.links with the other "
        "options it takes (--size, --fps, --encoder, --pattern, --seconds)",
    )
    p.add_argument("--client-process", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client_process:
        return client_main()
    if args.links is not None:
        from rfb.benchmark import links

        return links.main(
            [
                "--links",
                args.links,
                "--size",
                f"{args.size[0]}x{args.size[1]}",
                "--fps",
                str(args.fps),
                "--encoder",
                args.encoder,
                "--pattern",
                args.pattern,
                "--seconds",
                str(args.seconds),
            ]
        )
    if args.device_frames:
        from rfb.gpu.context import cupy_available

        reason = cupy_available()
        if reason is not None:
            print(f"error: --device-frames needs CuPy and a CUDA GPU: {reason}", file=sys.stderr)
            return 2
    try:
        options = FanoutOptions(
            viewers=args.viewers,
            size=args.size,
            seconds=args.seconds,
            fps=args.fps,
            encoder=args.encoder,
            pattern=args.pattern,
            slow_variant=not args.no_silent,
            device_frames=args.device_frames,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = machine.describe()
    rows = run_all(options, lambda m: print(f"... {m}", file=sys.stderr, flush=True))
    print(f"machine: {machine.one_line(info)}")
    origin = "CuPy arrays (device frames)" if options.device_frames else "NumPy arrays"
    print(
        f"encoder {rows[0]['encoder']}, {options.size[0]}x{options.size[1]}, pattern={options.pattern}, {origin}, "
        f"{options.fps:g} fps published, {options.seconds:g} s per case; N+s: N viewers, one of them silent"
    )
    print(format_table(rows))
    if args.json_path:
        write_json_report(
            args.json_path, "rfb.benchmark.fanout", argv, machine=info, options=asdict(options), rows=rows
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
