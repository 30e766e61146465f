"""This checkout as a build sees it: its files, copied elsewhere, and pip installs of such a copy.

Used by the packaging tests (tests/test_install.py, tests/nvencffi/test_packaging.py,
tests/nvjpegffi/test_packaging.py), which build and install from a copy so that files
ignored by git (build outputs, caches, a venv) cannot make a build pass.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.ci import unavailable

ROOT = Path(__file__).resolve().parents[2]


def tracked_files() -> list[str]:
    """The files a commit of this checkout would hold: tracked ones and new ones git does not ignore."""
    if shutil.which("git") is None:
        unavailable("git is not installed: cannot tell which files a build would see")
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0 or not listing.stdout.strip():
        unavailable(f"{ROOT} is not a git checkout: cannot tell which files a build would see")
    return listing.stdout.splitlines()


def copy_tracked(destination: Path) -> Path:
    """Copy :func:`tracked_files` (those present in the working tree) into ``destination``; return it."""
    for name in tracked_files():
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def pip_install_target(requirement: str, target: Path) -> None:
    """``pip install --no-deps --target target requirement`` with this interpreter; skip (fail in CI) if pip cannot."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), requirement],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        unavailable(f"pip install could not run here (package index unreachable?):\n{proc.stderr.strip()[-3000:]}")
