"""Displays mounted in a host application, and named streams behind one server.

Everything runs for real: a Starlette (or FastAPI) application under uvicorn on
127.0.0.1, its lifespan closing the displays, real WebSocket clients at the mounted
paths, and ``rfb.Server`` on its own port.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.websockets import WebSocket

import rfb
from rfb import protocol
from rfb.display import Display
from rfb.server import VIEWER_DIR
from tests.conftest import H264, JPEG, EncoderLog, ProtocolClient, eventually
from tests.test_browser import browser_context, page  # noqa: F401 - the Chromium fixtures, for the one browser test

pytestmark = pytest.mark.timeout(120)

TEST_OPTIONS: dict[str, Any] = {
    "video_encoder": "test-h264",
    "image_encoder": "test-image",
    "keyframe_interval_min": 0.0,
}


def mountable(**options: Any) -> Display:
    """A 64x48 display with the test encoders, not served yet."""
    return Display(64, 48, **{**TEST_OPTIONS, **options})


def frame(red: int) -> np.ndarray:
    picture = np.zeros((48, 64, 3), np.uint8)
    picture[0, 0, 0] = red
    return picture


@contextlib.contextmanager
def uvicorn_serving(app: Any) -> Iterator[int]:
    """``app`` under uvicorn (lifespan on) on a thread and loop of its own; yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, lifespan="on", log_config=None, access_log=False, ws_per_message_deflate=False, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), name="test-uvicorn")
    thread.start()
    try:
        deadline = 100
        while not server.started and thread.is_alive() and deadline:
            thread.join(0.05)
            deadline -= 1
        assert server.started, "uvicorn did not start"
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


def closing_lifespan(*displays: Display) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """The host application's lifespan: its shutdown closes the displays."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await asyncio.gather(*(d.aclose() for d in displays))

    return lifespan


async def connect(
    port: int,
    path: str,
    token: str | None,
    *,
    supported: tuple[str, ...] = (H264,),
    headers: dict[str, str] | None = None,
    origin: str | None = None,
) -> ProtocolClient:
    """A protocol client on ``ws://127.0.0.1:port{path}`` saying hello with ``token``."""
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed

    ws = await ws_connect(
        f"ws://127.0.0.1:{port}{path}",
        origin=origin,
        proxy=None,
        compression=None,
        max_size=None,
        open_timeout=5,
        close_timeout=2,
        additional_headers=headers,
    )
    client = ProtocolClient(ws)
    hello: dict[str, Any] = {"type": "hello", "supported": list(supported), "client": "pytest"}
    if token is not None:
        hello["token"] = token
    with contextlib.suppress(ConnectionClosed):  # a refusal may close the socket before the hello leaves
        await client.send(hello)
    return client


async def first_marker(client: ProtocolClient, display: Display, red: int, timeout: float = 10.0) -> bytes:
    """Publish frames marked ``red`` until one reaches ``client``; its payload."""
    for _ in range(int(timeout / 0.5)):
        display.publish(frame(red))
        with contextlib.suppress(TimeoutError):
            return (await client.next_payload(timeout=0.5)).payload
    raise AssertionError(f"no payload reached the client within {timeout} s of publishing")


# ---------------------------------------------------------------- mounted in a Starlette app


@pytest.mark.anyio
async def test_two_displays_mounted_under_prefixes_serve_their_own_pages_sockets_and_frames(
    test_encoders: EncoderLog,
) -> None:
    viz, stream_a = mountable(), mountable()
    app = Starlette(
        routes=[Mount("/viz", viz.asgi_app()), Mount("/streams/a", stream_a.asgi_app())],
        lifespan=closing_lifespan(viz, stream_a),
    )
    with uvicorn_serving(app) as port:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
            for prefix in ("/viz", "/streams/a"):
                redirect = await http.get(f"{prefix}?token=T")
                assert redirect.status_code in (307, 308) and redirect.headers["location"].endswith(
                    f"{prefix}/?token=T"
                )
                page = await http.get(f"{prefix}/")
                assert page.status_code == 200 and page.text == (VIEWER_DIR / "index.html").read_text()
                module = await http.get(f"{prefix}/viewer/main.js")
                assert module.headers["content-type"] == "text/javascript; charset=utf-8"
                assert (await http.get(f"{prefix}/healthz")).json() == {"status": "ok"}
            assert (await http.get("/ws")).status_code == 404  # nothing of rfb's outside its prefixes
        one = await connect(port, "/viz/ws", viz.token)
        two = await connect(port, "/streams/a/ws", stream_a.token, supported=(JPEG,))
        assert (await first_marker(one, viz, 10))[1] == 10
        assert (await first_marker(two, stream_a, 20))[1] == 20
        assert viz.mounted and viz.port is None and len(viz.viewers) == 1 and len(stream_a.viewers) == 1
        assert viz.viewers[0].group == "webcodecs" and stream_a.viewers[0].group == "image"
        assert viz.server_thread is not None and viz.server_thread.name == "test-uvicorn"
    for client in (one, two):
        code, _ = await client.closed()
        assert code is not None  # uvicorn's shutdown closed the viewers
    assert viz.closed and stream_a.closed
    assert test_encoders.instances and not test_encoders.open_instances(), "the lifespan's aclose stops the encoders"


