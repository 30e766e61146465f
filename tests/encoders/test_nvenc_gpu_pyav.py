"""The nvenc_gpu_pyav route (FFmpeg's h264_nvenc fed CUDA frames through PyAV).

Everywhere: the probe's reasons, and everything the route decides before FFmpeg sees a
frame (its settings, the deferred open, frame checks, flush and close). FFmpeg's NVENC
cannot run without CUDA, so the encode tests are ``gpu``-marked:

- against the NVENC emulator, in a subprocess whose ``LD_LIBRARY_PATH`` makes FFmpeg
  load it instead of the driver's library (FFmpeg finds ``libnvidia-encode.so.1`` by
  name); skipped with FFmpeg's own complaint if h264_nvenc asks for something the
  emulator does not answer;
- against a real NVENC where there is one (not on an H100, which has none).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rfb.benchmark import patterns
from rfb.encoders import h264, nvenc_cpu, nvenc_gpu_pyav
from rfb.encoders.base import EncoderBackend, EncoderConfig
from rfb.encoders.registry import get_entry
from rfb.frames import FrameError, RawFrame, frame_from_array
from rfb.gpu import GpuUnavailable, cuda_frame, gpu_available
from tests.gpu import FakeCudaArray, require_cupy, skip_if_cupy_works
from tests.support.frames import assert_stream_decodes, decode, layout_of

ROOT = Path(__file__).resolve().parents[2]
W, H = 256, 144


def nv12_host(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H * 3 // 2, W), dtype=np.uint8)


# ---------------------------------------------------------------- the entry and the probe


def test_entry_ranks_between_the_other_gpu_routes() -> None:
    (entry,) = nvenc_gpu_pyav.ENTRIES
    assert (entry.name, entry.transport, entry.reads_cuda, entry.probe) == (
        "nvenc_gpu_pyav",
        "webcodecs",
        True,
        nvenc_gpu_pyav.probe,
    )
    assert get_entry("nvenc_gpu_cffi").priority > entry.priority > get_entry("h264_gpu_nv12").priority


def test_probe_reason_without_a_gpu() -> None:
    if gpu_available() is None:
        pytest.skip("a CUDA GPU is usable here")
    reason = nvenc_gpu_pyav.probe()
    assert reason is not None
    assert reason.startswith("CUDA frames need a CUDA GPU: no NVIDIA driver (libcuda) could be loaded")


def test_probe_reports_a_missing_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvenc_gpu_pyav, "CODEC", "h264_no_such_encoder")
    assert nvenc_gpu_pyav.probe() == "this PyAV build has no h264_no_such_encoder encoder"


# ------------------------------------------------------- before FFmpeg sees a frame


def test_settings_are_nvenc_cpus_with_cuda_frames_and_no_session_until_the_first_frame() -> None:
    config = EncoderConfig(W, H, bitrate=6_000_000, fps=60)
    # Opening h264_nvenc needs the frames' hw_frames_ctx, so creating the encoder opens
    # nothing: it works even here, where FFmpeg could not load CUDA.
    with nvenc_gpu_pyav.create(config) as enc:
        assert isinstance(enc, EncoderBackend)
        assert (enc.name, enc.transport) == ("nvenc_gpu_pyav", "webcodecs")
        assert enc.settings.codec == "h264_nvenc" and enc.settings.pix_fmt == "cuda"
        assert enc.settings.open_with_first_frame
        assert enc.settings.options == nvenc_cpu.nvenc_settings(config).options
        assert enc.flush() == []  # nothing opened, nothing to drain
        assert enc.cuda_context_mode is None  # FFmpeg's CUDA device comes with the first frame
        assert enc.staging.buffers == {}


def test_wrong_frames_say_what_was_expected() -> None:
    with pytest.raises(FrameError, match=r"nvenc_gpu_pyav encodes 4:2:0 video .*got 255x144"):
        nvenc_gpu_pyav.create(EncoderConfig(255, H))
    nv12 = np.zeros((H * 3 // 2, W), np.uint8)
    with nvenc_gpu_pyav.create(EncoderConfig(W, H)) as enc:
        with pytest.raises(FrameError, match=r"nvenc_gpu_pyav was opened for 256x144 frames, got 64x48"):
            enc.encode(cuda_frame(FakeCudaArray(np.zeros((72, 64), np.uint8))))
        with pytest.raises(FrameError, match=r"cuda rgba8 frame needs uint8 data of shape \(144, 256, 4\)"):
            enc.encode(RawFrame(FakeCudaArray(nv12), W, H, "rgba8", "cuda"))
        with pytest.raises(FrameError, match=r"encoder runs on CUDA device 0, the frame lives on device 1"):
            enc.encode(cuda_frame(FakeCudaArray(nv12, device=1)))
        with pytest.raises(FrameError, match=r"expected a RawFrame, got ndarray"):
            enc.encode(nv12)  # type: ignore[arg-type]


def test_frames_without_cupy_say_why() -> None:
    skip_if_cupy_works()
    with nvenc_gpu_pyav.create(EncoderConfig(W, H)) as enc:
        for frame in (cuda_frame(FakeCudaArray(nv12_host(0))), frame_from_array(patterns.scene(W, H, 0))):
            with pytest.raises(GpuUnavailable, match="CuPy is not installed"):
                enc.encode(frame)


def test_close_releases_the_staging_and_is_idempotent() -> None:
    enc = nvenc_gpu_pyav.create(EncoderConfig(W, H))
    staging = enc.staging
    enc.close()
    enc.close()
    assert staging.closed
    with pytest.raises(RuntimeError, match="nvenc_gpu_pyav encoder is closed"):
        enc.encode(frame_from_array(patterns.scene(W, H, 0)))
    with pytest.raises(RuntimeError, match="is closed"):
        _ = enc.staging


# --------------------------------------------------------------------------- on a GPU

EMULATOR_RUN = r"""
import json, sys
import av.logging
import cupy as cp
import numpy as np
from rfb.encoders.base import EncoderConfig, EncoderUnavailable
from rfb.encoders.nvenc_gpu_pyav import create
from rfb.gpu import cuda_frame

