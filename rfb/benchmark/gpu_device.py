"""The GPU and NVIDIA driver a GPU benchmark or self-test ran on, for its report.

Asked through the CUDA driver (cuda-python, a dependency already), so it works
without CuPy; the driver's release number comes from the kernel module's
``/proc/driver/nvidia/version``, else from ``nvidia-smi``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any


def describe_gpu(device_id: int = 0) -> dict[str, Any]:
    """Name, compute capability, memory and driver of the GPU, or why there is none.

    Asked through the CUDA driver (cuda-python, a dependency already), so it works
    without CuPy; the driver's release number comes from the kernel module's
    ``/proc/driver/nvidia/version``, else from ``nvidia-smi``.
    """
    from rfb.gpu.context import GpuUnavailable, gpu_available, load_driver

    reason = gpu_available()
    if reason is not None:
        return {"available": False, "reason": reason}
    try:
        driver = load_driver()
        err, dev = driver.cuDeviceGet(device_id)
        _cuda_ok(err, "cuDeviceGet")
        err, raw = driver.cuDeviceGetName(256, dev)
        _cuda_ok(err, "cuDeviceGetName")
        err, memory = driver.cuDeviceTotalMem(dev)
        _cuda_ok(err, "cuDeviceTotalMem")
        attr = driver.CUdevice_attribute
        cc = []
        for which in (
            attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
            attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
        ):
            err, value = driver.cuDeviceGetAttribute(which, dev)
            _cuda_ok(err, "cuDeviceGetAttribute")
            cc.append(int(value))
        err, cuda_version = driver.cuDriverGetVersion()
        _cuda_ok(err, "cuDriverGetVersion")
    except (GpuUnavailable, RuntimeError) as exc:
        return {"available": False, "reason": str(exc)}
    name = raw.split(b"\0", 1)[0].decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return {
        "available": True,
        "device_id": device_id,
        "name": name,
        "compute_capability": f"{cc[0]}.{cc[1]}",
        "memory_gib": round(int(memory) / 2**30, 1),
        "cuda_driver_api": f"{int(cuda_version) // 1000}.{int(cuda_version) % 1000 // 10}",
        "driver_version": nvidia_driver_version(),
    }


def _cuda_ok(err: Any, what: str) -> None:
    if int(err) != 0:
        raise RuntimeError(f"{what} failed with CUresult {int(err)}")


_DRIVER_RELEASE = re.compile(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)")


def parse_driver_release(proc_version: str) -> str | None:
    """The release in ``/proc/driver/nvidia/version`` ("NVRM version: NVIDIA UNIX Open Kernel
    Module for x86_64  580.159.04  Release Build ..."; the proprietary module says
    "NVIDIA UNIX x86_64 Kernel Module  580.159.04 ...")."""
    m = _DRIVER_RELEASE.search(proc_version)
    return m.group(1) if m else None


def nvidia_driver_version() -> str | None:
    """The NVIDIA driver's release ("580.159.04"), or None when it cannot be read."""
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as f:
            release = parse_driver_release(f.read())
        if release:
            return release
    except OSError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None
