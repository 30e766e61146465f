"""nvjpegffi: a direct cffi binding to NVIDIA's nvJPEG encoder (libnvjpeg), no FFmpeg.

Encodes images that already live on the GPU (CuPy, PyTorch, JAX... any CUDA memory) to
baseline JPEG on the GPU's compute units, reading the caller's own memory (zero copy)
on the caller's CUDA stream::

    from nvjpegffi import JpegEncoder

    with JpegEncoder(1920, 1080, quality=85) as enc:
        jpeg = enc.encode_rgb(rgb.data.ptr, rgb.strides[0])   # an (H, W, 3) uint8 CuPy array

Pointers in, bytes out: nvjpegffi knows no array framework (rfb's ``jpeg_gpu`` route
reads the arrays). ``probe()`` says whether this machine can encode, and why not.
Importing nvjpegffi loads neither CUDA nor the library; they load on first use. The
library is found in the ``nvidia-nvjpeg`` wheel, the CUDA toolkit, or
``$NVJPEGFFI_LIBRARY`` (see :mod:`nvjpegffi.library`).
"""

from __future__ import annotations

from nvjpegffi.cuda import HostBuffer, NullContext, primary_context
from nvjpegffi.encoder import BACKENDS, SUBSAMPLINGS, JpegEncoder, check_quality
from nvjpegffi.errors import CudaError, NvjpegError, NvjpegStatus, NvjpegUnavailable
from nvjpegffi.library import Library, load_library, reset_library
from nvjpegffi.probe import ProbeResult, probe

__all__ = [
    "BACKENDS",
    "SUBSAMPLINGS",
    "CudaError",
    "HostBuffer",
    "JpegEncoder",
    "Library",
    "NullContext",
    "NvjpegError",
    "NvjpegStatus",
    "NvjpegUnavailable",
    "ProbeResult",
    "check_quality",
    "load_library",
    "primary_context",
    "probe",
    "reset_library",
]
