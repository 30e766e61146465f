"""What this GPU's encoder can do, asked after the session opens (``nvEncGetEncodeCaps``).

A real driver refuses sizes outside its range only at ``nvEncInitializeEncoder``, with a
terse text ("Frame Dimension less than the minimum supported value" for 144x80 on one
GPU), and minimums differ between generations. FFmpeg (``nvenc_check_capabilities``)
and Sunshine (``nvenc_base::create_encoder``) therefore ask the caps first; so do we, and
refuse in plain words (:class:`~nvencffi.errors.FrameSizeUnsupported`) before
configuring anything. Two features are also asked for, because using them without the
cap is an error on the driver's side: a custom VBV size (our one-frame VBV; Sunshine
sets it only when ``NV_ENC_CAPS_SUPPORT_CUSTOM_VBV_BUF_SIZE`` says so) and resolution
changes within a session (``NV_ENC_CAPS_SUPPORT_DYN_RES_CHANGE``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nvencffi import _api
from nvencffi._ffi import ffi
from nvencffi.errors import FrameSizeUnsupported, NvencStatus, error_for

logger = logging.getLogger("nvencffi")

# The caps we ask, by the field of EncoderCaps they fill.
QUERIED = {
    "width_min": "NV_ENC_CAPS_WIDTH_MIN",
    "height_min": "NV_ENC_CAPS_HEIGHT_MIN",
    "width_max": "NV_ENC_CAPS_WIDTH_MAX",
    "height_max": "NV_ENC_CAPS_HEIGHT_MAX",
    "custom_vbv": "NV_ENC_CAPS_SUPPORT_CUSTOM_VBV_BUF_SIZE",
    "dyn_res_change": "NV_ENC_CAPS_SUPPORT_DYN_RES_CHANGE",
}


# Answers that mean "this driver does not know that cap": read as 0 (not reported), as
# FFmpeg's nvenc_check_cap reads any failure. Other failures are errors.
UNKNOWN_CAP = frozenset(
    (
        NvencStatus["NV_ENC_ERR_INVALID_PARAM"],
        NvencStatus["NV_ENC_ERR_UNSUPPORTED_PARAM"],
        NvencStatus["NV_ENC_ERR_UNIMPLEMENTED"],
    )
)


@dataclass(frozen=True, slots=True)
class EncoderCaps:
    """The caps of one GPU's H.264 encoder that the binding acts on.

    A size bound the driver reports as 0 is taken as "not reported" and not enforced.
    """

    width_min: int
    height_min: int
    width_max: int
    height_max: int
    custom_vbv: bool
    dyn_res_change: bool

    @property
    def min_size(self) -> tuple[int, int]:
        return self.width_min, self.height_min

    @property
    def max_size(self) -> tuple[int, int]:
        return self.width_max, self.height_max

    def supports_size(self, width: int, height: int) -> bool:
        return (
            width >= self.width_min
            and height >= self.height_min
            and (self.width_max <= 0 or width <= self.width_max)
            and (self.height_max <= 0 or height <= self.height_max)
        )

    def check_size(self, width: int, height: int, *, gpu_name: str | None = None, what: str = "a frame size") -> None:
        """Raise :class:`FrameSizeUnsupported` unless ``width`` x ``height`` is in range."""
        if self.supports_size(width, height):
            return
        gpu = f"this GPU ({gpu_name})" if gpu_name else "this GPU"
        high = "any size" if self.width_max <= 0 or self.height_max <= 0 else f"{self.width_max}x{self.height_max}"
        raise FrameSizeUnsupported(
            f"{what} of {width}x{height} was asked, but {gpu} encodes H.264 from "
            f"{self.width_min}x{self.height_min} to {high} (NV_ENC_CAPS_WIDTH_MIN/HEIGHT_MIN/WIDTH_MAX/HEIGHT_MAX)",
            (width, height),
            self.min_size,
            self.max_size,
        )


def query_caps(lib: Any, encoder: Any, codec_guid: Any) -> EncoderCaps:
    """Ask the session's driver for :data:`QUERIED` (``codec_guid``: a cffi ``GUID *``).

    A cap the driver does not know (:data:`UNKNOWN_CAP`) reads as 0: no size bound, no
    custom VBV, no resolution change. Any other failure raises the status's
    ``NvencError`` with the driver's text. Each query gets a fresh, zeroed
    ``NV_ENC_CAPS_PARAM``.
    """
    values: dict[str, int] = {}
    out = ffi.new("int *")
    for field, name in QUERIED.items():
        param = ffi.new("NV_ENC_CAPS_PARAM *")
        param.version = _api.CAPS_PARAM_VER
        param.capsToQuery = _api.enum_value("NV_ENC_CAPS", name)
        out[0] = 0
        status = lib.nvEncGetEncodeCaps(encoder, codec_guid[0], param, out)
        if status in UNKNOWN_CAP:
            logger.debug(
                "nvencffi: the driver does not report %s (%s); read as 0",
                name,
                error_for("nvEncGetEncodeCaps", status, lib.last_error(encoder)),
            )
            out[0] = 0
        elif status:
            raise error_for(
                "nvEncGetEncodeCaps",
                status,
                lib.last_error(encoder),
                f"nvEncGetEncodeCaps({name}) failed: {error_for('', status).name} ({status})",
            )
        values[field] = int(out[0])
    return EncoderCaps(
        width_min=max(values["width_min"], 1),
        height_min=max(values["height_min"], 1),
        width_max=values["width_max"],
        height_max=values["height_max"],
        custom_vbv=bool(values["custom_vbv"]),
        dyn_res_change=bool(values["dyn_res_change"]),
    )
