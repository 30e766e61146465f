"""The nvJPEG emulator (``emulator.c``): build it, control it, read what it "encoded".

No machine here has a GPU, so nvjpegffi and the jpeg_gpu route are driven against this
stand-in for ``libnvjpeg.so.13``, compiled against NVIDIA's official ``nvjpeg.h``. Its
output is the header of what it was asked to do followed by the pixels it read through
the pointers and pitches it was given (see emulator.c), which :func:`parse` turns back
into arrays for a byte-for-byte comparison.

Typical use::

    path = build_emulator()                        # cached by source + header hash
    os.environ["NVJPEGFFI_LIBRARY"] = str(path)    # nvjpegffi dlopens this path
    emu = Emulator(path)                           # the same loaded instance
    emu.reset()
    ... drive the binding ...
    assert emu.live() == {"handles": 0, "states": 0, "params": 0}

The compiler plumbing (cache key, atomic build) is the NVENC emulator's.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.nvenc_emulator import require_build
from tests.support.cbuild import CFLAGS, EmulatorBuildError, compile_to, compiler, compiler_identity, digest
from tests.support.nvjpeg_header import HEADER_NAME, ROOT, HeaderUnavailable, official_include_dir

__all__ = ["EmulatorBuildError", "Emulator", "EmulatorOutput", "build_emulator", "parse", "require_emulator"]

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "emulator.c"
CACHE = ROOT / ".cache" / "nvjpeg-emulator"
LIBRARY_NAME = "libnvjpeg.so.13"
MAGIC = b"NVJEMU01"
HEADER = struct.Struct("<8sIIiiiiiiQQQ")


def build_emulator(source: Path = SOURCE) -> Path:
    """Compile the emulator (once per source + header + compiler) and return the ``.so``.

    ``source`` is the C file (tests build a broken copy). Raises HeaderUnavailable when
    the official headers cannot be fetched, CompilerUnavailable without a compiler and
    EmulatorBuildError when compilation fails.
    """
    include = official_include_dir()
    # -isystem: CUDA's own headers are not ours to keep warning-free under -Werror.
    # Default visibility: the nvJPEG entry points must be exported.
    flags = (*CFLAGS, "-shared")
    key = digest([source, include / HEADER_NAME], (*flags, compiler_identity(compiler())))
    return compile_to(CACHE / key / LIBRARY_NAME, [*flags, "-isystem", str(include), str(source)])


def require_emulator(source: Path = SOURCE) -> Path:
    """:func:`build_emulator` for tests: a missing header or compiler skips (fails in
    CI); a build error fails the test everywhere."""
    return require_build(lambda: build_emulator(source), "the nvJPEG emulator", missing=(HeaderUnavailable,))


class Emulator:
    """Control and inspection of a loaded emulator (its test-only ``emu_*`` symbols).

    ``ctypes.CDLL`` of the path nvjpegffi dlopened returns the same loaded instance, so
    the counters read here are the ones the binding drives.
    """

    COUNTERS = ("handles", "states", "params", "encodes", "retrieves", "created")

    def __init__(self, path: Path) -> None:
        self.path = path
        lib = ctypes.CDLL(str(path))
        if not hasattr(lib, "emu_count"):
            raise EmulatorBuildError(f"{path} is not the nvJPEG emulator (no emu_count symbol)")
        lib.emu_count.argtypes = [ctypes.c_char_p]
        lib.emu_count.restype = ctypes.c_longlong
        lib.emu_inject.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        lib.emu_set_version.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib = lib

    def reset(self) -> None:
        self._lib.emu_reset()

    def count(self, name: str) -> int:
        if name not in self.COUNTERS:
            raise KeyError(f"unknown counter {name!r}; expected one of {self.COUNTERS}")
        return int(self._lib.emu_count(name.encode()))

    def live(self) -> dict[str, int]:
        """Objects created and not destroyed yet."""
        return {name: self.count(name) for name in ("handles", "states", "params")}

    def inject(self, function: str, status: int, nth: int = 1) -> None:
        """Make the ``nth`` next call of ``function`` return ``status`` (and do nothing)."""
        self._lib.emu_inject(function.encode(), int(status), int(nth))

    def set_version(self, major: int, minor: int, patch: int) -> None:
        self._lib.emu_set_version(major, minor, patch)


@dataclass(frozen=True)
class EmulatorOutput:
    """One emulator "bitstream": what it was asked to do, and the planes it read."""

    width: int
    height: int
    input_format: int
    input_subsampling: int  # -2: nvjpegEncodeImage (which takes none)
    params_subsampling: int
    quality: int
    optimized: int
    encoding: int
    stream: int
    pitches: tuple[int, int]
    planes: tuple[np.ndarray, ...]  # RGB: ((H, W, 3),); NV12: ((H, W), (ceil(H/2), 2*ceil(W/2)))


def parse(data: bytes) -> EmulatorOutput:
    """Read an emulator output back (ValueError if ``data`` is not one)."""
    if len(data) < HEADER.size or data[:8] != MAGIC:
        raise ValueError(f"expected an nvJPEG emulator output starting with {MAGIC!r}, got {data[:8]!r}")
    (_, width, height, fmt, in_css, css, quality, optimized, encoding, stream, pitch0, pitch1) = HEADER.unpack_from(
        data
    )
    body = np.frombuffer(data, dtype=np.uint8, offset=HEADER.size)
    if pitch1:  # NV12
        luma = width * height
        chroma_rows, chroma_bytes = (height + 1) // 2, 2 * ((width + 1) // 2)
        planes: tuple[np.ndarray, ...] = (
            body[:luma].reshape(height, width),
            body[luma : luma + chroma_rows * chroma_bytes].reshape(chroma_rows, chroma_bytes),
        )
        expected = luma + chroma_rows * chroma_bytes
    else:
        planes = (body[: width * height * 3].reshape(height, width, 3),)
        expected = width * height * 3
    if body.size != expected:
        raise ValueError(f"emulator output of {width}x{height}: expected {expected} pixel bytes, got {body.size}")
    return EmulatorOutput(
        width, height, fmt, in_css, css, quality, optimized, encoding, stream, (pitch0, pitch1), planes
    )
