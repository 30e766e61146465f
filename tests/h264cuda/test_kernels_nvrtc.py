"""NVRTC compiles the h264_cuda kernels, here and in CI, without a GPU.

The CPU build (tests/support/kernels_cpu.py) checks what the kernels compute; this
checks that the GPU's compiler takes the same sources, so a construct that is valid C
but not CUDA C++ fails CI instead of the first GPU run. NVRTC comes from the
``nvidia-cuda-nvrtc`` wheel (in ``[test]``), reached through cuda-bindings; it needs
no driver and no device.
"""

from __future__ import annotations

import re

import pytest

from rfb.h264cuda.kernels import HERE, expanded_source, signatures
from tests.support.ci import unavailable


def compile_ptx(arch: str) -> str:
    try:
        from cuda.bindings import nvrtc

        err, program = nvrtc.nvrtcCreateProgram(expanded_source().encode(), b"h264cuda.cu", 0, [], [])
    except (ImportError, RuntimeError, OSError) as exc:  # no cuda-bindings, or no libnvrtc to load
        unavailable(f"NVRTC could not be loaded (pip install nvidia-cuda-nvrtc): {exc}")
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, err
    options = [b"--std=c++17", f"-arch={arch}".encode()]  # the GPU build's options (rfb/h264cuda/kernels/cuda.py)
    (err,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
    _, size = nvrtc.nvrtcGetProgramLogSize(program)
    # bytearray, never b" " * size: NVRTC writes into the buffer, and a bytes object of
    # size 1 is CPython's shared single-byte object (an empty log is 1 byte: its NUL),
    # so writing into it turned every later b" " in the process into b"\x00".
    log = bytearray(size)
    nvrtc.nvrtcGetProgramLog(program, log)
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, (
        f"NVRTC refused the kernels ({err}):\n{bytes(log).decode(errors='replace')}"
    )
    _, size = nvrtc.nvrtcGetPTXSize(program)
    ptx = bytearray(size)
    nvrtc.nvrtcGetPTX(program, ptx)
    nvrtc.nvrtcDestroyProgram(program)
    return bytes(ptx).decode(errors="replace")


@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])  # A100; H100 and H200
def test_nvrtc_compiles_every_kernel(arch: str):
    ptx = compile_ptx(arch)
    entries = set(re.findall(r"\.entry\s+(\w+)", ptx))
    assert entries == set(signatures()), f"kernels declared but not in the PTX: {set(signatures()) - entries}"


def test_the_gpu_source_holds_every_file_once_with_no_include_left():
    text = expanded_source()
    assert '#include "' not in text.replace("/* ", "")
    for path in sorted(HERE.glob("*.cu")) + sorted(HERE.glob("*.h")):
        assert text.count(f"/* ---- {path.name} ---- */") == 1, path.name


def test_compiling_leaves_the_interpreter_s_single_byte_objects_alone():
    compile_ptx("compute_90")
    assert b"a b"[1:2] == bytes([0x20]) == b" "  # what a buffer written in place once broke
