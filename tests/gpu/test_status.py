"""Availability decided by encoding: the NVENC routes' trial, the registry's per-device
probes, ``rfb.gpu.gpu_encode_status`` and ``cuda_zerocopy_available``.

Everywhere: with no NVIDIA driver at all, and against the NVENC emulator (its library
loaded through ``NVENCFFI_LIBRARY``, host memory standing in for device memory with a
``NullContext``), which encodes real H.264 that FFmpeg decodes back; so the trial's
verdicts (picture back, wrong picture, driver error, no engine) are the real ones.

On a GPU (``-m gpu``): the status of the real device, and the emulator fed CuPy memory.
"""

from __future__ import annotations

import ctypes.util
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import nvencffi
from rfb.benchmark import patterns
from rfb.colorspace import rgb_to_nv12
from rfb.encoders import h264_cpu, nvenc_gpu_cffi, registry, trial
from rfb.encoders.base import EncodedPayload, EncoderConfig
from rfb.encoders.image import ImageEncoder
from rfb.frames import frame_from_array
from rfb.gpu import GpuEncodeStatus, cuda_frame, cuda_zerocopy_available, gpu_encode_status
from rfb.gpu.status import GPU_ROUTES, ZERO_COPY_NVENC_ROUTES
from rfb.routes import resolve_routes
from tests.support.frames import HostCudaArray
from tests.support.nvenc_fixtures import assert_released, c_compiler, emulator, emulator_path, official_header_dir

__all__ = ["c_compiler", "emulator", "emulator_path", "official_header_dir"]  # fixtures used below

W, H = trial.TRIAL_SIZE


def no_nvidia_driver() -> bool:
    return ctypes.util.find_library("nvidia-encode") is None and ctypes.util.find_library("cuda") is None


def trial_frame(picture: np.ndarray | None = None) -> Any:
    """The trial's picture (or another) as host NV12 presented as CUDA memory, for the emulator."""
    rgb = trial.reference_picture(W, H) if picture is None else picture
    return cuda_frame(HostCudaArray(rgb_to_nv12(rgb)))


@pytest.fixture
def fresh_probes() -> Iterator[None]:
    """Forget cached probe answers before and after (they depend on the library loaded)."""
    with registry.temporary_routes(probes=False):
        yield


def put_entry(entry: registry.EncoderEntry) -> None:
    """Make ``entry`` the registered route of its name (its cached probe answers forgotten)."""
    registry.REGISTRY.register_entry(entry, replace=True)


@pytest.fixture
def swap_probe() -> Iterator[Any]:
    """Replace a built-in route's probe for one test (keeping the rest of its entry); restored after."""
    originals: dict[str, registry.EncoderEntry] = {}

    def swap(name: str, probe: Any) -> None:
        entry = registry.get_entry(name)
        originals.setdefault(name, entry)
        put_entry(dataclasses.replace(entry, probe=probe))

    yield swap
    for entry in originals.values():
        put_entry(entry)


class CountingProbe:
    """A device-aware probe that records which devices it was asked about."""

    def __init__(self, answers: dict[int, str | None]) -> None:
        self.answers = answers
        self.asked: list[int] = []

    def __call__(self, device_id: int = 0) -> str | None:
        self.asked.append(device_id)
        return self.answers.get(device_id, f"nothing on device {device_id}")


# ---------------------------------------------------------------- the trial's verdicts


def test_the_trial_accepts_a_route_whose_frame_decodes_back(emulator) -> None:
    assert nvenc_gpu_cffi.trial_encode(context=nvencffi.NullContext(), frame=trial_frame()) is None
    ledger = emulator.ledger()
    assert (ledger["sessions_opened"], ledger["encodes"], ledger["idr_frames"]) == (1, 1, 1)
    assert_released(emulator)


def test_without_cupy_the_trial_frame_says_so() -> None:
    from tests.gpu import skip_if_cupy_works

    skip_if_cupy_works()
    with pytest.raises(
        trial.TrialFrameUnavailable, match=r"^the trial frame could not be put on CUDA device 0: .*CuPy"
    ):
        trial.cuda_trial_frame(0)


