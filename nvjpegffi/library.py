"""Finding and loading libnvjpeg once per process, and checking its version.

nvJPEG is not part of the driver: it ships with the CUDA toolkit and, for pip users, in
the ``nvidia-nvjpeg`` wheel (``nvidia/cu13/lib/libnvjpeg.so.13``; rfb's ``gpu`` extra
depends on it). Where we look, first hit wins:

1. ``$NVJPEGFFI_LIBRARY``: a path to load instead (the test suite points it at its
   nvJPEG emulator); read when the library is first loaded.
2. The ``nvidia-nvjpeg`` wheel in any entry of ``sys.path``: site-packages, and also a
   wheel installed with ``pip install --target`` on ``PYTHONPATH`` (cuda-pathfinder
   only looks in site-packages).
3. ``cuda.pathfinder.load_nvidia_dynamic_lib("nvjpeg")`` (a dependency of cuda-python):
   site-packages, conda, the system loader (a CUDA toolkit registered with ldconfig or
   on ``LD_LIBRARY_PATH``), then ``$CUDA_PATH`` / ``$CUDA_HOME``.
4. Without cuda-pathfinder: the system loader, by soname.

The library statically links the CUDA runtime, so it loads (and reports its version)
on a machine with no GPU at all; only creating a handle needs a driver and a device.
We accept major versions 13 (what headers/nvjpeg.h is checked against) and 12 (the
same encoder API and the same ``nvjpegImage_t``).

The result is cached for the process; a failure is not cached, so a later call retries.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from nvjpegffi._ffi import ffi
from nvjpegffi.errors import NvjpegUnavailable, error_for

ENV_LIBRARY = "NVJPEGFFI_LIBRARY"
SONAMES = ("libnvjpeg.so.13", "libnvjpeg.so.12")
# Where the NVIDIA wheels put it, under ``<sys.path entry>/nvidia/``.
WHEEL_DIRS = ("cu13/lib", "nvjpeg/lib")
SUPPORTED_MAJOR = (13, 12)
INSTALL_HINT = "pip install nvidia-nvjpeg (or rfb[gpu]), or install the CUDA toolkit"

# The functions every encoder needs; nvjpegEncode (NV12 input) is optional: it arrived
# after the others, and only NV12 frames need it.
REQUIRED_FUNCTIONS = (
    "nvjpegGetProperty",
    "nvjpegCreateSimple",
    "nvjpegDestroy",
    "nvjpegEncoderStateCreate",
    "nvjpegEncoderStateDestroy",
    "nvjpegEncoderParamsCreate",
    "nvjpegEncoderParamsDestroy",
    "nvjpegEncoderParamsSetQuality",
    "nvjpegEncoderParamsSetEncoding",
    "nvjpegEncoderParamsSetOptimizedHuffman",
    "nvjpegEncoderParamsSetSamplingFactors",
    "nvjpegEncodeGetBufferSize",
    "nvjpegEncodeImage",
    "nvjpegEncodeRetrieveBitstream",
)
OPTIONAL_FUNCTIONS = ("nvjpegEncode", "nvjpegEncoderStateCreateWithBackend")

_MAJOR, _MINOR, _PATCH = (
    ffi.typeof("libraryPropertyType").relements[n] for n in ("MAJOR_VERSION", "MINOR_VERSION", "PATCH_LEVEL")
)


def wheel_library() -> Path | None:
    """libnvjpeg from an ``nvidia-nvjpeg`` wheel in any ``sys.path`` entry, if any.

    Each entry is looked at directly rather than through ``import nvidia``: another
    NVIDIA wheel's ``nvidia/__init__.py`` would turn that namespace into a regular
    package and hide the other ``nvidia`` folders on the path.
    """
    for entry in sys.path:
        for sub in WHEEL_DIRS:
            for soname in SONAMES:
                candidate = Path(entry or ".") / "nvidia" / sub / soname
                if candidate.is_file():
                    return candidate.resolve()
    return None


def find_library() -> tuple[str, str]:
    """(path or soname to dlopen, where it was found), without loading anything we keep.

    Raises :class:`NvjpegUnavailable` naming every place that was searched.
    """
    override = os.environ.get(ENV_LIBRARY)
    if override:
        return override, f"${ENV_LIBRARY}"
    wheel = wheel_library()
    if wheel is not None:
        return str(wheel), "the nvidia-nvjpeg wheel"
    try:
        from cuda import pathfinder
    except ImportError:
        return SONAMES[0], "the system loader (cuda-pathfinder is not installed)"
    try:
        loaded = pathfinder.load_nvidia_dynamic_lib("nvjpeg")
    except (pathfinder.DynamicLibNotFoundError, RuntimeError) as exc:
        raise NvjpegUnavailable(
            f"libnvjpeg was not found: no nvidia-nvjpeg wheel on sys.path, and cuda-pathfinder found "
            f"nothing ({exc}). {INSTALL_HINT}; or set ${ENV_LIBRARY} to the library's path."
        ) from None
    return str(loaded.abs_path), "cuda-pathfinder"


class Library:
    """The loaded library (``.lib``: the cffi handle) and its version. Use :func:`load_library`."""

    def __init__(self, path: str, found_by: str = "") -> None:
        self.path = path
        self.found_by = found_by
        try:
            self.lib: Any = ffi.dlopen(path)
        except OSError as exc:
            raise NvjpegUnavailable(
                f"could not load libnvjpeg {path!r} (found by {found_by or 'name'}): {exc}. {INSTALL_HINT}."
            ) from None
        for name in REQUIRED_FUNCTIONS:
            if not _has(self.lib, name):
                raise NvjpegUnavailable(f"{path!r} has no {name}: it is not a usable libnvjpeg")
        self.optional = {name for name in OPTIONAL_FUNCTIONS if _has(self.lib, name)}
        value = ffi.new("int *")
        parts = []
        for which in (_MAJOR, _MINOR, _PATCH):
            status = self.lib.nvjpegGetProperty(which, value)
            if status:
                raise NvjpegUnavailable(
                    f"nvjpegGetProperty in {path!r} failed: {error_for('nvjpegGetProperty', status).name}"
                )
            parts.append(int(value[0]))
        self.version: tuple[int, int, int] = (parts[0], parts[1], parts[2])
        if self.version[0] not in SUPPORTED_MAJOR:
            raise NvjpegUnavailable(
                f"{path!r} is nvJPEG {'.'.join(map(str, self.version))}; nvjpegffi supports major versions "
                f"{' and '.join(map(str, SUPPORTED_MAJOR))} (CUDA 13 and 12). {INSTALL_HINT}."
            )

    def has(self, function: str) -> bool:
        """Whether an optional entry point (``nvjpegEncode``...) exists in this library."""
        return function in self.optional

    def check(self, status: int, function: str) -> None:
        """Raise the exception class of ``status`` if it is not ``NVJPEG_STATUS_SUCCESS``."""
        if status:
            raise error_for(function, status)

    def __repr__(self) -> str:
        return f"<nvjpegffi.Library {self.path!r} {'.'.join(map(str, self.version))}>"


def _has(lib: Any, name: str) -> bool:
    """Whether the library exports ``name`` (cffi resolves symbols on first access)."""
    try:
        getattr(lib, name)
    except (AttributeError, ffi.error):
        return False
    return True


_lock = threading.Lock()
_library: Library | None = None


def load_library() -> Library:
    """The process's :class:`Library`, loading it on first use (thread-safe).

    Raises :class:`NvjpegUnavailable` (not found, not loadable, unsupported version);
    a failure is not cached.
    """
    global _library
    library = _library
    if library is not None:
        return library
    with _lock:
        if _library is None:
            path, found_by = find_library()
            _library = Library(path, found_by)
        return _library


def reset_library() -> None:
    """Forget the loaded library, so the next load searches again (re-reading
    ``NVJPEGFFI_LIBRARY``). Encoders already open keep theirs until closed."""
    global _library
    with _lock:
        _library = None
