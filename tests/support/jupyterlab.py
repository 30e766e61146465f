"""A real JupyterLab server for tests: loopback, a token, a temporary root, nothing shared.

The server and its kernels run this interpreter with the repository first on
``PYTHONPATH`` (so the kernel imports the rfb under test), and private Jupyter config,
data and runtime folders, so nothing of the user's Jupyter set-up takes part.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0  # a cold JupyterLab on a loaded 2-core machine takes a while


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class JupyterLab:
    root: Path
    port: int
    token: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    log_path: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str) -> str:
        """The notebook alone: ``reset`` drops the workspace, which would reopen earlier tests' notebooks."""
        return f"{self.origin}/lab/tree/{notebook}?reset&token={self.token}"

    def write_notebook(self, name: str, cells: list[str]) -> None:
        notebook = {
            "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {}, "outputs": [],
                       "source": source} for i, source in enumerate(cells)],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (self.root / name).write_text(json.dumps(notebook), "utf-8")

    def log_tail(self, n: int = 4000) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # jupyter shuts its kernels down on SIGTERM
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def start_jupyterlab(base: Path) -> JupyterLab:
    """Start ``jupyter lab`` on 127.0.0.1 and wait until its API answers; raise with its log if it does not."""
    root = base / "root"
    root.mkdir()
    token = secrets.token_urlsafe(16)
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        (base / name.lower()).mkdir()
        env[name] = str(base / name.lower())
    env.pop("JUPYTER_DATA_DIR", None)
    log_path = base / "jupyterlab.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--ServerApp.log_level=WARN", "--allow-root"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    lab = JupyterLab(root, port, token, process, log, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            lab.close()
            raise RuntimeError(f"jupyter lab exited with {process.returncode} before answering:\n{lab.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2) as response:
                if response.status == 200:
                    return lab
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            lab.close()
            raise RuntimeError(f"jupyter lab did not answer within {START_TIMEOUT:g} s:\n{lab.log_tail()}")
        time.sleep(0.25)
