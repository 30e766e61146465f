"""setuptools shim: only here because cffi's build hook is configured through setup().

Everything else about the package lives in pyproject.toml. ``cffi_modules`` makes the
normal build (``pip install .``, wheels, sdists) generate ``nvencffi/_nvenc.py`` from
``headers/nvenc.h`` and ``nvjpegffi/_nvjpeg.py`` from ``headers/nvjpeg.h`` (see
build_ffi.py). Editable installs (``pip install -e .``) load the packages from the
source tree, where the build hook's output is not visible; for those we also write the
generated modules next to the sources, so both kinds of install import the same
pre-parsed declarations. Source distributions must carry build_ffi.py and the headers,
which no package owns, so the sdist command adds them.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

FFI_SOURCES = ("build_ffi.py", "headers/nvenc.h", "headers/nvjpeg.h")  # what cffi_modules needs to build

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class build_py_editable_aware(build_py):
    """Also emit the generated modules in the source tree for editable installs."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            from build_ffi import MODULE, NVJPEG_MODULE, make_ffibuilder, make_nvjpeg_ffibuilder, target_path

            make_ffibuilder().emit_python_code(str(target_path(MODULE)))
            make_nvjpeg_ffibuilder().emit_python_code(str(target_path(NVJPEG_MODULE)))


class sdist_with_ffi_sources(sdist):
    """Put the cffi build inputs in the sdist, so wheels can be built from it."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, [*files, *(f for f in FFI_SOURCES if f not in files)])


setup(
    cmdclass={"build_py": build_py_editable_aware, "sdist": sdist_with_ffi_sources},
    cffi_modules=["build_ffi.py:ffibuilder", "build_ffi.py:nvjpeg_ffibuilder"],
)
