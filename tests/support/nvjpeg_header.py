"""NVIDIA's official nvjpeg.h (and libnvjpeg), fetched for the tests and never committed.

The ``nvidia-nvjpeg`` wheel (CUDA 13) carries both the official header and the library.
The header includes CUDA's ``cuda_runtime_api.h`` and ``library_types.h``, which come in
the ``nvidia-cuda-runtime`` wheel, and those include ``crt/host_defines.h`` from
``nvidia-cuda-crt``. All three are fetched with ``pip download --no-deps`` at pinned
versions (so the check is reproducible) and unpacked under ``.cache/`` in the project
root; they all put their headers in one ``nvidia/cu13/include`` folder.

The ABI check and the nvJPEG emulator are compiled against these headers only: they
must never see our own cffi declarations, or they would share our mistakes. The real
library lets the tests load nvJPEG, read its version and watch it refuse to start
without a GPU, on any machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# (distribution, version): nvJPEG 13.0 of CUDA 13.0 update 2, and the CUDA 13.0 headers it includes.
WHEELS: tuple[tuple[str, str], ...] = (
    ("nvidia-nvjpeg", "13.0.4.44"),
    ("nvidia-cuda-runtime", "13.0.96"),
    ("nvidia-cuda-crt", "13.0.88"),
)
EXPECTED_VERSION = (13, 0, 4)
CACHE = ROOT / ".cache" / "nvjpeg-sdk" / "-".join(version for _, version in WHEELS)
INCLUDE = CACHE / "nvidia" / "cu13" / "include"
LIBRARY = CACHE / "nvidia" / "cu13" / "lib" / "libnvjpeg.so.13"
HEADER_NAME = "nvjpeg.h"


class HeaderUnavailable(RuntimeError):
    """The official header could not be obtained; the message says why."""


def _fetch() -> None:
    """Download the pinned wheels and unpack them into CACHE (atomically)."""
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nvjpeg-sdk-", dir=CACHE.parent) as tmp:
        t = Path(tmp)
        requirements = [f"{name}=={version}" for name, version in WHEELS]
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(t / "wheels"),
            *requirements,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            raise HeaderUnavailable(f"pip download {' '.join(requirements)} could not run: {exc}") from exc
        if proc.returncode != 0:
            raise HeaderUnavailable(
                f"pip download {' '.join(requirements)} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}"
            )
        wheels = sorted((t / "wheels").glob("*.whl"))
        if len(wheels) != len(WHEELS):
            raise HeaderUnavailable(f"expected {len(WHEELS)} wheels from pip download, got {[w.name for w in wheels]}")
        unpacked = t / "unpacked"
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(unpacked)
        (unpacked / "WHEELS").write_text("".join(w.name + "\n" for w in wheels))
        try:
            os.replace(unpacked, CACHE)
        except OSError:
            if not (CACHE / "WHEELS").is_file():  # not a concurrent fetch that won the race
                raise


def official_include_dir() -> Path:
    """A directory holding the official ``nvjpeg.h`` and the CUDA headers it includes
    (fetched on first use)."""
    if not (CACHE / "WHEELS").is_file():
        if shutil.which(sys.executable) is None:
            raise HeaderUnavailable(f"cannot run {sys.executable} to fetch the nvJPEG wheels")
        _fetch()
    header = INCLUDE / HEADER_NAME
    for needed in (
        header,
        INCLUDE / "cuda_runtime_api.h",
        INCLUDE / "library_types.h",
        INCLUDE / "crt" / "host_defines.h",
    ):
        if not needed.is_file():
            raise HeaderUnavailable(f"{needed} is missing from the unpacked wheels in {CACHE}")
    version = header_version(header)
    if version != EXPECTED_VERSION:
        raise HeaderUnavailable(f"expected nvJPEG {EXPECTED_VERSION}, the fetched header says {version}")
    return INCLUDE


def official_library() -> Path:
    """The real ``libnvjpeg.so.13`` from the same wheel (fetched on first use)."""
    official_include_dir()
    if not LIBRARY.is_file():
        raise HeaderUnavailable(f"{LIBRARY} is missing from the unpacked nvidia-nvjpeg wheel")
    return LIBRARY


def header_version(header: Path) -> tuple[int, int, int]:
    text = header.read_text()
    found = [re.search(rf"#define\s+NVJPEG_VER_{part}\s+(\d+)", text) for part in ("MAJOR", "MINOR", "PATCH")]
    if not all(found):
        raise HeaderUnavailable(f"{header} does not define NVJPEG_VER_MAJOR/MINOR/PATCH")
    return tuple(int(m.group(1)) for m in found)  # type: ignore[union-attr,return-value]
