"""``python -m rfb doctor``: which encode routes can run here, and if not, why not.

Together with the facts that decide it (driver, CUDA device, FFmpeg build), ending with
the routes a display would pick. It never crashes, because it is what people run when
something is already wrong: every fact that cannot be read is reported as such.
``--selftest`` hands over to :mod:`rfb.selftest`.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import dataclasses
import json
import logging
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import rfb
from rfb.commands import EXIT_RUNTIME
from rfb.encoders.base import Transport

logger = logging.getLogger("rfb.cli")  # one name for the command line's log lines, whichever command


def doctor_command(args: argparse.Namespace) -> int:
    """Run ``doctor`` with the parsed ``args``; returns the exit status."""
    if args.selftest:
        from rfb.selftest import run_command

        return run_command(json_path=args.json, sizes=args.sizes, frames=args.frames, device_id=args.device)
    report = doctor_report()
    if args.json not in (None, "-"):
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(json.dumps(report, indent=2, default=str) + "\n")
    elif args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_report(report))
    return 0 if report["here"]["video"] or report["here"]["image"] else EXIT_RUNTIME


def doctor_report() -> dict[str, Any]:
    """Everything doctor knows, as plain data (what ``--json`` prints)."""
    return {"rfb": rfb.__version__, "encoders": _encoders(), "environment": _environment(), "here": routes_here()}


def routes_here() -> dict[str, str | None]:
    """The routes ``serve()`` picks here by default ("video", "image") and with ``gpu=True``.

    Asked of the registry's own selection (select_encoder), so that doctor's summary
    cannot disagree with what a display does. None: no route of that kind can run.
    """
    from rfb.encoders.registry import select_encoder

    def pick(transport: Transport, gpu: bool) -> str | None:
        try:
            return select_encoder(None, transport=transport, gpu=gpu).name
        except Exception:  # EncoderUnavailable, or a broken registry: _encoders reports it, doctor lives on
            logger.debug("no %s route (gpu=%s)", transport, gpu, exc_info=True)
            return None

    return {
        "video": pick("webcodecs", False),
        "image": pick("image", False),
        "gpu_video": pick("webcodecs", True),
        "gpu_image": pick("image", True),
    }


def summary_line(here: dict[str, str | None]) -> str:
    """Doctor's last line: ``here: h264_cpu + image``, and what ``gpu=True`` changes."""

    def pair(video: str | None, image: str | None) -> str:
        if video and image:
            return f"{video} + {image}"
        if video:
            return f"{video} only (no image route: browsers without WebCodecs get nothing)"
        if image:
            return f"{image} only (no H.264 route: every browser gets images)"
        return "no route can run (see the reasons above)"

    line = f"here: {pair(here['video'], here['image'])}"
    gpu = (here.get("gpu_video"), here.get("gpu_image"))
    if any(gpu) and gpu != (here["video"], here["image"]):
        line += f"; with gpu=True: {pair(*gpu)}"
    return line


def _encoders() -> list[dict[str, Any]]:
    try:
        statuses = rfb.encoder_status(refresh=True)
    except Exception as exc:  # doctor must report a broken registry, not die of it
        logger.debug("encoder_status failed", exc_info=True)
        return [
            {
                "name": "(registry)",
                "available": False,
                "reason": f"listing encoders failed: {type(exc).__name__}: {exc}",
                "transport": None,
                "priority": None,
                "reads_cuda": None,
                "description": "",
            }
        ]
    return [dataclasses.asdict(s) for s in statuses]


def _guarded(fact: Callable[[], Any]) -> Any:
    """One environment fact; a failure becomes its description instead of an exception."""
    try:
        return fact()
    except Exception as exc:  # any probe of the environment may fail in its own way
        return f"unknown ({type(exc).__name__}: {exc})"


