"""The real NVIDIA driver, and the emulator fed real GPU memory (``gpu`` marker).

What can run where:

- Here (no GPU, no driver): everything below skips, saying so.
- On an H100/H200 (the GPU machine): the real libnvidia-encode loads, negotiates the API
  version and fills the function table; opening a session fails with
  NV_ENC_ERR_UNSUPPORTED_DEVICE, which must reach the caller as NvencUnavailable in plain
  words, and probe() must end at its "session" step. The emulator then stands in for the
  engine while reading REAL device memory (CuPy, PyTorch through __cuda_array_interface__,
  JAX through DLPack), through the real primary context: pixel-exact decodes and zero copy
  are checked there, and the real pointer attributes (cuPointerGetAttributes: device,
  context, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, CU_POINTER_ATTRIBUTE_BUFFER_ID) decide
  what is registered in place and what is staged (CuPy's MemoryAsyncPool, PyTorch's
  cudaMallocAsync backend, unaligned pitches).
- On a GPU with an NVENC engine (none available to us): test_real_encode_decodes_back
  encodes CuPy frames with the hardware and decodes them back. It has never run.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nvencffi
from nvencffi._ffi import ffi
from nvencffi.library import ENV_LIBRARY, REQUIRED_FUNCTIONS
from tests.support.nvenc_fixtures import assert_released

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[2]
# GPUs NVIDIA ships without an NVENC engine (data-centre compute parts).
NO_NVENC_GPUS = ("H100", "H200", "A100", "A30", "H800", "A800")


def _loadable(name: str) -> bool:
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


HAS_CUDA = _loadable("libcuda.so.1")
HAS_NVENC_LIBRARY = _loadable("libnvidia-encode.so.1")
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no NVIDIA GPU/driver here (libcuda.so.1 cannot be loaded)")


@pytest.fixture
def real_library(monkeypatch: pytest.MonkeyPatch):
    if not HAS_NVENC_LIBRARY:
        pytest.skip(
            "no NVIDIA driver here: libnvidia-encode.so.1 cannot be loaded (these tests run on the GPU machine)"
        )
    monkeypatch.delenv(ENV_LIBRARY, raising=False)
    nvencffi.reset_library()
    yield nvencffi.load_library()
    nvencffi.reset_library()


def _gpu_lacks_nvenc(name: str | None) -> bool:
    return bool(name) and any(model in name for model in NO_NVENC_GPUS)


def test_the_real_library_negotiates_and_fills_the_function_table(real_library) -> None:
    assert real_library.max_api_version >= (12, 1)
    assert real_library.path == "libnvidia-encode.so.1"
    for name in REQUIRED_FUNCTIONS:
        assert getattr(real_library.functions, name) != ffi.NULL, name


def test_opening_a_session_on_this_gpu(real_library) -> None:
    context = nvencffi.PrimaryContext(0)
    try:
        result = nvencffi.probe(0)
        assert result.max_api_version == real_library.max_api_version
        assert result.gpu_name == context.gpu_name
        if not _gpu_lacks_nvenc(context.gpu_name):
            assert result.available, result.reason
            return
        assert (result.available, result.step) == (False, "session")
        assert f"this GPU ({context.gpu_name}) has no NVENC video encode engine" in result.reason
        assert "fall back" in result.reason
        with pytest.raises(nvencffi.NvencUnavailable) as info:
            nvencffi.NvencEncoder(1280, 720, context=context)
        assert info.value.name in ("NV_ENC_ERR_UNSUPPORTED_DEVICE", "NV_ENC_ERR_NO_ENCODE_DEVICE")
        assert "has no NVENC video encode engine" in str(info.value)
    finally:
        context.close()


def test_real_encode_decodes_back(real_library) -> None:
    cp = pytest.importorskip("cupy")
    av = pytest.importorskip("av")
    result = nvencffi.probe(0)
    if not result.available:
        pytest.skip(
            f"{result.gpu_name or 'this GPU'} cannot encode ({result.reason}); on a GPU with an NVENC "
            "engine this test encodes CuPy NV12 and RGBA frames and decodes them back"
        )
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:240, 0:320]
    rgba = np.stack([x % 256, y % 256, (x + y) % 256, np.full_like(x, 255)], axis=-1).astype(np.uint8)
    frames = [cp.asarray(np.roll(rgba, shift, axis=1)) for shift in range(0, 40, 4)]
    assert result.size == (1280, 720) and result.caps is not None
    with nvencffi.NvencEncoder(320, 240, bitrate=4_000_000, fps=30) as enc:
        units = [enc.encode(f) for f in frames]
        assert enc.last_picture_type is not None
    codec = av.CodecContext.create("h264", "r")
    decoded = [f.to_ndarray(format="rgb24") for u in units for f in codec.decode(av.Packet(u))]
    decoded += [f.to_ndarray(format="rgb24") for f in codec.decode(None)]
    assert len(decoded) == len(frames)
    error = np.abs(decoded[-1].astype(int) - cp.asnumpy(frames[-1])[..., :3]).mean()
    assert error < 12, error  # lossy, but the picture must be the one we sent
    del rng


# ------------------------------------------------- the emulator on real GPU memory


@pytest.fixture
def gpu_emulator(emulator):
    if not HAS_CUDA:
        pytest.skip("no NVIDIA GPU/driver here (libcuda.so.1 cannot be loaded)")
    return emulator


def _decode(units: list[bytes]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from tests.nvencffi.test_encoder import decode

    return decode(units)


def _assert_nv12_roundtrip(host: np.ndarray, width: int, height: int, planes) -> None:
    y, u, v = planes
    np.testing.assert_array_equal(y, host[:height, :width])
    np.testing.assert_array_equal(u, host[height:, 0:width:2])
    np.testing.assert_array_equal(v, host[height:, 1:width:2])


def test_emulator_reads_cupy_device_memory_in_place(gpu_emulator) -> None:
    cp = pytest.importorskip("cupy")
    host = [np.random.default_rng(s).integers(0, 256, (432, 768), dtype=np.uint8) for s in range(3)]
    storage = cp.asarray(host[0])
    frame = storage[:, :640]  # 640x288 NV12 with a 768-byte pitch (3 x 256), on the device
    with nvencffi.NvencEncoder(640, 288) as enc:  # the device's real primary context
        assert enc.gpu_name
        units = [enc.encode(frame)]
        assert [k[0] for k in enc.registrations] == [frame.data.ptr]  # zero copy: its own pointer
        for h in host[1:]:
            storage.set(h)  # same allocation, new pixels
            units.append(enc.encode(frame))
        assert len(enc.registrations) == 1
        assert gpu_emulator.ledger()["registered"] == 1
        assert enc.registration_stats["staged"] == 0
    for h, planes in zip(host, _decode(units), strict=True):
        _assert_nv12_roundtrip(h, 640, 288, planes)
    assert_released(gpu_emulator)


def test_emulator_reads_cupy_rgba(gpu_emulator) -> None:
    cp = pytest.importorskip("cupy")
    from rfb.colorspace import rgb_to_nv12

    y, x = np.mgrid[0:480, 0:852]
    rgba = np.stack([x % 256, y % 256, (x + y) % 256, np.full_like(x, 255)], axis=-1).astype(np.uint8)
    with nvencffi.NvencEncoder(852, 480) as enc:
        unit = enc.encode(cp.asarray(rgba))  # pitch 3408: not a multiple of 256, staged
        assert enc.registration_stats["staged_pitch"] == 1
    ((yy, u, _),) = _decode([unit])
    expected = rgb_to_nv12(rgba[..., :3])
    assert np.abs(yy.astype(int) - expected[:480]).max() <= 2
    assert np.abs(u.astype(int) - expected[480:, 0::2]).max() <= 3
    assert_released(gpu_emulator)


def test_emulator_reads_torch_through_cai(gpu_emulator) -> None:
    torch = pytest.importorskip("torch")
    host = np.random.default_rng(7).integers(0, 256, (432, 512), dtype=np.uint8)
    tensor = torch.from_numpy(host).cuda()
    with nvencffi.NvencEncoder(512, 288) as enc:
        unit = enc.encode(tensor)
        if enc.registration_stats["staged_mempool"]:  # torch runs with its cudaMallocAsync backend here
            assert enc.registrations == []
        else:
            assert [k[0] for k in enc.registrations] == [tensor.data_ptr()]
    (planes,) = _decode([unit])
    _assert_nv12_roundtrip(host, 512, 288, planes)
    assert_released(gpu_emulator)


def test_emulator_reads_jax_through_dlpack(gpu_emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    jax = pytest.importorskip("jax")
    host = np.random.default_rng(9).integers(0, 256, (432, 512), dtype=np.uint8)
    array = jax.device_put(host, jax.devices("gpu")[0])

    class OnlyDLPack:  # hide any __cuda_array_interface__: exercise the DLPack path
        def __dlpack__(self, **kwargs):
            return array.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return array.__dlpack_device__()

    with nvencffi.NvencEncoder(512, 288) as enc:
        unit = enc.encode(OnlyDLPack())
    (planes,) = _decode([unit])
    _assert_nv12_roundtrip(host, 512, 288, planes)


@needs_cuda
def test_context_flags_apply_only_before_the_context_is_active() -> None:
    code = (
        "import nvencffi, cupy\n"
        "from cuda.bindings import driver\n"
        "print(nvencffi.set_context_flags(0, blocking_sync=True))\n"
        "cupy.zeros(1)  # activates the primary context\n"
        "err, flags = driver.cuCtxGetFlags()\n"
        "print(int(flags) & 7)\n"
        "print(nvencffi.set_context_flags(0, blocking_sync=False))\n"
        "print(nvencffi.set_context_flags(0, blocking_sync=True))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    if "No module named 'cupy'" in proc.stderr:
        pytest.skip("CuPy is not installed")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "4", "False", "True"]  # 4: CU_CTX_SCHED_BLOCKING_SYNC


def _device_count() -> int:
    from cuda.bindings import driver

    driver.cuInit(0)
    err, count = driver.cuDeviceGetCount()
    assert err == driver.CUresult.CUDA_SUCCESS
    return int(count)


@needs_cuda
def test_primary_context_memory_work_round_trips() -> None:
    """allocate, memset, copy_2d (cuMemcpy2DAsync), free and pointer_info through cuda-python."""
    from cuda.bindings import driver

    context = nvencffi.PrimaryContext(0)
    try:
        src = context.allocate(300 * 40)
        dst = context.allocate(512 * 40)
        try:
            context.memset(src, 0x11, 300 * 40)
            context.memset(dst, 0x00, 512 * 40)
            with context.pushed():
                context.copy_2d(dst, 512, src, 300, 300, 40, None)
            context.synchronize_stream(0)
            host = np.empty((40, 512), np.uint8)
            with context.pushed():
                (err,) = driver.cuMemcpyDtoH(host.ctypes.data, driver.CUdeviceptr(dst), host.nbytes)
            assert err == driver.CUresult.CUDA_SUCCESS
            assert (host[:, :300] == 0x11).all() and (host[:, 300:] == 0).all()
            info = context.pointer_info(src + 100)
            assert (info.kind, info.device, info.context, info.mempool) == ("device", 0, context.handle, False)
            assert info.start == src and info.size >= 300 * 40 and info.buffer_id > 0
            with context.pushed():  # buffer_id() is the per-frame query: it expects the context current
                assert context.buffer_id(src) == info.buffer_id != context.buffer_id(dst)
        finally:
            context.free(src)
            context.free(dst)
        with context.pushed():
            assert context.buffer_id(src) is None or context.buffer_id(src) != info.buffer_id
    finally:
        context.close()


def test_cupy_memory_async_pool_is_staged_not_registered(gpu_emulator) -> None:
    cp = pytest.importorskip("cupy")
    pool = cp.cuda.MemoryAsyncPool()
    host = np.random.default_rng(3).integers(0, 256, (1080, 1280), dtype=np.uint8)
    previous = cp.cuda.get_allocator()
    cp.cuda.set_allocator(pool.malloc)
    try:
        frame = cp.asarray(host)  # 1280x720 NV12, pitch 1280 (aligned): only the pool is wrong
    finally:
        cp.cuda.set_allocator(previous)
    cp.cuda.Device().synchronize()
    context = nvencffi.PrimaryContext(0)
    try:
        info = context.pointer_info(frame.data.ptr)
        assert info.mempool, info  # CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE is not NULL
        with nvencffi.NvencEncoder(1280, 720, context=context) as enc:
            units = [enc.encode(frame), enc.encode(frame)]
            stats = enc.registration_stats
            assert (stats["staged_mempool"], stats["cached"]) == (2, 0)
        assert gpu_emulator.ledger()["errors"] == 0  # never offered to nvEncRegisterResource
    finally:
        context.close()
    for planes in _decode(units):
        _assert_nv12_roundtrip(host, 1280, 720, planes)
    assert_released(gpu_emulator)


def test_cupy_default_pool_memory_is_registered_and_reallocation_is_noticed(gpu_emulator) -> None:
    cp = pytest.importorskip("cupy")
    pool = cp.get_default_memory_pool()
    first = cp.full((1080, 1280), 17, dtype=cp.uint8)
    context = nvencffi.PrimaryContext(0)
    try:
        assert context.pointer_info(first.data.ptr).mempool is False
        with nvencffi.NvencEncoder(1280, 720, context=context) as enc:
            units = [enc.encode(first)]
            with context.pushed():
                address, old_id = first.data.ptr, context.buffer_id(first.data.ptr)
            assert [k[0] for k in enc.registrations] == [address]
            del first
            pool.free_all_blocks()  # cudaFree: the registration's allocation is gone
            second = cp.full((1080, 1280), 99, dtype=cp.uint8)
            units.append(enc.encode(second))
            stats = enc.registration_stats
            if second.data.ptr == address:  # the driver handed the address out again
                with context.pushed():
                    assert context.buffer_id(address) != old_id
                assert (stats["stale"], stats["misses"]) == (1, 2)
            else:
                assert stats["misses"] == 2
        assert gpu_emulator.ledger()["stale_registrations"] == 0
    finally:
        context.close()
    lumas = [planes[0] for planes in _decode(units)]
    assert (lumas[0] == 17).all() and (lumas[1] == 99).all()
    assert_released(gpu_emulator)


def test_torch_cuda_malloc_async_backend_is_staged(gpu_emulator) -> None:
    pytest.importorskip("torch")
    code = (
        "import numpy as np, torch, nvencffi\n"
        "from tests.support.frames import decode\n"
        "host = np.random.default_rng(4).integers(0, 256, (1080, 1280), dtype=np.uint8)\n"
        "t = torch.from_numpy(host).cuda()\n"
        "with nvencffi.NvencEncoder(1280, 720) as enc:\n"
        "    unit = enc.encode(t)\n"
        "    stats = enc.registration_stats\n"
        "(y, u, v), = decode([unit])\n"
        "print(torch.cuda.get_allocator_backend(), stats['staged_mempool'], stats['cached'],"
        " bool((y == host[:720]).all() and (u == host[720:, 0::2]).all()))\n"
    )
    env = {
        **os.environ,
        "PYTORCH_CUDA_ALLOC_CONF": "backend:cudaMallocAsync",
        ENV_LIBRARY: str(gpu_emulator.path),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["cudaMallocAsync", "1", "0", "True"]


@needs_cuda
def test_probe_probes_the_device_asked_for(real_library) -> None:
    count = _device_count()
    result = nvencffi.probe(count)  # one past the last device
    assert (result.available, result.step) == (False, "cuda")
    assert f"CUDA device {count} requested; this machine has {count} CUDA device(s)" in result.reason
    if count > 1:
        other = nvencffi.PrimaryContext(1)
        try:
            assert nvencffi.probe(1).gpu_name == other.gpu_name
        finally:
            other.close()


def test_a_frame_on_another_device_is_refused(gpu_emulator) -> None:
    cp = pytest.importorskip("cupy")
    if _device_count() < 2:
        pytest.skip("one CUDA device here: a frame on another device needs two")
    with cp.cuda.Device(1):
        frame = cp.zeros((1080, 1280), dtype=cp.uint8)
    with nvencffi.NvencEncoder(1280, 720, device=0) as enc:
        with pytest.raises(nvencffi.FrameDeviceError, match="runs on CUDA device 0.*lives on device 1"):
            enc.encode(frame)
    assert_released(gpu_emulator)
