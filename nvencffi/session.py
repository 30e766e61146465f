"""Opening an NVENC session on a CUDA context, and cleaning up when that fails.

Opening is where a GPU without an encode engine says so: an H100 or H200 loads the
library and creates the function table, then ``nvEncOpenEncodeSessionEx`` returns
``NV_ENC_ERR_UNSUPPORTED_DEVICE``, worded here for people. It is also where the header
asks for care: a failed open's handle, if the driver returned one, must still be
destroyed, and no call may be made with a NULL session.
"""

from __future__ import annotations

from typing import Any

from nvencffi import _api
from nvencffi._ffi import ffi
from nvencffi.cuda import EncodeContext
from nvencffi.errors import NoEncodeDeviceError, UnsupportedDeviceError, error_for
from nvencffi.library import Library

CUDA_DEVICE = _api.enum_value("NV_ENC_DEVICE_TYPE", "NV_ENC_DEVICE_TYPE_CUDA")
NO_ENGINE = (NoEncodeDeviceError, UnsupportedDeviceError)


def no_engine_message(gpu_name: str | None, function: str, name: str, code: int) -> str:
    gpu = f"this GPU ({gpu_name})" if gpu_name else "this GPU"
    return (
        f"{gpu} has no NVENC video encode engine, so it cannot encode video in hardware "
        "(data-centre GPUs such as the H100 and H200 have none); rfb and other callers "
        f"fall back to their other encode routes. [{function} returned {name} ({code})]"
    )


def open_session(lib: Library, context: EncodeContext) -> Any:
    """A new session handle on ``context``; raises the status's exception class.

    ``NV_ENC_ERR_NO_ENCODE_DEVICE`` / ``NV_ENC_ERR_UNSUPPORTED_DEVICE`` raise an exception
    that is both an ``NvencError`` and an ``NvencUnavailable``, worded for people.
    """
    params = ffi.new("NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS *")
    params.version = _api.OPEN_ENCODE_SESSION_EX_PARAMS_VER
    params.deviceType = CUDA_DEVICE
    params.device = ffi.cast("void *", context.handle)
    params.apiVersion = _api.API_VERSION
    out = ffi.new("void **")
    with context.pushed():
        status = lib.nvEncOpenEncodeSessionEx(params, out)
    session = out[0]
    if status == 0:
        if session == ffi.NULL:
            raise error_for(
                "nvEncOpenEncodeSessionEx",
                20,
                None,
                "nvEncOpenEncodeSessionEx reported success but returned no session",
            )
        return session
    # The header: "If the creation of encoder session fails, the client must call
    # NvEncDestroyEncoder API before exiting." A driver may hand back a handle even then;
    # its last-error text explains the failure, and then it is destroyed. Without a
    # handle there is nothing to ask (never nvEncGetLastErrorString(NULL)).
    detail = None
    if session != ffi.NULL:
        with context.pushed():
            detail = lib.last_error(session)
            lib.nvEncDestroyEncoder(session)  # its status changes nothing: the open failed
    error = error_for("nvEncOpenEncodeSessionEx", status, detail)
    if isinstance(error, NO_ENGINE):
        error = error_for(
            "nvEncOpenEncodeSessionEx",
            status,
            detail,
            no_engine_message(context.gpu_name, "nvEncOpenEncodeSessionEx", error.name, error.code),
        )
    raise error
