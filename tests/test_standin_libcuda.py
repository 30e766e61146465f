"""The test suite's stand-in libcuda (tests/support/standin_libcuda.c): what each of its users relies on.

FFmpeg's h264_nvenc (tests/latency, tests/encoders/pyav_on_the_emulator.py,
tests/gpu/test_status.py) relies on one device of compute capability 8.9, contexts it
can create, retain, push and pop, and CUDA_ERROR_NOT_SUPPORTED for everything that needs
a GPU. The NVENC emulator relies on never being told that a pointer is device memory, so
that it reads every surface as host memory. nvencffi's tests (standin_calls.py,
bench_overhead.py) rely on cuda-python binding through cuGetProcAddress_v2, on the call
counters and on the one described range. Those users' own tests run the whole paths;
these pin the library's answers.

The library is loaded here by its path, in this process; its state is the process's, so
each test sets what it reads. The emulator's view needs a child process: it dlopen()s
``libcuda.so.1`` by name.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.nvenc_emulator import require_build, require_emulator
from tests.support.nvenc_header import ROOT
from tests.support.standin_libcuda import build_standin_libcuda, ld_library_path

NOT_SUPPORTED, INVALID_VALUE, INVALID_DEVICE, INVALID_CONTEXT, INVALID_HANDLE, NOT_FOUND = 801, 1, 101, 201, 400, 500
MEMORY_TYPE, CONTEXT, BUFFER_ID, DEVICE_ORDINAL, RANGE_START, RANGE_SIZE = 2, 1, 7, 9, 11, 12


@pytest.fixture(scope="module")
def path() -> Path:
    return require_build(build_standin_libcuda, "the stand-in libcuda")


def _real_driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def cuda(path: Path) -> Any:
    if _real_driver_present():
        # Loaded into this process, a second libcuda.so.1 could answer a later
        # dlopen("libcuda.so.1") in place of the driver; the stand-in is for machines
        # without one, and its users' tests run it in child processes there.
        pytest.skip("an NVIDIA driver (libcuda.so.1) is installed: the stand-in is not loaded beside it")
    lib = ctypes.CDLL(str(path))
    lib.standin_describe.argtypes = [ctypes.c_ulonglong] * 3
    lib.standin_calls.restype = ctypes.c_longlong
    lib.cuPointerGetAttribute.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_ulonglong]
    lib.cuPointerGetAttributes.argtypes = [
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_ulonglong,
    ]
    lib.cuStreamSynchronize.argtypes = [ctypes.c_void_p]
    lib.cuGetProcAddress_v2.argtypes = [
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_int,
        ctypes.c_ulonglong,
        ctypes.POINTER(ctypes.c_int),
    ]
    assert lib.cuInit(0) == 0
    return lib


def _primary(cuda: Any) -> int:
    """Retain device 0's primary context (released again by the caller) and return its handle."""
    ctx = ctypes.c_void_p()
    assert cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), 0) == 0
    assert ctx.value
    return ctx.value


def _current(cuda: Any) -> int | None:
    ctx = ctypes.c_void_p()
    assert cuda.cuCtxGetCurrent(ctypes.byref(ctx)) == 0
    return ctx.value


def _name(cuda: Any, code: int) -> str:
    text = ctypes.c_char_p()
    assert cuda.cuGetErrorName(code, ctypes.byref(text)) == 0
    assert text.value is not None
    return text.value.decode()


@pytest.mark.parametrize(
    "name",
    ["cuMemAlloc_v2", "cuMemFree_v2", "cuMemcpyHtoD_v2", "cuMemcpy2D_v2", "cuStreamCreate", "cuEventCreate",
     "cuLaunchKernel", "cuModuleLoadData", "cuGraphicsMapResources", "cuArrayCreate_v2", "cuCtxSetLimit"],
)  # fmt: skip
def test_everything_that_needs_a_gpu_is_refused(cuda: Any, name: str) -> None:
    assert getattr(cuda, name)() == NOT_SUPPORTED, f"expected {name} to be refused with CUDA_ERROR_NOT_SUPPORTED"


def test_device_to_host_copies_are_refused_and_say_why(cuda: Any) -> None:
    assert cuda.cuMemcpyDtoH_v2(None, ctypes.c_ulonglong(4096), ctypes.c_size_t(16)) == NOT_SUPPORTED
    assert _name(cuda, NOT_SUPPORTED) == "CUDA_ERROR_NOT_SUPPORTED"
    text = ctypes.c_char_p()
    assert cuda.cuGetErrorString(NOT_SUPPORTED, ctypes.byref(text)) == 0
    assert text.value == b"not supported by the stand-in libcuda (there is no GPU)"


