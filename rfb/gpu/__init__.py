"""GPU-side helpers: one shared CUDA context, CUDA array introspection, RGB -> NV12 on
the device, the staging buffers of the GPU routes, an adapter that feeds CUDA frames
to host-only encoders, and which GPU encode routes work here (``gpu_encode_status``).

Importing this package never imports CuPy, PyTorch or JAX (nor the CUDA driver
bindings): each function imports what it needs on first call, so ``import rfb`` stays
cheap on machines without a GPU, and :func:`enable_cuda_context_sharing` can still run
before any framework has touched CUDA.
"""

from __future__ import annotations

from rfb.colorspace import ColorMatrix, color_matrix, nv12_planes, nv12_to_rgb_host, rgb_to_nv12_host
from rfb.gpu.adapter import HostFrameAdapter
from rfb.gpu.arrays import DeviceArray, as_cupy, check_cuda_frame, cuda_frame, describe_device_array
from rfb.gpu.context import (
    CudaContextWarning,
    GpuUnavailable,
    cupy_available,
    enable_cuda_context_sharing,
    gpu_available,
)
from rfb.gpu.convert import copy_frame_to_device, copy_frame_to_host, rgb_to_nv12, to_host_rgb
from rfb.gpu.staging import DeviceStaging
from rfb.gpu.status import GpuEncodeStatus, RouteStatus, cuda_zerocopy_available, gpu_encode_status

__all__ = [
    "ColorMatrix",
    "CudaContextWarning",
    "DeviceArray",
    "DeviceStaging",
    "GpuEncodeStatus",
    "GpuUnavailable",
    "HostFrameAdapter",
    "RouteStatus",
    "as_cupy",
    "check_cuda_frame",
    "color_matrix",
    "copy_frame_to_device",
    "copy_frame_to_host",
    "cuda_frame",
    "cuda_zerocopy_available",
    "cupy_available",
    "describe_device_array",
    "enable_cuda_context_sharing",
    "gpu_available",
    "gpu_encode_status",
    "nv12_planes",
    "nv12_to_rgb_host",
    "rgb_to_nv12",
    "rgb_to_nv12_host",
    "to_host_rgb",
]
