"""``probe()``: can this machine encode with NVENC? Answered without raising.

The only honest test is to open a real session: an H100 loads the library, negotiates the
version and fills the function table, and only then says it has no encode engine. So we
do all of that, destroy the session, and report.
"""

from __future__ import annotations

from dataclasses import dataclass

from nvencffi.cuda import EncodeContext, PrimaryContext
from nvencffi.errors import DriverTooOld, NvencError, NvencUnavailable
from nvencffi.library import load_library
from nvencffi.session import destroy_session, open_session


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """``available``; else ``reason`` in plain words. The other fields as far as known."""

    available: bool
    reason: str | None
    max_api_version: tuple[int, int] | None
    gpu_name: str | None


def probe(device: int = 0, *, context: EncodeContext | None = None) -> ProbeResult:
    """Open and destroy one NVENC session on ``device``; never raises for "unavailable".

    ``context`` as for ``NvencEncoder`` (the test suite passes a ``NullContext``).
    """
    try:
        lib = load_library()
    except DriverTooOld as exc:
        return ProbeResult(False, str(exc), exc.max_api_version, None)
    except NvencUnavailable as exc:
        return ProbeResult(False, str(exc), None, None)
    version = lib.max_api_version
    try:
        ctx = PrimaryContext(device) if context is None else context
    except NvencUnavailable as exc:
        return ProbeResult(False, str(exc), version, None)
    try:
        encoder = open_session(lib, ctx)
        destroy_session(lib, ctx, encoder)
    except (NvencUnavailable, NvencError) as exc:
        return ProbeResult(False, str(exc), version, ctx.gpu_name)
    finally:
        if context is None:
            ctx.close()
    return ProbeResult(True, None, version, ctx.gpu_name)