def test_one_device_as_ffmpeg_checks_it(cuda: Any) -> None:
    count, device, major, minor = ctypes.c_int(), ctypes.c_int(-1), ctypes.c_int(), ctypes.c_int()
    assert cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value == 1
    assert cuda.cuDeviceGet(ctypes.byref(device), 0) == 0 and device.value == 0
    assert cuda.cuDeviceGet(ctypes.byref(device), 1) == INVALID_DEVICE
    assert cuda.cuDeviceComputeCapability(ctypes.byref(major), ctypes.byref(minor), 0) == 0
    assert (major.value, minor.value) == (8, 9)
    name = ctypes.create_string_buffer(64)
    assert cuda.cuDeviceGetName(name, 64, 0) == 0 and name.value == b"rfb stand-in CUDA device (no GPU)"


def test_a_created_context_is_current_and_the_primary_one_is_reference_counted(cuda: Any) -> None:
    created = ctypes.c_void_p()
    assert cuda.cuCtxCreate_v2(ctypes.byref(created), 0, 0) == 0
    assert _current(cuda) == created.value
    assert cuda.cuCtxPopCurrent_v2(None) == 0 and _current(cuda) is None
    assert cuda.cuCtxDestroy_v2(created) == 0

    flags, active = ctypes.c_uint(), ctypes.c_int()
    assert cuda.cuDevicePrimaryCtxSetFlags_v2(0, 4) == 0  # CU_CTX_SCHED_BLOCKING_SYNC
    primary = _primary(cuda)
    assert cuda.cuDevicePrimaryCtxGetState(0, ctypes.byref(flags), ctypes.byref(active)) == 0
    assert (flags.value, active.value) == (4, 1)
    assert cuda.cuDevicePrimaryCtxRelease_v2(0) == 0
    assert cuda.cuDevicePrimaryCtxGetState(0, ctypes.byref(flags), ctypes.byref(active)) == 0
    assert active.value == 0
    assert cuda.cuCtxPushCurrent_v2(ctypes.c_void_p(primary + 1)) == INVALID_CONTEXT  # not a context


def test_the_current_context_is_per_thread(cuda: Any) -> None:
    primary = _primary(cuda)
    assert cuda.cuCtxPushCurrent_v2(ctypes.c_void_p(primary)) == 0
    seen: dict[str, Any] = {}

    def other() -> None:
        seen["current"] = _current(cuda)
        seen["device"] = cuda.cuCtxGetDevice(ctypes.byref(ctypes.c_int()))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    try:
        assert seen == {"current": None, "device": INVALID_CONTEXT}
        assert _current(cuda) == primary
    finally:
        assert cuda.cuCtxPopCurrent_v2(None) == 0
        assert cuda.cuDevicePrimaryCtxRelease_v2(0) == 0


def test_the_memory_type_is_never_answered_so_the_emulator_reads_host_memory(cuda: Any) -> None:
    buffer = ctypes.create_string_buffer(4096)
    start = ctypes.addressof(buffer)
    cuda.standin_describe(start, 4096, 7)
    try:
        value = ctypes.c_ulonglong()
        assert cuda.cuPointerGetAttribute(ctypes.byref(value), BUFFER_ID, start + 100) == 0 and value.value == 7
        assert cuda.cuPointerGetAttribute(ctypes.byref(value), BUFFER_ID, start + 4096) == INVALID_VALUE
        for ptr in (start, start + 4096):  # described or not
            assert cuda.cuPointerGetAttribute(ctypes.byref(value), MEMORY_TYPE, ptr) == INVALID_VALUE
    finally:
        cuda.standin_describe(0, 0, 0)


def test_the_described_range_is_one_device_allocation_to_the_plural_query(cuda: Any) -> None:
    buffer = ctypes.create_string_buffer(4096)
    start = ctypes.addressof(buffer)
    primary = _primary(cuda)
    names = [MEMORY_TYPE, DEVICE_ORDINAL, CONTEXT, BUFFER_ID, RANGE_START, RANGE_SIZE]
    kinds = [ctypes.c_uint, ctypes.c_int, ctypes.c_void_p, ctypes.c_ulonglong, ctypes.c_ulonglong, ctypes.c_size_t]

    def ask(ptr: int) -> list[int | None]:
        values = [kind() for kind in kinds]
        data = (ctypes.c_void_p * len(values))(*(ctypes.addressof(v) for v in values))
        assert cuda.cuPointerGetAttributes(len(names), (ctypes.c_int * len(names))(*names), data, ptr) == 0
        return [v.value for v in values]

    cuda.standin_describe(start, 4096, 7)
    try:
        assert ask(start + 10) == [2, 0, primary, 7, start, 4096]  # CU_MEMORYTYPE_DEVICE, device 0, primary
        assert ask(start + 4096) == [0, -2, None, 0, 0, 0]  # memory CUDA does not know
    finally:
        cuda.standin_describe(0, 0, 0)
        assert cuda.cuDevicePrimaryCtxRelease_v2(0) == 0


