"""Every NVENCSTATUS as an exception class, plus the "NVENC cannot run here" family.

Two roots, because callers ask two different questions:

- ``NvencError``: an NVENC API call failed. It carries the status (``.status``, an
  ``NvencStatus`` member; ``.name``, ``.code``), the API function that returned it
  (``.function``) and the driver's own explanation from ``nvEncGetLastErrorString``
  (``.detail``). Each status has its own subclass, so callers catch exactly what they
  can handle (``LockBusyError``, ``NeedMoreInputError``...).
- ``NvencUnavailable``: NVENC cannot be used on this machine at all (library missing,
  driver too old, no CUDA, a GPU without an encode engine). Applications fall back to
  another encoder. The two statuses that mean "no encode engine here"
  (``NV_ENC_ERR_NO_ENCODE_DEVICE``, ``NV_ENC_ERR_UNSUPPORTED_DEVICE``) are both.
"""

from __future__ import annotations

import enum

from nvencffi._ffi import ffi

NvencStatus = enum.IntEnum(  # type: ignore[misc]  # members come from the cdef, mypy needs literal names
    "NvencStatus",
    sorted(ffi.typeof("NVENCSTATUS").relements.items(), key=lambda item: item[1]),
)
NvencStatus.__doc__ = "NVENCSTATUS values, named exactly as in nvEncodeAPI.h."


class NvencUnavailable(RuntimeError):
    """NVENC cannot run here; the message says why in plain words and what is needed."""


class CudaUnavailable(NvencUnavailable):
    """No usable CUDA driver or device (NVENC's CUDA interface needs one)."""


class CudaError(RuntimeError):
    """A CUDA driver call the binding makes for a frame (pointer query, copy, allocation)
    failed; ``.function``, ``.name`` (``"CUDA_ERROR_INVALID_VALUE"``) and ``.code`` say which."""

    def __init__(self, function: str, name: str, code: int) -> None:
        super().__init__(f"{function} failed: {name} ({code})")
        self.function = function
        self.name = name
        self.code = code


class DriverTooOld(NvencUnavailable):
    """The driver's NVENC API is older than the one we need; says which driver is."""

    def __init__(self, message: str, max_api_version: tuple[int, int], required: tuple[int, int]) -> None:
        super().__init__(message)
        self.max_api_version = max_api_version
        self.required = required


class FrameSizeUnsupported(ValueError):
    """This GPU's encoder cannot encode frames of the size asked (its NVENC caps say so).

    Raised before anything is encoded, because a real driver refuses such a session at
    initialization with a terse error (e.g. "Frame Dimension less than the minimum
    supported value"). ``.size`` is what was asked, ``.min_size`` and ``.max_size`` the
    range the GPU reports (``NV_ENC_CAPS_WIDTH_MIN``/``HEIGHT_MIN``/``WIDTH_MAX``/
    ``HEIGHT_MAX``); a caller can pick another route or size.
    """

    def __init__(
        self, message: str, size: tuple[int, int], min_size: tuple[int, int], max_size: tuple[int, int]
    ) -> None:
        super().__init__(message)
        self.size = size
        self.min_size = min_size
        self.max_size = max_size


class ResizeUnsupported(RuntimeError):
    """This GPU's encoder cannot change resolution within a session
    (``NV_ENC_CAPS_SUPPORT_DYN_RES_CHANGE`` is 0): close the encoder and open a new one."""


class NvencError(RuntimeError):
    """An NVENC API call returned a status other than ``NV_ENC_SUCCESS``."""

    status_name: str = ""

    def __init__(
        self,
        function: str,
        code: int,
        detail: str | None = None,
        message: str | None = None,
    ) -> None:
        self.function = function
        self.code = int(code)
        try:
            self.status: NvencStatus | None = NvencStatus(self.code)
            self.name = self.status.name
        except ValueError:
            self.status = None
            self.name = f"NVENCSTATUS({self.code})"
        self.detail = detail or None
        text = message or f"{function} failed: {self.name} ({self.code})"
        if self.detail:
            text += f": {self.detail}"
        super().__init__(text)


