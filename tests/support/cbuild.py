"""Compiling the test suite's C libraries (the NVENC and nvJPEG emulators, a stand-in libcuda).

Each build is cached under ``.cache/`` by a digest of its sources, flags and compiler,
and written atomically, so that parallel test processes and compiler upgrades are safe.
A missing compiler is :class:`CompilerUnavailable` (a requirement not met: tests skip,
or fail in CI); a compiler that refuses our code is :class:`EmulatorBuildError`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

CFLAGS = ("-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-O2", "-fPIC")


class EmulatorBuildError(RuntimeError):
    """Compiling a test library failed; the message holds the compiler output."""


class CompilerUnavailable(EmulatorBuildError):
    """There is no C compiler to build with: a missing requirement, not a broken build."""


def compiler() -> str:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise CompilerUnavailable(f"no C compiler: {cc!r} is not on PATH (set CC)")
    return cc


@lru_cache(maxsize=4)
def compiler_identity(cc: str) -> str:
    """The compiler's first ``--version`` line, so that a compiler upgrade rebuilds."""
    try:
        proc = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmulatorBuildError(f"cannot run {cc} --version: {exc}") from exc
    return f"{cc}: {(proc.stdout.splitlines() or [''])[0]}"


def digest(files: list[Path], extra: tuple[str, ...]) -> str:
    """A short key for a build: the files' names and contents, and ``extra`` (flags, compiler)."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    for item in extra:
        h.update(item.encode() + b"\0")
    return h.hexdigest()[:20]


def compile_to(output: Path, args: list[str]) -> Path:
    """Run the compiler into a temporary file, then move it into place atomically."""
    if output.exists():
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=output.name + ".", dir=output.parent)
    os.close(fd)
    try:
        proc = subprocess.run([compiler(), *args, "-o", tmp], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise EmulatorBuildError(f"compiling {output.name} failed ({proc.returncode}):\n{proc.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return output
