"""The install: what the base install holds, that its version floors work, what the sdist carries.

The slow test installs ``rfb[fast]`` with every dependency at the floor that
pyproject.toml declares, and no GPU package, into a fresh virtual environment, then
runs tests/install_smoke.py there: a display serving H.264, JPEG and PNG to a real
WebSocket viewer, OpenCV converting, and the GPU packages explaining what is missing.
The fast tests hide OpenCV or cuda-bindings from a fresh interpreter to show that the
base install runs without them. The scripts' install stamp is tested with a stand-in
Python that only logs what it is asked to do.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

from tests.support.checkout import ROOT, copy_tracked, tracked_files
from tests.support.ci import unavailable
from tests.support.nvenc_fixtures import c_compiler, emulator_path, official_header_dir  # noqa: F401 (fixtures)

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
GPU_ONLY = {"cuda-python", "cuda-bindings", "cuda-pathfinder", "cupy-cuda13x", "nvidia-nvjpeg"}


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def floor_pins(requirements: list[str]) -> list[str]:
    """``"numpy>=1.26"`` -> ``"numpy==1.26"``: the lowest versions the project claims to work with."""
    pins = []
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)", requirement)
        assert match, f"expected every dependency as NAME>=FLOOR so its floor can be tested, got {requirement!r}"
        pins.append(f"{match[1]}=={match[2]}")
    return pins


# ---------------------------------------------------------------- what pyproject.toml declares


def test_the_base_install_has_no_gpu_only_package_and_no_opencv():
    base = {requirement_name(r) for r in PROJECT["dependencies"]}
    assert not base & GPU_ONLY, f"GPU-only packages in the base install: {sorted(base & GPU_ONLY)}"
    assert "opencv-python-headless" not in base, "OpenCV belongs to rfb[fast]; the CPU routes fall back without it"
    extras = PROJECT["optional-dependencies"]
    assert {requirement_name(r) for r in extras["fast"]} == {"opencv-python-headless"}
    assert {"cuda-bindings", "cuda-pathfinder", "cupy-cuda13x", "nvidia-nvjpeg"} <= {
        requirement_name(r) for r in extras["gpu"]
    }


def test_the_test_extra_brings_what_the_suite_exercises_without_a_gpu():
    test = {requirement_name(r) for r in PROJECT["optional-dependencies"]["test"]}
    assert "rfb" in test and "rfb[fast]" in PROJECT["optional-dependencies"]["test"], "OpenCV's path is tested"
    assert {"cuda-bindings", "cuda-pathfinder"} <= test, "the bindings' CUDA handling is tested without a GPU"
    assert {"pytest", "pytest-timeout", "hypothesis", "httpx", "setuptools"} <= test


def test_license_is_an_spdx_expression_with_its_file_and_the_package_is_typed():
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "rfb" / "py.typed").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["rfb"]


def test_every_dependency_has_a_floor_that_can_be_pinned():
    pins = floor_pins(PROJECT["dependencies"])
    assert "starlette==1.7" in pins, "starlette < 1.7 has no WebSocketDisconnected (rfb.session imports it)"
    assert "av==18" in pins


# ---------------------------------------------------------------- without the extras


def run_hiding(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where importing any of ``modules`` fails, as if not installed."""
    hide = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in modules)
    return subprocess.run(
        [sys.executable, "-c", hide + code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_nvencffi_imports_and_probes_without_cuda_bindings():
    code = (
        "import nvencffi, nvjpegffi, rfb\n"
        "from rfb.gpu import gpu_available\n"
        "print(nvencffi.probe().available, nvjpegffi.probe().available)\n"
        "print(gpu_available())\n"
    )
    result = run_hiding(["cuda", "cuda.bindings", "cuda.pathfinder"], code)
    assert result.returncode == 0, result.stderr
    availability, reason = result.stdout.splitlines()
    assert availability == "False False"
    assert "cuda-python" in reason or "rfb[gpu]" in reason, f"the reason does not say what to install: {reason}"


def test_the_cpu_routes_run_without_opencv_and_say_why_they_are_slower():
    code = (
        "import logging, numpy as np\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from rfb.encoders.base import EncoderConfig\n"
        "from rfb.encoders import h264_cpu\n"
        "from rfb.frames import frame_from_array\n"
        "encoder = h264_cpu.create(EncoderConfig(width=64, height=48, fps=30, bitrate=1_000_000))\n"
        "payloads = encoder.encode(frame_from_array(np.zeros((48, 64, 3), np.uint8)), force_keyframe=True)\n"
        "payloads += encoder.flush(); encoder.close()\n"
        "print(sum(len(p.data) for p in payloads) > 0)\n"
    )
    result = run_hiding(["cv2"], code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert "OpenCV is not importable" in result.stderr and "pip install 'rfb[fast]'" in result.stderr


# ---------------------------------------------------------------- the sdist


def test_the_sdist_carries_all_of_tests_and_docs(tmp_path: Path):
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        unavailable(
            f"building the sdist needs setuptools >= 77 (SPDX license); this venv has {setuptools.__version__}: "
            "pip install -e '.[test]'"
        )
    source = copy_tracked(tmp_path / "src")
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist")],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (archive,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(archive) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    wanted = {name for name in tracked_files() if name.startswith(("tests/", "docs/"))}
    assert not wanted - names, f"the sdist lacks {sorted(wanted - names)[:10]}"
    assert {"LICENSE", "rfb/py.typed", "build_ffi.py", "headers/nvenc.h", "rfb/h264cuda/kernels/portable.h"} <= names


# ---------------------------------------------------------------- the floors, installed for real


def pip(venv: Path, *args: str, timeout: float = 600) -> None:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        unavailable(f"pip install {' '.join(args)} failed (package index unreachable?): {result.stderr.strip()[-800:]}")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_floor_versions_serve_h264_jpeg_and_png_without_gpu_packages(tmp_path: Path):
    pins = floor_pins([*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["fast"]])
    constraints = tmp_path / "floors.txt"
    constraints.write_text("\n".join(pins) + "\n")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip(venv, "--constraint", str(constraints), f"{copy_tracked(tmp_path / 'src')}[fast]")
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-I", str(ROOT / "tests" / "install_smoke.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"with {pins}:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    installed = report["versions"]
    for pin in pins:
        name, version = pin.split("==")
        assert installed[name].split(".")[: len(version.split("."))] == version.split("."), (name, installed[name])
    assert installed["cuda-bindings"] is None and installed["cuda-pathfinder"] is None
    assert report["package"] == {"py.typed": True, "license": "MIT"}
    serve = report["serve"]
    assert serve["routes"] == {"webcodecs": "h264_cpu", "image": "image", "png": "image"}
    assert serve["h264"]["shape"] == [96, 128, 3]
    assert max(abs(a - b) for a, b in zip(serve["h264"]["left"], (200, 40, 40), strict=True)) <= 12, serve["h264"]
    assert max(abs(a - b) for a, b in zip(serve["h264"]["right"], (40, 40, 200), strict=True)) <= 12, serve["h264"]
    assert serve["jpeg"] == {"mime": "image/jpeg", "shape": [96, 128, 3]}
    assert serve["png"] == {"mime": "image/png", "exact": True}
    assert report["conversion"] == {"converter": "OpenCVConverter", "format": "yuv420p"}
    gpu = report["gpu"]
    assert gpu["nvenc_probe"] and gpu["nvjpeg_probe"] and gpu["gpu_available"], gpu
    assert "cuda-python" in gpu["gpu_available"] or "rfb[gpu]" in gpu["gpu_available"], gpu


# ---------------------------------------------------------------- scripts/demo and scripts/test


FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../calls.log"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The install inputs and scripts/ in a directory whose .venv has a Python that only logs its calls.

    What the scripts decide (install or not, and what they say) is the subject here;
    a real install is the floors test's.
    """
    for path in [
        ROOT / "pyproject.toml",
        ROOT / "setup.py",
        ROOT / "build_ffi.py",
        *(ROOT / "scripts").iterdir(),
        *(ROOT / "headers").iterdir(),
    ]:
        (tmp_path / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, tmp_path / path.relative_to(ROOT))
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("version = 3.11.7\n")
    bin_dir = tmp_path / "bin"  # a chromium on PATH: scripts/test must not reach for apt-get
    bin_dir.mkdir()
    (bin_dir / "chromium").write_text("#!/bin/sh\n")
    (bin_dir / "chromium").chmod(0o755)
    return tmp_path


def run_script(checkout: Path, script: str, *args: str) -> tuple[list[str], str]:
    """(the fake Python's calls during this run, the script's stderr)."""
    log = checkout / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    env = {"PATH": f"{checkout / 'bin'}:/usr/bin:/bin", "HOME": str(checkout)}
    result = subprocess.run(
        [str(checkout / "scripts" / script), *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return (log.read_text().splitlines() if log.exists() else []), result.stderr


PATHS = "rfb nvencffi nvjpegffi tests build_ffi.py setup.py"
CHECKS = [f"-m ruff check {PATHS}", f"-m ruff format --check --quiet {PATHS}", "-m mypy"]
CHECKS_SAID = "scripts/test: ruff (lint and format) and mypy --strict (settings in pyproject.toml)\n"


def pip_calls(calls: list[str]) -> list[str]:
    return [call for call in calls if call.startswith("-m pip ")]


def test_scripts_install_once_then_start_without_pip_until_an_input_changes(checkout: Path):
    calls, said = run_script(checkout, "demo", "--port", "0")
    assert pip_calls(calls) == ["-m pip install -q --disable-pip-version-check -e ."]
    assert calls[-1] == "-m rfb demo --port 0"
    assert "scripts/demo: installing rfb and its dependencies into .venv" in said, said

    calls, said = run_script(checkout, "demo")
    assert calls == ["-m rfb demo"] and said == "", "a second run must not install (offline, under a second)"

    calls, said = run_script(checkout, "test", "-q")
    assert pip_calls(calls) == ["-m pip install -q --disable-pip-version-check -e .[test]"], calls
    assert calls[-1] == "-m pytest -q"
    assert not set(CHECKS) & set(calls), "pytest arguments given: only those tests, without the checks"
    calls, said = run_script(checkout, "test")
    assert calls == CHECKS + ["-m pytest"], "the whole suite: the code's checks first, no install"
    assert said == CHECKS_SAID, said

    (checkout / "headers" / "nvenc.h").write_text((checkout / "headers" / "nvenc.h").read_text() + "\n")
    calls, said = run_script(checkout, "test")
    assert len(pip_calls(calls)) == 1 and "changed: reinstalling rfb[test]" in said, said
    calls, said = run_script(checkout, "demo")
    assert calls == ["-m rfb demo"], "the [test] install holds the base install"

    calls, said = run_script(checkout, "demo", "--gpu")
    assert pip_calls(calls) == ["-m pip install -q --disable-pip-version-check -e .[gpu]"]
    calls, said = run_script(checkout, "test")
    assert calls == CHECKS + ["-m pytest"], "the same inputs: the [test] install still stands"


def test_an_install_from_other_inputs_voids_the_other_stamps(checkout: Path):
    header = checkout / "headers" / "nvenc.h"
    original = header.read_text()
    run_script(checkout, "test")
    header.write_text(original + "\n")
    calls, _ = run_script(checkout, "demo")
    assert len(pip_calls(calls)) == 1
    header.write_text(original)  # back to what [test] was installed from, but the venv now holds the other build
    calls, said = run_script(checkout, "test")
    assert len(pip_calls(calls)) == 1, said


def test_a_new_python_in_the_venv_reinstalls(checkout: Path):
    run_script(checkout, "demo")
    (checkout / ".venv" / "pyvenv.cfg").write_text("version = 3.12.1\n")
    calls, said = run_script(checkout, "demo")
    assert len(pip_calls(calls)) == 1 and "reinstalling" in said


def test_a_failed_install_leaves_no_stamp(checkout: Path):
    python = checkout / ".venv" / "bin" / "python"
    python.write_text(FAKE_PYTHON + 'case "$*" in "-m pip"*) exit 1;; esac\n')
    result = subprocess.run(
        [str(checkout / "scripts" / "demo")],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    python.write_text(FAKE_PYTHON)
    calls, _ = run_script(checkout, "demo")
    assert len(pip_calls(calls)) == 1, "the next run installs again"


def test_nvenc_probe_with_a_driver_but_without_cuda_bindings_says_what_to_install(emulator_path: Path):
    """A GPU machine with the base install: libnvidia-encode loads, cuda-bindings is missing."""
    code = (
        "import os, nvencffi\n"
        f"os.environ['NVENCFFI_LIBRARY'] = {str(emulator_path)!r}\n"
        "result = nvencffi.probe()\n"
        "print(result.available, result.max_api_version is not None)\n"
        "print(result.reason)\n"
    )
    result = run_hiding(["cuda", "cuda.bindings", "cuda.pathfinder"], code)
    assert result.returncode == 0, result.stderr
    availability, reason = result.stdout.split("\n", 1)
    assert availability == "False True", "the library loaded; the CUDA context is what is missing"
    assert "cuda-python" in reason or "rfb[gpu]" in reason, f"the reason does not say what to install: {reason}"


def test_a_python_older_than_3_11_is_named_before_anything_is_made(checkout: Path):
    shutil.rmtree(checkout / ".venv")
    (checkout / "bin" / "python3").write_text(
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'Python 3.9.2'; exit 0; }\nexit 1\n"
    )
    (checkout / "bin" / "python3").chmod(0o755)
    result = subprocess.run(
        [str(checkout / "scripts" / "demo")],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": f"{checkout / 'bin'}:/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "scripts/demo: rfb needs Python 3.11 or newer as python3; found: Python 3.9.2"
    assert not (checkout / ".venv").exists()
