"""What encodes for each route, and which libnvidia-encode file an NVENC route loads.

A figure is only an NVENC figure if the library that encoded is NVIDIA's driver. rfb
cannot prove that of a file, but it can say where the file came from: the path the
dynamic loader opened, and whether an override chose it (``NVENCFFI_LIBRARY`` for
nvencffi, a ``LD_LIBRARY_PATH`` directory for FFmpeg) or the system's own search did.
A route whose library came from an override is labelled ``override``, never ``nvenc``,
so a run against any other library is not taken for a hardware result.
"""

from __future__ import annotations

import _ctypes
import ctypes
import ctypes.util
import os
from collections.abc import Callable
from dataclasses import dataclass

# Routes whose encode engine is libnvidia-encode, and who loads it.
NVENC_ROUTES: dict[str, str] = {
    "nvenc_gpu_cffi": "nvencffi",  # NVENCFFI_LIBRARY, else the driver's soname
    "nvenc_gpu_pyav": "ffmpeg",  # FFmpeg dlopen()s the soname (LD_LIBRARY_PATH applies)
    "nvenc_cpu": "ffmpeg",
}
NVENC_SONAME = "libnvidia-encode.so.1"

# What encodes for the routes that do not use NVENC.
OTHER_ENGINES: dict[str, str] = {
    "h264_cpu": "libx264",
    "h264_gpu_nv12": "libx264",
    "h264_cuda": "cuda-kernels",  # rfb.h264cuda: rfb's own kernels, through NVRTC
    "jpeg_gpu": "nvjpeg",
    "image": "libjpeg",
}

_RTLD_DI_LINKMAP = 2  # <dlfcn.h>


@dataclass(frozen=True, slots=True)
class LoadedLibrary:
    """Where one way of loading libnvidia-encode ends up in this process.

    ``requested`` is what is handed to ``dlopen`` (a path or the soname); ``path`` the
    file the loader opened (None: nothing loadable); ``override`` the setting that chose
    it (``"NVENCFFI_LIBRARY"``, ``"LD_LIBRARY_PATH"``) or None when the system's search did.
    """

    requested: str
    path: str | None
    override: str | None

    @property
    def from_system(self) -> bool:
        """Loadable, and found by the system's own search (no override chose it)."""
        return self.path is not None and self.override is None

    def describe(self) -> str:
        """One line for a report: the file and where it came from."""
        if self.path is None:
            return f"{self.requested} (not loadable)"
        if self.override is None:
            return f"{self.path} (the system's {NVENC_SONAME})"
        return f"{self.path} (chosen by {self.override}: not the system's {NVENC_SONAME})"


def loaded_path(library: str) -> str | None:
    """The file ``dlopen(library)`` opens in this process (name resolution included), or None.

    Where the loader cannot be asked (no ``dlinfo``), a library that loads is named as
    it was asked for.
    """
    try:
        handle = ctypes.CDLL(library)._handle
    except OSError:
        return None
    try:
        dlinfo = _dlinfo()
        link_map = ctypes.POINTER(ctypes.c_void_p)()
        if dlinfo is None or dlinfo(ctypes.c_void_p(handle), _RTLD_DI_LINKMAP, ctypes.byref(link_map)) != 0:
            return library
        # struct link_map starts with ElfW(Addr) l_addr, then char *l_name.
        name = ctypes.cast(link_map[1], ctypes.c_char_p).value
        return os.path.realpath(os.fsdecode(name)) if name else library
    finally:
        _ctypes.dlclose(handle)  # this lookup's reference; a library loaded elsewhere stays loaded


def _dlinfo() -> Callable[..., int] | None:
    """``dlinfo`` from libc (glibc 2.34+) or libdl; None where neither has it."""
    candidates = [None, ctypes.util.find_library("dl")]
    for name in candidates:
        try:
            fn = ctypes.CDLL(name).dlinfo
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        fn.restype = ctypes.c_int
        return fn
    return None


def nvenc_library(route: str) -> LoadedLibrary | None:
    """The libnvidia-encode a route loads, and how it was chosen; None for non-NVENC routes."""
    how = NVENC_ROUTES.get(route)
    if how is None:
        return None
    return nvencffi_library() if how == "nvencffi" else ffmpeg_library()


def nvencffi_library() -> LoadedLibrary:
    """What nvencffi loads: ``$NVENCFFI_LIBRARY`` (an override) or the driver's soname."""
    from nvencffi.library import ENV_LIBRARY, library_path

    requested = library_path()
    path = loaded_path(requested)
    return LoadedLibrary(requested, path, ENV_LIBRARY if os.environ.get(ENV_LIBRARY) else None)


def ffmpeg_library() -> LoadedLibrary:
    """What FFmpeg's nvenc loads: the soname, which a ``LD_LIBRARY_PATH`` directory may supply."""
    path = loaded_path(NVENC_SONAME)
    return LoadedLibrary(NVENC_SONAME, path, _ld_library_path_override(path))


def _ld_library_path_override(path: str | None) -> str | None:
    """``"LD_LIBRARY_PATH"`` when ``path`` lies in one of its directories, else None."""
    if path is None:
        return None
    where = os.path.dirname(path)
    for directory in filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)):
        if os.path.realpath(directory) == where:
            return "LD_LIBRARY_PATH"
    return None


def engine_of(route: str) -> str:
    """'nvenc' (the system's libnvidia-encode), 'override' (a library an override chose),
    'none' (not loadable), else the codec library of a non-NVENC route."""
    library = nvenc_library(route)
    if library is None:
        return OTHER_ENGINES.get(route, "-")
    if library.path is None:
        return "none"
    return "nvenc" if library.from_system else "override"


def environment_note() -> str:
    """Which libnvidia-encode each way of loading it finds here (for a report's notes)."""
    parts = [f"nvencffi: {nvencffi_library().describe()}", f"ffmpeg: {ffmpeg_library().describe()}"]
    ld = os.environ.get("LD_LIBRARY_PATH")
    return "; ".join(parts) + (f" (LD_LIBRARY_PATH={ld})" if ld else "")