@pytest.mark.anyio
async def test_a_mounted_display_keeps_its_token_origin_and_host_rules(test_encoders: EncoderLog) -> None:
    from websockets.exceptions import InvalidStatus

    viz = mountable(allowed_hosts=["app.example"])
    app = Starlette(routes=[Mount("/viz", viz.asgi_app())], lifespan=closing_lifespan(viz))
    with uvicorn_serving(app) as port:
        wrong = await connect(port, "/viz/ws", "wrong")
        assert await wrong.closed() == (protocol.CLOSE_UNAUTHORIZED, "unauthorized")
        with pytest.raises(InvalidStatus) as refused:
            await connect(port, "/viz/ws", viz.token, origin="http://evil.example")
        assert refused.value.response.status_code == 403
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
            assert (await http.get("/viz/", headers={"Host": "rebind.example"})).status_code == 403
            assert (await http.get("/viz/", headers={"Host": f"app.example:{port}"})).status_code == 200
            details = (await http.get("/viz/healthz", params={"token": viz.token})).json()
        assert details["width"] == 64 and "connections_refused" not in details  # its server's, not its own
        good = await connect(port, "/viz/ws", viz.token, origin=f"http://127.0.0.1:{port}")
        assert (await first_marker(good, viz, 30))[1] == 30
        await good.close()


# ---------------------------------------------------------------- the authenticate hook


def user_from_header(websocket: WebSocket) -> str | None:
    return websocket.headers.get("x-user")


async def user_from_cookie(websocket: WebSocket) -> dict[str, str] | None:
    await asyncio.sleep(0)
    name = websocket.cookies.get("session")
    return {"name": name} if name else None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("hook", "headers", "principal"),
    [
        (user_from_header, {"x-user": "alice"}, "alice"),
        (user_from_cookie, {"cookie": "session=bob"}, {"name": "bob"}),
    ],
    ids=["plain", "async"],
)
async def test_the_authenticate_hooks_principal_is_on_the_viewer_and_its_events(
    test_encoders: EncoderLog, hook: Any, headers: dict[str, str], principal: Any
) -> None:
    viz = mountable()
    app = Starlette(routes=[Mount("/viz", viz.asgi_app(authenticate=hook))], lifespan=closing_lifespan(viz))
    with uvicorn_serving(app) as port:
        refused = await connect(port, "/viz/ws", viz.token)
        assert await refused.closed() == (protocol.CLOSE_UNAUTHORIZED, "unauthorized: not authenticated")
        wrong_token = await connect(port, "/viz/ws", "wrong", headers=headers)
        assert await wrong_token.closed() == (protocol.CLOSE_UNAUTHORIZED, "unauthorized")  # both must pass
        client = await connect(port, "/viz/ws", viz.token, headers=headers)
        await first_marker(client, viz, 40)
        await client.event(type="pointerdown", x=3, y=4, button=0, buttons=1, modifiers=[])
        events = await eventually(viz.poll_events, what="the pointer event")
        assert [(e.type, e.principal) for e in events] == [("pointerdown", principal)]
        assert [v.principal for v in viz.viewers] == [principal]
        await client.close()


@pytest.mark.anyio
async def test_a_failing_authenticate_hook_refuses_that_viewer_with_1011(test_encoders: EncoderLog) -> None:
    def broken(websocket: WebSocket) -> str:
        raise KeyError("the session store is down")

    viz = mountable()
    app = Starlette(routes=[Mount("/viz", viz.asgi_app(authenticate=broken))], lifespan=closing_lifespan(viz))
    with uvicorn_serving(app) as port:
        client = await connect(port, "/viz/ws", viz.token)
        assert await client.closed() == (1011, "internal error: authentication failed")
        assert not viz.viewers


