"""The command line, run as users run it: ``python -m rfb ...`` in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
import pytest

from rfb import protocol
from rfb.benchmark.metrics import H264Decoder, decode_image
from rfb.cli import EXIT_RUNTIME, EXIT_USAGE, build_parser, parse_size
from rfb.demo_command import describe_routes, gpu_problem, one_line
from rfb.doctor import format_report, summary_line
from rfb.network import bind_problem, lan_urls, network_warnings

ROOT = Path(__file__).resolve().parents[1]
DEMO_SIZE = (320, 240)


def run_rfb(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rfb", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


# ---------------------------------------------------------------- doctor


def test_doctor_lists_every_route_with_its_reason_and_exits_0():
    result = run_rfb("doctor")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[ok] h264_cpu" in out, out
    assert "[ok] image" in out, out
    for fact in ("python", "pyav", "nvidia_smi", "libcuda", "cuda_devices"):
        assert f"\n  {fact} " in out, f"{fact} missing from:\n{out}"
    assert "Traceback" not in result.stderr


def test_doctor_ends_with_what_serve_picks_here():
    from rfb.encoders.registry import select_encoder

    result = run_rfb("doctor")
    last = result.stdout.rstrip("\n").splitlines()[-1]
    video, image = select_encoder(None, transport="webcodecs").name, select_encoder(None, transport="image").name
    assert last.startswith(f"here: {video} + {image}"), last
    gpu = (
        select_encoder(None, transport="webcodecs", gpu=True).name,
        select_encoder(None, transport="image", gpu=True).name,
    )
    assert ("with gpu=True" in last) == (gpu != (video, image)), last


def test_doctor_exits_1_when_no_route_can_run():
    code = (
        "import sys, rfb\n"
        "from rfb.cli import main\n"
        "for name in [s.name for s in rfb.encoder_status()]: rfb.unregister_video_encoder(name)\n"
        "sys.exit(main(['doctor']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == EXIT_RUNTIME, result.stderr
    assert result.stdout.rstrip("\n").splitlines()[-1] == "here: no route can run (see the reasons above)"


@pytest.mark.parametrize(
    ("here", "line"),
    [
        (
            {"video": "h264_cpu", "image": "image", "gpu_video": "h264_cpu", "gpu_image": "image"},
            "here: h264_cpu + image",
        ),
        (
            {"video": "h264_cpu", "image": "image", "gpu_video": "h264_gpu_nv12", "gpu_image": "jpeg_gpu"},
            "here: h264_cpu + image; with gpu=True: h264_gpu_nv12 + jpeg_gpu",
        ),
        (
            {"video": None, "image": "image", "gpu_video": None, "gpu_image": "image"},
            "here: image only (no H.264 route: every browser gets images)",
        ),
    ],
)
def test_doctor_summary_line(here, line):
    assert summary_line(here) == line


def test_doctor_json_matches_encoder_status():
    from rfb import encoder_status

    result = run_rfb("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    routes = {e["name"]: e for e in report["encoders"]}
    expected = {s.name: s for s in encoder_status(refresh=True)}
    assert set(routes) == set(expected)
    for name, status in expected.items():
        assert routes[name]["available"] == status.available, name
        assert routes[name]["transport"] == status.transport, name
        if not status.available:
            assert routes[name]["reason"], f"{name} is unavailable but doctor gives no reason"
    assert routes["h264_cpu"]["available"] and routes["image"]["available"]
    env = report["environment"]
    assert env["pyav"]["version"] == av.__version__
    assert "libx264" in env["pyav"]["h264_encoders"]


def test_doctor_text_explains_an_unavailable_route():
    report = {
        "rfb": "0",
        "encoders": [
            {
                "name": "fast",
                "available": False,
                "reason": "no GPU here",
                "transport": "webcodecs",
                "priority": 9,
                "reads_cuda": True,
                "description": "a GPU route",
            },
            {
                "name": "slow",
                "available": True,
                "reason": None,
                "transport": "image",
                "priority": 0,
                "reads_cuda": False,
                "description": "",
            },
        ],
        "environment": {"python": "3.11", "pyav": {"version": "1"}},
    }
    text = format_report(report)
    assert "[--] fast" in text and "unavailable: no GPU here" in text
    assert "[ok] slow" in text and "unavailable" not in text.split("[ok] slow", 1)[1]


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("text", "size"), [("1280x720", (1280, 720)), ("64X48", (64, 48)), (" 320 x 240 ", (320, 240))]
)
def test_parse_size_accepts_width_x_height(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [("1280", "expected WIDTHxHEIGHT"), ("641x480", "641x480"), ("8x8", "between 16 and 8192"), ("axb", "'axb'")],
)
def test_parse_size_rejects_with_what_arrived(text, message):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse_size(text)


def test_demo_defaults_and_options():
    args = build_parser().parse_args(["demo"])
    assert (args.size, args.port, args.host, args.fps, args.no_token, args.encoder) == (
        (1280, 720),
        8765,
        "127.0.0.1",
        30.0,
        False,
        None,
    )
    args = build_parser().parse_args(["demo", "--port", "0", "--size", "320x240", "--fps", "12", "--no-token"])
    assert (args.port, args.size, args.fps, args.no_token) == (0, (320, 240), 12.0, True)


def test_demo_gpu_option_parses_and_defaults_off():
    assert build_parser().parse_args(["demo"]).gpu is False
    args = build_parser().parse_args(["demo", "--gpu", "--encoder", "h264_cpu"])
    assert args.gpu is True and args.encoder == "h264_cpu"
    assert args.image_encoder == "image", "--gpu keeps the default, which serve(gpu=True) resolves to jpeg_gpu"


def test_demo_gpu_without_a_gpu_or_cupy_fails_in_one_line_and_starts_nothing():
    problem = gpu_problem()
    if problem is None:
        pytest.skip("a CUDA device and CuPy are usable here: --gpu starts")
    from rfb.gpu import cupy_available, gpu_available

    result = run_rfb("demo", "--gpu", "--port", "0")
    assert result.returncode == EXIT_RUNTIME, result.stderr
    assert result.stdout == "", "no URL: nothing was started"
    assert result.stderr.splitlines() == [f"rfb demo: error: --gpu needs {problem}"], result.stderr
    reason = gpu_available() or cupy_available()
    assert reason and one_line(reason) in result.stderr


class RoutesOnly:
    """What describe_routes reads of a Display."""

    def __init__(self, routes: dict[str, str]) -> None:
        self.routes = routes


def test_describe_routes_names_both_routes_and_why_gpu_fell_back():
    from rfb import encoder_status

    statuses = encoder_status()
    blocked = [s for s in statuses if s.reads_cuda and s.transport == "webcodecs" and not s.available]
    cpu = RoutesOnly({"webcodecs": "h264_cpu", "image": "image", "png": "image"})
    assert describe_routes(cpu, gpu=False) == "routes: video h264_cpu, image image"
    line = describe_routes(cpu, gpu=True)
    assert line.startswith("gpu=True; routes: video h264_cpu (CPU")
    assert "\n" not in line, "one log line, even where a reason spans lines"
    image_blocked = [s for s in statuses if s.reads_cuda and s.transport == "image" and not s.available]
    for status in image_blocked:
        assert "image image (CPU; gpu=True fell back: " in line and one_line(status.reason) in line, line
    for status in blocked:
        assert f"{status.name}: {one_line(status.reason)}" in line, line
    if not blocked:  # every GPU video route runs here: h264_cpu was asked for by name
        assert "video h264_cpu (CPU)," in line
    named = describe_routes(cpu, gpu=True, named=["webcodecs"])  # --gpu --encoder h264_cpu: a choice, not a fallback
    assert named.startswith("gpu=True; routes: video h264_cpu (CPU), image "), named
    gpu = RoutesOnly({"webcodecs": "h264_gpu_nv12", "image": "jpeg_gpu"})
    assert describe_routes(gpu, gpu=True) == "gpu=True; routes: video h264_gpu_nv12 (GPU), image jpeg_gpu (GPU)"
    assert describe_routes(RoutesOnly({"webcodecs": "h264_cpu"}), gpu=False) == "routes: video h264_cpu, image none"


def test_demo_with_an_unknown_encoder_fails_in_one_line():
    from rfb import encoder_status

    result = run_rfb("demo", "--port", "0", "--encoder", "no-such-encoder")
    assert result.returncode == EXIT_USAGE
    registered = sorted(s.name for s in encoder_status())
    assert result.stderr.splitlines() == [
        "rfb demo: error: --encoder no-such-encoder: no encoder named 'no-such-encoder'; "
        f"registered: {registered} (rfb doctor says which run here)"
    ], result.stderr


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (("--encoder", "image"), "use --image-encoder image"),
        (("--image-encoder", "h264_cpu"), "use --encoder h264_cpu"),
    ],
)
def test_demo_points_a_route_of_the_other_kind_to_its_option(args, hint):
    result = run_rfb("demo", "--port", "0", *args)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1 and hint in result.stderr, result.stderr


def test_demo_help_lists_the_controls():
    from rfb.demo import CONTROLS

    result = run_rfb("demo", "--help")
    assert result.returncode == 0
    for what, does in CONTROLS:
        assert f"  {what}" in result.stdout and does in result.stdout, result.stdout
    assert "click the picture first" in result.stdout


def test_demo_on_a_taken_port_names_it_and_suggests_port_0():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_rfb("demo", "--port", str(port))
    assert result.returncode == EXIT_RUNTIME, result.stderr
    assert result.stdout == ""
    error = [line for line in result.stderr.splitlines() if "error" in line]
    assert error == [
        f"rfb demo: error: port {port} is already in use on 127.0.0.1 (another rfb demo?): "
        "choose another with --port N, or --port 0 for any free port"
    ], result.stderr
    assert "Traceback" not in result.stderr


def test_bind_problems_name_the_address_and_what_to_try():
    import errno

    assert "--port 0" in bind_problem(OSError(errno.EACCES, "Permission denied"), "127.0.0.1", 80)
    assert "127.0.0.1:80" in bind_problem(OSError(errno.EACCES, "Permission denied"), "127.0.0.1", 80)
    message = bind_problem(OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), "10.9.9.9", 8765)
    assert "'10.9.9.9' is not an address of this machine" in message and "10.9.9.9:8765" in message


def test_lan_addresses_are_this_machines_own_non_loopback_ipv4_addresses():
    import ipaddress
    import socket

    from rfb.network import lan_addresses

    addresses = lan_addresses()
    for address in addresses:
        parsed = ipaddress.ip_address(address)
        assert parsed.version == 4 and not parsed.is_loopback, address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))  # only an address of this machine can be bound (nothing is sent)


def test_lan_urls_and_warnings_say_where_to_connect_and_what_a_lan_page_gets(monkeypatch):
    from rfb import network

    url = "http://127.0.0.1:8765/?token=abc"
    assert lan_urls(url, "127.0.0.1") == [] and network_warnings(url, "127.0.0.1", token=False) == []
    assert network_warnings(url, "localhost", token=False) == []
    monkeypatch.setattr(network, "lan_addresses", lambda: ["192.0.2.7", "198.51.100.3"])
    assert lan_urls(url, "0.0.0.0") == ["http://192.0.2.7:8765/?token=abc", "http://198.51.100.3:8765/?token=abc"]
    (warning,) = network_warnings(url, "0.0.0.0", token=True)
    assert "not a secure context" in warning and "JPEG" in warning and "ssh -L 8765:127.0.0.1:8765" in warning
    lan = "http://192.0.2.7:9000/"
    assert lan_urls(lan, "192.0.2.7") == [], "the URL printed already is the LAN one"
    warnings = network_warnings(lan, "192.0.2.7", token=False)
    assert "ssh -L 9000:127.0.0.1:9000" in warnings[0]
    assert warnings[1] == "--no-token on a network address: anyone who can reach this port can watch and steer the view"
    monkeypatch.setattr(network, "lan_addresses", lambda: [])
    assert lan_urls(url, "0.0.0.0") == ["http://<this machine's address>:8765/?token=abc"]


# ---------------------------------------------------------------- demo, end to end


class Demo:
    """``python -m rfb demo`` on a free port; the URL is its first stdout line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rfb", "demo", "--port", "0", "--size", "x".join(map(str, DEMO_SIZE)), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.stderr: list[str] = []
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        line = self._first_line(timeout=30)
        parts = urlsplit(line)
        assert parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.port, line
        self.url = line
        self.port = parts.port
        self.token = parse_qs(parts.query).get("token", [None])[0]

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _first_line(self, timeout: float) -> str:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not box or not box[0]:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"demo printed no URL within {timeout} s; stderr: {''.join(self.stderr)}")
        return box[0].strip()

    def interrupt(self, timeout: float = 20) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"demo did not stop on SIGINT; stderr: {''.join(self.stderr)}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def demo() -> Iterator[Demo]:
    running = Demo()
    try:
        yield running
    finally:
        running.kill()


