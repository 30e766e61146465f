"""The build: an ABI-mode module from headers/nvenc.h with no compiler, no NVIDIA header.

The fast tests call build_ffi.py the way cffi's setuptools hook does and check the
fallback used when running from a source tree without the generated module. The slow
one runs a real ``pip install`` of a copy of the tracked files (build isolation: it needs
the package index) and imports the result with no C compiler on PATH.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from nvencffi._ffi import ffi
from tests.nvencffi.abi_check import composite_types
from tests.support.checkout import ROOT, copy_tracked, pip_install_target


def _signature(the_ffi) -> dict[str, int]:
    return {name: the_ffi.sizeof(ctype) for name, ctype in composite_types(the_ffi)}


def test_build_ffi_emits_a_pure_python_module(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("build_ffi_under_test", ROOT / "build_ffi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = tmp_path / "_nvenc_test.py"
    module.make_ffibuilder().emit_python_code(str(target))
    text = target.read_text()
    assert "_cffi_backend" in text and "#include" not in text
    spec = importlib.util.spec_from_file_location("_nvenc_test", target)
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    assert _signature(generated.ffi) == _signature(ffi)
    assert generated.ffi.sizeof("NV_ENC_PIC_PARAMS") == 3360  # LP64, as the official header


def test_the_source_tree_fallback_parses_the_header_and_says_so() -> None:
    code = (
        "import sys; sys.modules['nvencffi._nvenc'] = None\n"  # as if it was never generated
        "from nvencffi._ffi import ffi\n"
        "print(type(ffi).__module__, ffi.sizeof('NV_ENC_CONFIG'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.split() == ["cffi.api", "3584"]
    assert "nvencffi._nvenc not found" in proc.stderr and "headers/nvenc.h" in proc.stderr


def _assert_prebuilt_import(target: Path, tmp_path: Path) -> None:
    assert (target / "nvencffi" / "_nvenc.py").is_file()
    env = {"PATH": str(tmp_path / "empty"), "PYTHONPATH": str(target), "CC": "/nonexistent"}
    code = "import nvencffi._ffi as f, nvencffi; print(type(f.ffi).__module__, f.__file__)"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    module, path = proc.stdout.split()
    assert module != "cffi.api"  # the pre-built module, not the in-process fallback
    assert path.startswith(str(target))
    assert "not found" not in proc.stderr


@pytest.mark.slow
def test_pip_install_generates_the_module_without_a_compiler(tmp_path: Path) -> None:
    source = copy_tracked(tmp_path / "src")
    pip_install_target(str(source), tmp_path / "site")
    _assert_prebuilt_import(tmp_path / "site", tmp_path)


@pytest.mark.slow
def test_a_wheel_built_from_the_sdist_has_the_module_too(tmp_path: Path) -> None:
    source = copy_tracked(tmp_path / "src")
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist")],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (archive,) = (tmp_path / "dist").glob("*.tar.gz")
    import tarfile

    names = tarfile.open(archive).getnames()
    assert any(n.endswith("/build_ffi.py") for n in names) and any(n.endswith("/headers/nvenc.h") for n in names)
    pip_install_target(str(archive), tmp_path / "site")
    _assert_prebuilt_import(tmp_path / "site", tmp_path)
