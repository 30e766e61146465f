"""Measure the notebook widget: publish -> drawn latency and drawn fps, over the comm and the WebSocket.

    python -m tests.support.widget_latency [--seconds 10] [--sizes 1280x720,1920x1080]

For each size and link, a fresh notebook in a real JupyterLab (tests.support.jupyterlab)
starts a display that publishes the demo scene (rfb.demo.Scene) at 30 fps from a thread,
and shows one widget forced to that link, in headless Chromium. After a warm-up, the
kernel reads ``display.latency(window_s)``: from ``publish()`` to the arrival of the
widget's ack for the drawn frame, on the kernel's clock (the same figure as the
overlay's), and the rate of drawn frames. Prints one Markdown table row per run.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from tests.support.jupyterlab import Notebook, start_jupyterlab

WARMUP_S = 3.0

SETUP = """\
import json, os, threading, time, rfb
from dataclasses import asdict
from rfb.demo import Scene
display = rfb.start({w}, {h}, port=0, fps=30, allowed_origins={origins!r})
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


def measure(lab, base: Path, width: int, height: int, link: str, seconds: float) -> dict:
    tmp = Path(tempfile.mkdtemp(dir=base))
    status = tmp / "status.json"
    setup = SETUP.format(w=width, h=height, origins=[lab.origin], status=str(status), window=seconds)
    cells = [setup, f'display.widget(transport="{link}")', "stop.set()\ndisplay.close()"]
    nb = Notebook(
        lab, f"bench-{width}x{height}-{link}.ipynb", cells, block_port_except_lab=(link == "comm"), tmp=tmp, wait_s=60.0
    )
    try:
        nb.run(0)
        nb.run(1)
        stats = nb.wait_drawn(0, frames=30)
        assert stats["link"] == link, stats
        time.sleep(WARMUP_S)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="the measured window, after a warm-up")
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    parser.add_argument("--links", default="websocket,comm")
    args = parser.parse_args()
    sizes = [tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",")]
    base = Path(tempfile.mkdtemp(prefix="rfb-widget-latency-"))
    lab = start_jupyterlab(base)
    rows = []
    try:
        for width, height in sizes:
            for link in args.links.split(","):
                row = measure(lab, base, width, height, link, args.seconds)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        lab.close()
    print(
        f"\nmachine: {platform.node()} ({platform.processor() or platform.machine()}), "
        f"window {args.seconds:g} s after {WARMUP_S:g} s\n"
    )
    print(
        "| size | link | route | published fps | drawn fps "
        "| publish -> drawn median | p95 | arrival -> draw (browser) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['link']} | {r['route']} | {r['published_fps']:.1f} | {r['fps']:.1f} "
            f"| {r['median_ms']:.1f} ms | {r['p95_ms']:.1f} ms | {r['draw_ms']:.1f} ms |"
        )


if __name__ == "__main__":
    main()