def test_calls_are_counted_and_reset(cuda: Any) -> None:
    primary = _primary(cuda)
    cuda.standin_reset_calls()
    assert cuda.cuCtxPushCurrent_v2(ctypes.c_void_p(primary)) == 0
    _current(cuda)
    _current(cuda)
    assert cuda.cuStreamSynchronize(None) == 0
    assert cuda.cuCtxPopCurrent_v2(None) == 0
    cuda.cuPointerGetAttribute(ctypes.byref(ctypes.c_ulonglong()), BUFFER_ID, 0)
    counted = ("cuCtxPushCurrent", "cuCtxPopCurrent", "cuCtxGetCurrent", "cuPointerGetAttribute", "cuStreamSynchronize")
    assert {n: cuda.standin_calls(n.encode()) for n in counted} == dict(zip(counted, (1, 1, 2, 1, 1), strict=True))
    assert cuda.standin_calls(b"cuMemAlloc") == -1  # not a counted name
    cuda.standin_reset_calls()
    assert cuda.standin_calls(b"cuCtxGetCurrent") == 0
    assert cuda.cuDevicePrimaryCtxRelease_v2(0) == 0


def test_only_the_default_streams_exist_and_need_a_current_context(cuda: Any) -> None:
    primary = _primary(cuda)
    assert cuda.cuStreamSynchronize(None) == INVALID_CONTEXT
    assert cuda.cuCtxPushCurrent_v2(ctypes.c_void_p(primary)) == 0
    try:
        for stream in (None, 1, 2):  # NULL, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD: nothing queued, nothing to wait for
            assert cuda.cuStreamSynchronize(stream) == 0, stream
        assert cuda.cuStreamSynchronize(0x1234) == INVALID_HANDLE  # cuStreamCreate is refused: no other stream
    finally:
        assert cuda.cuCtxPopCurrent_v2(None) == 0
        assert cuda.cuDevicePrimaryCtxRelease_v2(0) == 0


def test_cuda_python_finds_entry_points_by_base_name(cuda: Any) -> None:
    pfn, status = ctypes.c_void_p(), ctypes.c_int(-1)
    assert cuda.cuGetProcAddress_v2(b"cuCtxPushCurrent", ctypes.byref(pfn), 13000, 0, ctypes.byref(status)) == 0
    assert status.value == 0 and pfn.value == ctypes.cast(cuda.cuCtxPushCurrent_v2, ctypes.c_void_p).value
    # not cuCtxCreate: CUDA 13's cuCtxCreate_v4 takes other arguments than the cuCtxCreate_v2 here
    assert cuda.cuGetProcAddress_v2(b"cuCtxCreate", ctypes.byref(pfn), 13000, 0, ctypes.byref(status)) == NOT_FOUND
    assert status.value == 1 and pfn.value is None


EMULATOR_VIEW = r"""
import ctypes, json, os
from tests.nvenc_emulator import Emulator
cuda = ctypes.CDLL("libcuda.so.1")  # found through LD_LIBRARY_PATH: the stand-in
cuda.standin_describe.argtypes = [ctypes.c_ulonglong] * 3
cuda.standin_calls.restype = ctypes.c_longlong
assert cuda.cuInit(0) == 0
ctx = ctypes.c_void_p()
assert cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), 0) == 0  # a process that initialised CUDA
emu = Emulator(os.environ["NVENCFFI_LIBRARY"])
emu.reset()
buffer = ctypes.create_string_buffer(4096)
cuda.standin_describe(ctypes.addressof(buffer), 4096, 7)
cuda.standin_reset_calls()
info = emu.pointer_info(ctypes.addressof(buffer))
print(json.dumps({"info": info, "asked": cuda.standin_calls(b"cuPointerGetAttribute")}))
"""


def test_the_emulator_reads_every_pointer_as_host_memory(path: Path) -> None:
    emulator = require_emulator()
    env = {
        **os.environ,
        "NVENCFFI_LIBRARY": str(emulator),
        "LD_LIBRARY_PATH": ld_library_path(path.parent),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-c", EMULATOR_VIEW],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the emulator asked the stand-in (it is libcuda.so.1 there) and was told nothing: not CUDA memory
    assert out == {"info": None, "asked": 1}, f"expected the emulator to ask once and learn nothing, got {out}"
