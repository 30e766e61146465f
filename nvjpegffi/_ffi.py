"""The cffi FFI object: ``nvjpegffi/_nvjpeg.py`` as generated at build time from
``headers/nvjpeg.h``, or — in a source checkout without it — parsed in-process through
``build_ffi.py`` (see :func:`nvencffi._ffi.ffi_from_source_tree`, which both bindings use).
"""

from __future__ import annotations

import importlib

from cffi import FFI

ffi: FFI
try:
    ffi = importlib.import_module("nvjpegffi._nvjpeg").ffi
except ImportError:
    from nvencffi._ffi import ffi_from_source_tree

    ffi = ffi_from_source_tree("nvjpegffi._nvjpeg", "nvjpeg_ffibuilder", "NVJPEG_HEADER")

__all__ = ["ffi"]
