"""The cffi FFI object: the pre-built declarations, or built in-process from the sources.

A normal install ships ``nvjpegffi/_nvjpeg.py``, generated at build time by cffi from
``headers/nvjpeg.h`` (out-of-line ABI mode: pure Python, no compiler). Running straight
from a source checkout, that module may be missing; then we parse ``headers/nvjpeg.h``
here, through the same ``build_ffi.py`` the build uses, so there is one source of truth.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from cffi import FFI

logger = logging.getLogger("nvjpegffi")


def _build_from_source_tree() -> FFI:
    root = Path(__file__).resolve().parent.parent
    script = root / "build_ffi.py"
    if not script.is_file():
        raise ImportError(
            f"nvjpegffi._nvjpeg is missing and no source tree was found at {root} "
            "(expected build_ffi.py and headers/nvjpeg.h): reinstall the package with pip"
        )
    spec = importlib.util.spec_from_file_location("_nvjpegffi_build_ffi", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    logger.warning(
        "nvjpegffi: generated module nvjpegffi._nvjpeg not found; parsed %s in-process "
        "(run 'python build_ffi.py' or 'pip install -e .' to pre-build it)",
        module.NVJPEG_HEADER,
    )
    return module.nvjpeg_ffibuilder


try:
    from nvjpegffi._nvjpeg import ffi
except ImportError:
    ffi = _build_from_source_tree()

__all__ = ["ffi"]