async def receive_frames(port: int, token: str | None, supported: list[str], count: int, events=()) -> list:
    """Connect like a viewer, send ``events`` after the first frame, return ``count`` payloads."""
    from websockets.asyncio.client import connect

    hello = {"type": "hello", "supported": supported}
    if token is not None:
        hello["token"] = token
    payloads = []
    async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None, open_timeout=10) as ws:
        await ws.send(json.dumps(hello))
        while len(payloads) < count:
            message = await asyncio.wait_for(ws.recv(), 10)
            if isinstance(message, str):
                continue
            header, payload = protocol.unpack_payload(message)
            payloads.append((header, payload))
            await ws.send(json.dumps({"type": "ack", "seq": header["seq"]}))
            if len(payloads) == 1:
                for event in events:
                    await ws.send(json.dumps({"type": "event", "event": event}))
    return payloads


def test_demo_streams_h264_that_decodes_and_stops_cleanly_on_sigint(demo):
    payloads = asyncio.run(receive_frames(demo.port, demo.token, [protocol.H264_ANNEXB], count=5))
    wait_for_log(demo, "viewer 1 left the webcodecs group after ")
    headers = [h for h, _ in payloads]
    assert all(h["type"] == "video_chunk" for h in headers)
    assert headers[0]["keyframe"] and headers[0]["codec"].startswith("avc1.")
    with H264Decoder() as decoder:
        frames = decoder.decode_all(p for _, p in payloads)
    assert len(frames) >= 1 and frames[0].shape == (DEMO_SIZE[1], DEMO_SIZE[0], 3)
    assert frames[0].std() > 10, "the demo scene is not a flat picture"
    assert demo.interrupt() == 0, "".join(demo.stderr)
    assert "Traceback" not in "".join(demo.stderr)
    assert demo.token not in "".join(demo.stderr), "the URL (and its token) is printed once, on stdout"
    assert demo.proc.stdout.read() == "", "the URL is printed once"