width, height, out, share = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "share"
if share:  # before CuPy touches the GPU: the primary context gets the flags FFmpeg wants
    import rfb
    assert rfb.enable_cuda_context_sharing()
hosts = [np.random.default_rng(seed).integers(0, 256, (height * 3 // 2, width), dtype=np.uint8) for seed in range(3)]
result = {"units": [], "keyframes": [], "error": None, "context_mode": None}
av.logging.set_level(av.logging.ERROR)
with av.logging.Capture() as logs:
    try:
        with create(EncoderConfig(width, height)) as encoder:
            for i, host in enumerate(hosts):
                (payload,) = encoder.encode(cuda_frame(cp.asarray(host)), force_keyframe=i == 2)
                result["units"].append(payload.data.hex())
                result["keyframes"].append(payload.keyframe)
            result["context_mode"] = encoder.cuda_context_mode
    except (av.FFmpegError, EncoderUnavailable) as exc:  # FFmpeg refused: the parent skips with its complaint
        said = "; ".join(dict.fromkeys(m.strip() for _, _, m in logs if m.strip()))
        result["error"] = f"{type(exc).__name__}: {exc} [FFmpeg: {said}]"
with open(out, "w") as f:
    json.dump(result, f)
"""


@pytest.mark.gpu
@pytest.mark.parametrize(("sharing", "mode"), [("share", "primary_ctx"), ("late", "current_ctx")])
def test_cuda_nv12_through_ffmpeg_into_the_emulator_decodes_bit_exact(
    emulator_path: Path, tmp_path: Path, sharing: str, mode: str
) -> None:
    """With the context shared first FFmpeg retains the primary context; when CuPy got
    there first with other flags FFmpeg wraps it as the current one. Same pixels either way."""
    reason = gpu_available()
    if reason is not None:
        pytest.skip(reason)
    require_cupy()
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(emulator_path.parent), env.get("LD_LIBRARY_PATH")]))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-c", EMULATOR_RUN, str(W), str(H), str(out), sharing],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0 and out.exists(), proc.stderr[-4000:]
    result = json.loads(out.read_text())
    if result["error"] is not None:
        pytest.skip(f"FFmpeg's h264_nvenc does not run on the NVENC emulator: {result['error']}")
    units = [bytes.fromhex(u) for u in result["units"]]
    assert result["context_mode"] == mode
    assert result["keyframes"] == [True, False, True]
    assert [h264.is_idr(u) for u in units] == [True, False, True]
    for seed, (y, u, v) in enumerate(decode(units)):
        host = nv12_host(seed)
        np.testing.assert_array_equal(y, host[:H])
        np.testing.assert_array_equal(u, host[H:, 0::2])
        np.testing.assert_array_equal(v, host[H:, 1::2])


@pytest.fixture
def real_nvenc() -> None:
    reason = gpu_available() or nvenc_gpu_pyav.probe()
    if reason is not None:
        pytest.skip(f"nvenc_gpu_pyav unavailable: {reason}")


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["rgb24", "rgba8", "nv12", "host"])
def test_round_trip_on_a_real_nvenc(real_nvenc: None, layout: str) -> None:
    cp = require_cupy()
    w, h, n = 640, 360, 10
    sources = [patterns.scene(w, h, i) for i in range(n)]

    def frame_of(src: np.ndarray) -> RawFrame:
        if layout == "host":
            return frame_from_array(src)
        return cuda_frame(cp.asarray(layout_of(src, layout)), layout)

    with nvenc_gpu_pyav.create(EncoderConfig(w, h, bitrate=8_000_000)) as enc:
        payloads = [p for i, s in enumerate(sources) for p in enc.encode(frame_of(s), force_keyframe=i == 6)]
        staging = enc.staging
        assert staging.uploads == (n if layout == "host" else 0)
        assert staging.conversions == (0 if layout == "nv12" else n)
    assert_stream_decodes(payloads, sources, idr_at=(0, 6))


@pytest.mark.gpu
def test_sessions_are_released(real_nvenc: None) -> None:
    # Consumer GPUs allow few concurrent NVENC sessions: a leak shows up within a few dozen.
    cp = require_cupy()
    frame = cuda_frame(cp.asarray(nv12_host(0)))
    for _ in range(40):
        with nvenc_gpu_pyav.create(EncoderConfig(W, H)) as enc:
            (payload,) = enc.encode(frame)
            assert payload.keyframe
    assert nvenc_gpu_pyav.probe() is None


@pytest.mark.gpu
def test_on_a_gpu_without_nvenc_the_probe_gives_ffmpegs_reason() -> None:
    reason = gpu_available()
    if reason is not None:
        pytest.skip(reason)
    host_reason = nvenc_cpu.probe()
    if host_reason is None:
        pytest.skip("FFmpeg's h264_nvenc works here")
    assert nvenc_gpu_pyav.probe() == host_reason
    assert "nvenc" in host_reason.lower(), host_reason
