"""Every nvjpegStatus_t as an exception class, plus "nvJPEG cannot run here".

Three roots, because callers ask different questions:

- ``NvjpegError``: an nvJPEG call failed. It carries the status (``.status``, an
  ``NvjpegStatus`` member; ``.name``, ``.code``) and the function that returned it
  (``.function``). Each status has its own subclass, so callers catch exactly what they
  can handle (``InvalidParameterError``, ``ExecutionFailedError``...).
- ``CudaError``: a CUDA driver call of ours around nvJPEG failed; the message names the
  ``CUresult``. Work nvJPEG queued that faults on the GPU shows up here, at the sync.
- ``NvjpegUnavailable``: nvJPEG cannot be used on this machine at all (library not
  found, an unsupported version, no CUDA driver or device). Applications fall back to
  another encoder. A handle that cannot be created because the CUDA runtime inside
  nvJPEG found no usable GPU is reported by the library as a failed execution or an
  architecture mismatch; :func:`nvjpegffi.probe` words that as unavailable.
"""

from __future__ import annotations

import enum

from nvjpegffi._ffi import ffi

NvjpegStatus = enum.IntEnum(  # type: ignore[misc]  # members come from the cdef, mypy needs literal names
    "NvjpegStatus",
    sorted(ffi.typeof("nvjpegStatus_t").relements.items(), key=lambda item: item[1]),
)
NvjpegStatus.__doc__ = "nvjpegStatus_t values, named exactly as in nvjpeg.h."


class NvjpegUnavailable(RuntimeError):
    """nvJPEG cannot run here; the message says why in plain words and what is needed."""


class CudaError(RuntimeError):
    """A CUDA driver call made around nvJPEG failed (a stream sync, a pinned allocation);
    the message names the call and the ``CUresult`` (``CUDA_ERROR_ILLEGAL_ADDRESS``...)."""


class NvjpegError(RuntimeError):
    """An nvJPEG call returned a status other than ``NVJPEG_STATUS_SUCCESS``."""

    status_name: str = ""

    def __init__(self, function: str, code: int, detail: str | None = None) -> None:
        self.function = function
        self.code = int(code)
        try:
            self.status: NvjpegStatus | None = NvjpegStatus(self.code)
            self.name = self.status.name
        except ValueError:
            self.status = None
            self.name = f"nvjpegStatus_t({self.code})"
        self.detail = detail or None
        text = f"{function} failed: {self.name} ({self.code})"
        if self.detail:
            text += f": {self.detail}"
        super().__init__(text)


class NotInitializedError(NvjpegError):
    status_name = "NVJPEG_STATUS_NOT_INITIALIZED"


class InvalidParameterError(NvjpegError):
    status_name = "NVJPEG_STATUS_INVALID_PARAMETER"


class BadJpegError(NvjpegError):
    status_name = "NVJPEG_STATUS_BAD_JPEG"


class JpegNotSupportedError(NvjpegError):
    status_name = "NVJPEG_STATUS_JPEG_NOT_SUPPORTED"


class AllocatorFailureError(NvjpegError):
    status_name = "NVJPEG_STATUS_ALLOCATOR_FAILURE"


class ExecutionFailedError(NvjpegError):
    status_name = "NVJPEG_STATUS_EXECUTION_FAILED"


class ArchMismatchError(NvjpegError):
    status_name = "NVJPEG_STATUS_ARCH_MISMATCH"


class InternalError(NvjpegError):
    status_name = "NVJPEG_STATUS_INTERNAL_ERROR"


class ImplementationNotSupportedError(NvjpegError):
    status_name = "NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED"


class IncompleteBitstreamError(NvjpegError):
    status_name = "NVJPEG_STATUS_INCOMPLETE_BITSTREAM"


def _collect() -> dict[int, type[NvjpegError]]:
    table: dict[int, type[NvjpegError]] = {}
    for cls in NvjpegError.__subclasses__():
        code = NvjpegStatus[cls.status_name].value  # KeyError: a class names an unknown status
        table[code] = cls
    missing = [s.name for s in NvjpegStatus if s.value not in table and s is not NvjpegStatus["NVJPEG_STATUS_SUCCESS"]]
    if missing:
        raise RuntimeError(f"nvjpegffi.errors: no exception class for {missing}")
    return table


ERROR_CLASSES: dict[int, type[NvjpegError]] = _collect()


def error_for(function: str, code: int, detail: str | None = None) -> NvjpegError:
    """The exception instance for ``code`` returned by ``function`` (not raised)."""
    cls = ERROR_CLASSES.get(int(code), NvjpegError)
    return cls(function, code, detail)
