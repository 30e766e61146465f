"""nvenc_gpu_pyav and the driver's rules for input memory: pitch, pool memory, minimum size.

FFmpeg's h264_nvenc registers a CUDA frame's own row stride as the NVENC pitch. A real
driver faults on a pitch that is a multiple of 4 but not of 16 (an 852-wide frame
packed tightly) and refuses stream-ordered pool memory; the NVENC emulator does both
(docs/nvenc_emulator.md, "Driver-strict rules"). So the route copies such frames into
a 256-byte-pitched buffer and wraps the others where they are.

Everywhere: FFmpeg drives the emulator in a child process (``pyav_on_the_emulator``:
the route's own encoder and decisions over host memory presented as CUDA memory, with
the test suite's stand-in libcuda). Each case runs twice, through the route and
with every frame handed to FFmpeg as it is (the control: what the emulator punishes).
On a GPU (``-m gpu``): the same through real CUDA memory, CuPy's default pool and its
``MemoryAsyncPool``, with a real libcuda answering the pointer queries.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rfb.encoders import h264, nvenc_gpu_pyav
from rfb.encoders.base import EncoderConfig, EncoderUnavailable
from rfb.encoders.nvenc_gpu_pyav import CudaFrameConverter, NvencGpuPyAVEncoder, PoolMemory
from rfb.frames import FrameError
from rfb.gpu import cuda_frame, gpu_available
from tests.encoders.pyav_on_the_emulator import nv12_pictures
from tests.gpu import FakeCudaArray, require_cupy
from tests.support.frames import decode
from tests.support.nvenc_fixtures import c_compiler, emulator_path, official_header_dir

__all__ = ["c_compiler", "emulator_path", "official_header_dir"]  # fixtures used below

ROOT = Path(__file__).resolve().parents[2]
PITCH = nvenc_gpu_pyav.PITCH_ALIGNMENT


def no_nvidia_driver() -> bool:
    return ctypes.util.find_library("nvidia-encode") is None and ctypes.util.find_library("cuda") is None


def run_on_the_emulator(width: int, height: int, mode: str, *extra: str) -> dict[str, Any]:
    """One case of ``pyav_on_the_emulator`` in a child process on the emulator and the stand-in libcuda."""
    from tests.latency.engine import emulated
    from tests.nvenc_emulator import EmulatorBuildError, HeaderUnavailable
    from tests.support.ci import unavailable

    if not no_nvidia_driver():
        pytest.skip("an NVIDIA driver is installed here: FFmpeg would not take the stand-in libcuda")
    try:
        engine = emulated(fake_cuda=True)
    except (EmulatorBuildError, HeaderUnavailable, OSError) as exc:
        unavailable(f"the NVENC emulator or the stand-in libcuda cannot be built: {exc}")
    env = {**os.environ, **engine.env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.encoders.pyav_on_the_emulator", str(width), str(height), mode, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_decodes_exactly(units_hex: list[str], pictures: list[np.ndarray], height: int) -> None:
    units = [bytes.fromhex(u) for u in units_hex]
    assert [h264.is_idr(u) for u in units] == [True] + [False] * (len(pictures) - 1)
    decoded = decode(units)
    assert len(decoded) == len(pictures)
    for picture, (y, u, v) in zip(pictures, decoded, strict=True):
        np.testing.assert_array_equal(y, picture[:height])
        np.testing.assert_array_equal(u, picture[height:, 0::2])
        np.testing.assert_array_equal(v, picture[height:, 1::2])


# ------------------------------------------------------------- FFmpeg into the emulator


@pytest.mark.parametrize(("width", "height"), [(852, 480), (1366, 768)])
def test_a_tightly_packed_frame_is_staged_at_a_256_byte_pitch_and_decodes_back(width: int, height: int) -> None:
    result = run_on_the_emulator(width, height, "route")
    assert result["error"] is None, result["error"]
    assert result["stats"] == {
        "zero_copy": 0,
        "staged": 3,
        "staged_pitch": 3,
        "staged_mempool": 0,
        "uploads": 0,
        "conversions": 0,
    }
    assert result["copies"] == 3
    ledger = result["ledger"]
    assert (ledger["encodes"], ledger["pitch_faults"], ledger["errors"], ledger["sessions"], ledger["leaked"]) == (
        3,
        0,
        0,
        0,
        0,
    )
    assert_decodes_exactly(result["units"], nv12_pictures(width, height), height)


def test_handed_over_as_it_is_an_852_wide_frame_faults_in_the_driver_and_poisons_the_session() -> None:
    result = run_on_the_emulator(852, 480, "as_is")
    assert result["units"] == [] and result["error"] is not None
    assert "registered pitch 852 is not a multiple of 16" in result["error"]
    ledger = result["ledger"]
    assert (ledger["pitch_faults"], ledger["poisoned_sessions"], ledger["encodes"]) == (1, 1, 0)


def test_handed_over_as_it_is_a_1366_wide_frame_is_refused_at_registration() -> None:
    result = run_on_the_emulator(1366, 768, "as_is")
    assert result["units"] == [] and result["error"] is not None
    assert "NV_ENC_ERR_INVALID_PARAM" in result["error"] and "pitch 1366 is not a multiple of 4" in result["error"]
    assert result["ledger"]["encodes"] == 0


def test_a_frame_at_a_256_byte_pitch_is_wrapped_where_it_is() -> None:
    result = run_on_the_emulator(1280, 720, "route")
    assert result["error"] is None, result["error"]
    assert result["stats"]["zero_copy"] == 3 and result["stats"]["staged"] == 0 and result["copies"] == 0
    assert (result["ledger"]["encodes"], result["ledger"]["errors"]) == (3, 0)
    assert_decodes_exactly(result["units"], nv12_pictures(1280, 720), 720)


def test_pool_memory_is_staged_and_decodes_back() -> None:
    result = run_on_the_emulator(1280, 720, "route", "mempool")
    assert result["error"] is None, result["error"]
    assert (result["stats"]["staged_mempool"], result["stats"]["zero_copy"], result["copies"]) == (3, 0, 3)
    assert (result["ledger"]["encodes"], result["ledger"]["errors"]) == (3, 0)
    assert_decodes_exactly(result["units"], nv12_pictures(1280, 720), 720)


def test_handed_over_as_it_is_pool_memory_is_refused_at_registration() -> None:
    result = run_on_the_emulator(1280, 720, "as_is", "mempool")
    assert result["error"] is not None and "NV_ENC_ERR_RESOURCE_REGISTER_FAILED" in result["error"]
    assert "stream-ordered pool memory" in result["error"]


# ------------------------------------------------------------- before FFmpeg sees a frame


@pytest.mark.parametrize(("width", "height"), [(144, 720), (1280, 48), (64, 48)])
def test_sizes_below_nvencs_minimum_are_refused_in_plain_words(width: int, height: int) -> None:
    with pytest.raises(EncoderUnavailable) as caught:
        nvenc_gpu_pyav.create(EncoderConfig(width, height))
    assert str(caught.value) == (
        f"nvenc_gpu_pyav encodes through NVENC, whose H.264 encoders take frames of at least 145x49 "
        f"(NV_ENC_CAPS_WIDTH_MIN/HEIGHT_MIN); got {width}x{height} "
        "(render larger, or use a CPU route such as h264_cpu for small frames)"
    )


def test_the_smallest_size_nvenc_takes_is_accepted_and_odd_sizes_still_say_so() -> None:
    with nvenc_gpu_pyav.create(EncoderConfig(146, 50)) as encoder:
        assert encoder.stats == {
            "zero_copy": 0,
            "staged": 0,
            "staged_pitch": 0,
            "staged_mempool": 0,
            "uploads": 0,
            "conversions": 0,
        }
    with pytest.raises(FrameError, match=r"needs an even, positive width and height; got 145x49"):
        nvenc_gpu_pyav.create(EncoderConfig(145, 49))


def test_a_refused_size_closes_the_converter_it_was_given() -> None:
    converter = CudaFrameConverter(0)
    with pytest.raises(EncoderUnavailable):
        NvencGpuPyAVEncoder(EncoderConfig(64, 48), converter=converter)
    assert converter.staging is None  # closed: its staging released


def test_the_staging_is_256_byte_pitched_plain_memory() -> None:
    converter = CudaFrameConverter(0)
    try:
        assert converter.staging is not None
        assert (converter.staging.pitch_alignment, converter.staging.plain_memory) == (256, True)
    finally:
        converter.close()


def test_without_a_driver_pool_memory_cannot_be_told_and_says_why() -> None:
    if gpu_available() is None:
        pytest.skip("a CUDA GPU is usable here")
    pools = PoolMemory()
    assert pools.in_pool(0x1000) is None
    assert pools.unavailable is not None


def test_a_frame_from_another_device_is_refused_before_any_pointer_query() -> None:
    class Asked(PoolMemory):
        def in_pool(self, pointer: int) -> bool | None:
            raise AssertionError("the pointer was queried")

    converter = CudaFrameConverter(0, pools=Asked())
    try:
        frame = cuda_frame(FakeCudaArray(np.zeros((720 * 3 // 2, 1280), np.uint8), device=1))
        with pytest.raises(FrameError, match=r"encoder runs on CUDA device 0, the frame lives on device 1"):
            converter.convert(frame)
        assert converter.zero_copy == 0 and converter.staged == {"pitch": 0, "mempool": 0}
    finally:
        converter.close()


def test_an_aligned_frame_asked_to_be_copied_is_not_handed_back_as_it_is() -> None:
    from rfb.gpu import DeviceStaging, GpuUnavailable
    from tests.gpu import skip_if_cupy_works

    skip_if_cupy_works()
    staging = DeviceStaging(("nv12",), pitch_alignment=PITCH)
    aligned = cuda_frame(FakeCudaArray(np.zeros((720 * 3 // 2, 1280), np.uint8)))
    assert staging.device_frame(aligned) is aligned
    with pytest.raises(GpuUnavailable, match="CuPy is not installed"):
        staging.device_frame(aligned, copy=True)  # the copy needs the GPU: it was attempted


# --------------------------------------------------------------------------- on a GPU


@pytest.mark.gpu
def test_the_driver_tells_pool_memory_from_plain_memory_and_staging_is_plain() -> None:
    reason = gpu_available()
    if reason is not None:
        pytest.skip(reason)
    cp = require_cupy()
    from rfb.gpu import DeviceStaging

    class Counting(PoolMemory):
        def __init__(self) -> None:
            super().__init__(0)
            self.asked: list[str] = []

        def _attribute(self, driver: Any, attribute: str, pointer: int) -> int | None:
            self.asked.append(attribute)
            return PoolMemory._attribute(driver, attribute, pointer)

    pools = Counting()
    plain = cp.zeros(1 << 20, cp.uint8)
    pooled = cp.cuda.MemoryAsyncPool().malloc(1 << 20)
    assert (pools.in_pool(plain.data.ptr), pools.in_pool(pooled.ptr), pools.in_pool(plain.data.ptr)) == (
        False,
        True,
        False,
    )
    assert pools.unavailable is None
    assert pools.asked.count("CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE") == 2  # once per allocation; BUFFER_ID every time
    previous = cp.cuda.get_allocator()
    cp.cuda.set_allocator(cp.cuda.MemoryAsyncPool().malloc)  # what an application may do
    try:
        frame = cuda_frame(cp.asarray(nv12_pictures(852, 480)[0]))
        assert pools.in_pool(frame.data.data.ptr) is True
        staging = DeviceStaging(("nv12",), pitch_alignment=PITCH, plain_memory=True)
        staged = staging.device_frame(frame, copy=True)
        assert staged.stride == 1024 and pools.in_pool(staged.data.data.ptr) is False
        np.testing.assert_array_equal(cp.asnumpy(staged.data), cp.asnumpy(frame.data))
        staging.close()
    finally:
        cp.cuda.set_allocator(previous)


GPU_RUN = r"""
import json, sys
import av, av.logging
import cupy as cp
import numpy as np
from rfb.encoders.base import EncoderConfig
from rfb.encoders.nvenc_gpu_pyav import create
from rfb.gpu import cuda_frame
from tests.encoders.pyav_on_the_emulator import nv12_pictures