def _environment() -> dict[str, Any]:
    return {
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": _guarded(platform.platform),
        "numpy": _guarded(lambda: __import__("numpy").__version__),
        "pyav": _guarded(_pyav),
        "nvidia_smi": _guarded(_nvidia_smi),
        "libcuda": _guarded(lambda: _library("cuda", ("libcuda.so.1", "libcuda.so", "nvcuda.dll"))),
        "libnvidia_encode": _guarded(
            lambda: _library("nvidia-encode", ("libnvidia-encode.so.1", "libnvidia-encode.so", "nvEncodeAPI64.dll"))
        ),
        "cuda_devices": _guarded(_cuda_devices),
    }


def _pyav() -> dict[str, Any]:
    import av

    encoders = sorted(name for name in ("libx264", "h264_nvenc", "libopenh264") if name in av.codecs_available)
    return {
        "version": av.__version__,
        "ffmpeg": getattr(av, "ffmpeg_version_info", None),
        "h264_encoders": encoders,
    }


def _nvidia_smi() -> str:
    path = shutil.which("nvidia-smi")
    if path is None:
        return "not found on PATH (no NVIDIA driver installed, or not in this container)"
    result = subprocess.run(
        [path, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if result.returncode != 0:
        return f"{path} exited {result.returncode}: {(result.stderr or result.stdout).strip()[:200]}"
    return "; ".join(line.strip() for line in result.stdout.splitlines() if line.strip()) or "no GPUs listed"


def _library(short_name: str, candidates: Sequence[str]) -> str:
    """Whether a shared library loads, and under which name (loading is the real test)."""
    errors = []
    for name in candidates:
        try:
            ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
            continue
        return f"loads as {name}"
    found = ctypes.util.find_library(short_name)
    hint = f" (find_library sees {found})" if found else ""
    return f"not loadable{hint}: {errors[0] if errors else 'no candidates'}"


def _cuda_devices() -> list[str] | str:
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver  # cuda-python before 12.6
        except ImportError as exc:
            return f"cuda-python not importable: {exc}"
    (err,) = driver.cuInit(0)
    if err != driver.CUresult.CUDA_SUCCESS:
        return f"cuInit failed: {_cuda_error_name(driver, err)}"
    err, count = driver.cuDeviceGetCount()
    if err != driver.CUresult.CUDA_SUCCESS:
        return f"cuDeviceGetCount failed: {_cuda_error_name(driver, err)}"
    devices = []
    for ordinal in range(count):
        err, device = driver.cuDeviceGet(ordinal)
        if err != driver.CUresult.CUDA_SUCCESS:
            devices.append(f"{ordinal}: cuDeviceGet failed: {_cuda_error_name(driver, err)}")
            continue
        err, raw = driver.cuDeviceGetName(256, device)
        name = raw.split(b"\0", 1)[0].decode(errors="replace") if err == driver.CUresult.CUDA_SUCCESS else "?"
        devices.append(f"{ordinal}: {name}")
    return devices or "no CUDA devices"


def _cuda_error_name(driver: Any, err: Any) -> str:
    code, name = driver.cuGetErrorName(err)
    return name.decode() if code == driver.CUresult.CUDA_SUCCESS and name else str(err)


def format_report(report: dict[str, Any]) -> str:
    """The text form of :func:`doctor_report`."""
    lines = [f"rfb {report['rfb']} doctor", "", "Encode routes (best first):"]
    encoders = report["encoders"]
    width = max((len(e["name"]) for e in encoders), default=4)
    for e in encoders:
        mark = "ok" if e["available"] else "--"
        if e["transport"] is None:  # not a route: the registry itself failed
            lines.append(f"  [{mark}] {e['name']}")
        else:
            kind = "gpu" if e["reads_cuda"] else "cpu"
            lines.append(f"  [{mark}] {e['name']:<{width}}  {e['transport']:<9}  {kind}  priority {e['priority']}")
        if e.get("description"):
            lines.append(f"       {e['description']}")
        if not e["available"]:
            lines.append(f"       unavailable: {e['reason']}")
    lines += ["", "Environment:"]
    for key, value in report["environment"].items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(map(str, value))
        lines.append(f"  {key:<17} {value}")
    if "here" in report:
        lines += ["", summary_line(report["here"])]
    return "\n".join(lines)
