"""The notebook widget: comm connections served like WebSockets, and the widget in a real JupyterLab.

Without a browser: a relayed connection (rfb.channel.RelayChannel) speaks the same
protocol as a WebSocket and shares its encode; the widget routes comm messages to one
connection per view, ends them on close, and marks itself closed with the display.
The widget's ``send`` is the kernel's boundary: these tests take what it is handed.

With a browser: a JupyterLab server on loopback with a token runs a notebook whose
cells start a display, publish frames from a thread and show widgets; headless
Chromium (the Debian package, as in tests/test_browser.py) opens it. The widget's
canvas must show the published pixels, a click must come back through
``poll_events()`` in frame pixels, and that over the comm with the browser unable to
reach the display's port (a dead proxy for everything but JupyterLab), and over the
WebSocket where it can. Neither display lists the notebook's origin in
``allowed_origins``: the widget's page tells the kernel its origin over the comm, and a
page of another origin, token and all, is still refused.
"""

from __future__ import annotations

import asyncio
import http.server
import importlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rfb import protocol
from rfb.benchmark import widget_latency
from rfb.benchmark.jupyterlab import Notebook, start_jupyterlab
from tests.conftest import H264, FakeVideoEncoder, ProtocolClient, start_test_display, wait_until
from tests.support.ci import IN_CI, unavailable

pytestmark = pytest.mark.timeout(180)

try:
    importlib.import_module("anywidget")  # rfb.widget's base: the notebook extra
except ImportError as exc:
    if IN_CI:
        raise
    pytest.skip(f"the notebook extra (anywidget) is not installed: {exc}", allow_module_level=True)

eventually = wait_until


# ---------------------------------------------------------------- the kernel side, without a browser


