"""NVIDIA's official nvEncodeAPI.h, fetched for the tests and never committed.

Debian ships the header in ``libffmpeg-nvenc-dev`` (12.1 in the trixie suite). We fetch
that package through the Debian mirror this machine is already configured with (read
from apt's own sources), using a private apt state directory so the system's package
lists are untouched, and unpack it under ``.cache/`` in the project root.

The ABI check and the NVENC emulator are compiled against this header only: they must
never see our own cffi declarations, or they would share our mistakes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "nvenc-header"
SUITE = "trixie"  # libffmpeg-nvenc-dev 12.1.x: NVENC API 12.1
PACKAGE = "libffmpeg-nvenc-dev"
EXPECTED_API = (12, 1)


class HeaderUnavailable(RuntimeError):
    """The official header could not be obtained; the message says why."""


def _configured_mirror() -> str:
    """The Debian archive URI apt is configured with (deb822 or one-line format)."""
    candidates: list[Path] = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        candidates += sorted(d.glob("*.sources")) + sorted(d.glob("*.list"))
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            uri = m.group(1)
            if "security" not in uri:
                return uri.rstrip("/")
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", text, re.M):
            uri = m.group(1)
            if "security" not in uri:
                return uri.rstrip("/")
    raise HeaderUnavailable("no Debian mirror found in /etc/apt/sources.list{,.d}")


def official_header_dir() -> Path:
    """A directory holding the official ``nvEncodeAPI.h`` (fetched on first use)."""
    header = CACHE / "include" / "nvEncodeAPI.h"
    if header.is_file():
        return header.parent
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise HeaderUnavailable("apt-get and dpkg-deb are needed to fetch the official NVENC header")
    mirror = _configured_mirror()
    with tempfile.TemporaryDirectory(prefix="nvenc-header-") as tmp:
        t = Path(tmp)
        (t / "lists" / "partial").mkdir(parents=True)
        (t / "archives" / "partial").mkdir(parents=True)
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        signed = f"[signed-by={keyring}] " if os.path.exists(keyring) else ""
        (t / "sources.list").write_text(f"deb {signed}{mirror} {SUITE} main\n")
        opts = [
            f"-oDir::Etc::SourceList={t / 'sources.list'}",
            "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={t / 'lists'}",
            f"-oDir::Cache::Archives={t / 'archives'}",
            "-oAPT::Sandbox::User=root",
            "-oDebug::NoLocking=1",
        ]
        for cmd in (["apt-get", *opts, "update"], ["apt-get", *opts, "download", PACKAGE]):
            proc = subprocess.run(cmd, cwd=t, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise HeaderUnavailable(
                    f"{' '.join(cmd[:1] + cmd[-2:])} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
                )
        debs = list(t.glob(f"{PACKAGE}_*.deb"))
        if not debs:
            raise HeaderUnavailable(f"apt-get download produced no {PACKAGE} package in {t}")
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(t / "x")], check=True, timeout=60)
        found = list((t / "x").rglob("nvEncodeAPI.h"))
        if not found:
            raise HeaderUnavailable(f"{debs[0].name} holds no nvEncodeAPI.h")
        (CACHE / "include").mkdir(parents=True, exist_ok=True)
        tmp_header = header.with_suffix(".tmp")
        shutil.copyfile(found[0], tmp_header)
        (CACHE / "PACKAGE").write_text(debs[0].name + "\n")
        os.replace(tmp_header, header)
    major, minor = header_api_version(header)
    if (major, minor) != EXPECTED_API:
        raise HeaderUnavailable(f"expected NVENC API {EXPECTED_API}, the fetched header says {(major, minor)}")
    return header.parent


def header_api_version(header: Path) -> tuple[int, int]:
    text = header.read_text()
    major = re.search(r"#define\s+NVENCAPI_MAJOR_VERSION\s+(\d+)", text)
    minor = re.search(r"#define\s+NVENCAPI_MINOR_VERSION\s+(\d+)", text)
    if not (major and minor):
        raise HeaderUnavailable(f"{header} does not define NVENCAPI_MAJOR_VERSION/MINOR_VERSION")
    return int(major.group(1)), int(minor.group(1))
