"""What the harness's routes encode with, and the environment of the process that measures.

Both routes must drive the same engine, or the comparison says nothing:

- ``nvenc``: a GPU with NVENC silicon and its driver (nvencffi and FFmpeg both open a
  session). Measured as it is.
- ``emulated``: a CUDA GPU without NVENC (the H100/H200 we have). Both routes load the
  NVENC emulator (tests/nvenc_emulator) instead of the driver's libnvidia-encode:
  nvencffi through ``NVENCFFI_LIBRARY``, FFmpeg through ``LD_LIBRARY_PATH`` (its loader
  dlopen()s ``libnvidia-encode.so.1`` by name). The frames are real device memory; only
  the engine is emulated, and every report says so.
- ``emulated`` on host memory (``fake_cuda=True``; CI, no GPU at all): the same, plus the
  test suite's stand-in ``libcuda.so.1`` (tests/support/standin_libcuda.c) so that
  FFmpeg's nvenc can start. Routes then take host frames; only the default-run tests use this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.nvenc_emulator import HERE as EMULATOR_DIR
from tests.nvenc_emulator import build_emulator
from tests.support.standin_libcuda import build_standin_libcuda, ld_library_path


@dataclass(frozen=True)
class Engine:
    """``kind`` ("nvenc" or "emulated"), ``memory`` the frames live in, and the process's extra env."""

    kind: str
    memory: str  # "cuda" or "host"
    env: dict[str, str] = field(default_factory=dict)
    emulator: Path | None = None
    detail: str = ""

    @property
    def emulated(self) -> bool:
        return self.kind == "emulated"


def emulated(*, fake_cuda: bool = False) -> Engine:
    """The emulator for both routes (built if needed); ``fake_cuda`` adds the stand-in libcuda."""
    library = build_emulator()
    dirs = [library.parent]
    if fake_cuda:
        dirs.append(build_standin_libcuda().parent)
    env = {"NVENCFFI_LIBRARY": str(library), "LD_LIBRARY_PATH": ld_library_path(*dirs)}
    detail = f"NVENC emulator {library} (sources {EMULATOR_DIR})" + (
        "; stand-in libcuda (no GPU: host frames)" if fake_cuda else "; real CUDA device memory"
    )
    return Engine("emulated", "host" if fake_cuda else "cuda", env, library, detail)


def select() -> Engine | str:
    """The engine for a GPU run, or why there can be none here (the tests skip with it)."""
    from rfb.gpu.context import cupy_available, gpu_available

    reason = gpu_available()
    if reason is not None:
        return f"no CUDA: {reason}"
    reason = cupy_available()
    if reason is not None:
        return f"CuPy unusable (the harness makes its frames with it): {reason}"
    import nvencffi
    from rfb.encoders import nvenc_cpu

    if nvencffi.probe().available and nvenc_cpu.probe() is None:
        return Engine("nvenc", "cuda", {}, None, "the NVIDIA driver's NVENC")
    return emulated()
