"""Build nvencffi's out-of-line ABI-mode cffi module from ``headers/nvenc.h``.

``set_source("nvencffi._nvenc", None)`` makes cffi emit a pure-Python module
(``nvencffi/_nvenc.py``) holding the parsed declarations: building it needs neither a C
compiler nor NVIDIA's header, so ``pip install`` works on any machine, and the driver is
only dlopen()ed at run time. setup.py hands ``ffibuilder`` to cffi's setuptools hook
(``cffi_modules``); ``nvencffi._ffi`` reuses it in-process when running from a source
tree where the generated module is missing.

Run directly (``python build_ffi.py``) to (re)generate ``nvencffi/_nvenc.py`` in place.
"""

from __future__ import annotations

from pathlib import Path

import cffi

HEADER = Path(__file__).resolve().parent / "headers" / "nvenc.h"
MODULE = "nvencffi._nvenc"


def make_ffibuilder(header: Path = HEADER) -> cffi.FFI:
    """An FFI holding our declarations, set up to emit the ABI-mode module."""
    builder = cffi.FFI()
    builder.cdef(header.read_text())
    builder.set_source(MODULE, None)
    return builder


ffibuilder = make_ffibuilder()

if __name__ == "__main__":
    target = HEADER.parent.parent / "nvencffi" / "_nvenc.py"
    ffibuilder.emit_python_code(str(target))
    print(f"wrote {target}")
