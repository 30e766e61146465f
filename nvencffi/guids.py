"""The NVENC GUIDs we use, by their canonical string form.

NVENC identifies codecs, profiles and presets by Windows-style GUIDs. A GUID in memory is
Data1 (32-bit), Data2 and Data3 (16-bit) in the machine's byte order, then 8 raw bytes:
exactly ``uuid.UUID.bytes_le`` on little-endian machines, which is how we build the
cffi struct. The ABI test checks every value here against the official header.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from nvencffi._ffi import ffi

CODECS: dict[str, uuid.UUID] = {
    "h264": uuid.UUID("6BC82762-4E63-4CA4-AA85-1E50F321F6BF"),
    "hevc": uuid.UUID("790CDC88-4522-4D7B-9425-BDA9975F7603"),
    "av1": uuid.UUID("0A352289-0AA7-4759-862D-5D15CD16D254"),
}

H264_PROFILES: dict[str, uuid.UUID] = {
    "autoselect": uuid.UUID("BFD6F8E7-233C-4341-8B3E-4818523803F4"),
    "baseline": uuid.UUID("0727BCAA-78C4-4C83-8C2F-EF3DFF267C6A"),
    "main": uuid.UUID("60B5C1D4-67FE-4790-94D5-C4726D7B6E6D"),
    "high": uuid.UUID("E7CBC309-4F7A-4B89-AF2A-D537C92BE310"),
    "high444": uuid.UUID("7AC663CB-A598-4960-B844-339B261A7D52"),
    "stereo": uuid.UUID("40847BF5-33F7-4601-9084-E8FE3C1DB8B7"),
    "progressive_high": uuid.UUID("B405AFAC-F32B-417B-89C4-9ABEED3E5978"),
    "constrained_high": uuid.UUID("AEC1BD87-E85B-48F2-84C3-98BCA6285072"),
}

PRESETS: dict[str, uuid.UUID] = {
    "p1": uuid.UUID("FC0A8D3E-45F8-4CF8-80C7-298871590EBF"),
    "p2": uuid.UUID("F581CFB8-88D6-4381-93F0-DF13F9C27DAB"),
    "p3": uuid.UUID("36850110-3A07-441F-94D5-3670631F91F6"),
    "p4": uuid.UUID("90A7B826-DF06-4862-B9D2-CD6D73A08681"),
    "p5": uuid.UUID("21C6E6B4-297A-4CBA-998F-B6CBDE72ADE3"),
    "p6": uuid.UUID("8E75C279-6299-4AB6-8302-0B215A335CF5"),
    "p7": uuid.UUID("84848C12-6F71-4C13-931B-53E283F57974"),
}

# The header's name for each GUID above (for the ABI test and for diagnostics).
HEADER_NAMES: dict[str, uuid.UUID] = {
    "NV_ENC_CODEC_H264_GUID": CODECS["h264"],
    "NV_ENC_CODEC_HEVC_GUID": CODECS["hevc"],
    "NV_ENC_CODEC_AV1_GUID": CODECS["av1"],
    "NV_ENC_CODEC_PROFILE_AUTOSELECT_GUID": H264_PROFILES["autoselect"],
    "NV_ENC_H264_PROFILE_BASELINE_GUID": H264_PROFILES["baseline"],
    "NV_ENC_H264_PROFILE_MAIN_GUID": H264_PROFILES["main"],
    "NV_ENC_H264_PROFILE_HIGH_GUID": H264_PROFILES["high"],
    "NV_ENC_H264_PROFILE_HIGH_444_GUID": H264_PROFILES["high444"],
    "NV_ENC_H264_PROFILE_STEREO_GUID": H264_PROFILES["stereo"],
    "NV_ENC_H264_PROFILE_PROGRESSIVE_HIGH_GUID": H264_PROFILES["progressive_high"],
    "NV_ENC_H264_PROFILE_CONSTRAINED_HIGH_GUID": H264_PROFILES["constrained_high"],
    **{f"NV_ENC_PRESET_{name.upper()}_GUID": value for name, value in PRESETS.items()},
}


def guid_bytes(value: uuid.UUID) -> bytes:
    """The 16 bytes of ``value`` laid out as a C ``GUID`` on this machine."""
    if sys.byteorder == "little":
        return value.bytes_le
    return value.bytes


def write_guid(target: Any, value: uuid.UUID) -> None:
    """Fill the cffi ``GUID`` field ``target`` (e.g. ``config.profileGUID``) with ``value``."""
    ffi.memmove(ffi.addressof(target), guid_bytes(value), 16)


def new_guid(value: uuid.UUID) -> Any:
    """A new cffi ``GUID *`` holding ``value`` (to pass by value, index it: ``g[0]``)."""
    out = ffi.new("GUID *")
    ffi.memmove(out, guid_bytes(value), 16)
    return out
