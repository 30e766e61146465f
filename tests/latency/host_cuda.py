"""FFmpeg's CUDA-frame path on a machine without a GPU: host memory presented as CUDA.

``nvenc_gpu_pyav`` hands h264_nvenc ``AV_PIX_FMT_CUDA`` frames (``VideoFrame.from_dlpack``
with a ``CudaContext``), so FFmpeg registers the frame's pointer with NVENC, maps it
and encodes with a 0x0 input size; with host frames (``nvenc_cpu``) it takes another
path entirely (``nvEncCreateInputBuffer``). To exercise the CUDA-frame path in CI,
where the test suite's stand-in libcuda (tests/support/standin_libcuda.c) serves
FFmpeg's CUDA device and the NVENC emulator reads every pointer as host memory, this
module presents a host NumPy array as a ``kDLCUDA`` DLPack tensor. FFmpeg never dereferences a CUDA frame's pointers
itself; only the (emulated) engine reads them.

Test infrastructure only: on a machine with a real driver these pointers would be
invalid device addresses.
"""

from __future__ import annotations

import ctypes
from dataclasses import replace
from typing import Any

import numpy as np

from nvencffi.frames import _DLTensor  # the DLPack v0.8 layout nvencffi reads
from rfb.encoders.base import EncoderConfig
from rfb.frames import RawFrame

KDL_CUDA = 2
NAME = "nvenc_gpu_pyav (host memory as CUDA frames)"


class _DLManagedTensor(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_DLManagedTensor))
_DLManagedTensor._fields_ = [
    ("dl_tensor", _DLTensor),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", _DELETER),
]

# A private prototype: ctypes.pythonapi's function objects are shared by the process.
_capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)(
    ("PyCapsule_New", ctypes.pythonapi)
)


class HostAsCuda:
    """A 2-D uint8 host array exported once through ``__dlpack__`` as device 0's memory.

    The consumer (PyAV) calls the deleter when FFmpeg drops the frame; this object owns
    the tensor and the array, so the deleter only forgets the export and this object
    must outlive the frame (the converter below keeps the last ones).
    """

    def __init__(self, array: np.ndarray) -> None:
        if array.dtype != np.uint8 or array.ndim != 2 or array.strides[1] != 1:
            raise ValueError(f"expected a 2-D uint8 array with packed rows, got {array.dtype} {array.strides}")
        self.array = array
        self.exported = 0
        self._shape = (ctypes.c_int64 * 2)(*array.shape)
        self._strides = (ctypes.c_int64 * 2)(array.strides[0], 1)
        self._deleter = _DELETER(self._release)  # kept alive as long as this object
        m = _DLManagedTensor()
        m.dl_tensor.data = array.ctypes.data
        m.dl_tensor.device.device_type = KDL_CUDA
        m.dl_tensor.device.device_id = 0
        m.dl_tensor.ndim = 2
        m.dl_tensor.dtype.code, m.dl_tensor.dtype.bits, m.dl_tensor.dtype.lanes = (
            1,
            8,
            1,
        )  # uint8
        m.dl_tensor.shape = self._shape
        m.dl_tensor.strides = self._strides
        m.dl_tensor.byte_offset = 0
        m.deleter = self._deleter
        self._managed = m

    def _release(self, _managed: Any) -> None:
        self.exported -= 1

    def __dlpack__(self, stream: Any = None) -> Any:
        self.exported += 1
        return _capsule_new(ctypes.addressof(self._managed), b"dltensor", None)

    def __dlpack_device__(self) -> tuple[int, int]:
        return KDL_CUDA, 0


class HostAsCudaConverter:
    """The shared PyAV loop's converter: a host nv12 frame -> an FFmpeg CUDA frame over the same memory."""

    target_format = "cuda"

    def __init__(self) -> None:
        from av.video.frame import CudaContext

        self._cuda: Any = CudaContext(device_id=0, primary_ctx=True)
        self._planes: tuple[HostAsCuda, HostAsCuda] | None = None

    def convert(self, frame: RawFrame) -> Any:
        from av.video.frame import VideoFrame

        if self._cuda is None:
            raise RuntimeError("HostAsCudaConverter is closed")
        data = frame.data
        planes = self._planes
        if planes is None or planes[0].array.ctypes.data != data.ctypes.data:  # a new buffer: export it
            planes = self._planes = (
                HostAsCuda(data[: frame.height]),
                HostAsCuda(data[frame.height :]),
            )
        return VideoFrame.from_dlpack(
            planes,
            format="nv12",
            width=frame.width,
            height=frame.height,
            cuda_context=self._cuda,
        )

    def close(self) -> None:
        self._cuda = None


def create(config: EncoderConfig) -> Any:
    """nvenc_gpu_pyav's FFmpeg settings and loop (PyAVH264Encoder, CUDA frames, opened by the first frame),
    fed host nv12 frames that FFmpeg receives as CUDA frames."""
    from rfb.encoders import nvenc_cpu
    from rfb.encoders.h264_cpu import PyAVH264Encoder

    settings = replace(nvenc_cpu.nvenc_settings(config), pix_fmt="cuda", open_with_first_frame=True)
    return PyAVH264Encoder(NAME, config, settings, converter=HostAsCudaConverter())
