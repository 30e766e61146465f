"""The nvenc_cpu route: FFmpeg's h264_nvenc through PyAV, fed from host frames.

For machines with an NVIDIA GPU whose frames are on the host (NumPy renderers): the
GPU's encoder does the H.264 work, so the CPU only converts RGB to YUV (OpenCV, see
:mod:`rfb.colorspace`) and copies it up. The encode loop is the one libx264 uses
(:class:`PyAVH264Encoder`, h264_nvenc takes its yuv420p and nv12 alike); only the
encoder name and options differ.

Whether NVENC works cannot be known without trying (driver present, a capable GPU,
a free session), so the probe encodes one known 1280x720 frame on the configured GPU
and decodes it back (:mod:`rfb.encoders.trial`). Its answer names FFmpeg's own
complaint, e.g. "Cannot load libcuda.so.1" on a machine without the NVIDIA driver.
FFmpeg explains NVENC failures only in its log, so the probes of both h264_nvenc
routes (this one and ``nvenc_gpu_pyav``) capture it with :func:`capture_ffmpeg_log`
and word it with :func:`ffmpeg_failure_reason`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rfb.encoders.base import EncoderConfig, EncoderUnavailable
from rfb.encoders.h264_cpu import PyAVH264Encoder, PyAVSettings, vbv_options
from rfb.encoders.registry import EncoderEntry
from rfb.frames import frame_from_array

NAME = "nvenc_cpu"
CODEC = "h264_nvenc"

# FFmpeg's messages that have a plainer explanation for the user; the first match wins,
# so the specific ones come before the generic ones. An H100 (no encode engine) answers
# "OpenEncodeSessionEx failed: unsupported device (2): (no details)": that is not a
# session limit.
_HINTS = (
    ("unsupported device", "this GPU has no NVENC engine (A100, H100 and H200 have none)"),
    ("libcuda.so", "no NVIDIA driver is installed or loadable here"),
    ("nvcuda.dll", "no NVIDIA driver is installed or loadable here"),
    ("libnvidia-encode", "the NVIDIA driver has no NVENC library (libnvidia-encode)"),
    ("No capable devices found", "no NVENC-capable GPU was found"),
    ("No NVENC capable devices found", "no NVENC-capable GPU was found"),
    ("Driver does not support the required nvenc API version", "the NVIDIA driver is too old for this FFmpeg"),
    ("OpenEncodeSessionEx failed", "the GPU refused a new encode session (session limit or out of memory)"),
)


def nvenc_settings(config: EncoderConfig) -> PyAVSettings:
    """h264_nvenc options for low-latency streaming of ``config``."""
    options = {
        "preset": "p1",  # fastest
        "tune": "ull",  # ultra-low latency
        "zerolatency": "1",  # no reordering delay
        "delay": "0",  # return each packet from the call that sent its frame
        "bf": "0",
        "rc": "cbr",
        "forced-idr": "1",  # a forced I picture is an IDR
        "profile": "high",
        "gpu": str(config.device_id),  # the CUDA device (FFmpeg's default, -1, takes the first that works)
        **vbv_options(config),
    }
    return PyAVSettings(CODEC, options, "nv12", 0)


def create(config: EncoderConfig) -> PyAVH264Encoder:
    """The nvenc_cpu factory."""
    return PyAVH264Encoder(NAME, config, nvenc_settings(config))


def probe(device_id: int = 0) -> str | None:
    """None when h264_nvenc on CUDA device ``device_id`` encodes a known host frame that decodes back, else why not."""
    try:
        import av
    except ImportError as exc:
        return f"PyAV is not installed ({exc}); pip install 'av>=18'"
    if CODEC not in av.codecs_available:
        return f"this PyAV build has no {CODEC} encoder"
    from rfb.colorspace import rgb_to_nv12
    from rfb.encoders import trial

    width, height = trial.TRIAL_SIZE
    reference = trial.reference_picture(width, height)
    frame = frame_from_array(rgb_to_nv12(reference), "nv12")
    with capture_ffmpeg_log() as logs:
        try:
            with create(EncoderConfig(width, height, device_id=device_id)) as encoder:
                payloads = encoder.encode(frame, force_keyframe=True)
        except (av.FFmpegError, EncoderUnavailable) as exc:
            return f"FFmpeg's {CODEC} could not open a session: {ffmpeg_failure_reason(exc, logs)}"
    reason = trial.check_h264(payloads, [reference])
    if reason is not None:
        return f"FFmpeg's {CODEC} encoded a {trial.describe_frame(frame)} frame, but {reason}"
    return None


@contextmanager
def capture_ffmpeg_log() -> Iterator[list[tuple[int, str, str]]]:
    """Collect FFmpeg's error lines logged on this thread meanwhile, as ``(level, name, message)``.

    FFmpeg's own logging settings are restored afterwards. Repeated lines are kept
    (PyAV drops a message identical to the previous one, and a second probe needs it).
    """
    import av.logging

    previous_level, previous_skip = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)
    try:
        with av.logging.Capture() as logs:
            yield logs
    finally:
        av.logging.set_level(previous_level)
        av.logging.set_skip_repeated(previous_skip)


def ffmpeg_failure_reason(exc: BaseException, logs: list[tuple[int, str, str]]) -> str:
    """Why an FFmpeg call failed, in FFmpeg's words, with a plainer hint where one is known.

    ``logs`` are the lines :func:`capture_ffmpeg_log` collected (error level and worse
    are used); without any, the line PyAV attached to the exception, else the
    exception's own text. The hint leads, FFmpeg's words follow in parentheses:
    ``this GPU has no NVENC engine (...) (OpenEncodeSessionEx failed: unsupported device (2): ...)``.
    """
    import av.logging

    messages = [m.strip() for level, _, m in logs if level <= av.logging.ERROR and m.strip()]
    log = getattr(exc, "log", None)  # PyAV attaches FFmpeg's last error line when it has one
    if not messages and isinstance(log, tuple) and len(log) == 3:
        messages = [str(log[2]).strip()]
    detail = "; ".join(dict.fromkeys(messages)) or getattr(exc, "strerror", None) or str(exc)
    lowered = detail.lower()
    for needle, hint in _HINTS:
        if needle.lower() in lowered:
            return f"{hint} ({detail})"
    return detail


ENTRIES: list[EncoderEntry] = [
    EncoderEntry(
        name=NAME,
        factory=create,
        transport="webcodecs",
        probe=probe,
        priority=20,
        reads_cuda=False,
        description="FFmpeg h264_nvenc through PyAV from host frames (NVIDIA GPU, CPU colour conversion)",
    )
]