def test_the_trial_is_a_realistic_size() -> None:
    assert (W, H) == (1280, 720)  # above every generation's NV_ENC_CAPS_WIDTH_MIN/HEIGHT_MIN


def test_a_frame_of_another_size_is_refused_with_both_sizes(emulator) -> None:
    small = cuda_frame(HostCudaArray(rgb_to_nv12(trial.reference_picture(64, 48))))
    reason = nvenc_gpu_cffi.trial_encode(context=nvencffi.NullContext(), frame=small)
    assert reason is not None and "opened for 1280x720 frames, got 64x48" in reason
    assert_released(emulator)


def test_a_route_that_encodes_another_picture_is_not_available(emulator) -> None:
    emulator.set_no_pixel_work(True)  # every picture comes out flat grey, validly encoded
    reason = nvenc_gpu_cffi.trial_encode(context=nvencffi.NullContext(), frame=trial_frame())
    assert reason is not None
    assert reason.startswith(
        "NVENC encoded a 1280x720 cuda nv12, pitch 1280 frame, but frame 0 decoded to another picture"
    )
    assert "expected at least 20" in reason
    assert_released(emulator)


def test_a_frame_the_route_read_wrongly_is_caught(emulator) -> None:
    # The trial compares with the picture it means to send: a frame holding another one fails.
    reason = nvenc_gpu_cffi.trial_encode(context=nvencffi.NullContext(), frame=trial_frame(patterns.noise(W, H)))
    assert reason is not None and "decoded to another picture" in reason


def test_a_driver_error_during_the_encode_is_named_with_the_drivers_status(emulator) -> None:
    emulator.inject_fault("nvEncEncodePicture", "NV_ENC_ERR_ENCODER_BUSY")
    reason = nvenc_gpu_cffi.trial_encode(context=nvencffi.NullContext(), frame=trial_frame())
    assert reason is not None
    assert reason.startswith("NVENC opened a session but did not encode a 1280x720 cuda nv12, pitch 1280 frame: ")
    assert "nvEncEncodePicture" in reason and "NV_ENC_ERR_ENCODER_BUSY" in reason
    assert_released(emulator)


def test_a_gpu_without_an_engine_is_named_with_the_drivers_status(emulator) -> None:
    emulator.set_unsupported_device(True)  # what an H100/H200 answers
    reason = nvenc_gpu_cffi.trial_encode(context=nvencffi.NullContext(), frame=trial_frame())
    assert reason is not None and reason.startswith("NVENC cannot encode here: ")
    assert "has no NVENC video encode engine" in reason and "NV_ENC_ERR_UNSUPPORTED_DEVICE" in reason
    assert emulator.ledger()["sessions"] == 0


# FFmpeg's h264_nvenc (the nvenc_cpu route) on the emulator: FFmpeg loads libnvidia-encode
# and libcuda by name, so a child process gets the emulator and the test suite's stand-in
# libcuda (tests/support/standin_libcuda.c) through LD_LIBRARY_PATH; the emulator's state is set in the child.
NVENC_CPU_PROBE = """
import sys
from rfb.encoders import nvenc_cpu
from tests.nvenc_emulator import Emulator, build_emulator
emulator = Emulator(build_emulator())
emulator.reset()
getattr(emulator, sys.argv[1])(True) if len(sys.argv) > 1 else None
print(repr(nvenc_cpu.probe(0)))
print(emulator.ledger()["encodes"], emulator.ledger()["sessions"])
"""


