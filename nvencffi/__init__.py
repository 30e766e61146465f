"""nvencffi: a direct cffi binding to NVIDIA's NVENC (libnvidia-encode), no FFmpeg.

Encodes frames that already live on the GPU (CuPy, PyTorch, JAX... any CUDA array) to
low-latency H.264 Annex B, registering the caller's own memory (zero copy)::

    from nvencffi import NvencEncoder

    with NvencEncoder(1920, 1080, bitrate=8_000_000, fps=60) as enc:
        access_unit = enc.encode(nv12_or_rgba_cuda_array)

``probe()`` says whether this machine can encode, and why not. Importing nvencffi loads
neither CUDA nor the driver; they load on first use. See docs/nvencffi.md.
"""

from __future__ import annotations

from nvencffi.caps import EncoderCaps
from nvencffi.cuda import NullContext, PointerInfo, PrimaryContext, set_context_flags
from nvencffi.encoder import NvencEncoder, PictureType
from nvencffi.errors import (
    CudaError,
    CudaUnavailable,
    DriverTooOld,
    FrameSizeUnsupported,
    NvencError,
    NvencStatus,
    NvencUnavailable,
    ResizeUnsupported,
)
from nvencffi.frames import FrameDeviceError, FrameLayoutError
from nvencffi.library import load_library, reset_library
from nvencffi.probe import ProbeResult, probe

__all__ = [
    "CudaError",
    "CudaUnavailable",
    "DriverTooOld",
    "EncoderCaps",
    "FrameDeviceError",
    "FrameLayoutError",
    "FrameSizeUnsupported",
    "NullContext",
    "NvencEncoder",
    "NvencError",
    "NvencStatus",
    "NvencUnavailable",
    "PictureType",
    "PointerInfo",
    "PrimaryContext",
    "ProbeResult",
    "ResizeUnsupported",
    "load_library",
    "probe",
    "reset_library",
    "set_context_flags",
]
