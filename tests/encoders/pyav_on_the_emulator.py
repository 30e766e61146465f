"""nvenc_gpu_pyav's own encoder and converter driven through FFmpeg into the NVENC emulator, without a GPU.

Run as a program in a child process whose ``LD_LIBRARY_PATH`` makes FFmpeg load the
emulator and the test suite's stand-in libcuda (FFmpeg finds both by name), so
that h264_nvenc registers, maps and encodes the frames' pointers as it would on a GPU.
The frames are host memory presented as CUDA memory: the route's decisions (which
frames are wrapped in place, which are staged and why) are its own, and only the two
steps that need a real device are done on the host by :class:`HostMemoryConverter`:
the copy into a 256-byte-pitched buffer, and the DLPack export FFmpeg wraps.

``python -m tests.encoders.pyav_on_the_emulator WIDTH HEIGHT MODE [mempool]`` prints one
JSON object: the access units (hex), the route's stats, FFmpeg's error if any, and the
emulator's ledger. MODE is ``route`` (the route decides) or ``as_is`` (every frame is
handed to FFmpeg where it is, as the route did before it staged: the control that shows
what the emulator punishes). ``mempool`` describes the frames' memory to the emulator
as a stream-ordered pool's. Test infrastructure only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from rfb.encoders.nvenc_gpu_pyav import PITCH_ALIGNMENT, CudaFrameConverter
from rfb.frames import RawFrame
from rfb.gpu.arrays import cuda_frame
from rfb.gpu.staging import aligned_pitch
from tests.latency.host_cuda import HostAsCuda
from tests.nvenc_emulator import Emulator
from tests.support.frames import HostCudaArray


class EmulatorPools:
    """The route's "is this pool memory?" answered from what the emulator was told (CI's libcuda cannot say)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def in_pool(self, pointer: int) -> bool | None:
        info = self.emulator.pointer_info(pointer)
        return None if info is None else bool(info["mempool"])


class HostMemoryConverter(CudaFrameConverter):
    """The route's converter, its device copy and DLPack export done on host memory.

    ``as_is``: skip the route's decision and hand every frame to FFmpeg where it is.
    The exported planes are kept (FFmpeg may hold a frame's tensors after ``encode``).
    """

    def __init__(self, emulator: Emulator, *, as_is: bool = False) -> None:
        super().__init__(0, pools=EmulatorPools(emulator))
        self.as_is = as_is
        self.copies = 0
        self._buffer: np.ndarray | None = None
        self._exports: dict[int, tuple[HostAsCuda, HostAsCuda]] = {}

    def _stage(self, frame: RawFrame) -> RawFrame:
        return frame if self.as_is else super()._stage(frame)

    def _copy(self, frame: RawFrame) -> RawFrame:
        source = frame.data.array
        pitch = aligned_pitch(frame.width, PITCH_ALIGNMENT)
        if self._buffer is None or self._buffer.shape != (source.shape[0], pitch):
            self._buffer = np.zeros((source.shape[0], pitch), np.uint8)
        view = self._buffer[:, : frame.width]
        view[...] = source
        self.copies += 1
        return cuda_frame(HostCudaArray(view))

    def _wrap(self, frame: RawFrame) -> Any:
        from av.video.frame import CudaContext, VideoFrame

        array = frame.data.array
        planes = self._exports.get(array.ctypes.data)
        if planes is None:
            planes = self._exports[array.ctypes.data] = (
                HostAsCuda(array[: frame.height]),
                HostAsCuda(array[frame.height :]),
            )
        if self._cuda is None:
            self._cuda = CudaContext(device_id=0, primary_ctx=True)
        return VideoFrame.from_dlpack(
            planes, format="nv12", width=frame.width, height=frame.height, cuda_context=self._cuda
        )


def nv12_pictures(width: int, height: int, count: int = 3) -> list[np.ndarray]:
    """``count`` random NV12 pictures, tightly packed (pitch = width), the same for a given size."""
    rng = np.random.default_rng(width * 10_000 + height)
    return [rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8) for _ in range(count)]


def run(width: int, height: int, mode: str, mempool: bool) -> dict[str, Any]:
    import av
    import av.logging

    from rfb.encoders.base import EncoderConfig
    from rfb.encoders.nvenc_gpu_pyav import NvencGpuPyAVEncoder
    from tests.nvenc_emulator import build_emulator

    emulator = Emulator(build_emulator())
    emulator.reset()
    pictures = nv12_pictures(width, height)
    if mempool:
        for picture in pictures:
            emulator.describe_pointer(picture.ctypes.data, picture.nbytes, mempool=True, buffer_id=picture.ctypes.data)
    converter = HostMemoryConverter(emulator, as_is=mode == "as_is")
    result: dict[str, Any] = {"units": [], "stats": None, "copies": 0, "error": None}
    av.logging.set_level(av.logging.ERROR)
    with av.logging.Capture() as logs:
        try:
            with NvencGpuPyAVEncoder(EncoderConfig(width, height), converter=converter) as encoder:
                for index, picture in enumerate(pictures):
                    frame = cuda_frame(HostCudaArray(picture))
                    result["units"] += [p.data.hex() for p in encoder.encode(frame, force_keyframe=index == 0)]
                result["stats"] = encoder.stats
                result["copies"] = converter.copies
        except av.FFmpegError as exc:
            said = "; ".join(dict.fromkeys(m.strip() for _, _, m in logs if m.strip()))
            result["error"] = f"{type(exc).__name__}: {exc} [FFmpeg: {said}] [emulator: {emulator.last_error()}]"
    result["ledger"] = emulator.ledger()
    return result


if __name__ == "__main__":
    w, h, how = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    print(json.dumps(run(w, h, how, mempool="mempool" in sys.argv[4:])))