def probe_nvenc_cpu_on_the_emulator(*setting: str) -> tuple[str | None, int, int]:
    """(nvenc_cpu.probe(), encodes, sessions left open) in a child process on the emulator."""
    import ast
    import os
    import subprocess
    import sys

    from tests.latency.engine import emulated
    from tests.nvenc_emulator import EmulatorBuildError, HeaderUnavailable
    from tests.support.ci import unavailable
    from tests.support.nvenc_header import ROOT

    try:
        engine = emulated(fake_cuda=True)
    except (EmulatorBuildError, HeaderUnavailable, OSError) as exc:
        unavailable(f"the NVENC emulator or the stand-in libcuda cannot be built: {exc}")
    env = {**os.environ, **engine.env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", NVENC_CPU_PROBE, *setting],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reason_line, counts = proc.stdout.strip().splitlines()[-2:]
    encodes, sessions = (int(v) for v in counts.split())
    return ast.literal_eval(reason_line), encodes, sessions


def test_nvenc_cpu_is_available_when_ffmpegs_nvenc_encodes_a_frame_that_decodes_back() -> None:
    if not no_nvidia_driver():
        pytest.skip("an NVIDIA driver is installed here: FFmpeg would not take the stand-in libcuda")
    reason, encodes, sessions = probe_nvenc_cpu_on_the_emulator()
    assert reason is None
    assert (encodes, sessions) == (1, 0)  # one frame encoded, the session closed


def test_nvenc_cpu_whose_frame_comes_back_as_another_picture_is_not_available() -> None:
    if not no_nvidia_driver():
        pytest.skip("an NVIDIA driver is installed here: FFmpeg would not take the stand-in libcuda")
    reason, encodes, sessions = probe_nvenc_cpu_on_the_emulator("set_no_pixel_work")
    assert reason is not None and reason.startswith(
        "FFmpeg's h264_nvenc encoded a 1280x720 cpu nv12, pitch 1280 frame, but frame 0 decoded to another picture"
    )
    assert (encodes, sessions) == (1, 0)


def test_nvenc_cpu_on_a_gpu_without_an_engine_gives_ffmpegs_words() -> None:
    if not no_nvidia_driver():
        pytest.skip("an NVIDIA driver is installed here: FFmpeg would not take the stand-in libcuda")
    reason, encodes, _ = probe_nvenc_cpu_on_the_emulator("set_unsupported_device")
    assert reason is not None and reason.startswith("FFmpeg's h264_nvenc could not open a session: ")
    assert "unsupported device" in reason and encodes == 0


def encode_x264(frames: list[np.ndarray], *, force_first: bool = True) -> list[EncodedPayload]:
    with h264_cpu.create(EncoderConfig(160, 96)) as encoder:
        out = []
        for index, rgb in enumerate(frames):
            out += encoder.encode(frame_from_array(rgb), force_keyframe=force_first and index == 0)
        return out + encoder.flush()


def test_check_h264_passes_a_real_stream_and_names_what_is_wrong_with_others() -> None:
    pictures = [patterns.scene(160, 96, i) for i in range(3)]
    payloads = encode_x264(pictures)
    assert trial.check_h264(payloads, pictures) is None
    assert trial.check_h264(payloads[1:], pictures[1:]) == "the first access unit is not an IDR"
    assert trial.check_h264(payloads[:2], pictures) == "expected 3 access unit(s) for 3 frame(s), got 2"
    swapped = [pictures[0], patterns.noise(160, 96), pictures[2]]
    reason = trial.check_h264(payloads, swapped)
    assert reason is not None and reason.startswith("frame 1 decoded to another picture (PSNR ")
    garbage = [EncodedPayload(b"\x00\x00\x00\x01\x65" + bytes(64), True, 160, 96, "webcodecs")]
    reason = trial.check_h264(garbage, pictures[:1])
    assert reason is not None and ("refused" in reason or "made 0 picture(s)" in reason), reason


def test_check_image_decodes_jpeg() -> None:
    picture = patterns.scene(160, 96, 0)
    with ImageEncoder(EncoderConfig(160, 96, quality=90)) as encoder:
        payloads = encoder.encode(frame_from_array(picture))
    assert trial.check_image(payloads, [picture]) is None
    assert trial.check_image(payloads, [patterns.noise(160, 96)]).startswith("frame 0 decoded to another picture")
    bad = [EncodedPayload(b"\xff\xd8not a jpeg", True, 160, 96, "image")]
    assert trial.check_image(bad, [picture]).startswith("the image does not decode: ")


# ---------------------------------------------------------------- per-device probes


def test_probes_that_take_a_device_are_asked_about_that_device_and_cached_per_device(swap_probe, fresh_probes) -> None:
    probe = CountingProbe({0: None, 1: "device 1 has no engine"})
    swap_probe("nvenc_gpu_cffi", probe)
    assert registry.probe_entry(registry.get_entry("nvenc_gpu_cffi"), device_id=0) is None
    assert registry.probe_entry(registry.get_entry("nvenc_gpu_cffi"), device_id=1) == "device 1 has no engine"
    assert registry.probe_entry(registry.get_entry("nvenc_gpu_cffi"), device_id=1) == "device 1 has no engine"
    assert probe.asked == [0, 1]  # the second answer for device 1 came from the cache
    registry.probe_entry(registry.get_entry("nvenc_gpu_cffi"), device_id=1, refresh=True)
    assert probe.asked == [0, 1, 1]


def test_probes_without_a_device_argument_still_answer_for_any_device(swap_probe, fresh_probes) -> None:
    calls = []
    swap_probe("nvenc_gpu_pyav", lambda: calls.append("asked") or "machine-wide answer")
    assert registry.probe_entry(registry.get_entry("nvenc_gpu_pyav"), device_id=3) == "machine-wide answer"
    assert calls == ["asked"]


def test_a_display_on_device_1_probes_device_1(swap_probe, fresh_probes) -> None:
    probe = CountingProbe({1: None})
    swap_probe("nvenc_gpu_cffi", probe)
    routes = resolve_routes(None, None, gpu=True, device_id=1)
    assert routes["webcodecs"][0].name == "nvenc_gpu_cffi"
    assert set(probe.asked) == {1}
    routes = resolve_routes(None, None, gpu=True, device_id=0)
    assert routes["webcodecs"][0].name != "nvenc_gpu_cffi" and 0 in probe.asked


def test_the_builtin_nvenc_probes_take_the_device() -> None:
    import inspect

    from rfb.encoders import nvenc_cpu, nvenc_gpu_pyav

    for probe in (nvenc_gpu_cffi.probe, nvenc_gpu_pyav.probe, nvenc_cpu.probe):
        assert "device_id" in inspect.signature(probe).parameters, probe


def test_the_cffi_route_refuses_a_frame_from_another_device_naming_both(emulator) -> None:
    from rfb.encoders.nvenc_gpu_cffi import NvencGpuEncoder
    from rfb.frames import FrameError

    frame = cuda_frame(HostCudaArray(rgb_to_nv12(trial.reference_picture(320, 240))), device_id=0)
    with NvencGpuEncoder(EncoderConfig(320, 240, device_id=1), context=nvencffi.NullContext()) as encoder:
        with pytest.raises(FrameError, match="the encoder runs on CUDA device 1, the frame lives on device 0"):
            encoder.encode(frame)
    assert emulator.ledger()["encodes"] == 0
    assert_released(emulator)


def test_nvenc_cpu_asks_ffmpeg_for_the_configured_gpu() -> None:
    from rfb.encoders import nvenc_cpu

    assert nvenc_cpu.nvenc_settings(EncoderConfig(64, 48, device_id=2)).options["gpu"] == "2"


# ---------------------------------------------------------------- gpu_encode_status


def test_without_any_driver_every_gpu_route_is_listed_with_its_reason(monkeypatch, fresh_probes) -> None:
    if not no_nvidia_driver():
        pytest.skip("an NVIDIA driver is installed here")
    monkeypatch.delenv("NVENCFFI_LIBRARY", raising=False)
    nvencffi.reset_library()
    status = gpu_encode_status()
    assert isinstance(status, GpuEncodeStatus) and status.device_id == 0
    assert [r.name for r in status.routes] == list(GPU_ROUTES)
    assert status.working == [] and not status.zero_copy
    for route in status.routes:
        assert not route.available and route.reason, route
    assert status.route("nvenc_gpu_cffi").reason.startswith(
        "NVENC cannot encode here: could not load the NVENC library 'libnvidia-encode.so.1'"
    )
    assert "no NVIDIA driver (libcuda) could be loaded" in status.route("h264_gpu_nv12").reason
    assert cuda_zerocopy_available() is False
    text = str(status)
    assert all(f"  {name}: unavailable: " in text for name in GPU_ROUTES)
    data = status.as_dict()
    assert data["working"] == [] and data["zero_copy"] is False
    assert [r["name"] for r in data["routes"]] == list(GPU_ROUTES)
    assert set(data["routes"][0]) == {"name", "available", "reason", "transport", "zero_copy_nvenc"}


def test_with_the_emulator_but_no_cuda_the_reason_moves_past_the_library(emulator, fresh_probes) -> None:
    if not no_nvidia_driver():
        pytest.skip("an NVIDIA driver is installed here")
    reason = gpu_encode_status().route("nvenc_gpu_cffi").reason
    assert reason is not None and "could not load the NVENC library" not in reason  # the library loaded
    assert reason.startswith("NVENC cannot encode here: no CUDA driver")
    assert not cuda_zerocopy_available()


def test_status_is_cached_per_device_until_refreshed(swap_probe, fresh_probes) -> None:
    probe = CountingProbe({0: None})
    swap_probe("nvenc_gpu_cffi", probe)
    assert gpu_encode_status(0).route("nvenc_gpu_cffi").available
    assert cuda_zerocopy_available(0) is True
    assert not gpu_encode_status(1).route("nvenc_gpu_cffi").available
    assert cuda_zerocopy_available(1) is False
    assert probe.asked == [0, 1]
    gpu_encode_status(0, refresh=True)
    assert probe.asked == [0, 1, 0]


def test_zero_copy_means_an_nvenc_route_not_any_gpu_route(swap_probe, fresh_probes) -> None:
    for name in GPU_ROUTES:
        swap_probe(name, (lambda: None) if name not in ZERO_COPY_NVENC_ROUTES else (lambda: "no engine"))
    status = gpu_encode_status()
    assert status.working == ["h264_gpu_nv12", "h264_cuda", "jpeg_gpu"]
    assert status.zero_copy is False and cuda_zerocopy_available() is False
    assert status.route("nvenc_gpu_pyav").reason == "no engine"


def test_an_unregistered_route_is_reported_not_raised(fresh_probes) -> None:
    entry = registry.get_entry("jpeg_gpu")
    registry.unregister_video_encoder("jpeg_gpu")
    try:
        route = gpu_encode_status().route("jpeg_gpu")
        assert not route.available and route.reason.startswith("not registered")
    finally:
        put_entry(entry)
    with pytest.raises(KeyError, match="is not a GPU route"):
        gpu_encode_status().route("h264_cpu")


# ---------------------------------------------------------------- on a GPU


@pytest.mark.gpu
def test_the_real_device_status(fresh_probes) -> None:
    from tests.gpu import require_cupy

    require_cupy()
    status = gpu_encode_status(0)
    assert "h264_gpu_nv12" in status.working, status  # CuPy and libx264 are all it needs
    for route in status.routes:
        assert route.available or route.reason, route
    assert status.zero_copy == any(status.route(n).available for n in ZERO_COPY_NVENC_ROUTES)
    assert cuda_zerocopy_available(0) == status.zero_copy
    reason = status.route("nvenc_gpu_cffi").reason
    if reason is not None and "UNSUPPORTED_DEVICE" in reason:  # a GPU without NVENC (H100, H200)
        assert "has no NVENC video encode engine" in reason
        assert not status.zero_copy


@pytest.mark.gpu
def test_the_emulator_fed_device_memory_makes_the_cffi_route_available(emulator, fresh_probes) -> None:
    from tests.gpu import require_cupy

    require_cupy()
    assert nvenc_gpu_cffi.probe(0) is None  # nvencffi.probe, then one CuPy NV12 frame encoded and decoded back
    assert emulator.ledger()["encodes"] >= 1
    assert gpu_encode_status(0, refresh=True).route("nvenc_gpu_cffi").available
    assert cuda_zerocopy_available(0) is True
    assert_released(emulator)
