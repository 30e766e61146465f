"""A real JupyterLab server on loopback, and a notebook in it driven by headless Chromium.

Used by ``python -m rfb.benchmark.widget_latency`` and by the widget's browser tests
(tests/test_widget.py). Needs JupyterLab, anywidget and Playwright (``pip install -e
'.[test]'``) and Debian's Chromium, launched by
:mod:`rfb.benchmark.chromium`.

The server listens on loopback with a token and a temporary root; nothing is shared.
The server and its kernels run this interpreter with the folder that holds the imported
``rfb`` first on ``PYTHONPATH`` (so the kernel imports this very rfb, a checkout's too),
and private Jupyter config, data and runtime folders, so nothing of the user's Jupyter
set-up takes part.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import rfb

RFB_ROOT = Path(rfb.__file__).resolve().parents[1]  # the folder the kernel must import rfb from
START_TIMEOUT = 60.0  # a cold JupyterLab on a loaded 2-core machine takes a while


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"cell{i}",
                    "metadata": {},
                    "outputs": [],
                    "source": source,
                }
                for i, source in enumerate(cells)
            ],
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
    env["PYTHONPATH"] = os.pathsep.join([str(RFB_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    # The user's data folder holds no extension the widget needs (those installed with the
    # packages live in sys.prefix/share/jupyter), and the server writes there: a fresh one.
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        (base / name.lower()).mkdir()
        env[name] = str(base / name.lower())
    log_path = base / "jupyterlab.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.log_level=WARN",
            "--allow-root",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
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


class Notebook:
    """A notebook open in JupyterLab in headless Chromium: run cells, find widgets, read the kernel's status."""

    def __init__(
        self,
        lab: JupyterLab,
        name: str,
        cells: list[str],
        *,
        block_port_except_lab: bool,
        tmp: Path,
        wait_s: float = 30.0,
        viewport: tuple[int, int] = (1100, 900),
    ) -> None:
        from playwright.sync_api import sync_playwright

        from rfb.benchmark.chromium import launch

        self.lab = lab
        self.wait_s = wait_s
        self.status_path = tmp / "status.json"
        lab.write_notebook(name, cells)
        args: list[str] = []
        if block_port_except_lab:
            # Every request but JupyterLab's goes to a proxy that is not there: the display's
            # port is unreachable from this browser, as from one far from the kernel.
            args += [
                f"--proxy-server=http://127.0.0.1:{free_port()}",
                f"--proxy-bypass-list=<-loopback>;127.0.0.1:{lab.port}",
            ]  # later rules win
        self._playwright = sync_playwright().start()
        self.errors: list[str] = []
        try:
            self.context = launch(
                self._playwright,
                tmp / "profile",
                extra_args=args,
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            self.page = self.context.new_page()
            self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
            self.page.set_default_timeout(self.wait_s * 1000)
            self.page.goto(lab.url(name))
            self.page.wait_for_selector(".jp-Notebook .jp-Cell")
            self.page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            # The kernel itself, started and answering: the status bar's "Python 3 (ipykernel) | Idle".
            self.page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                ".some((e) => /\\| Idle/.test(e.textContent))"
            )
        except BaseException:
            self.close()
            raise

    def run(self, index: int) -> None:
        """Run cell ``index`` (Ctrl+Enter in its editor: run it and stay) and wait until it has run.

        An execution asked for while JupyterLab is still settling its kernel connection
        can be lost (the prompt goes back to ``[ ]``), and a cell can be re-rendered
        while it is clicked: then it is asked for again.
        """
        cell = self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").nth(index)
        prompt = cell.locator(".jp-InputPrompt")
        before = prompt.inner_text().strip()
        from playwright.sync_api import Error as PlaywrightError

        for _ in range(3):
            editor = cell.locator(".jp-InputArea-editor")
            try:
                editor.scroll_into_view_if_needed()
                editor.click()
            except PlaywrightError:  # JupyterLab re-rendered the cell under us: find it again
                time.sleep(0.5)
                continue
            self.page.keyboard.press("Control+Enter")
            deadline = time.monotonic() + self.wait_s / 2
            while time.monotonic() < deadline:
                now = prompt.inner_text().strip()
                if now != before and re.fullmatch(r"\[\d+\]:", now):
                    return
                time.sleep(0.1)
        self.page.screenshot(path=str(self.status_path.with_name("failure.png")))
        raise RuntimeError(
            f"cell {index} did not run (prompt {prompt.inner_text().strip()!r}); "
            f"outputs {self.outputs()}; screenshot {self.status_path.with_name('failure.png')}"
        )

    def widgets(self) -> int:
        count: int = self.page.evaluate("() => (window.__rfbWidgets || []).length")
        return count

    def wait_drawn(self, index: int, frames: int = 1) -> dict[str, Any]:
        self.page.wait_for_function(
            "([i, n]) => { const w = (window.__rfbWidgets || [])[i]; return w && w.stats.framesDrawn >= n; }",
            arg=[index, frames],
        )
        return self.stats(index)

    def stats(self, index: int) -> dict[str, Any]:
        stats: dict[str, Any] = self.page.evaluate("(i) => window.__rfbWidgets[i].stats", index)
        return stats

    def snapshot(self, index: int, points: list[tuple[int, int]]) -> dict[str, Any]:
        shot: dict[str, Any] = self.page.evaluate(
            "([i, points]) => window.__rfbWidgets[i].snapshot(points)", [index, [list(p) for p in points]]
        )
        return shot

    def client_point(self, index: int, x: float, y: float) -> tuple[float, float]:
        """Where frame pixel (x, y) of widget ``index`` is on the page, through its view."""
        box = self.page.evaluate(
            """(i) => {
            const hook = window.__rfbWidgets[i];
            const host = [...document.querySelectorAll('*')].find((e) => e.__rfb === hook);
            host.scrollIntoView({block: 'center'});
            const r = host.shadowRoot.getElementById('viewer').getBoundingClientRect();
            return {left: r.left, top: r.top, view: hook.view};
        }""",
            index,
        )
        view = box["view"]
        return float(box["left"] + view["x"] + x * view["scale"]), float(box["top"] + view["y"] + y * view["scale"])

    def outputs(self) -> list[str]:
        """The text of every cell's output area (tracebacks, for a failure's message)."""
        texts: list[str] = self.page.evaluate(
            "() => [...document.querySelectorAll('.jp-Cell')]"
            ".map((c) => c.querySelector('.jp-OutputArea')?.innerText || '')"
        )
        return texts

    def status(self) -> dict[str, Any]:
        try:
            status: dict[str, Any] = json.loads(self.status_path.read_text("utf-8"))
            return status
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def wait_status(self, match: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_s
        while True:
            status = self.status()
            if status and match(status):
                return status
            if time.monotonic() > deadline:
                self.page.screenshot(path=str(self.status_path.with_name("failure.png")))
                raise RuntimeError(
                    f"the kernel's status never showed {what}; last: {status}\n"
                    f"cell outputs: {self.outputs()}\n{self.lab.log_tail()}"
                )
            time.sleep(0.1)

    def close(self) -> None:
        context = getattr(self, "context", None)
        if context is not None:
            context.close()
        self._playwright.stop()
