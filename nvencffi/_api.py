"""Version words and integer constants of the NVENC API we were written against.

The header builds each struct's ``version`` field with ``NVENCAPI_STRUCT_VERSION(n)``
(the API version, the struct's own revision in bits 16..23 and 0x7 in bits 28..30), and
some structs also carry bit 31. cffi cannot evaluate those macros, so we compute them
here; the ABI test compares every value below with the official header's macro.
"""

from __future__ import annotations

from typing import Any

from nvencffi._ffi import ffi

# ffi.dlopen(None) opens the running program itself: it gives access to the integer
# constants declared in the cdef (#defines and enumerators) without loading any driver.
_consts = ffi.dlopen(None)

API_MAJOR: int = _consts.NVENCAPI_MAJOR_VERSION
API_MINOR: int = _consts.NVENCAPI_MINOR_VERSION
API_VERSION: int = API_MAJOR | (API_MINOR << 24)
INFINITE_GOPLENGTH: int = _consts.NVENC_INFINITE_GOPLENGTH
MAX_SEQ_HDR_LEN: int = _consts.NV_MAX_SEQ_HDR_LEN


def struct_version(revision: int, *, bit31: bool = False) -> int:
    """``NVENCAPI_STRUCT_VERSION(revision)``, optionally ``| (1u << 31)``."""
    word = API_VERSION | (revision << 16) | (0x7 << 28)
    if bit31:
        word |= 1 << 31
    return word & 0xFFFFFFFF


# Every *_VER macro of a struct we pass to the driver: (revision, carries bit 31).
_REVISIONS: dict[str, tuple[int, bool]] = {
    "NV_ENC_CAPS_PARAM_VER": (1, False),
    "NV_ENC_CREATE_BITSTREAM_BUFFER_VER": (1, False),
    "NV_ENC_RC_PARAMS_VER": (1, False),
    "NV_ENC_CONFIG_VER": (8, True),
    "NV_ENC_INITIALIZE_PARAMS_VER": (6, True),
    "NV_ENC_RECONFIGURE_PARAMS_VER": (1, True),
    "NV_ENC_PRESET_CONFIG_VER": (4, True),
    "NV_ENC_PIC_PARAMS_MVC_VER": (1, False),
    "NV_ENC_PIC_PARAMS_VER": (6, True),
    "NV_ENC_LOCK_BITSTREAM_VER": (1, True),
    "NV_ENC_MAP_INPUT_RESOURCE_VER": (4, False),
    "NV_ENC_REGISTER_RESOURCE_VER": (4, False),
    "NV_ENC_SEQUENCE_PARAM_PAYLOAD_VER": (1, False),
    "NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER": (1, False),
    "NV_ENCODE_API_FUNCTION_LIST_VER": (2, False),
}

STRUCT_VERSIONS: dict[str, int] = {name: struct_version(rev, bit31=flag) for name, (rev, flag) in _REVISIONS.items()}

CAPS_PARAM_VER = STRUCT_VERSIONS["NV_ENC_CAPS_PARAM_VER"]
CREATE_BITSTREAM_BUFFER_VER = STRUCT_VERSIONS["NV_ENC_CREATE_BITSTREAM_BUFFER_VER"]
RC_PARAMS_VER = STRUCT_VERSIONS["NV_ENC_RC_PARAMS_VER"]
CONFIG_VER = STRUCT_VERSIONS["NV_ENC_CONFIG_VER"]
INITIALIZE_PARAMS_VER = STRUCT_VERSIONS["NV_ENC_INITIALIZE_PARAMS_VER"]
RECONFIGURE_PARAMS_VER = STRUCT_VERSIONS["NV_ENC_RECONFIGURE_PARAMS_VER"]
PRESET_CONFIG_VER = STRUCT_VERSIONS["NV_ENC_PRESET_CONFIG_VER"]
PIC_PARAMS_VER = STRUCT_VERSIONS["NV_ENC_PIC_PARAMS_VER"]
LOCK_BITSTREAM_VER = STRUCT_VERSIONS["NV_ENC_LOCK_BITSTREAM_VER"]
MAP_INPUT_RESOURCE_VER = STRUCT_VERSIONS["NV_ENC_MAP_INPUT_RESOURCE_VER"]
REGISTER_RESOURCE_VER = STRUCT_VERSIONS["NV_ENC_REGISTER_RESOURCE_VER"]
SEQUENCE_PARAM_PAYLOAD_VER = STRUCT_VERSIONS["NV_ENC_SEQUENCE_PARAM_PAYLOAD_VER"]
OPEN_ENCODE_SESSION_EX_PARAMS_VER = STRUCT_VERSIONS["NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER"]
FUNCTION_LIST_VER = STRUCT_VERSIONS["NV_ENCODE_API_FUNCTION_LIST_VER"]


def enum_value(type_name: str, name: str) -> int:
    """The value of enumerator ``name`` of enum ``type_name`` as declared in the cdef."""
    value: int = ffi.typeof(type_name).relements[name]
    return value


def zero_reserved(struct: Any) -> None:
    """Set every ``reserved*`` field of a cffi struct to 0 (its nested unions untouched).

    The header asks that reserved fields of input structs be 0; a struct copied from one
    the driver filled (the preset's config) could carry anything there.
    """
    ctype = ffi.typeof(struct)
    if ctype.kind == "pointer":
        ctype = ctype.item
    for name, field in ctype.fields:
        if not name.startswith("reserved"):
            continue
        kind = field.type.kind
        if kind == "array":
            target = getattr(struct, name)
            ffi.memmove(target, bytes(ffi.sizeof(target)), ffi.sizeof(target))
        elif kind == "pointer":
            setattr(struct, name, ffi.NULL)
        else:
            setattr(struct, name, 0)
