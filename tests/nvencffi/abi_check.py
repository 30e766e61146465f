"""The NVENC side of the ABI check: what nvencffi claims beyond the generic facts.

The generic machinery (layouts, enums, defines, exports, the C probe, the comparison)
lives in tests/support/abi_check.py and is shared with nvjpegffi. NVENC adds three kinds
of fact of its own: the API version word, the per-struct version words computed in
nvencffi/_api.py, and the GUID bytes of nvencffi/guids.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.abi_check import (
    Expectations,
    compare,
    composite_types,
    expect_defines,
    expect_enums,
    expect_exports,
    expect_layouts,
    header_enums,
    opaque_types,
)
from tests.support.abi_check import run_probe as _run_probe

__all__ = [
    "HEADER_NAME",
    "Expectations",
    "build_expectations",
    "compare",
    "composite_types",
    "header_enums",
    "opaque_types",
    "run_probe",
]

HEADER_NAME = "nvEncodeAPI.h"


def build_expectations(
    ffi: Any,
    *,
    defines: list[str],
    consts: Any,
    struct_versions: dict[str, int],
    api_version: int,
    guid_bytes: dict[str, bytes],
    exports: dict[str, str],
) -> Expectations:
    """Every fact nvencffi's declarations claim about nvEncodeAPI.h."""
    ex = Expectations()
    expect_layouts(ex, ffi)
    expect_enums(ex, ffi)
    expect_defines(ex, defines, consts)
    ex.expect("define NVENCAPI_VERSION", api_version, "NVENCAPI_VERSION")
    for name, value in struct_versions.items():
        ex.expect(f"version {name}", value, name)
    for name, raw in guid_bytes.items():
        ex.expect_bytes(f"guid {name}", raw, name)
    expect_exports(ex, exports)
    return ex


def run_probe(ex: Expectations, header_dir: Path, workdir: Path, cc: str = "cc") -> dict[str, str]:
    """Compile and run the probe against the official nvEncodeAPI.h in ``header_dir``."""
    return _run_probe(ex, headers=[HEADER_NAME], include_dirs=[header_dir], workdir=workdir, cc=cc)