def test_events_without_a_hook_have_no_principal() -> None:
    from rfb.events import parse_event

    assert parse_event({"type": "keydown", "key": "a"}, client_id=1, time=0.0).principal is None


# ---------------------------------------------------------------- served one way, once


def test_a_display_is_served_one_way_once(test_encoders: EncoderLog) -> None:
    served = rfb.start(64, 48, port=0, **TEST_OPTIONS)
    try:
        with pytest.raises(RuntimeError, match="already served by its own server"):
            served.asgi_app()
    finally:
        served.close()
    mounted = mountable()
    mounted.asgi_app()
    with pytest.raises(RuntimeError, match="already mounted"):
        mounted.asgi_app()
    with pytest.raises(RuntimeError, match="already mounted"):
        mounted._start()
    with pytest.raises(RuntimeError, match="no URL of its own"):
        _ = mounted.url
    assert "mounted" in repr(mounted)
    mounted.close()  # never called: no loop, released here
    assert mounted.closed
    unserved = mountable()
    unserved.close()
    assert unserved.closed and not unserved.mounted and unserved.port == 8765
    with pytest.raises(RuntimeError, match="closed"):
        unserved._start()
    with pytest.raises(RuntimeError, match="closed"):
        mounted.asgi_app()


@pytest.mark.anyio
async def test_close_on_the_serving_loop_says_to_await_aclose(test_encoders: EncoderLog) -> None:
    viz = mountable()
    app = viz.asgi_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}  # the first call binds this loop
    with pytest.raises(RuntimeError, match="await display.aclose"):
        viz.close()
    await viz.aclose()
    assert viz.closed


@pytest.mark.anyio
async def test_a_mounted_app_run_on_its_own_closes_its_display_on_lifespan_shutdown(test_encoders: EncoderLog) -> None:
    viz = mountable()
    with uvicorn_serving(viz.asgi_app()) as port:
        client = await connect(port, "/ws", viz.token)
        await first_marker(client, viz, 50)
    assert viz.closed and not test_encoders.open_instances()


# ---------------------------------------------------------------- FastAPI


@pytest.mark.anyio
async def test_a_fastapi_app_mounts_a_display(test_encoders: EncoderLog) -> None:
    fastapi = pytest.importorskip("fastapi")
    viz = mountable()
    app = fastapi.FastAPI(lifespan=closing_lifespan(viz))

    @app.get("/api/size")
    def size() -> dict[str, int]:
        return {"width": viz.width, "height": viz.height}

    app.mount("/viz", viz.asgi_app(authenticate=user_from_header))
    with uvicorn_serving(app) as port:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
            assert (await http.get("/api/size")).json() == {"width": 64, "height": 48}
            assert (await http.get("/viz/")).status_code == 200
        client = await connect(port, "/viz/ws", viz.token, headers={"x-user": "carol"})
        assert (await first_marker(client, viz, 60))[1] == 60
        assert [v.principal for v in viz.viewers] == ["carol"]
    assert viz.closed and not test_encoders.open_instances()


# ---------------------------------------------------------------- named streams: rfb.Server


@pytest.fixture
def server(test_encoders: EncoderLog) -> Iterator[rfb.Server]:
    with rfb.Server(port=0) as server:
        server.add("left", mountable())
        server.add("right", mountable())
        server.start()
        yield server


@pytest.mark.anyio
async def test_named_streams_share_one_port_each_with_its_page_socket_and_token(
    server: rfb.Server, test_encoders: EncoderLog
) -> None:
    left, right = server.displays["left"], server.displays["right"]
    assert left.token != right.token != server.token
    one = await connect(server.port, "/streams/left/ws", left.token)
    two = await connect(server.port, "/streams/right/ws", right.token)
    assert (await first_marker(one, left, 70))[1] == 70
    assert (await first_marker(two, right, 80))[1] == 80
    crossed = await connect(server.port, "/streams/right/ws", left.token)
    assert await crossed.closed() == (protocol.CLOSE_UNAUTHORIZED, "unauthorized")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", trust_env=False) as http:
        assert (await http.get("/streams/left/")).status_code == 200
        redirect = await http.get("/streams/left")
        assert redirect.status_code in (307, 308) and redirect.headers["location"].endswith("/streams/left/")
        assert (await http.get("/streams/nope/")).status_code == 404
        health = (await http.get("/healthz", params={"token": server.token})).json()
        assert set(health["streams"]) == {"left", "right"} and health["streams"]["left"]["viewers"] == 1
        assert (await http.get("/healthz")).json() == {"status": "ok"}
    late = server.add("late", mountable())  # while serving
    three = await connect(server.port, "/streams/late/ws", late.token)
    assert (await first_marker(three, late, 90))[1] == 90
    server.close()
    assert (await one.closed())[0] == protocol.CLOSE_GOING_AWAY
    assert all(d.closed for d in server.displays.values()) and not test_encoders.open_instances()


