"""Our cffi declarations against NVIDIA's official nvjpeg.h, checked by a C compiler.

In ABI mode nothing checks our declarations at build time: a wrong struct layout, enum
value or function signature would only show as garbage on the GPU. So the shared
checker (tests/support/abi_check.py) generates a C probe from OUR declarations,
compiles it against the OFFICIAL header of the pinned nvidia-nvjpeg wheel, and every
size, offset, field type, enumerator, constant and function type must agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cffi import FFI

from nvjpegffi import library
from nvjpegffi._ffi import ffi
from nvjpegffi.errors import ERROR_CLASSES, NvjpegError, NvjpegStatus
from tests.support import abi_check

ROOT = Path(__file__).resolve().parents[2]
OUR_HEADER = ROOT / "headers" / "nvjpeg.h"
HEADERS = ["nvjpeg.h"]
# libraryPropertyType is CUDA's (library_types.h, included by nvjpeg.h).
ENUM_SOURCES = ("nvjpeg.h", "library_types.h")


def _expectations(the_ffi: FFI, header_text: str) -> abi_check.Expectations:
    ex = abi_check.Expectations()
    abi_check.expect_layouts(ex, the_ffi)
    abi_check.expect_enums(ex, the_ffi)
    abi_check.expect_defines(ex, abi_check.defines_in(header_text), the_ffi.dlopen(None))
    abi_check.expect_exports(ex, abi_check.exports_in(header_text, "nvjpegStatus_t"))
    return ex


def _probe(ex: abi_check.Expectations, include: Path, workdir: Path, cc: str) -> dict[str, str]:
    return abi_check.run_probe(ex, headers=HEADERS, include_dirs=[include], workdir=workdir, cc=cc)


@pytest.fixture(scope="module")
def probe_results(official_include_dir: Path, c_compiler: str, tmp_path_factory: pytest.TempPathFactory):
    ex = _expectations(ffi, OUR_HEADER.read_text())
    return ex, _probe(ex, official_include_dir, tmp_path_factory.mktemp("abi"), c_compiler)


def test_every_declaration_matches_the_official_header(probe_results) -> None:
    ex, actual = probe_results
    problems = abi_check.compare(ex, actual)
    assert not problems, f"{len(problems)} ABI differences:\n" + "\n".join(problems[:80])


def test_the_probe_covers_every_declaration(probe_results) -> None:
    ex, _ = probe_results
    assert ex.kinds() == {"sizeof", "alignof", "offsetof", "type", "enum", "define", "export"}
    # the struct we fill, field by field (arrays as a whole: their length is in the size)
    for fact in (
        "sizeof nvjpegImage_t",
        "offsetof nvjpegImage_t.pitch",
        "type nvjpegImage_t.channel",
        "sizeof nvjpegImage_t.pitch",
        "define NVJPEG_MAX_COMPONENT",
        "enum nvjpegChromaSubsampling_t.NVJPEG_CSS_UNKNOWN",
        "enum libraryPropertyType.PATCH_LEVEL",
    ):
        assert fact in ex.values, fact
    # every function the library is asked for has its type checked
    declared = {key.split()[1] for key in ex.values if key.startswith("export ")}
    assert set(library.REQUIRED_FUNCTIONS) | set(library.OPTIONAL_FUNCTIONS) <= declared
    assert declared == set(abi_check.exports_in(OUR_HEADER.read_text(), "nvjpegStatus_t"))
    # and each declared function is one the probe names in C (a typo would not compile)
    assert len(declared) == len(
        [line for line in OUR_HEADER.read_text().splitlines() if line.startswith("nvjpegStatus_t ")]
    )


def test_the_handles_are_opaque_and_tagged_as_in_the_header() -> None:
    assert set(abi_check.opaque_types(ffi)) == {
        "CUstream_st",
        "nvjpegHandle",
        "nvjpegEncoderState",
        "nvjpegEncoderParams",
    }


def test_our_enums_list_exactly_the_headers_enumerators(official_include_dir: Path) -> None:
    theirs: dict[str, list[str]] = {}
    for name in ENUM_SOURCES:
        theirs.update(abi_check.header_enums((official_include_dir / name).read_text()))
    ours = abi_check.enum_typedefs(ffi)
    assert len(ours) == 6
    for name in ours:
        assert name in theirs, f"{name} is not an enum of the official headers"
        assert set(ffi.typeof(name).relements) == set(theirs[name]), name


def test_every_status_of_the_header_has_its_exception_class(official_include_dir: Path) -> None:
    statuses = abi_check.header_enums((official_include_dir / "nvjpeg.h").read_text())["nvjpegStatus_t"]
    assert statuses[0] == "NVJPEG_STATUS_SUCCESS" and len(statuses) == 11
    classes = set()
    for name in statuses[1:]:
        cls = ERROR_CLASSES[NvjpegStatus[name].value]
        assert issubclass(cls, NvjpegError) and cls.status_name == name
        classes.add(cls)
    assert len(classes) == 10  # one class per status


def test_the_check_catches_a_wrong_declaration(official_include_dir: Path, c_compiler: str, tmp_path: Path) -> None:
    """Negative control: a wrong array length, a wrong enumerator value and a wrong
    parameter type in a mutated copy of our declarations must all be reported."""
    text = OUR_HEADER.read_text()
    mutations = [
        ("    size_t pitch[4];", "    size_t pitch[3];"),
        ("    NVJPEG_INPUT_NV12 = 8", "    NVJPEG_INPUT_NV12 = 7"),
        (
            "nvjpegStatus_t nvjpegEncoderParamsSetQuality(nvjpegEncoderParams_t encoder_params, const int quality,",
            "nvjpegStatus_t nvjpegEncoderParamsSetQuality(nvjpegEncoderParams_t encoder_params, "
            "const unsigned int quality,",
        ),
    ]
    for old, new in mutations:
        assert old in text, old
        text = text.replace(old, new)
    wrong = FFI()
    wrong.cdef(text)
    ex = _expectations(wrong, text)
    problems = "\n".join(abi_check.compare(ex, _probe(ex, official_include_dir, tmp_path, c_compiler)))
    assert "sizeof nvjpegImage_t:" in problems
    assert "sizeof nvjpegImage_t.pitch:" in problems
    assert "enum nvjpegInputFormat_t.NVJPEG_INPUT_NV12:" in problems
    assert "export nvjpegEncoderParamsSetQuality:" in problems
    assert "export nvjpegEncode:" not in problems  # only what was broken
