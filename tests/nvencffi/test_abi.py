"""Our cffi declarations against NVIDIA's official nvEncodeAPI.h, checked by a C compiler.

In ABI mode nothing checks our struct layouts at build time: a wrong field would only
show as garbage in the driver. So we generate a C probe from OUR declarations, compile
it against the OFFICIAL header, and require every size, offset, field type, bit-field
position, enumerator, constant, GUID and struct version to agree.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cffi import FFI

from nvencffi import _api, guids
from nvencffi._ffi import ffi
from nvencffi.errors import ERROR_CLASSES, NvencError, NvencStatus, NvencUnavailable
from tests.nvencffi import abi_check

ROOT = Path(__file__).resolve().parents[2]
OUR_HEADER = ROOT / "headers" / "nvenc.h"


def _defines(text: str) -> list[str]:
    return re.findall(r"^#define\s+(\w+)\s", text, flags=re.M)


def _exports(text: str) -> dict[str, str]:
    """Our declared library entry points as C function-pointer type names."""
    out = {}
    for ret, name, args in re.findall(r"^(NVENCSTATUS)\s+(\w+)\((.*)\);", text, flags=re.M):
        out[name] = f"{ret} (*)({args})"
    return out


def _expectations(the_ffi: FFI, header_text: str) -> abi_check.Expectations:
    return abi_check.build_expectations(
        the_ffi,
        defines=_defines(header_text),
        consts=the_ffi.dlopen(None),
        struct_versions=_api.STRUCT_VERSIONS,
        api_version=_api.API_VERSION,
        guid_bytes={name: guids.guid_bytes(value) for name, value in guids.HEADER_NAMES.items()},
        exports=_exports(header_text),
    )


@pytest.fixture(scope="module")
def probe_results(official_header_dir: Path, c_compiler: str, tmp_path_factory: pytest.TempPathFactory):
    ex = _expectations(ffi, OUR_HEADER.read_text())
    actual = abi_check.run_probe(ex, official_header_dir, tmp_path_factory.mktemp("abi"), c_compiler)
    return ex, actual


def test_every_declaration_matches_the_official_header(probe_results) -> None:
    ex, actual = probe_results
    problems = abi_check.compare(ex, actual)
    assert not problems, f"{len(problems)} ABI differences:\n" + "\n".join(problems[:80])


def test_the_probe_covers_every_kind_of_fact(probe_results) -> None:
    ex, _ = probe_results
    kinds = {key.split()[0] for key in ex.values}
    assert kinds == {"sizeof", "alignof", "offsetof", "type", "bits", "enum", "define", "version", "guid", "export"}
    # the structs the encoder passes to the driver are all checked, field by field
    for name in (
        "_NV_ENC_CONFIG",
        "_NV_ENC_INITIALIZE_PARAMS",
        "_NV_ENC_PIC_PARAMS",
        "_NV_ENC_LOCK_BITSTREAM",
        "_NV_ENC_REGISTER_RESOURCE",
        "_NV_ENC_MAP_INPUT_RESOURCE",
        "_NV_ENC_RECONFIGURE_PARAMS",
        "_NV_ENC_PRESET_CONFIG",
        "_NV_ENCODE_API_FUNCTION_LIST",
        "_NV_ENC_OPEN_ENCODE_SESSIONEX_PARAMS",
        "_NV_ENC_SEQUENCE_PARAM_PAYLOAD",
        "_NV_ENC_CREATE_BITSTREAM_BUFFER",
    ):
        assert f"sizeof {name}" in ex.values
    assert "bits _NV_ENC_CONFIG.encodeCodecConfig.h264Config.repeatSPSPPS" in ex.values
    assert "type _NV_ENCODE_API_FUNCTION_LIST.nvEncEncodePicture" in ex.values


def test_our_enums_list_exactly_the_headers_enumerators(official_header_dir: Path) -> None:
    theirs = abi_check.header_enums((official_header_dir / abi_check.HEADER_NAME).read_text())
    typedefs, _, _ = ffi.list_types()
    ours = [name for name in typedefs if ffi.typeof(name).kind == "enum"]
    assert ours, "no enums declared"
    for name in ours:
        assert name in theirs, f"{name} is not an enum of the official header"
        assert set(ffi.typeof(name).relements) == set(theirs[name]), name


def test_every_status_of_the_header_has_its_exception_class(official_header_dir: Path) -> None:
    statuses = abi_check.header_enums((official_header_dir / abi_check.HEADER_NAME).read_text())["NVENCSTATUS"]
    assert statuses[0] == "NV_ENC_SUCCESS" and len(statuses) == 27
    classes = set()
    for name in statuses[1:]:
        cls = ERROR_CLASSES[NvencStatus[name].value]
        assert issubclass(cls, NvencError) and cls.status_name == name
        classes.add(cls)
    assert len(classes) == 26  # one class per status
    for name in ("NV_ENC_ERR_NO_ENCODE_DEVICE", "NV_ENC_ERR_UNSUPPORTED_DEVICE"):
        assert issubclass(ERROR_CLASSES[NvencStatus[name].value], NvencUnavailable)
    assert not issubclass(ERROR_CLASSES[NvencStatus.NV_ENC_ERR_INVALID_PARAM.value], NvencUnavailable)


def test_the_check_catches_a_wrong_declaration(official_header_dir: Path, c_compiler: str, tmp_path: Path) -> None:
    """Negative control: a layout mistake, a swapped bit-field pair and a wrong signature
    in a mutated copy of our declarations must all be reported."""
    text = OUR_HEADER.read_text()
    mutations = [
        (
            "    NV_ENC_CAPS capsToQuery;\n    uint32_t    reserved[62];",
            "    NV_ENC_CAPS capsToQuery;\n    uint32_t    reserved[61];",
        ),
        (
            "    uint32_t              enableMinQP        : 1;\n    uint32_t              enableMaxQP        : 1;",
            "    uint32_t              enableMaxQP        : 1;\n    uint32_t              enableMinQP        : 1;",
        ),
        (
            "typedef NVENCSTATUS (*PNVENCUNLOCKBITSTREAM)(void *encoder, NV_ENC_OUTPUT_PTR bitstreamBuffer);",
            "typedef NVENCSTATUS (*PNVENCUNLOCKBITSTREAM)(void *encoder, uint32_t bitstreamBuffer);",
        ),
    ]
    for old, new in mutations:
        assert old in text, old
        text = text.replace(old, new)
    wrong = FFI()
    wrong.cdef(text)
    ex = _expectations(wrong, text)
    problems = "\n".join(abi_check.compare(ex, abi_check.run_probe(ex, official_header_dir, tmp_path, c_compiler)))
    assert "sizeof _NV_ENC_CAPS_PARAM:" in problems
    assert "bits _NV_ENC_RC_PARAMS.enableMinQP:" in problems
    assert "bits _NV_ENC_RC_PARAMS.enableMaxQP:" in problems
    assert "type _NV_ENCODE_API_FUNCTION_LIST.nvEncUnlockBitstream:" in problems


def test_struct_versions_follow_the_macro() -> None:
    # NVENCAPI_STRUCT_VERSION(8) | 1u<<31 for NV_ENC_CONFIG, by hand from the header's macro
    api = 12 | (1 << 24)
    assert _api.API_VERSION == api
    assert _api.STRUCT_VERSIONS["NV_ENC_CONFIG_VER"] == (api | (8 << 16) | (0x7 << 28) | (1 << 31))
    assert _api.STRUCT_VERSIONS["NV_ENC_REGISTER_RESOURCE_VER"] == (api | (4 << 16) | (0x7 << 28))
