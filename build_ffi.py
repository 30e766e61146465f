"""Build the bindings' out-of-line ABI-mode cffi modules from ``headers/``.

Two bindings, built the same way:

- ``nvencffi._nvenc`` from ``headers/nvenc.h`` (NVENC, libnvidia-encode);
- ``nvjpegffi._nvjpeg`` from ``headers/nvjpeg.h`` (nvJPEG, libnvjpeg).

``set_source(module, None)`` makes cffi emit a pure-Python module holding the parsed
declarations: building it needs neither a C compiler nor NVIDIA's headers, so
``pip install`` works on any machine, and the libraries are only dlopen()ed at run
time. setup.py hands ``ffibuilder`` and ``nvjpeg_ffibuilder`` to cffi's setuptools
hook (``cffi_modules``); each binding's ``_ffi`` module reuses the same builder
in-process when running from a source tree where the generated module is missing.

Run directly (``python build_ffi.py``) to (re)generate both modules in place.
"""

from __future__ import annotations

from pathlib import Path

import cffi

ROOT = Path(__file__).resolve().parent
HEADER = ROOT / "headers" / "nvenc.h"
MODULE = "nvencffi._nvenc"
NVJPEG_HEADER = ROOT / "headers" / "nvjpeg.h"
NVJPEG_MODULE = "nvjpegffi._nvjpeg"


def make_ffibuilder(header: Path = HEADER, module: str = MODULE) -> cffi.FFI:
    """An FFI holding ``header``'s declarations, set up to emit the ABI-mode ``module``."""
    builder = cffi.FFI()
    builder.cdef(header.read_text())
    builder.set_source(module, None)
    return builder


def make_nvjpeg_ffibuilder() -> cffi.FFI:
    """The nvjpegffi builder (``headers/nvjpeg.h`` -> ``nvjpegffi._nvjpeg``)."""
    return make_ffibuilder(NVJPEG_HEADER, NVJPEG_MODULE)


def target_path(module: str) -> Path:
    """Where a generated module lives in the source tree (``nvencffi/_nvenc.py``...)."""
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


ffibuilder = make_ffibuilder()
nvjpeg_ffibuilder = make_nvjpeg_ffibuilder()

if __name__ == "__main__":
    for builder, module in ((ffibuilder, MODULE), (nvjpeg_ffibuilder, NVJPEG_MODULE)):
        target = target_path(module)
        builder.emit_python_code(str(target))
        print(f"wrote {target}")