def test_demo_reacts_to_a_pointer_press(demo):
    from rfb.demo import BLOB_COLOURS

    press = {"type": "pointerdown", "x": 100.0, "y": 100.0, "button": 0, "buttons": 1, "modifiers": []}
    payloads = asyncio.run(receive_frames(demo.port, demo.token, [protocol.IMAGE_JPEG], count=12, events=[press]))
    assert all(h["type"] == "image_frame" and h["mime"] == "image/jpeg" for h, _ in payloads)
    first = decode_image(payloads[0][1])
    last = decode_image(payloads[-1][1])
    assert first.shape == (DEMO_SIZE[1], DEMO_SIZE[0], 3)
    probe = (112, 112)  # inside the new blob, off the crosshair through (100, 100)
    blob = np.array(BLOB_COLOURS[0])
    assert np.abs(last[probe[1], probe[0]].astype(int) - blob).max() <= 24, last[probe[1], probe[0]]
    assert np.abs(first[probe[1], probe[0]].astype(int) - blob).max() > 24, "the blob was there before the press"
    assert demo.interrupt() == 0


def test_demo_without_token_accepts_a_viewer_without_one():
    running = Demo("--no-token")
    try:
        assert running.token is None and "token=" not in running.url
        payloads = asyncio.run(receive_frames(running.port, None, [protocol.IMAGE_JPEG], count=1))
        assert payloads[0][0]["type"] == "image_frame"
        assert running.interrupt() == 0
        assert "--no-token on a network address" not in "".join(running.stderr), "127.0.0.1 is not a network"
    finally:
        running.kill()