width, height, memory, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
# async: every CuPy allocation from a stream-ordered pool, staging's too if it asked CuPy
if memory in ("async", "async-host"):
    cp.cuda.set_allocator(cp.cuda.MemoryAsyncPool().malloc)
pictures = nv12_pictures(width, height)
result = {"units": [], "stats": None, "error": None}
av.logging.set_level(av.logging.ERROR)
with av.logging.Capture() as logs:
    try:
        with create(EncoderConfig(width, height)) as encoder:
            for i, picture in enumerate(pictures):
                if memory == "async-host":
                    from rfb.frames import frame_from_array
                    frame = frame_from_array(picture, "nv12")
                else:
                    frame = cuda_frame(cp.asarray(picture))
                result["units"] += [p.data.hex() for p in encoder.encode(frame, force_keyframe=i == 0)]
            result["stats"] = encoder.stats
    except av.FFmpegError as exc:
        said = "; ".join(dict.fromkeys(m.strip() for _, _, m in logs if m.strip()))
        result["error"] = f"{type(exc).__name__}: {exc} [FFmpeg: {said}]"
with open(out, "w") as f:
    json.dump(result, f)
"""


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("width", "height", "memory", "expected"),
    [
        (852, 480, "cupy", {"staged_pitch": 3}),
        (1366, 768, "cupy", {"staged_pitch": 3}),
        (1280, 720, "cupy", {"zero_copy": 3}),
        (1280, 720, "async", {"staged_mempool": 3}),
        (852, 480, "async-host", {"uploads": 3}),
    ],
)
def test_cuda_memory_through_ffmpeg_into_the_emulator(
    emulator_path: Path, tmp_path: Path, width: int, height: int, memory: str, expected: dict[str, int]
) -> None:
    """Real device memory, a real libcuda: the pitch and pool verdicts are the driver's own answers."""
    reason = gpu_available()
    if reason is not None:
        pytest.skip(reason)
    require_cupy()
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(emulator_path.parent), env.get("LD_LIBRARY_PATH")]))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-c", GPU_RUN, str(width), str(height), memory, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0 and out.exists(), proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["error"] is None, result["error"]
    stats = {"zero_copy": 0, "staged_pitch": 0, "staged_mempool": 0, "uploads": 0, "conversions": 0, **expected}
    stats["staged"] = stats["staged_pitch"] + stats["staged_mempool"]
    assert result["stats"] == stats
    assert_decodes_exactly(result["units"], nv12_pictures(width, height), height)
