"""One known frame through an encode route, decoded back and compared with what was sent.

Whether a hardware route works cannot be told from the outside: a driver loads and
opens a session on a GPU whose engine then refuses the first frame, or encodes it from
the wrong pitch, or at a size below its minimum. So the NVENC routes' probes (and the
self-test, ``rfb.selftest``) push a real frame through the route's own backend, the
path a user's frames take, and accept the route only when FFmpeg's decoder gives the
picture back. The decode is FFmpeg's software H.264 decoder through PyAV
(:class:`rfb.benchmark.metrics.H264Decoder`), or libjpeg-turbo for images.

The size is a realistic one (1280x720): drivers reject frames below a minimum that
differs by generation (NV_ENC_CAPS_WIDTH_MIN), so a tiny probe frame could fail where
a real stream works, or the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rfb.benchmark import patterns
from rfb.benchmark.metrics import H264Decoder, decode_image, psnr
from rfb.encoders.base import EncodedPayload
from rfb.frames import RawFrame

TRIAL_SIZE = (1280, 720)
# Below this the picture is not the one sent: a wrong pitch, plane or colour matrix
# gives 5-15 dB. A right one is well above it even at a low bitrate: the trial's
# gradient decodes at 30 dB and more, and the self-test's detailed scene pattern at
# 24.8 dB for libx264's first 1080p IDR (h264_gpu_nv12, doctor --selftest on an H200).
MIN_PSNR_DB = 20.0


def reference_picture(width: int, height: int, index: int = 0) -> np.ndarray:
    """The (H, W, 3) rgb24 picture a trial sends: colour ramps (cheap to make, easy to compare)."""
    return patterns.gradient(width, height, index)


class TrialFrameUnavailable(RuntimeError):
    """The trial frame cannot be put on the device (no CuPy, a CUDA error); the message says why."""


def cuda_trial_frame(device_id: int, picture: np.ndarray | None = None) -> RawFrame:
    """The reference picture at :data:`TRIAL_SIZE` (or ``picture``, (H, W, 3) rgb24) as
    NV12 in new CuPy memory on ``device_id``.

    NV12 is what every NVENC route takes in place (zero copy), so the trial exercises
    the registration of the caller's memory, the path that matters most.
    """
    from rfb.colorspace import rgb_to_nv12
    from rfb.gpu.arrays import cuda_frame
    from rfb.gpu.context import import_cupy

    nv12 = rgb_to_nv12(reference_picture(*TRIAL_SIZE) if picture is None else picture)
    try:
        cp = import_cupy()
        with cp.cuda.Device(device_id):
            array = cp.asarray(nv12)
            cp.cuda.get_current_stream().synchronize()
    except (RuntimeError, MemoryError) as exc:  # GpuUnavailable, CuPy's CUDA errors
        raise TrialFrameUnavailable(
            f"the trial frame could not be put on CUDA device {device_id}: {type(exc).__name__}: {exc}"
        ) from exc
    return cuda_frame(array)


def check_h264(payloads: Sequence[EncodedPayload], references: Sequence[np.ndarray]) -> str | None:
    """None when ``payloads`` decode to ``references`` (the first an IDR), else what is wrong.

    One access unit per frame is the routes' contract; each picture must be within
    :data:`MIN_PSNR_DB` of the frame it came from.
    """
    import av

    if len(payloads) != len(references):
        return f"expected {len(references)} access unit(s) for {len(references)} frame(s), got {len(payloads)}"
    if not payloads[0].keyframe:
        return "the first access unit is not an IDR"
    try:
        with H264Decoder() as decoder:
            pictures = decoder.decode_all(p.data for p in payloads)
    except av.FFmpegError as exc:
        return f"FFmpeg's H.264 decoder refused the stream: {exc}"
    return compare_pictures(pictures, references, "FFmpeg's H.264 decoder")


def check_image(payloads: Sequence[EncodedPayload], references: Sequence[np.ndarray]) -> str | None:
    """None when each payload is an image showing its reference, else what is wrong."""
    if len(payloads) != len(references):
        return f"expected {len(references)} image(s) for {len(references)} frame(s), got {len(payloads)}"
    pictures = []
    for payload in payloads:
        try:
            pictures.append(decode_image(payload.data))
        except (ValueError, OSError) as exc:  # simplejpeg raises ValueError, Pillow OSError
            return f"the image does not decode: {type(exc).__name__}: {exc}"
    return compare_pictures(pictures, references, "the image decoder")


def psnr_of(pictures: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> list[float]:
    """PSNR (dB) of each decoded picture against its reference."""
    return [psnr(ref, pic) for ref, pic in zip(references, pictures, strict=True)]


def compare_pictures(
    pictures: Sequence[np.ndarray], references: Sequence[np.ndarray], decoder: str, *, first: int = 0
) -> str | None:
    """None when every decoded picture is its reference within :data:`MIN_PSNR_DB`, else the first that is not.

    ``first`` is the index of the first picture in the stream (for the reason's wording).
    """
    if len(pictures) != len(references):
        return f"{decoder} made {len(pictures)} picture(s) of {len(references)} frame(s)"
    for index, (ref, pic) in enumerate(zip(references, pictures, strict=True), start=first):
        if pic.shape != ref.shape:
            return f"frame {index} decoded as {pic.shape[1]}x{pic.shape[0]}, sent {ref.shape[1]}x{ref.shape[0]}"
        value = psnr(ref, pic)
        if value < MIN_PSNR_DB:
            return f"frame {index} decoded to another picture (PSNR {value:.1f} dB, expected at least {MIN_PSNR_DB:g})"
    return None


def describe_frame(frame: RawFrame) -> str:
    """``"1280x720 cuda nv12, pitch 1280"``: what a trial sent, for its reasons."""
    return f"{frame.width}x{frame.height} {frame.memory} {frame.pixel_format}, pitch {frame.stride}"