def test_demo_on_every_interface_warns_about_the_lan_page_and_the_missing_token():
    running = Demo("--host", "0.0.0.0", "--no-token")  # the viewer below connects through loopback only
    try:
        payloads = asyncio.run(receive_frames(running.port, None, [protocol.IMAGE_JPEG], count=1))
        assert payloads[0][0]["type"] == "image_frame"
        log = wait_for_log(running, "--no-token on a network address")
        assert "from other machines: http://" in log and f":{running.port}/" in log, log
        assert "not a secure context" in log and "JPEG" in log, log
        assert running.interrupt() == 0
    finally:
        running.kill()


# ---------------------------------------------------------------- demo --gpu, on a GPU machine


@pytest.mark.gpu
@pytest.mark.timeout(60)
def test_demo_gpu_streams_jpegs_from_cuda_frames_and_names_its_routes():
    """``demo --gpu``: CUDA frames to a gpu=True display; an image viewer gets JPEGs that
    decode, from jpeg_gpu where it can run (the group's log line names the encoder built)."""
    problem = gpu_problem()
    if problem is not None:
        pytest.skip(f"demo --gpu needs {problem}")
    from rfb import encoder_status

    jpeg_gpu = {s.name: s for s in encoder_status()}["jpeg_gpu"]
    running = Demo("--gpu")
    try:
        payloads = asyncio.run(receive_frames(running.port, running.token, [protocol.IMAGE_JPEG], count=3))
        assert all(h["type"] == "image_frame" and h["mime"] == "image/jpeg" for h, _ in payloads)
        picture = decode_image(payloads[-1][1])
        assert picture.shape == (DEMO_SIZE[1], DEMO_SIZE[0], 3)
        assert picture.std() > 10, "the demo scene is not a flat picture"
        size = "x".join(map(str, DEMO_SIZE))
        expected = "jpeg_gpu" if jpeg_gpu.available else "image"
        built = wait_for_log(running, f"image group: encoder {expected} built for {size}")
        assert "gpu=True; routes: video " in built, built
        if jpeg_gpu.available:
            assert "image jpeg_gpu (GPU)" in built, built
        else:
            assert f"image image (CPU; gpu=True fell back: jpeg_gpu: {one_line(jpeg_gpu.reason)}" in built, built
        assert running.interrupt() == 0, "".join(running.stderr)
        assert "Traceback" not in "".join(running.stderr)
    finally:
        running.kill()


def wait_for_log(running: Demo, text: str, timeout: float = 5.0) -> str:
    """The demo's stderr so far, once it contains ``text`` (its reader thread may lag the socket)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        log = "".join(running.stderr)
        if text in log:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {text!r} in the demo's log within {timeout} s, got:\n{log}")
        time.sleep(0.05)
