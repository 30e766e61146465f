"""``python -m rfb.benchmark.widget_latency``: the notebook widget's publish -> drawn latency, comm against WebSocket.

    python -m rfb.benchmark.widget_latency [--seconds 10] [--sizes 1280x720,1920x1080] [--links websocket,comm]

For each size and link, a fresh notebook in a real JupyterLab (:mod:`rfb.benchmark.jupyterlab`)
starts a display that publishes the demo scene (rfb.demo.Scene) at 30 fps from a thread,
and shows one widget forced to that link, in headless Chromium. For the comm the
browser cannot reach the display's port (a dead proxy for everything but JupyterLab).
After a warm-up, the kernel reads ``display.latency(window_s)``: from ``publish()`` to
the arrival of the widget's ack for the drawn frame, on the kernel's clock (the same
figure as the overlay's), and the rate of drawn frames. Prints one JSON line per run,
then a Markdown table.

Needs JupyterLab, anywidget and Playwright (``pip install -e '.[test]'``) and Debian's
Chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rfb.benchmark import machine
from rfb.benchmark.__main__ import parse_sizes
from rfb.benchmark.chromium import CHROMIUM
from rfb.benchmark.jupyterlab import JupyterLab, Notebook, start_jupyterlab

WARMUP_S = 3.0
LINKS = ("websocket", "comm")

SETUP = """\
import json, os, threading, time, rfb
from dataclasses import asdict
from rfb.demo import Scene
display = rfb.start({w}, {h}, port=0, fps=30)  # no allowed_origins: the widget tells the kernel its page's origin
scene = Scene({w}, {h})
stop = threading.Event()

def render_loop(status_path={status!r}, window_s={window!r}):
    t0 = time.monotonic()
    while not stop.is_set():
        display.publish(scene.render(time.monotonic() - t0))
        status = dict(routes=display.routes, viewers=len(display.viewers), published=display.stats.published,
                      at=time.monotonic(),
                      latency={{str(k): asdict(v) for k, v in display.latency(window_s).items()}})
        with open(status_path + ".tmp", "w") as f:
            json.dump(status, f)
        os.replace(status_path + ".tmp", status_path)
        stop.wait(1 / 30)

threading.Thread(target=render_loop, daemon=True).start()
"""


def missing_requirements() -> list[str]:
    """What this machine lacks for the measurement, in words (empty: it can run)."""
    missing = [f"Chromium at {CHROMIUM} (apt-get install chromium)"] if not CHROMIUM.exists() else []
    for module in ("jupyterlab", "anywidget", "playwright.sync_api"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(f"the Python module {module} (pip install -e '.[test]')")
    return missing


def measure(
    lab: JupyterLab, base: Path, width: int, height: int, link: str, seconds: float, warmup_s: float = WARMUP_S
) -> dict[str, Any]:
    """One run: a fresh notebook, one widget on ``link``, ``seconds`` measured after ``warmup_s``."""
    if link not in LINKS:
        raise ValueError(f"link must be one of {', '.join(LINKS)}, got {link!r}")
    tmp = Path(tempfile.mkdtemp(dir=base))
    status = tmp / "status.json"
    setup = SETUP.format(w=width, h=height, status=str(status), window=seconds)
    cells = [setup, f'display.widget(transport="{link}")', "stop.set()\ndisplay.close()"]
    nb = Notebook(
        lab, f"bench-{width}x{height}-{link}.ipynb", cells, block_port_except_lab=(link == "comm"), tmp=tmp, wait_s=60.0
    )
    try:
        nb.run(0)
        nb.run(1)
        stats = nb.wait_drawn(0, frames=30)
        if stats["link"] != link:
            raise RuntimeError(f"the widget chose the {stats['link']} link, not {link}: {stats}")
        time.sleep(warmup_s)
        before = nb.status()
        time.sleep(seconds)
        kernel = nb.status()
        browser = nb.stats(0)
        nb.run(2)
    finally:
        nb.close()
    (summary,) = kernel["latency"].values()
    return {
        "size": f"{width}x{height}",
        "link": link,
        "route": kernel["routes"].get("webcodecs"),
        "published_fps": (kernel["published"] - before["published"]) / (kernel["at"] - before["at"]),
        "fps": summary["fps"],
        "median_ms": summary["median_ms"],
        "p95_ms": summary["p95_ms"],
        "frames": summary["frames"],
        "browser_fps": browser["fps"],
        "draw_ms": browser["decodeMs"],
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| size | link | route | published fps | drawn fps "
        "| publish -> drawn median | p95 | arrival -> draw (browser) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['link']} | {r['route']} | {r['published_fps']:.1f} | {r['fps']:.1f} "
            f"| {r['median_ms']:.1f} ms | {r['p95_ms']:.1f} ms | {r['draw_ms']:.1f} ms |"
        )
    return "\n".join(lines)


def parse_links(text: str) -> tuple[str, ...]:
    links = tuple(text.split(","))
    unknown = [link for link in links if link not in LINKS]
    if unknown:
        raise argparse.ArgumentTypeError(f"links are {', '.join(LINKS)}; got {', '.join(map(repr, unknown))}")
    return links


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rfb.benchmark.widget_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="the measured window, after a warm-up")
    parser.add_argument(
        "--sizes", type=parse_sizes, default=((1280, 720), (1920, 1080)), help="default 1280x720,1920x1080"
    )
    parser.add_argument("--links", type=parse_links, default=LINKS, help="default websocket,comm")
    args = parser.parse_args(argv)
    missing = missing_requirements()
    if missing:
        print(f"error: the widget benchmark needs {'; '.join(missing)}", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="rfb-widget-latency-"))
    lab = start_jupyterlab(base)
    rows = []
    try:
        for width, height in args.sizes:
            for link in args.links:
                row = measure(lab, base, width, height, link, args.seconds)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        lab.close()
    print(f"\nmachine: {machine.one_line(machine.describe())}; window {args.seconds:g} s after {WARMUP_S:g} s\n")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
