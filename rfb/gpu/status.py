"""Which GPU encode routes work on a CUDA device, and in plain words why each other does not.

The answers are the routes' own probes (through the registry, so they are the ones a
display acts on, and cached per device the same way): the NVENC routes are available
only when a known frame encoded through them on that device decodes back
(:mod:`rfb.encoders.trial`); the others when their libraries start (nvJPEG, CuPy,
libx264). So "NVENC works here" means a frame was encoded, not that a library loaded.

Nothing here raises for "unavailable": a machine without a GPU gets every route with
its reason. Run ``rfb.enable_cuda_context_sharing()`` before asking, as the NVENC
probes activate the device's primary context.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rfb.encoders.registry import get_entry, probe_entry

# Every route that takes CUDA frames, best first (their registry priorities).
GPU_ROUTES: tuple[str, ...] = ("nvenc_gpu_cffi", "nvenc_gpu_pyav", "h264_gpu_nv12", "h264_cuda", "jpeg_gpu")
# The routes that hand the caller's device memory to NVENC itself.
ZERO_COPY_NVENC_ROUTES: tuple[str, ...] = ("nvenc_gpu_cffi", "nvenc_gpu_pyav")


@dataclass(frozen=True, slots=True)
class RouteStatus:
    """One GPU route on one device: whether it works, else why not."""

    name: str
    available: bool
    reason: str | None
    transport: str | None  # "webcodecs" or "image"; None for a route that is not registered
    zero_copy_nvenc: bool


@dataclass(frozen=True, slots=True)
class GpuEncodeStatus:
    """Every GPU route on ``device_id``, in :data:`GPU_ROUTES` order."""

    device_id: int
    routes: tuple[RouteStatus, ...]

    @property
    def working(self) -> list[str]:
        """The routes that work, best first."""
        return [r.name for r in self.routes if r.available]

    @property
    def zero_copy(self) -> bool:
        """Whether a zero-copy NVENC route encoded a frame here."""
        return any(r.available and r.zero_copy_nvenc for r in self.routes)

    def route(self, name: str) -> RouteStatus:
        for status in self.routes:
            if status.name == name:
                return status
        raise KeyError(f"{name!r} is not a GPU route; expected one of {list(GPU_ROUTES)}")

    def as_dict(self) -> dict[str, Any]:
        """Plain data (what ``rfb doctor --selftest --json`` writes)."""
        return {
            "device_id": self.device_id,
            "working": self.working,
            "zero_copy": self.zero_copy,
            "routes": [asdict(r) for r in self.routes],
        }

    def __str__(self) -> str:
        lines = [f"GPU encode routes on CUDA device {self.device_id}:"]
        for r in self.routes:
            lines.append(f"  {r.name}: works" if r.available else f"  {r.name}: unavailable: {r.reason}")
        return "\n".join(lines)


def gpu_encode_status(device_id: int = 0, refresh: bool = False) -> GpuEncodeStatus:
    """Which GPU routes work on CUDA device ``device_id``, and why each other does not.

    Cached per device (the registry's probe cache) until ``refresh=True``. Never raises
    for "unavailable"; a route that was unregistered is reported as such.
    """
    routes = []
    for name in GPU_ROUTES:
        zero_copy = name in ZERO_COPY_NVENC_ROUTES
        try:
            entry = get_entry(name)
        except KeyError:
            routes.append(
                RouteStatus(name, False, "not registered (unregister_video_encoder removed it)", None, zero_copy)
            )
            continue
        reason = probe_entry(entry, refresh=refresh, device_id=device_id)
        routes.append(RouteStatus(name, reason is None, reason, entry.transport, zero_copy))
    return GpuEncodeStatus(device_id, tuple(routes))


def cuda_zerocopy_available(device_id: int = 0, refresh: bool = False) -> bool:
    """True only when a real one-frame encode through a zero-copy NVENC route succeeded on ``device_id``.

    Cached like :func:`gpu_encode_status`; never raises. Where it is False,
    ``gpu_encode_status(device_id)`` says why.
    """
    return gpu_encode_status(device_id, refresh).zero_copy
