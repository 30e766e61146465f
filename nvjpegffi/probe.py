"""``probe()``: can this machine encode JPEG with nvJPEG? Answered without raising.

Loading the library proves little (it loads on a machine with no GPU), so the probe
does what an encoder does at start-up: retain the primary context, create a handle,
an encoder state, parameters and the host buffer, then releases them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from nvjpegffi.cuda import CudaContext
from nvjpegffi.encoder import JpegEncoder
from nvjpegffi.errors import CudaError, NvjpegError, NvjpegUnavailable
from nvjpegffi.library import load_library


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """``available``; else ``reason`` in plain words. The other fields as far as known."""

    available: bool
    reason: str | None
    version: tuple[int, int, int] | None
    library: str | None


def probe(device: int = 0, *, context: CudaContext | None = None) -> ProbeResult:
    """Open and close one small encoder on ``device``; never raises for "unavailable".

    ``context`` as for :class:`JpegEncoder` (the test suite passes a ``NullContext``).
    """
    try:
        lib = load_library()
    except NvjpegUnavailable as exc:
        return ProbeResult(False, str(exc), None, None)
    try:
        with JpegEncoder(16, 16, device=device, context=context):
            pass
    except NvjpegUnavailable as exc:
        return ProbeResult(False, str(exc), lib.version, lib.path)
    except (NvjpegError, CudaError) as exc:
        version = ".".join(map(str, lib.version))
        reason = f"nvJPEG {version} ({lib.path}) could not start an encoder on CUDA device {device}: {exc}"
        return ProbeResult(False, reason, lib.version, lib.path)
    return ProbeResult(True, None, lib.version, lib.path)
