"""Loading libnvidia-encode once per process, negotiating the API version.

The encode library ships with the NVIDIA driver (``libnvidia-encode.so.1``); the
``NVENCFFI_LIBRARY`` environment variable names another file to load instead (the test
suite points it at an NVENC emulator). It is read when the library is first loaded.

Loading means: dlopen, ``NvEncodeAPIGetMaxSupportedVersion`` (the driver must support
API 12.1, which NVIDIA's Video Codec SDK 12.1 release documents as needing driver
530.41.03 or newer on Linux, 531.61 on Windows), then ``NvEncodeAPICreateInstance`` to
fill the function table every other call goes through. The result is cached for the
process; a failure is not cached, so a later call retries (after a driver update, or
with another ``NVENCFFI_LIBRARY``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from nvencffi import _api
from nvencffi._ffi import ffi
from nvencffi.errors import DriverTooOld, NvencUnavailable, error_for

ENV_LIBRARY = "NVENCFFI_LIBRARY"
DEFAULT_LIBRARY = "libnvidia-encode.so.1"
REQUIRED_API: tuple[int, int] = (_api.API_MAJOR, _api.API_MINOR)
DRIVER_NEEDED = "NVIDIA driver 530.41.03 or newer on Linux (531.61 or newer on Windows)"

# The function-table slots we call; all must be filled by NvEncodeAPICreateInstance.
REQUIRED_FUNCTIONS = (
    "nvEncOpenEncodeSessionEx",
    "nvEncGetEncodeCaps",
    "nvEncGetEncodePresetConfigEx",
    "nvEncInitializeEncoder",
    "nvEncCreateBitstreamBuffer",
    "nvEncDestroyBitstreamBuffer",
    "nvEncRegisterResource",
    "nvEncUnregisterResource",
    "nvEncMapInputResource",
    "nvEncUnmapInputResource",
    "nvEncEncodePicture",
    "nvEncLockBitstream",
    "nvEncUnlockBitstream",
    "nvEncReconfigureEncoder",
    "nvEncGetSequenceParams",
    "nvEncGetLastErrorString",
    "nvEncDestroyEncoder",
)


def library_path() -> str:
    """What :func:`load_library` dlopen()s: ``$NVENCFFI_LIBRARY`` or the driver's library."""
    return os.environ.get(ENV_LIBRARY) or DEFAULT_LIBRARY


def decode_max_version(word: int) -> tuple[int, int]:
    """``NvEncodeAPIGetMaxSupportedVersion``'s word: minor in the low 4 bits, major above."""
    return word >> 4, word & 0xF


class Library:
    """The loaded library and its function table. Use :func:`load_library`, not this.

    The API's function pointers are copied to attributes once (``self.nvEncEncodePicture``
    ...), so the per-frame path does not rebuild cffi function objects on every call.
    """

    # The function-table slots of REQUIRED_FUNCTIONS, each a cffi function pointer.
    nvEncOpenEncodeSessionEx: Any
    nvEncGetEncodeCaps: Any
    nvEncGetEncodePresetConfigEx: Any
    nvEncInitializeEncoder: Any
    nvEncCreateBitstreamBuffer: Any
    nvEncDestroyBitstreamBuffer: Any
    nvEncRegisterResource: Any
    nvEncUnregisterResource: Any
    nvEncMapInputResource: Any
    nvEncUnmapInputResource: Any
    nvEncEncodePicture: Any
    nvEncLockBitstream: Any
    nvEncUnlockBitstream: Any
    nvEncReconfigureEncoder: Any
    nvEncGetSequenceParams: Any
    nvEncGetLastErrorString: Any
    nvEncDestroyEncoder: Any

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.lib: Any = ffi.dlopen(path)
        except OSError as exc:
            raise NvencUnavailable(
                f"could not load the NVENC library {path!r} ({exc}). It ships with the NVIDIA "
                f"driver ({DRIVER_NEEDED} is needed); in a container, the NVIDIA runtime must "
                "expose the 'video' driver capability (NVIDIA_DRIVER_CAPABILITIES=compute,video)."
            ) from None
        word = ffi.new("uint32_t *")
        status = self.lib.NvEncodeAPIGetMaxSupportedVersion(word)
        if status != 0:
            raise NvencUnavailable(
                f"NvEncodeAPIGetMaxSupportedVersion in {path!r} failed: "
                f"{error_for('NvEncodeAPIGetMaxSupportedVersion', status).name}"
            )
        self.max_api_version: tuple[int, int] = decode_max_version(int(word[0]))
        if self.max_api_version < REQUIRED_API:
            have = "{}.{}".format(*self.max_api_version)
            raise DriverTooOld(
                f"the installed NVIDIA driver supports NVENC API {have} only; nvencffi needs "
                f"NVENC API {REQUIRED_API[0]}.{REQUIRED_API[1]}, which needs {DRIVER_NEEDED}. "
                "Update the NVIDIA driver to use the GPU encoder.",
                self.max_api_version,
                REQUIRED_API,
            )
        self.functions = ffi.new("NV_ENCODE_API_FUNCTION_LIST *")
        self.functions.version = _api.FUNCTION_LIST_VER
        status = self.lib.NvEncodeAPICreateInstance(self.functions)
        if status != 0:
            raise NvencUnavailable(
                f"NvEncodeAPICreateInstance in {path!r} failed: "
                f"{error_for('NvEncodeAPICreateInstance', status).name} ({status})"
            )
        for name in REQUIRED_FUNCTIONS:
            pointer = getattr(self.functions, name)
            if pointer == ffi.NULL:
                raise NvencUnavailable(f"{path!r} filled no {name} in its NVENC function table")
            setattr(self, name, pointer)

    def last_error(self, encoder: Any) -> str | None:
        """The driver's explanation of the last failure on ``encoder`` (None if none).

        A NULL session is never asked about: the header defines no answer for it.
        """
        if encoder is None or encoder == ffi.NULL:
            return None
        text = self.nvEncGetLastErrorString(encoder)
        if text == ffi.NULL:
            return None
        return ffi.string(text).decode("utf-8", "replace").strip() or None

    def check(self, status: int, function: str, encoder: Any = None) -> None:
        """Raise the exception class of ``status`` if it is not ``NV_ENC_SUCCESS``."""
        if status:
            raise error_for(function, status, self.last_error(encoder))

    def __repr__(self) -> str:
        return f"<nvencffi.Library {self.path!r} max API {self.max_api_version[0]}.{self.max_api_version[1]}>"


_lock = threading.Lock()
_library: Library | None = None


def load_library() -> Library:
    """The process's :class:`Library`, loading it on first use (thread-safe).

    Raises :class:`NvencUnavailable` (library missing, driver too old); not cached.
    """
    global _library
    library = _library
    if library is not None:
        return library
    with _lock:
        if _library is None:
            _library = Library(library_path())
        return _library


def reset_library() -> None:
    """Forget the loaded library, so the next load re-reads ``NVENCFFI_LIBRARY`` and
    negotiates the version again.

    For tests and for embedders that switch libraries. Encoders already open keep
    the :class:`Library` they were opened with alive until they are closed.
    """
    global _library
    with _lock:
        _library = None
