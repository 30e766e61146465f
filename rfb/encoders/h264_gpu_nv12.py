"""The h264_gpu_nv12 route: for GPUs without a video encoder (A100, H100, H200...).

Data-centre GPUs have no NVENC engine, so the H.264 work must happen on the CPU with
libx264. What the GPU can still do is everything before it: convert RGB to NV12 (one
kernel) so that only half the bytes of RGB cross PCIe, in ONE copy into page-locked
host memory, from where libx264 reads NV12 as it is. No RGB -> YUV pass runs on the
CPU.

This route is that composition, not new code: the ``h264_cpu`` backend (libx264 through
the shared PyAV loop) wrapped in :class:`rfb.gpu.HostFrameAdapter` with
``prefer="nv12"``, which owns the staging and pinned buffers and counts the copies
(``d2h_transfers``: one per CUDA frame). Host frames go to libx264 untouched.

It ranks below both NVENC routes and above every CPU route (see
``rfb.encoders.nvenc_gpu_cffi`` for why GPU routes outrank CPU ones).
"""

from __future__ import annotations

from rfb.encoders import h264_cpu
from rfb.encoders.base import EncoderConfig
from rfb.encoders.registry import EncoderEntry
from rfb.gpu.adapter import HostFrameAdapter
from rfb.gpu.context import GpuUnavailable, cupy_available, gpu_available, primary_context_state

NAME = "h264_gpu_nv12"
PRIORITY = 30


def create(config: EncoderConfig) -> HostFrameAdapter:
    """The h264_gpu_nv12 factory: libx264 behind a NV12-on-the-GPU adapter."""
    encoder = h264_cpu.PyAVH264Encoder(NAME, config, h264_cpu.libx264_settings(config))
    return HostFrameAdapter(encoder, prefer="nv12")


def probe(device_id: int = 0) -> str | None:
    """None when CUDA device ``device_id``, CuPy (for the kernel and the copy) and libx264 are usable.

    The device is asked for by ordinal only (``cuDeviceGet``): no context is created, so
    a probe never fixes the primary context's flags.
    """
    reason = gpu_available()
    if reason is not None:
        return f"this route converts CUDA frames on a GPU, and there is none usable: {reason}"
    try:
        primary_context_state(device_id)
    except GpuUnavailable as exc:
        return f"this route converts CUDA frames on CUDA device {device_id}, which is not usable: {exc}"
    reason = cupy_available()
    if reason is not None:
        return f"this route converts and copies CUDA frames with CuPy, which is unusable: {reason}"
    return h264_cpu.probe()


ENTRIES: list[EncoderEntry] = [
    EncoderEntry(
        name=NAME,
        factory=create,
        transport="webcodecs",
        probe=probe,
        priority=PRIORITY,
        reads_cuda=True,
        description="libx264 fed NV12 made on the GPU and copied down once (GPUs without NVENC: A100/H100/H200)",
    )
]