class Wire:
    """What a widget sends to the browser, by connection: the kernel's boundary, recorded."""

    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, Any], list[bytes]]] = []
        self.lock = threading.Lock()

    def __call__(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        with self.lock:
            self.messages.append((content, [bytes(b) for b in buffers or []]))

    def of(self, view: str, conn: int) -> list[tuple[dict[str, Any], list[bytes]]]:
        with self.lock:
            return [(c, b) for c, b in self.messages if c.get("view") == view and c.get("conn") == conn]

    def texts(self, view: str, conn: int) -> list[dict[str, Any]]:
        return [json.loads(c["text"]) for c, _ in self.of(view, conn) if c["op"] == "text"]

    def payloads(self, view: str, conn: int) -> list[bytes]:
        return [b[0] for c, b in self.of(view, conn) if c["op"] == "bytes"]


@pytest.fixture
def display(test_encoders: Any) -> Iterator[Any]:
    display = start_test_display(video_encoder="test-h264", image_encoder="test-image", token="secret")
    try:
        yield display
    finally:
        display.close()


@pytest.fixture
def widget(display: Any) -> Iterator[tuple[Any, Wire]]:
    widget = display.widget(transport="comm")
    wire = Wire()
    widget.send = wire  # the comm: in a kernel, ipykernel's IOPub thread takes it from here
    try:
        yield widget, wire
    finally:
        widget.close()


def say(widget: Any, view: str, conn: int, op: str, **fields: Any) -> None:
    """A comm message from the browser, as the kernel's shell thread hands it to the widget."""
    widget._handle_custom_msg({"view": view, "conn": conn, "op": op, **fields}, [])


def hello(token: str = "secret") -> str:
    return json.dumps({"type": "hello", "supported": [H264], "token": token, "client": "test-widget"})


def frame(marker: int) -> np.ndarray:
    array = np.zeros((48, 64, 3), np.uint8)
    array[0, 0] = (marker, 0, 0)
    return array


def test_a_comm_viewer_gets_the_same_bytes_as_a_websocket_viewer_from_one_encode(display, widget, test_encoders):
    w, wire = widget
    say(w, "v1", 1, "open")
    say(w, "v1", 1, "text", text=hello())
    eventually(lambda: wire.texts("v1", 1) and wire.texts("v1", 1)[0]["type"] == "config")

    async def websocket_viewer() -> tuple[dict[str, Any], bytes]:
        client = await ProtocolClient.connect(display, token="secret")
        await client.recv()
        eventually(lambda: len(display.viewers) == 2)
        display.publish(frame(7))
        payload = await client.next_payload()
        await client.close()
        return payload.header, payload.payload

    websocket_message = asyncio.run(websocket_viewer())
    eventually(lambda: wire.payloads("v1", 1))
    header, payload = protocol.unpack_payload(wire.payloads("v1", 1)[0])
    assert (header, payload) == websocket_message  # the same message: header, seq and payload
    assert {v.group for v in display.viewers} == {"webcodecs"} and display.viewers[0].remote is None
    video = [e for e in test_encoders.instances if isinstance(e, FakeVideoEncoder)]
    assert len(video) == 1 and video[0].encodes == 1


def test_events_and_acks_from_the_comm_reach_the_display(display, widget):
    w, wire = widget
    say(w, "v1", 1, "open")
    say(w, "v1", 1, "text", text=hello())
    display.publish(frame(1))
    eventually(lambda: wire.payloads("v1", 1))
    seq = protocol.unpack_payload(wire.payloads("v1", 1)[0])[0]["seq"]
    say(w, "v1", 1, "text", text=json.dumps({"type": "ack", "seq": seq, "decode_ms": 1.5}))
    say(
        w,
        "v1",
        1,
        "text",
        text=json.dumps(
            {
                "type": "event",
                "event": {"type": "pointerdown", "x": 10.5, "y": 20.25, "button": 0, "buttons": 1, "modifiers": []},
            }
        ),
    )
    events = eventually(lambda: display.poll_events())
    assert (events[0].type, events[0].x, events[0].y) == ("pointerdown", 10.5, 20.25)
    eventually(lambda: display.viewers and display.viewers[0].decode_ms == 1.5)


def test_a_bad_hello_over_the_comm_is_refused_like_over_a_websocket(display, widget):
    w, wire = widget
    say(w, "v1", 1, "open")
    say(w, "v1", 1, "text", text=hello(token="wrong"))
    closes = eventually(lambda: [c for c, _ in wire.of("v1", 1) if c["op"] == "close"])
    assert closes == [
        {"view": "v1", "conn": 1, "op": "close", "code": protocol.CLOSE_UNAUTHORIZED, "reason": "unauthorized"}
    ]
    eventually(lambda: w.connections() == 0)


def test_views_are_viewers_of_their_own_and_leave_when_closed(display, widget):
    w, wire = widget
    for view in ("a", "b"):
        say(w, view, 1, "open")
        say(w, view, 1, "text", text=hello())
    eventually(lambda: len(display.viewers) == 2)
    say(w, "a", 1, "close")  # the view went away (the cell re-ran)
    eventually(lambda: len(display.viewers) == 1)
    assert w.connections() == 1
    say(w, "a", 1, "text", text=hello())  # a late message of a closed connection finds nobody
    w.close()  # the widget: every connection ends
    eventually(lambda: len(display.viewers) == 0 and w.connections() == 0)


def test_a_connection_not_heard_from_ends_and_one_kept_alive_stays(display, widget):
    w, wire = widget
    w.idle_timeout = 0.5  # in a notebook: 20 s, with an "alive" from each view every 5 s
    for view in ("gone", "here"):
        say(w, view, 1, "open")
        say(w, view, 1, "text", text=hello())
    eventually(lambda: len(display.viewers) == 2)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # "here" says it is alive; "gone" (a closed tab) says nothing
        say(w, "here", 1, "alive")
        time.sleep(0.1)
    assert [v.client_id for v in display.viewers] == [2]
    assert [c["op"] for c, _ in wire.of("gone", 1)][-1] == "close"  # if only slow, it reconnects
    assert w.connections() == 1


def test_malformed_comm_messages_change_nothing(display, widget, caplog):
    w, wire = widget
    for content in ("text", {"view": 1, "conn": 1, "op": "open"}, {"view": "v", "conn": True, "op": "open"}):
        w._handle_custom_msg(content, [])
    say(w, "v", 1, "open")
    say(w, "v", 1, "shout")
    assert w.connections() == 1 and "ignored a comm message" in caplog.text


# ---------------------------------------------------------------- the page's origin, told over the comm

LAB = "http://127.0.0.1:8888"  # a notebook page's location.origin


def tell_origin(widget: Any, view: str, origin: Any) -> None:
    """A view's first message: its page's origin, before it tries the WebSocket (viewer/widget.js)."""
    widget._handle_custom_msg({"view": view, "op": "origin", "origin": origin}, [])


def origin_answers(wire: Wire, view: str) -> list[dict[str, Any]]:
    with wire.lock:
        return [c for c, _ in wire.messages if c.get("view") == view and c.get("op") == "origin"]


def handshake(display: Any, origin: str, token: str = "secret") -> str:
    """What a WebSocket from a page of ``origin`` gets: its first message type, "refused <status>", "closed <code>"."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    async def attempt() -> str:
        try:
            client = await ProtocolClient.connect(display, origin=origin, token=token)
        except InvalidStatus as exc:
            return f"refused {exc.response.status_code}"
        try:
            return (await client.recv()).kind
        except ConnectionClosed as exc:
            return f"closed {exc.rcvd.code if exc.rcvd else None}"
        finally:
            await client.close()

    return asyncio.run(attempt())


def test_the_page_origin_told_over_the_comm_opens_the_websocket_to_that_origin_only(display, widget):
    w, wire = widget
    assert handshake(display, LAB) == "refused 403"  # no allowed_origins: the notebook's page is foreign
    tell_origin(w, "v1", LAB)
    assert origin_answers(wire, "v1") == [{"view": "v1", "op": "origin", "ok": True, "origin": LAB}]
    assert handshake(display, LAB) == "config"
    assert handshake(display, LAB, token="wrong") == f"closed {protocol.CLOSE_UNAUTHORIZED}"  # the token still counts
    assert handshake(display, "http://evil.example") == "refused 403"  # a page of another origin
    assert handshake(display, "http://127.0.0.1:8889") == "refused 403"  # another port is another origin
    w.close()  # the widget's grants end with it
    assert handshake(display, LAB) == "refused 403"
    tell_origin(w, "v1", LAB)  # a late message of a closed widget grants nothing
    assert origin_answers(wire, "v1")[-1] == {
        "view": "v1",
        "op": "origin",
        "ok": False,
        "reason": "expected an open widget, but it is closed",
    }
    assert handshake(display, LAB) == "refused 403"


def test_a_page_origin_told_to_one_displays_widget_opens_no_other_display(display, widget, test_encoders):
    w, _ = widget
    other = start_test_display(video_encoder="test-h264", image_encoder="test-image", token="secret")
    try:
        tell_origin(w, "v1", LAB)
        assert handshake(display, LAB) == "config"
        assert handshake(other, LAB) == "refused 403"
    finally:
        other.close()


@pytest.mark.parametrize(
    "origin",
    [
        "javascript:alert(1)",
        "null",
        "file://",
        "file:///home/me/notebook.html",
        "vscode-webview://1234",
        "http://127.0.0.1:8888/lab?token=x",
        "not an origin at all",
        "http://" + "a" * 400 + ".example",
        None,
        ["http://127.0.0.1:8888"],
    ],
)
def test_anything_but_a_well_formed_page_origin_is_refused_with_a_logged_reason(display, widget, caplog, origin):
    w, wire = widget
    tell_origin(w, "v1", origin)
    (answer,) = origin_answers(wire, "v1")
    assert answer["ok"] is False and answer["reason"].startswith("expected "), answer
    assert "refused the page origin that view 'v1' reported: expected " in caplog.text
    assert display._origin_grants.origins() == []
    assert w.connections() == 0  # and nothing else changed


def test_a_refused_page_origin_leaves_the_websocket_refused(display, widget):
    w, _ = widget
    tell_origin(w, "v1", "null")
    assert handshake(display, "null") == "refused 403"


def test_closing_the_display_closes_its_comm_viewers_and_marks_the_widget_closed(test_encoders):
    display = start_test_display(video_encoder="test-h264", image_encoder="test-image", token="secret")
    w = display.widget(transport="comm")
    wire = Wire()
    w.send = wire
    try:
        say(w, "v", 1, "open")
        say(w, "v", 1, "text", text=hello())
        eventually(lambda: len(display.viewers) == 1)
        assert not w.closed
        display.close()
        assert w.closed  # the browser keeps the last frame (viewer/widget.js)
        assert [c["code"] for c, _ in wire.of("v", 1) if c["op"] == "close"] == [protocol.CLOSE_GOING_AWAY]
        say(w, "v", 2, "open")  # a reconnect after the close: refused at once
        assert [c["reason"] for c, _ in wire.of("v", 2)] == ["display closed"]
        with pytest.raises(RuntimeError, match="display is closed"):
            display.widget()
    finally:
        w.close()
        display.close()


def test_a_display_as_a_cell_result_is_its_widget(display):
    data, _ = display._repr_mimebundle_()
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert data["text/plain"] == repr(display)
    assert display._repr_mimebundle_(include=["text/plain"]) == {"text/plain": repr(display)}  # a terminal


def test_widget_options_are_checked(display):
    with pytest.raises(ValueError, match="transport must be one of"):
        display.widget(transport="pigeon")
    with pytest.raises(ValueError, match="height must be"):
        display.widget(height=0)
    with pytest.raises(ValueError, match="only must be"):
        display.widget(only="gif")


def test_the_widget_carries_the_viewer_files_of_the_package(display):
    from rfb.server import VIEWER_DIR

    w = display.widget()
    try:
        assert w._modules["worker.js"] == (VIEWER_DIR / "worker.js").read_text("utf-8")
        shipped = {p.name for p in VIEWER_DIR.glob("*.js")} - {"main.js", "widget.js"}
        assert set(w._modules) == shipped  # every module the viewer imports, none missing
        assert w.url == display.url and w.token == "secret"
    finally:
        w.close()


# ---------------------------------------------------------------- in a real JupyterLab, in headless Chromium

W, H = 320, 240
RED, GREEN, BLUE, WHITE = (230, 30, 30), (30, 200, 30), (30, 30, 230), (235, 235, 235)
QUADRANT_POINTS = [(W // 4, H // 4), (3 * W // 4, H // 4), (W // 4, 3 * H // 4), (3 * W // 4, 3 * H // 4)]
QUADRANT_COLOURS = [RED, GREEN, BLUE, WHITE]
TOLERANCE = 48  # per channel, as in tests/test_browser.py: H.264 4:2:0 shifts flat colours a little
WAIT_S = 30.0  # a cold kernel, rfb's imports and the first encoder on a loaded 2-core machine

# The notebook: a display publishing four flat quadrants from a thread (the kernel stays
# free to read comm messages), writing what the test checks (viewers, events) to a file.
SETUP_CELL = """\
import json, os, threading, numpy as np, rfb
display = rfb.start({w}, {h}, port=0, allowed_origins={origins!r})
frame = np.empty(({h}, {w}, 3), np.uint8)
frame[:{h2}, :{w2}], frame[:{h2}, {w2}:], frame[{h2}:, :{w2}], frame[{h2}:, {w2}:] = {colours!r}
stop = threading.Event()

def render_loop(status_path={status!r}):
    events = []
    while not stop.is_set():
        try:
            display.publish(frame)
        except RuntimeError:  # the display closed
            break
        events += [dict(type=e.type, x=e.x, y=e.y, client=e.client_id) for e in display.poll_events()]
        status = dict(port=display.port, token=display.token, events=events[-100:],
                      viewers=[[v.client_id, v.group, v.remote] for v in display.viewers])
        with open(status_path + ".tmp", "w") as f:
            json.dump(status, f)
        os.replace(status_path + ".tmp", status_path)
        stop.wait(1 / 30)

threading.Thread(target=render_loop, daemon=True).start()
"""


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = widget_latency.missing_requirements()
    if missing:
        unavailable(f"the widget in JupyterLab needs {'; '.join(missing)}")
    lab = start_jupyterlab(tmp_path_factory.mktemp("jupyterlab"))
    try:
        yield lab
    finally:
        lab.close()


def assert_colours(nb: Notebook, index: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        shot = nb.snapshot(index, QUADRANT_POINTS)
        got = [tuple(p[:3]) if p else None for p in shot["pixels"]]
        if all(
            have is not None and all(abs(a - b) <= TOLERANCE for a, b in zip(have, want, strict=True))
            for want, have in zip(QUADRANT_COLOURS, got, strict=True)
        ):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"widget {index}: expected about {QUADRANT_COLOURS} at {QUADRANT_POINTS}, "
                f"got {got} (canvas {shot['width']}x{shot['height']})"
            )
        time.sleep(0.1)


def notebook_cells(status: Path, *, widget_cells: list[str], origins: tuple[str, ...] = ()) -> list[str]:
    setup = SETUP_CELL.format(
        w=W, h=H, w2=W // 2, h2=H // 2, origins=list(origins), status=str(status), colours=[RED, GREEN, BLUE, WHITE]
    )
    return [setup, *widget_cells, "stop.set()\ndisplay.close()"]


def click_arrives(nb: Notebook, index: int) -> None:
    fx, fy = 250.5, 60.25  # the right half: not where a stretched or unscaled mapping lands
    nb.page.mouse.click(*nb.client_point(index, fx, fy))
    client = nb.stats(index)["clientId"]
    status = nb.wait_status(
        lambda s: any(e["type"] == "pointerdown" and e["client"] == client for e in s["events"]),
        "the click as a pointerdown",
    )
    down = next(e for e in status["events"] if e["type"] == "pointerdown" and e["client"] == client)
    assert abs(down["x"] - fx) <= 1.5 and abs(down["y"] - fy) <= 1.5, (down, (fx, fy))


def page_origin(nb: Notebook, index: int) -> dict[str, Any]:
    """What the kernel answered widget ``index``'s page origin (viewer/widget.js's ``pageOrigin``)."""
    answer: dict[str, Any] = nb.page.evaluate("(i) => window.__rfbWidgets[i].pageOrigin", index)
    return answer


FOREIGN_ATTEMPT = """async ([url, token]) => {
    const ws = new WebSocket(url);
    return await new Promise((resolve) => {
        ws.onopen = () => ws.send(JSON.stringify({type: "hello", supported: ["image/png"], token}));
        ws.onmessage = (e) => { resolve("streamed: " + String(e.data).slice(0, 60)); ws.close(); };
        ws.onclose = (e) => resolve(`closed ${e.code}`);
    });
}"""


class _OtherPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"<!doctype html><title>another origin</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass


def foreign_page_is_refused(nb: Notebook, port: int, token: str) -> None:
    """A page of another loopback origin in the same browser, with the display's token, cannot open its WebSocket.

    Served from 127.0.0.1 like JupyterLab (a public name would meet Chromium's rules on
    public pages reaching loopback before the display's Origin check).
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = nb.context.new_page()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        page.goto(url + "/")
        assert page.evaluate("() => location.origin") == url != nb.lab.origin
        outcome = page.evaluate(FOREIGN_ATTEMPT, [f"ws://127.0.0.1:{port}/ws", token])
        assert outcome == "closed 1006", outcome  # the handshake failed: 403, origin not allowed
    finally:
        page.close()
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_widget_over_the_comm_where_the_browser_cannot_reach_the_display(jupyterlab, tmp_path):
    status = tmp_path / "status.json"
    cells = notebook_cells(status, widget_cells=['display.widget(transport="auto")', "display"])
    nb = Notebook(jupyterlab, "comm.ipynb", cells, block_port_except_lab=True, tmp=tmp_path, wait_s=WAIT_S)
    try:
        nb.run(0)
        port = nb.wait_status(lambda s: "port" in s, "the display running")["port"]
        nb.run(1)
        stats = nb.wait_drawn(0, frames=30)  # a stream, not a first frame: the acks come back over the comm
        assert stats["link"] == "comm", stats  # "auto": the WebSocket failed, the comm serves
        assert page_origin(nb, 0) == {"origin": jupyterlab.origin, "answer": "granted", "reason": None}
        assert stats["transport"] == "webcodecs" and (stats["width"], stats["height"]) == (W, H), stats
        reach = nb.page.evaluate(
            "(url) => fetch(url).then(() => 'reached', () => 'unreachable')", f"http://127.0.0.1:{port}/healthz"
        )
        assert reach == "unreachable"  # the proof that the comm carried it
        assert_colours(nb, 0)
        click_arrives(nb, 0)

        nb.run(2)  # a plain `display` as the cell's result: a second widget, a second viewer
        nb.wait_drawn(1)
        assert_colours(nb, 1)
        first = nb.wait_status(lambda s: len(s["viewers"]) == 2, "two viewers")["viewers"]
        assert all(group == "webcodecs" and remote is None for _, group, remote in first), first

        old = nb.stats(0)["clientId"]
        nb.run(1)  # re-running a cell replaces its view: the old viewer leaves, a new one joins
        nb.wait_status(
            lambda s: len(s["viewers"]) == 2 and old not in [v[0] for v in s["viewers"]], f"viewer {old} replaced"
        )
        assert nb.widgets() == 2

        nb.run(3)  # display.close(): every view keeps its last frame
        nb.page.wait_for_function("() => window.__rfbWidgets.every((w) => w.state === 'closed')")
        for index in range(2):
            assert_colours(nb, index)
        assert not nb.errors, nb.errors
    finally:
        nb.close()


@pytest.mark.browser
def test_widget_over_the_websocket_where_the_browser_reaches_the_display(jupyterlab, tmp_path):
    status = tmp_path / "status.json"
    cells = notebook_cells(status, widget_cells=["display.widget()"])  # no allowed_origins
    nb = Notebook(jupyterlab, "websocket.ipynb", cells, block_port_except_lab=False, tmp=tmp_path, wait_s=WAIT_S)
    try:
        nb.run(0)
        started = nb.wait_status(lambda s: "port" in s, "the display running")
        nb.run(1)
        stats = nb.wait_drawn(0, frames=30)
        assert stats["link"] == "websocket", stats  # "auto", with the page's origin told over the comm
        assert page_origin(nb, 0) == {"origin": jupyterlab.origin, "answer": "granted", "reason": None}
        overlay = nb.page.evaluate(
            "(i) => { const hook = window.__rfbWidgets[i];"
            " const host = [...document.querySelectorAll('*')].find((e) => e.__rfb === hook);"
            " return host.shadowRoot.getElementById('stats').textContent; }",
            0,
        )
        assert "via websocket" in overlay, overlay
        assert_colours(nb, 0)
        click_arrives(nb, 0)
        # Keys typed on the canvas are the application's, not JupyterLab's: "a" and "b" would
        # insert cells in command mode, "d d" delete one.
        cells = nb.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").count()
        for key in ("a", "b", "d", "d"):
            nb.page.keyboard.press(key)
        client = nb.stats(0)["clientId"]
        keys = nb.wait_status(lambda s: len([e for e in s["events"] if e["type"] == "keydown"]) >= 4, "4 keydowns")
        assert [e["client"] for e in keys["events"] if e["type"] == "keydown"] == [client] * 4
        assert nb.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").count() == cells
        viewers = nb.wait_status(lambda s: len(s["viewers"]) == 1, "one viewer")["viewers"]
        assert viewers[0][2] is not None and viewers[0][2].startswith("127.0.0.1:")  # a socket, not the comm
        foreign_page_is_refused(nb, started["port"], started["token"])
        assert len(nb.status()["viewers"]) == 1
        nb.run(2)
        nb.page.wait_for_function("() => window.__rfbWidgets.every((w) => w.state === 'closed')")
        assert_colours(nb, 0)
        assert not nb.errors, nb.errors
    finally:
        nb.close()


# ---------------------------------------------------------------- python -m rfb.benchmark.widget_latency


@pytest.mark.browser
def test_widget_latency_benchmark_measures_the_comm(jupyterlab, tmp_path):
    """One short run of the benchmark over the comm (the link whose set-up differs): a row of real figures."""
    row = widget_latency.measure(jupyterlab, tmp_path, 320, 240, "comm", seconds=1.0, warmup_s=0.5)
    assert (row["size"], row["link"]) == ("320x240", "comm"), row
    assert row["route"] is not None, row  # the kernel's H.264 route served the widget
    assert row["frames"] > 0 and row["fps"] > 0 and row["published_fps"] > 0, row
    assert 0 < row["median_ms"] <= row["p95_ms"], row
    assert row["browser_fps"] > 0 and row["draw_ms"] > 0, row
    table = widget_latency.format_table([row]).splitlines()
    assert len(table) == 3 and table[2].startswith("| 320x240 | comm | "), table


def test_widget_latency_benchmark_says_what_is_missing(monkeypatch, capsys):
    monkeypatch.setattr(widget_latency, "CHROMIUM", Path("/nonexistent/chromium"))
    assert widget_latency.main(["--seconds", "1", "--sizes", "320x240"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the widget benchmark needs Chromium at /nonexistent/chromium"), err


def test_widget_latency_benchmark_refuses_an_unknown_link(capsys):
    with pytest.raises(SystemExit) as exit_info:
        widget_latency.main(["--links", "websocket,carrier-pigeon"])
    assert exit_info.value.code == 2
    assert "links are websocket, comm; got 'carrier-pigeon'" in capsys.readouterr().err
