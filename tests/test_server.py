"""The HTTP side: viewer files, health, the Origin check, and fuzzing the WebSocket handler."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfb.hosts import AllowedHosts
from rfb.server import (
    MAX_PAGE_ORIGIN_CHARS,
    VIEWER_DIR,
    OriginGrants,
    ServerThread,
    _resolve_inside,
    create_app,
    origin_allowed,
    page_origin,
)
from tests.conftest import EncoderLog, ProtocolClient, start_test_display

pytestmark = pytest.mark.timeout(120)


def http(display: Any, path: str) -> httpx.Response:
    with httpx.Client(base_url=f"http://127.0.0.1:{display.port}", trust_env=False) as client:
        return client.get(path)


@contextlib.contextmanager
def serving(viewer_dir: Path) -> Iterator[httpx.Client]:
    """An app for ``viewer_dir`` on a real socket, without a display behind it."""

    async def nothing() -> None:
        return None

    app = create_app(on_websocket=_never, health=dict, viewer_dir=viewer_dir)
    server = ServerThread(app, host="127.0.0.1", port=0, ws_max_size=1024, before_stop=nothing, after_stop=lambda: None)
    server.start().result(timeout=10)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", trust_env=False) as client:
            yield client
    finally:
        server.stop().result(timeout=10)
        server.join()


def raw_get(display: Any, raw_path: str) -> int:
    """The status of a GET with ``raw_path`` sent exactly as written (no client-side normalising)."""
    import socket

    with socket.create_connection(("127.0.0.1", display.port), timeout=5) as sock:
        sock.sendall(f"GET {raw_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        head = sock.recv(64).decode("latin-1")
    return int(head.split()[1])


# ---------------------------------------------------------------- routes


def test_index_serves_the_viewer_page(display: Any) -> None:
    response = http(display, "/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    if (VIEWER_DIR / "index.html").is_file():
        assert response.text == (VIEWER_DIR / "index.html").read_text()


def test_index_falls_back_to_a_plain_page_without_a_viewer(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        response = client.get("/")
    assert response.status_code == 200 and "viewer" in response.text and "/ws" in response.text


@pytest.mark.skipif(not (VIEWER_DIR / "main.js").is_file(), reason="the viewer's main.js is not in the tree")
def test_viewer_modules_are_served_as_javascript(display: Any) -> None:
    response = http(display, "/viewer/main.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.content == (VIEWER_DIR / "main.js").read_bytes()


def test_static_files_get_explicit_types(tmp_path: Path) -> None:
    (tmp_path / "a.mjs").write_text("export {}")
    (tmp_path / "b.css").write_text("p{}")
    (tmp_path / "c.wasm").write_bytes(b"\0asm")
    with serving(tmp_path) as client:
        assert client.get("/viewer/a.mjs").headers["content-type"] == "text/javascript; charset=utf-8"
        assert client.get("/viewer/b.css").headers["content-type"] == "text/css; charset=utf-8"
        assert client.get("/viewer/c.wasm").headers["content-type"] == "application/wasm"


@pytest.mark.parametrize(
    "raw_path",
    [
        "/viewer/../display.py",
        "/viewer/%2e%2e/display.py",
        "/viewer/..%2fdisplay.py",
        "/viewer/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/viewer//etc/passwd",
        "/viewer/%2fetc%2fpasswd",
        "/viewer/nope.js",
        "/viewer/",
        "/viewer/.hidden",
    ],
)
def test_no_file_outside_the_viewer_directory(display: Any, raw_path: str) -> None:
    assert raw_get(display, raw_path) == 404


def test_resolve_inside_refuses_traversal_and_links(tmp_path: Path) -> None:
    root = tmp_path / "viewer"
    (root / "sub").mkdir(parents=True)
    (root / "ok.js").write_text("")
    (root / "sub" / "deep.js").write_text("")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "link.js")
    assert _resolve_inside(root, "ok.js") == root / "ok.js"
    assert _resolve_inside(root, "sub/deep.js") == root / "sub" / "deep.js"
    for bad in [
        "../secret.txt",
        "sub/../../secret.txt",
        "/etc/passwd",
        str(tmp_path / "secret.txt"),
        "link.js",
        "sub",
        "",
        ".git/config",
        "ok.js\x00.png",
    ]:
        assert _resolve_inside(root, bad) is None, bad


def test_healthz_says_only_ok_without_the_token(display: Any) -> None:
    response = http(display, "/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    wrong = http(display, "/healthz?token=wrong")
    assert wrong.json() == {"status": "ok"}


@pytest.mark.parametrize("how", ["query", "bearer"])
def test_healthz_reports_the_details_with_the_token(display: Any, how: str) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{display.port}", trust_env=False) as client:
        if how == "query":
            response = client.get("/healthz", params={"token": display.token})
        else:
            response = client.get("/healthz", headers={"Authorization": f"Bearer {display.token}"})
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "width": 64,
        "height": 48,
        "viewers": 0,
        "encoder": "test-h264",
        "transports": ["webcodecs", "image"],
        "published": 0,
        "connections_refused": 0,
        "connections_timed_out": 0,
    }
    assert display.token not in response.text


def test_healthz_reports_everything_when_the_token_is_off(test_encoders: EncoderLog) -> None:
    display = start_test_display(token=None)
    try:
        assert http(display, "/healthz").json()["published"] == 0
    finally:
        display.close()


# ---------------------------------------------------------------- host


@pytest.mark.parametrize(
    ("host", "extra", "ok"),
    [
        (None, (), True),
        ("127.0.0.1:8765", (), True),
        ("localhost:8765", (), True),
        ("LOCALHOST.", (), True),
        ("[::1]:8765", (), True),
        ("192.168.1.20:8765", (), True),
        ("10.0.0.1", (), True),
        ("evil.example:8765", (), False),
        ("127.0.0.1.evil.example", (), False),
        ("localhost.evil.example", (), False),
        ("", (), False),
        ("x:notaport", (), False),
        ("workstation.lan:8765", ("workstation.lan",), True),
        ("WORKSTATION.LAN", ("workstation.lan",), True),
        ("other.lan", ("workstation.lan",), False),
        ("app.example", ("http://app.example:3000",), True),
        ("anything.example", ("*",), True),
    ],
)
def test_allowed_hosts(host: str | None, extra: tuple[str, ...], ok: bool) -> None:
    assert (host in AllowedHosts(extra)) is ok


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_host_header_gets_a_plain_yes_or_no(host: str) -> None:
    assert (host in AllowedHosts(["workstation.lan"])) in (True, False)


@settings(max_examples=200, deadline=None)
@given(
    st.ip_addresses(),
    st.integers(min_value=1, max_value=65535),
    st.from_regex(r"[a-z0-9-]{1,20}\.[a-z]{2,8}", fullmatch=True),
)
def test_addresses_pass_and_unlisted_names_do_not(address: Any, port: int, name: str) -> None:
    literal = f"[{address}]" if address.version == 6 else str(address)
    allowed = AllowedHosts(())
    assert f"{literal}:{port}" in allowed
    assert f"{name}:{port}" not in allowed and name not in allowed


def test_a_foreign_host_header_is_refused_with_403_on_every_route(display: Any) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{display.port}", trust_env=False) as client:
        for path in ("/", "/healthz", f"/healthz?token={display.token}", "/viewer/main.js", "/ws"):
            response = client.get(path, headers={"Host": f"rebind.example:{display.port}"})
            assert (response.status_code, response.text) == (403, "host not allowed"), path
        assert client.get("/", headers={"Host": f"localhost:{display.port}"}).status_code == 200


def test_allowed_hosts_and_the_bound_name_are_served(test_encoders: EncoderLog) -> None:
    display = start_test_display(
        host="localhost", allowed_hosts=["workstation.lan"], allowed_origins=["http://app.example:3000"]
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{display.port}", trust_env=False) as client:
            for name in ("workstation.lan", "app.example", "localhost", "127.0.0.1"):
                assert client.get("/", headers={"Host": f"{name}:{display.port}"}).status_code == 200, name
            assert client.get("/", headers={"Host": "other.lan"}).status_code == 403
    finally:
        display.close()


@pytest.mark.anyio
async def test_a_websocket_with_a_foreign_host_is_refused_before_accept(display: Any) -> None:
    import socket

    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    sock = socket.create_connection(("127.0.0.1", display.port), timeout=5)
    with pytest.raises(InvalidStatus) as info:  # the browser of a rebinding page: Host is the page's name
        await connect(f"ws://rebind.example:{display.port}/ws", sock=sock, proxy=None, open_timeout=5)
    sock.close()
    assert info.value.response.status_code == 403 and b"host not allowed" in info.value.response.body
    assert not display.viewers


async def _never(websocket: Any) -> None:
    raise AssertionError("no WebSocket expected")


# ---------------------------------------------------------------- origin


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "127.0.0.1:8765", (), True),
        ("http://127.0.0.1:8765", "127.0.0.1:8765", (), True),
        ("HTTP://LOCALHOST:8765", "localhost:8765", (), True),
        ("http://localhost", "localhost:80", (), True),
        ("https://example.com", "example.com:443", (), True),
        ("http://[::1]:8765", "[::1]:8765", (), True),
        ("http://127.0.0.1:9999", "127.0.0.1:8765", (), False),
        ("http://evil.example", "127.0.0.1:8765", (), False),
        ("http://localhost:8765", "127.0.0.1:8765", (), False),
        ("null", "127.0.0.1:8765", (), False),
        ("file://", "127.0.0.1:8765", (), False),
        ("http://x:notaport", "127.0.0.1:8765", (), False),
        ("http://app.example:3000", "127.0.0.1:8765", ("http://app.example:3000",), True),
        ("http://app.example:3001", "127.0.0.1:8765", ("http://app.example:3000",), False),
        ("http://anything.example", "127.0.0.1:8765", ("*",), True),
        ("http://127.0.0.1:8765", None, (), False),
    ],
)
def test_origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


@pytest.mark.anyio
async def test_a_foreign_origin_is_refused_with_403_before_accept(display: Any) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as info:
        await ProtocolClient.connect(display, origin="http://evil.example")
    assert info.value.response.status_code == 403 and b"origin not allowed" in info.value.response.body
    assert not display.viewers


@pytest.mark.anyio
async def test_same_origin_and_listed_origins_are_accepted(test_encoders: EncoderLog) -> None:
    display = start_test_display(allowed_origins=["http://app.example:3000"])
    try:
        for origin in (f"http://127.0.0.1:{display.port}", "http://app.example:3000"):
            client = await ProtocolClient.connect(display, origin=origin)
            assert (await client.recv()).kind == "config"
            await client.close()
    finally:
        display.close()


# ---------------------------------------------------------------- origins granted by notebook widgets


@pytest.mark.parametrize(
    ("reported", "kept"),
    [
        ("http://127.0.0.1:8888", "http://127.0.0.1:8888"),
        ("http://localhost:8888", "http://localhost:8888"),
        ("https://Hub.Example.org", "https://hub.example.org"),
        ("http://[::1]:8888", "http://[::1]:8888"),
        ("http://jupyter_lab.internal:80", "http://jupyter_lab.internal:80"),
        ("https://a-b.c-d.example:65535", "https://a-b.c-d.example:65535"),
    ],
)
def test_a_well_formed_page_origin_is_kept_lower_cased(reported: str, kept: str) -> None:
    assert page_origin(reported) == kept


@pytest.mark.parametrize(
    ("reported", "why"),
    [
        ("javascript:alert(1)", "scheme http or https"),
        ("null", "scheme http or https"),
        ("file://", "scheme http or https"),
        ("file:///home/me/page.html", "scheme http or https"),
        ("vscode-webview://abc123", "scheme http or https"),
        ("ws://127.0.0.1:8888", "scheme http or https"),
        ("http://", "scheme http or https"),
        ("http://127.0.0.1:8888/lab", "scheme http or https"),  # a URL, not an origin
        ("http://127.0.0.1:8888?x", "scheme http or https"),
        ("http://me@127.0.0.1:8888", "scheme http or https"),
        ("http://a..b", "scheme http or https"),
        ("http://-a.example", "scheme http or https"),
        (" http://127.0.0.1:8888", "scheme http or https"),
        ("http://127.0.0.1:8888\n", "scheme http or https"),
        ("http://127.0.0.1:8888\r\nX-Evil: 1", "scheme http or https"),
        ("http://[::1", "scheme http or https"),
        ("http://[1::2::3]:80", "an IPv6 address in brackets"),
        ("http://127.0.0.1:0", "a port from 1 to 65535"),
        ("http://127.0.0.1:65536", "a port from 1 to 65535"),
        ("http://" + "a" * MAX_PAGE_ORIGIN_CHARS, f"at most {MAX_PAGE_ORIGIN_CHARS} characters"),
        ("", "scheme http or https"),
        (None, "as a string, got NoneType"),
        (8888, "as a string, got int"),
        ({"origin": "http://127.0.0.1:8888"}, "as a string, got dict"),
    ],
)
def test_anything_but_a_page_origin_is_refused_with_the_reason(reported: Any, why: str) -> None:
    with pytest.raises(ValueError, match="expected") as info:
        page_origin(reported)
    assert why in str(info.value)


def test_origin_grants_hold_origins_for_their_holders_and_no_more() -> None:
    grants = OriginGrants(limit=2)
    lab, other = object(), object()
    assert grants.grant("HTTP://127.0.0.1:8888", lab) == "http://127.0.0.1:8888"
    assert grants.allows("http://127.0.0.1:8888") and grants.allows("http://127.0.0.1:8888".upper())
    assert not grants.allows("http://127.0.0.1:8889") and not grants.allows("https://127.0.0.1:8888")
    assert not grants.allows("http://localhost:8888")  # another origin, though the same server
    assert not grants.allows(None) and not grants.allows("null")
    grants.grant("http://example.org", lab)
    assert grants.allows("http://example.org:80")  # the default port, as a browser may not write it
    grants.grant("http://example.org", other)  # the same origin again: no new room taken
    with pytest.raises(ValueError, match="at most 2 notebook page origins per display"):
        grants.grant("http://third.example", other)
    assert grants.origins() == ["http://127.0.0.1:8888", "http://example.org"]
    grants.revoke(lab)
    assert grants.origins() == ["http://example.org"]  # still held by `other`
    assert not grants.allows("http://127.0.0.1:8888")
    grants.revoke(other)
    assert grants.origins() == [] and not grants.allows("http://example.org")


@pytest.mark.anyio
async def test_a_granted_origin_opens_a_websocket_but_still_needs_the_token(test_encoders: EncoderLog) -> None:
    from websockets.exceptions import InvalidStatus

    from rfb.protocol import CLOSE_UNAUTHORIZED

    display = start_test_display(token="secret")
    try:
        display._origin_grants.grant("http://127.0.0.1:8888", object())
        client = await ProtocolClient.connect(display, origin="http://127.0.0.1:8888")
        assert (await client.recv()).kind == "config"
        await client.close()
        wrong = await ProtocolClient.connect(display, origin="http://127.0.0.1:8888", token="wrong")
        assert await wrong.closed() == (CLOSE_UNAUTHORIZED, "unauthorized")
        with pytest.raises(InvalidStatus) as info:
            await ProtocolClient.connect(display, origin="http://evil.example")
        assert info.value.response.status_code == 403
    finally:
        display.close()


# ---------------------------------------------------------------- fuzzing the live handler

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
control_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["hello", "ack", "request_keyframe", "event", "bogus"])},
    optional={
        "seq": json_values,
        "event": json_values
        | st.fixed_dictionaries(
            {"type": st.sampled_from(["pointerdown", "wheel", "keydown", "resize"])},
            optional={k: json_values for k in ("x", "y", "dx", "dy", "key", "width", "height", "modifiers")},
        ),
        "supported": json_values,
        "reason": json_values,
        "decode_ms": json_values,
    },
)
inbound = st.one_of(
    json_values.map(lambda v: json.dumps(v)),
    control_like.map(lambda v: json.dumps(v)),
    st.text(max_size=100),
    st.binary(max_size=100),
)
MARKER = json.dumps({"type": "ack", "seq": "marker"})
MARKER_ERROR = "ack.seq: expected a positive integer, got 'marker'"


def test_random_messages_never_break_the_handler_or_other_viewers(
    test_encoders: EncoderLog, caplog: pytest.LogCaptureFixture
) -> None:
    """Random JSON, text and bytes into a live session: each is handled or refused, never raised."""
    from websockets.sync.client import connect

    caplog.set_level(logging.WARNING, logger="rfb")
    display = start_test_display()
    uri = f"ws://127.0.0.1:{display.port}/ws"
    hello = json.dumps({"type": "hello", "supported": ["webcodecs/h264-annexb"], "token": display.token})
    try:
        with connect(uri, proxy=None) as fuzzed, connect(uri, proxy=None) as bystander:
            fuzzed.send(hello)
            bystander.send(hello)
            assert json.loads(fuzzed.recv(timeout=5))["type"] == "config"
            assert json.loads(bystander.recv(timeout=5))["type"] == "config"

            @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
            @given(inbound)
            def check(message: str | bytes) -> None:
                fuzzed.send(message)
                fuzzed.send(MARKER)  # the round trip proves the message before it was handled
                deadline = time.monotonic() + 5
                while True:
                    reply = fuzzed.recv(timeout=max(0.01, deadline - time.monotonic()))
                    if isinstance(reply, str) and json.loads(reply).get("message") == MARKER_ERROR:
                        return

            check()
            display.publish(np.zeros((48, 64, 3), np.uint8))
            while True:  # the bystander is served as if nothing happened
                reply = bystander.recv(timeout=5)
                if isinstance(reply, bytes):
                    break
            assert len(display.viewers) == 2
    finally:
        display.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "the handler logged an error"


# ---------------------------------------------------------------- throttled warnings


def test_a_throttle_logs_the_first_then_the_count_since(caplog: pytest.LogCaptureFixture) -> None:
    from rfb.throttle import Throttle

    caplog.set_level(logging.DEBUG, logger="rfb.test")
    throttle = Throttle(logging.getLogger("rfb.test"))
    for i in range(5):
        throttle.warning("a", "refused %d", i)
    throttle.warning("b", "other")
    throttle.interval_s = 0.0  # the next one is due at once
    throttle.warning("a", "refused %d", 5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "refused 0; more are counted and logged at most once a minute",
        "other; more are counted and logged at most once a minute",
        "refused 5 (5 since the last such warning); more are counted and logged at most once a minute",
    ]
    assert throttle.counts == {"a": 6, "b": 1}
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 4
