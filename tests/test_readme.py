"""README.md's Python snippets run as written, and the API reads as the README says.

Every ```python block of the README is a whole program that serves a display and
prints ``open URL``. Each runs here in a subprocess: a real viewer opens the URL (on an
index of streams, its first link), connects its socket where the page would (``ws``
next to the page) and receives frames, then Ctrl-C (SIGINT) must stop it with exit
status 0 and no traceback, as a newcomer would stop it. Snippets that run their own
server on a fixed port take it from ``PORT``, which gets a free one here; a snippet that
imports FastAPI is skipped where FastAPI is not installed.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

import rfb
from rfb import protocol
from rfb.display import Display

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = re.findall(r"^```python\n(.*?)^```$", (ROOT / "README.md").read_text(), flags=re.S | re.M)


def test_the_readme_has_snippets_to_run():
    assert len(SNIPPETS) >= 5, "async, synchronous, mounted in Starlette, in FastAPI, named streams"


def viewer_page(url: str, timeout: float = 30.0) -> str:
    """The viewer page's URL: ``url`` itself, or an index's first stream; waits for the server to listen."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            page = httpx.get(url, follow_redirects=True, trust_env=False, timeout=5)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert page.status_code == 200, (url, page.status_code, page.text[:200])
    links = re.findall(r'href="(streams/[^"]+)"', page.text)
    return urljoin(str(page.url), links[0].replace("&amp;", "&")) if links else str(page.url)


async def first_payloads(page_url: str, count: int) -> list[dict]:
    """Like the viewer: the socket at ``ws`` next to the page, the page URL's token in the hello."""
    from websockets.asyncio.client import connect

    token = parse_qs(urlsplit(page_url).query).get("token", [None])[0]
    socket_url = "ws" + urljoin(page_url.split("?")[0], "ws")[len("http") :]
    hello = {"type": "hello", "supported": [protocol.H264_ANNEXB, protocol.IMAGE_JPEG], "token": token}
    headers = []
    async with connect(socket_url, max_size=None, open_timeout=10, proxy=None) as ws:
        await ws.send(json.dumps(hello))
        await ws.send(
            json.dumps(
                {
                    "type": "event",
                    "event": {"type": "pointerdown", "x": 5, "y": 6, "button": 0, "buttons": 1, "modifiers": []},
                }
            )
        )
        while len(headers) < count:
            message = await asyncio.wait_for(ws.recv(), 30)
            if isinstance(message, bytes):
                header, _ = protocol.unpack_payload(message)
                headers.append(header)
                await ws.send(json.dumps({"type": "ack", "seq": header["seq"]}))
    return headers


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_a_readme_snippet_serves_and_stops_on_ctrl_c_without_a_traceback(snippet: str, tmp_path: Path):
    if re.search(r"^import .*\bfastapi\b|^from fastapi\b", snippet, flags=re.M):
        pytest.importorskip("fastapi")
    script = tmp_path / "snippet.py"
    script.write_text(snippet)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)  # this tree's rfb
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PORT": str(free_port()), "PYTHONPATH": path},
    )
    try:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        assert box and box[0].startswith("open http://"), (
            f"no 'open URL' line; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        )
        headers = asyncio.run(first_payloads(viewer_page(box[0].split()[1]), count=3))
        assert headers[0]["type"] == "video_chunk" and headers[0]["keyframe"], headers[0]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the API, as help() and dir() show it


def keyword_options(function) -> list[tuple[str, object]]:
    return [
        (p.name, p.default)
        for p in inspect.signature(function).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]


@pytest.mark.parametrize("function", [rfb.serve, rfb.start], ids=["serve", "start"])
def test_serve_and_start_spell_out_every_display_option(function):
    assert keyword_options(function) == keyword_options(Display.__init__), "serve/start and Display disagree"
    assert "**" not in str(inspect.signature(function)), "help() must show the options, not **options"
    assert function.__doc__
    for name, _ in keyword_options(Display.__init__):
        assert f"``{name}``" in (rfb.serve.__doc__ or ""), f"serve's docstring does not describe {name}"


def test_dir_lists_the_whole_public_api():
    missing = [name for name in rfb.__all__ if name not in dir(rfb)]
    assert not missing, f"dir(rfb) lacks {missing}"
    for name in rfb.__all__:
        assert getattr(rfb, name) is not None