class NoEncodeDeviceError(NvencError, NvencUnavailable):
    status_name = "NV_ENC_ERR_NO_ENCODE_DEVICE"


class UnsupportedDeviceError(NvencError, NvencUnavailable):
    status_name = "NV_ENC_ERR_UNSUPPORTED_DEVICE"


class InvalidEncoderDeviceError(NvencError):
    status_name = "NV_ENC_ERR_INVALID_ENCODERDEVICE"


class InvalidDeviceError(NvencError):
    status_name = "NV_ENC_ERR_INVALID_DEVICE"


class DeviceNotExistError(NvencError):
    status_name = "NV_ENC_ERR_DEVICE_NOT_EXIST"


class InvalidPtrError(NvencError):
    status_name = "NV_ENC_ERR_INVALID_PTR"


class InvalidEventError(NvencError):
    status_name = "NV_ENC_ERR_INVALID_EVENT"


class InvalidParamError(NvencError):
    status_name = "NV_ENC_ERR_INVALID_PARAM"


class InvalidCallError(NvencError):
    status_name = "NV_ENC_ERR_INVALID_CALL"


class OutOfMemoryError(NvencError):
    status_name = "NV_ENC_ERR_OUT_OF_MEMORY"


class EncoderNotInitializedError(NvencError):
    status_name = "NV_ENC_ERR_ENCODER_NOT_INITIALIZED"


class UnsupportedParamError(NvencError):
    status_name = "NV_ENC_ERR_UNSUPPORTED_PARAM"


class LockBusyError(NvencError):
    status_name = "NV_ENC_ERR_LOCK_BUSY"


class NotEnoughBufferError(NvencError):
    status_name = "NV_ENC_ERR_NOT_ENOUGH_BUFFER"


class InvalidVersionError(NvencError):
    status_name = "NV_ENC_ERR_INVALID_VERSION"


class MapFailedError(NvencError):
    status_name = "NV_ENC_ERR_MAP_FAILED"


class NeedMoreInputError(NvencError):
    status_name = "NV_ENC_ERR_NEED_MORE_INPUT"


class EncoderBusyError(NvencError):
    status_name = "NV_ENC_ERR_ENCODER_BUSY"


class EventNotRegisteredError(NvencError):
    status_name = "NV_ENC_ERR_EVENT_NOT_REGISTERD"  # sic: the header's spelling


class GenericError(NvencError):
    status_name = "NV_ENC_ERR_GENERIC"


class IncompatibleClientKeyError(NvencError):
    status_name = "NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY"


class UnimplementedError(NvencError):
    status_name = "NV_ENC_ERR_UNIMPLEMENTED"


class ResourceRegisterFailedError(NvencError):
    status_name = "NV_ENC_ERR_RESOURCE_REGISTER_FAILED"


class ResourceNotRegisteredError(NvencError):
    status_name = "NV_ENC_ERR_RESOURCE_NOT_REGISTERED"


class ResourceNotMappedError(NvencError):
    status_name = "NV_ENC_ERR_RESOURCE_NOT_MAPPED"


class NeedMoreOutputError(NvencError):
    status_name = "NV_ENC_ERR_NEED_MORE_OUTPUT"


def _collect() -> dict[int, type[NvencError]]:
    table: dict[int, type[NvencError]] = {}
    for cls in NvencError.__subclasses__():
        code = NvencStatus[cls.status_name].value  # KeyError: a class names an unknown status
        table[code] = cls
    missing = [s.name for s in NvencStatus if s.value not in table and s is not NvencStatus["NV_ENC_SUCCESS"]]
    if missing:
        raise RuntimeError(f"nvencffi.errors: no exception class for {missing}")
    return table


ERROR_CLASSES: dict[int, type[NvencError]] = _collect()


def error_for(function: str, code: int, detail: str | None = None, message: str | None = None) -> NvencError:
    """The exception instance for ``code`` returned by ``function`` (not raised)."""
    cls = ERROR_CLASSES.get(int(code), NvencError)
    return cls(function, code, detail, message)
