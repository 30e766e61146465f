"""The cffi FFI object: the pre-built declarations, or built in-process from the sources.

A normal install ships ``nvencffi/_nvenc.py``, generated at build time by cffi from
``headers/nvenc.h`` (out-of-line ABI mode: pure Python, no compiler). Running straight
from a source checkout, that module may be missing; then we parse ``headers/nvenc.h``
here, through the same ``build_ffi.py`` the build uses, so there is one source of truth.
:func:`ffi_from_source_tree` also serves nvjpegffi, which ships the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path

from cffi import FFI


def ffi_from_source_tree(generated: str, builder: str, header: str) -> FFI:
    """The FFI of ``build_ffi.py``'s ``builder``, parsed now (the source-checkout fallback).

    ``generated`` names the module a normal build writes (e.g. ``nvencffi._nvenc``);
    ``header`` is build_ffi.py's name for the header file, for the log line.
    """
    package = generated.split(".", 1)[0]
    root = Path(__file__).resolve().parent.parent
    script = root / "build_ffi.py"
    if not script.is_file():
        raise ImportError(
            f"{generated} is missing and no source tree was found at {root} "
            f"(expected build_ffi.py and headers/): reinstall {package} with pip"
        )
    spec = importlib.util.spec_from_file_location(f"_{package}_build_ffi", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    logging.getLogger(package).warning(
        "%s: generated module %s not found; parsed %s in-process "
        "(run 'python build_ffi.py' or 'pip install -e .' to pre-build it)",
        package,
        generated,
        getattr(module, header),
    )
    built: FFI = getattr(module, builder)
    return built


ffi: FFI
try:
    ffi = importlib.import_module("nvencffi._nvenc").ffi
except ImportError:
    ffi = ffi_from_source_tree("nvencffi._nvenc", "ffibuilder", "HEADER")

__all__ = ["ffi", "ffi_from_source_tree"]
