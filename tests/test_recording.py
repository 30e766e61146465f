"""Recordings (rfb/recording.py): the H.264 stream as sent, in fragmented MP4, decoded back with FFmpeg.

Real displays with the CPU H.264 route (libx264 through PyAV), real files, decoded
with FFmpeg's libraries through PyAV: frame counts, timestamps and pixels are checked
against what was published.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rfb.frames import frame_from_array
from rfb.recording import TIME_BASE, segment_path
from tests.conftest import wait_until

pytestmark = pytest.mark.timeout(120)

W, H = 320, 240
FPS = 30
T0_US = 5_000_000_000  # publish timestamps far from zero: the file must count from its first frame


def start_display(**options: Any) -> Any:
    from rfb.launch import start

    settings = {"host": "127.0.0.1", "port": 0, "fps": FPS, "token": secrets.token_urlsafe(12), "still_after": 0.05}
    settings.update(options)
    return start(W, H, **settings)


@pytest.fixture
def display() -> Iterator[Any]:
    from rfb.routes import resolve_routes

    if "webcodecs" not in resolve_routes(None, "image", gpu=False):
        pytest.skip("no H.264 route here (PyAV with libx264)")
    display = start_display()
    try:
        yield display
    finally:
        display.close()


def decode(path: Path) -> tuple[list[np.ndarray], list[int], Any]:
    """Every frame of the file as RGB, its pts in TIME_BASE units, and the stream."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base == TIME_BASE, stream.time_base
        frames, pts = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            pts.append(frame.pts)
        return frames, pts, stream


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def blocks(seed: int, count: int) -> list[np.ndarray]:
    """Frames of random 16x16 blocks: each unlike the others, yet easy for H.264 at our bitrate."""
    rng = np.random.default_rng(seed)
    return [
        np.repeat(np.repeat(rng.integers(0, 256, (H // 16, W // 16, 3), dtype=np.uint8), 16, 0), 16, 1)
        for _ in range(count)
    ]


def publish_paced(display: Any, frames: list[np.ndarray], timestamps: list[int]) -> None:
    """Publish at FPS, each frame once its predecessor was encoded (so none is skipped as stale)."""
    period = 1 / FPS
    start = time.monotonic()
    encoded = display.stats.groups["webcodecs"].frames_encoded
    for i, (array, ts) in enumerate(zip(frames, timestamps, strict=True)):
        display.publish(frame_from_array(array, timestamp_us=ts))
        wait_until(
            lambda n=encoded + i + 1: display.stats.groups["webcodecs"].frames_encoded >= n, what=f"frame {i} encoded"
        )
        time.sleep(max(0.0, start + (i + 1) * period - time.monotonic()))


def test_five_seconds_of_the_demo_scene_decode_to_what_was_published(display, tmp_path):
    from rfb.demo import Scene

    scene = Scene(W, H)
    count = 5 * FPS
    frames = [scene.render(i / FPS) for i in range(count)]
    timestamps = [T0_US + round(i * 1_000_000 / FPS) for i in range(count)]
    assert "webcodecs" not in display.stats.groups  # no video viewer: the group runs for the recording alone
    path = tmp_path / "run.mp4"
    with display.record(path) as recording:
        wait_until(lambda: "webcodecs" in display.stats.groups, what="the H.264 group")
        publish_paced(display, frames, timestamps)
        wait_until(lambda: recording.frames == count, what=f"{count} frames written, got {recording.frames}")
    assert not recording.recording and recording.files == [path] and recording.gaps == 0

    decoded, pts, stream = decode(path)
    assert (stream.codec_context.width, stream.codec_context.height) == (W, H)
    assert len(decoded) == count, f"expected {count} frames, got {len(decoded)}"
    assert pts == [round((ts - T0_US) * 90_000 / 1_000_000) for ts in timestamps]
    for i, picture in enumerate(decoded):
        assert psnr(picture, frames[i]) > 30, f"frame {i}: {psnr(picture, frames[i]):.1f} dB"
        if 0 < i < count - 1:  # it is this frame, not a neighbour: the scene moves between frames
            assert psnr(picture, frames[i]) > max(psnr(picture, frames[i - 1]), psnr(picture, frames[i + 1]))
    stills = display.stats.stills
    assert stills.sent == 0, stills  # the recorder takes no stills


def test_a_size_change_starts_a_new_segment(display, tmp_path):
    big = blocks(3, 10)
    small = [np.ascontiguousarray(f[::2, ::2]) for f in big]
    recording = display.record(tmp_path / "run.mp4")
    wait_until(lambda: "webcodecs" in display.stats.groups, what="the H.264 group")
    publish_paced(display, big, [T0_US + i * 33_333 for i in range(10)])
    publish_paced(display, small, [T0_US + (10 + i) * 33_333 for i in range(10)])
    wait_until(lambda: recording.frames == 20, what="20 frames written")
    assert display.stop_recording() is recording and display.stop_recording() is None
    assert recording.files == [tmp_path / "run.mp4", tmp_path / "run-001.mp4"]
    assert segment_path(tmp_path / "run.mp4", 2) == tmp_path / "run-002.mp4"
    for path, published, size in zip(recording.files, (big, small), ((W, H), (W // 2, H // 2)), strict=True):
        decoded, pts, stream = decode(path)
        assert (stream.codec_context.width, stream.codec_context.height) == size
        assert len(decoded) == 10 and pts[0] == 0, (path, len(decoded), pts)
        assert all(psnr(d, p) > 30 for d, p in zip(decoded, published, strict=True))


def test_one_recording_at_a_time(display, tmp_path):
    with display.record(tmp_path / "a.mp4"):
        with pytest.raises(RuntimeError, match="already recording to .*a.mp4"):
            display.record(tmp_path / "b.mp4")
    display.record(tmp_path / "b.mp4").stop()


def test_a_writer_that_falls_behind_leaves_a_gap_that_starts_at_a_keyframe(display, tmp_path, monkeypatch):
    from rfb.recording import Recording

    release = threading.Event()
    write = Recording._write

    def slow_write(self: Recording, payload: Any, timestamp_us: int) -> None:
        release.wait(30)  # a disk that stalls
        write(self, payload, timestamp_us)

    monkeypatch.setattr(Recording, "_write", slow_write)
    frames = blocks(4, 12)
    recording = display.record(tmp_path / "gap.mp4", queue_size=2)
    wait_until(lambda: "webcodecs" in display.stats.groups, what="the H.264 group")
    publish_paced(display, frames[:8], [T0_US + i * 33_333 for i in range(8)])
    assert recording.gaps == 1
    release.set()
    wait_until(lambda: recording._queue.empty(), what="the writer caught up")
    publish_paced(display, frames[8:], [T0_US + i * 33_333 for i in range(8, 12)])
    wait_until(lambda: display.stats.groups["webcodecs"].keyframes >= 2, what="the requested keyframe")
    recording.stop()
    decoded, pts, _ = decode(recording.files[0])
    # The first units (one being written, two queued) then, after the gap, from the requested IDR on.
    assert 4 <= len(decoded) < 12 and pts == sorted(set(pts)), pts
    assert psnr(decoded[-1], frames[-1]) > 30


CHILD = """
import sys, time, numpy as np
from rfb.launch import start
display = start({w}, {h}, host="127.0.0.1", port=0, fps=30)
display.record(sys.argv[1], fragment_s=0.2)
rng = np.random.default_rng(5)
i = 0
while True:
    display.publish(np.repeat(np.repeat(rng.integers(0, 256, ({h} // 16, {w} // 16, 3), dtype=np.uint8), 16, 0), 16, 1))
    i += 1
    print(i, flush=True)
    time.sleep(1 / 30)
"""


def test_a_killed_process_leaves_a_playable_file(display, tmp_path):
    path = tmp_path / "crash.mp4"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(w=W, h=H), str(path)], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if int(line) >= 45:  # about 1.5 s: several 0.2 s fragments written
                break
        time.sleep(0.3)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    decoded, pts, _ = decode(path)
    assert len(decoded) >= 10, f"expected the fragments written before the kill, got {len(decoded)} frames"
    assert pts == sorted(set(pts))


@pytest.mark.gpu
def test_cuda_frames_on_a_gpu_display_record_what_was_published(tmp_path):
    """The lead runs this on a GPU: the route ``gpu=True`` picks (h264_gpu_nv12 without NVENC) is recorded."""
    from tests.gpu import require_cupy

    cp = require_cupy()
    display = start_display(gpu=True)
    try:
        frames = blocks(6, 30)
        recording = display.record(tmp_path / "gpu.mp4")
        wait_until(lambda: "webcodecs" in display.stats.groups, what="the H.264 group")
        period = 1 / FPS
        encoded = display.stats.groups["webcodecs"].frames_encoded
        for i, array in enumerate(frames):
            display.publish(cp.asarray(array))
            wait_until(
                lambda n=encoded + i + 1: display.stats.groups["webcodecs"].frames_encoded >= n,
                what=f"frame {i} encoded",
            )
            time.sleep(period)
        wait_until(lambda: recording.frames == len(frames), what="every frame written")
        recording.stop()
        assert display.stats.groups["webcodecs"].cuda_frames >= len(frames)
    finally:
        display.close()
    decoded, pts, _ = decode(recording.files[0])
    assert len(decoded) == len(frames) and pts == sorted(set(pts))
    assert all(psnr(d, f) > 30 for d, f in zip(decoded, frames, strict=True))


def test_a_recorder_is_not_held_to_the_inflight_window(test_encoders):
    """Even unacked, a member that is not paced receives every frame (the recorder acks late, never skips)."""
    from rfb.display import FrameStore
    from rfb.encoders.registry import get_entry
    from rfb.fanout import FanOut

    store = FrameStore(own_frames=False)
    fanout = FanOut(
        {"webcodecs": [get_entry("test-h264")]}, frames=store, post=lambda callback: callback(), max_inflight=1
    )
    got: list[tuple[bytes, int]] = []
    try:
        fanout.join(0, "webcodecs", lambda payload, seq, message: got.append((payload.data[:1], seq)), paced=False)
        for i in range(5):
            store.put(frame_from_array(np.full((48, 64, 3), i, np.uint8)))
            fanout.wake()
            wait_until(lambda n=i + 1: len(got) == n, what=f"frame {i} delivered")
        assert [kind for kind, _ in got] == [b"I", b"P", b"P", b"P", b"P"]
    finally:
        fanout.close()


def test_closing_the_display_finishes_the_recording(tmp_path):
    from rfb.routes import resolve_routes

    if "webcodecs" not in resolve_routes(None, "image", gpu=False):
        pytest.skip("no H.264 route here (PyAV with libx264)")
    display = start_display()
    try:
        recording = display.record(tmp_path / "closed.mp4")
        wait_until(lambda: "webcodecs" in display.stats.groups, what="the H.264 group")
        publish_paced(display, blocks(7, 5), [T0_US + i * 33_333 for i in range(5)])
        wait_until(lambda: recording.frames == 5, what="5 frames written")
    finally:
        display.close()
    assert not recording.recording and not recording._thread.is_alive()
    assert len(decode(recording.files[0])[0]) == 5
