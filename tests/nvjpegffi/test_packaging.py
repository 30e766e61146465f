"""The build: nvjpegffi's ABI-mode module from headers/nvjpeg.h, with no compiler, next to nvencffi's.

The fast tests call build_ffi.py the way cffi's setuptools hook does and check the
source-tree fallback. The slow one runs a real ``pip install`` of the tracked files (it
needs the package index for build isolation) and imports BOTH bindings' pre-built
modules with no C compiler on PATH.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from nvjpegffi._ffi import ffi
from tests.support.abi_check import composite_types, enum_typedefs
from tests.support.checkout import copy_tracked, pip_install_target

ROOT = Path(__file__).resolve().parents[2]


def _build_ffi() -> object:
    spec = importlib.util.spec_from_file_location("build_ffi_under_test", ROOT / "build_ffi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_ffi_emits_a_pure_python_module(tmp_path: Path) -> None:
    build = _build_ffi()
    assert (
        build.NVJPEG_MODULE == "nvjpegffi._nvjpeg"
        and build.target_path(build.NVJPEG_MODULE) == ROOT / "nvjpegffi" / "_nvjpeg.py"
    )
    target = tmp_path / "_nvjpeg_test.py"
    build.make_nvjpeg_ffibuilder().emit_python_code(str(target))
    text = target.read_text()
    assert "_cffi_backend" in text and "#include" not in text
    spec = importlib.util.spec_from_file_location("_nvjpeg_test", target)
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    assert (
        [name for name, _ in composite_types(generated.ffi)]
        == [name for name, _ in composite_types(ffi)]
        == ["nvjpegImage_t"]
    )
    assert generated.ffi.sizeof("nvjpegImage_t") == 64  # LP64: 4 pointers and 4 size_t, as the official header
    assert enum_typedefs(generated.ffi) == enum_typedefs(ffi)


def test_setup_builds_both_bindings() -> None:
    text = (ROOT / "setup.py").read_text()
    assert '"build_ffi.py:ffibuilder", "build_ffi.py:nvjpeg_ffibuilder"' in text
    assert '"headers/nvjpeg.h"' in text  # in the sdist
    assert '"nvjpegffi*"' in (ROOT / "pyproject.toml").read_text()


def test_the_source_tree_fallback_parses_the_header_and_says_so() -> None:
    code = (
        "import sys; sys.modules['nvjpegffi._nvjpeg'] = None\n"  # as if it was never generated
        "from nvjpegffi._ffi import ffi\n"
        "print(type(ffi).__module__, ffi.sizeof('nvjpegImage_t'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.split() == ["cffi.api", "64"]
    assert "nvjpegffi._nvjpeg not found" in proc.stderr and "headers/nvjpeg.h" in proc.stderr


@pytest.mark.slow
def test_pip_install_generates_both_modules_without_a_compiler(tmp_path: Path) -> None:
    source = copy_tracked(tmp_path / "src")
    site = tmp_path / "site"
    pip_install_target(str(source), site)
    assert (site / "nvencffi" / "_nvenc.py").is_file() and (site / "nvjpegffi" / "_nvjpeg.py").is_file()
    env = {"PATH": str(tmp_path / "empty"), "PYTHONPATH": str(site), "CC": "/nonexistent"}
    code = (
        "import nvjpegffi._ffi as j, nvencffi._ffi as n, nvjpegffi\n"
        "print(type(j.ffi).__module__, type(n.ffi).__module__, j.__file__)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    jpeg_module, nvenc_module, path = proc.stdout.split()
    assert jpeg_module != "cffi.api" and nvenc_module != "cffi.api"  # the pre-built modules, not the fallback
    assert path.startswith(str(site)) and "not found" not in proc.stderr