def test_the_index_lists_the_streams_only_with_the_servers_token(server: rfb.Server) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", trust_env=False) as http:
        anonymous = http.get("/")
        assert anonymous.status_code == 401 and "left" not in anonymous.text
        assert http.get("/", params={"token": server.displays["left"].token}).status_code == 401
        index = http.get(server.url)
        assert index.status_code == 200
        links = re.findall(r'href="([^"]+)"', index.text)
        assert links == [f"streams/{name}/?token={server.displays[name].token}" for name in ("left", "right")]
        for name, link in zip(("left", "right"), links, strict=True):
            assert str(http.get(link).url) == server.stream_url(name)
        assert http.get("/", headers={"Host": "rebind.example"}).status_code == 403
        assert http.get("/streams/left/", headers={"Host": "rebind.example"}).status_code == 403


def test_stream_names_are_path_segments_and_unique(server: rfb.Server) -> None:
    for bad in ("", "a/b", "../x", ".hidden", "x" * 65, "a b", "é"):
        with pytest.raises(ValueError, match="stream name"):
            server.add(bad, mountable())
    with pytest.raises(ValueError, match="already served"):
        server.add("left", mountable())
    with pytest.raises(RuntimeError, match="already mounted"):
        server.add("again", server.displays["left"])


@pytest.mark.anyio
async def test_a_server_started_from_asyncio_authenticates_every_stream(test_encoders: EncoderLog) -> None:
    async with rfb.Server(port=0, token=None, authenticate=user_from_header) as server:
        display = server.add("only", mountable())
        await server.astart()
        refused = await connect(server.port, "/streams/only/ws", display.token)
        assert await refused.closed() == (protocol.CLOSE_UNAUTHORIZED, "unauthorized: not authenticated")
        client = await connect(server.port, "/streams/only/ws", display.token, headers={"x-user": "dave"})
        await first_marker(client, display, 100)
        assert [v.principal for v in display.viewers] == ["dave"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", trust_env=False) as http:
            assert "streams/only/" in (await http.get("/")).text  # token=None: the index is open
    assert (await client.closed())[0] == protocol.CLOSE_GOING_AWAY
    assert display.closed and not test_encoders.open_instances()


def test_a_server_never_started_closes_its_displays(test_encoders: EncoderLog) -> None:
    server = rfb.Server(port=0)
    display = server.add("only", mountable())
    server.close()
    assert display.closed
    with pytest.raises(RuntimeError, match="closed"):
        server.add("more", mountable())


# ---------------------------------------------------------------- the real viewer under a prefix


@pytest.mark.browser
def test_the_viewer_loads_and_connects_relative_to_a_prefixed_page(page: Any) -> None:
    """Chromium opens /streams/a/: modules from /streams/a/viewer/, the socket at /streams/a/ws."""
    from tests import test_browser as browser

    with rfb.Server(port=0, authenticate=lambda websocket: "browser") as server:
        display = server.add("a", Display(browser.W, browser.H))
        server.start()
        feeder = browser.Feeder(display, browser.quadrants())
        try:
            requested: list[str] = []
            page.on("request", lambda r: requested.append(urlsplit(r.url).path))
            page.on("websocket", lambda ws: requested.append(urlsplit(ws.url).path))
            browser.open_viewer(page, server.stream_url("a"), "webcodecs")
            browser.assert_colours(page, browser.QUADRANT_POINTS, browser.QUADRANT_COLOURS)
            assert {"/streams/a/viewer/main.js", "/streams/a/viewer/worker.js", "/streams/a/ws"} <= set(requested)
            assert not [p for p in requested if p.startswith(("/viewer/", "/ws"))], requested
            assert [v.principal for v in display.viewers] == ["browser"]
        finally:
            feeder.close()
