"""The CUDA kernels of h264_cuda, and what both of their launchers need to know.

The kernels are ``*.cu`` files in this folder, written in the dialect that
``portable.h`` defines: CUDA that is also plain C, so the test suite can build and
run them on a CPU (tests/support/kernels_cpu.py) and compare them with the golden
model in CI, where there is no GPU. On a GPU, :mod:`.cuda` compiles them with NVRTC.

Every kernel is declared on one line, ``KERNEL name(params)``; :func:`signatures`
reads those lines, so a launcher knows which arguments are arrays and which are
scalars of which width without a second list to keep in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent

SCALARS = {"i32": "int32", "u32": "uint32", "i64": "int64", "u64": "uint64"}
"""The scalar parameter types a kernel may take, and their NumPy dtypes."""

Dim = tuple[int, int, int]


class Launcher(Protocol):
    """Where the kernels run: the GPU (:class:`.cuda.CudaLauncher`, CuPy arrays) or the
    test suite's CPU build (``tests.support.kernels_cpu.CpuLauncher``, NumPy arrays).

    The code that drives the kernels (one module per stage) takes a launcher and is the
    same on both: it allocates with ``xp`` and launches with :meth:`launch`.
    """

    xp: Any  # the array module: cupy or numpy

    def launch(self, name: str, grid: Dim, block: Dim, *args: Any) -> None:
        """Run kernel ``name`` over ``grid`` x ``block`` with ``args`` (arrays of ``xp``, ints)."""
        ...


def blocks(count: int, threads: int) -> Dim:
    """The one-dimensional grid that covers ``count`` threads in blocks of ``threads``."""
    return (max(-(-count // threads), 1), 1, 1)


_DECLARATION = re.compile(r"^KERNEL\s+(\w+)\s*\(([^)]*)\)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Param:
    """One kernel parameter: its C declaration, and the scalar type if it is not a pointer."""

    declaration: str
    scalar: str | None  # a key of SCALARS, or None for a pointer


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    params: tuple[Param, ...]

    @property
    def c_declaration(self) -> str:
        return f"void {self.name}({', '.join(p.declaration for p in self.params) or 'void'});"


def source_files() -> list[Path]:
    """The kernel sources, in a fixed order (each includes what it needs)."""
    return sorted(HERE.glob("*.cu"))


def translation_unit() -> str:
    """One compilation unit holding every kernel (both builds compile this, with -I HERE)."""
    return "".join(f'#include "{path.name}"\n' for path in source_files())


_LOCAL_INCLUDE = re.compile(r'^#include "([\w.]+)"[ \t]*$', re.MULTILINE)


def expanded_source() -> str:
    """:func:`translation_unit` with every local ``#include`` written out in place, each file once.

    This is what the GPU build compiles: CuPy caches compiled modules by their source
    text, so a change in an included file must change the text it sees.
    """
    seen: set[str] = set()

    def expand(text: str) -> str:
        def include(match: re.Match[str]) -> str:
            name = match[1]
            if name in seen:
                return f"/* {name}: included above */"
            seen.add(name)
            path = HERE / name
            if not path.is_file():
                raise FileNotFoundError(f"expected {name} beside the kernels in {HERE}, found nothing")
            return f"/* ---- {name} ---- */\n" + expand(path.read_text())

        return _LOCAL_INCLUDE.sub(include, text)

    return expand(translation_unit())


def _param(declaration: str, kernel: str) -> Param:
    declaration = " ".join(declaration.replace("__restrict__", "").split())
    words = declaration.replace("*", " * ").split()
    if "*" in words:
        return Param(declaration, None)
    base = words[-2] if len(words) >= 2 else ""
    if base not in SCALARS:
        raise ValueError(
            f"kernel {kernel}: expected a pointer or one of {sorted(SCALARS)} for each parameter, got {declaration!r}"
        )
    return Param(declaration, base)


@cache
def signatures() -> dict[str, Signature]:
    """Every kernel's parameters, read from its ``KERNEL`` line."""
    found: dict[str, Signature] = {}
    for path in source_files():
        for name, params in _DECLARATION.findall(path.read_text()):
            if name in found:
                raise ValueError(f"kernel {name} is declared twice (second time in {path.name})")
            decls = [p for p in (part.strip() for part in params.split(",")) if p and p != "void"]
            found[name] = Signature(name, tuple(_param(p, name) for p in decls))
    return found
