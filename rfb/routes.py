"""Which encode routes a display runs, per group of viewers, and why.

A display serves up to three groups: "webcodecs" (H.264), "image" (JPEG) and "png"
(lossless stills for viewers that take nothing else). For each, :func:`resolve_routes`
picks the best route that can run here and keeps the others as fallbacks, in order;
the encode group (rfb.encodegroup) builds the first one and falls back along the list
when one fails to start.

With ``gpu=True`` the routes that read CUDA frames come first; when none can run (an
H100 has no NVENC; nvJPEG or CuPy may be missing) the CPU route chosen instead is
logged with each GPU route's reason (:func:`gpu_fallback_reasons`), so that a user who
asked for the GPU learns why they did not get it. With ``gpu=False`` those routes are
left out, as choice and as fallback, unless one is named: a display that was told "no
GPU" does not open an NVENC session or a CUDA context because a GPU happens to be
there. CUDA frames published to it still work (the groups download them).
"""

from __future__ import annotations

import logging

from rfb.encoders.base import EncodedPayload, EncoderConfig, EncoderUnavailable, Transport
from rfb.encoders.registry import EncoderEntry, encoder_status, get_entry, select_encoder
from rfb.frames import RawFrame

logger = logging.getLogger("rfb.display")  # what users filter on for a display's start-up messages

__all__ = ["PngStills", "gpu_fallback_reasons", "resolve_routes"]


def resolve_routes(
    video_encoder: str | None, image_encoder: str | None, *, gpu: bool, device_id: int = 0
) -> dict[str, list[EncoderEntry]]:
    """The encode routes per group ("webcodecs", "image", "png"), best first, then fallbacks.

    A video encoder asked for by name must be available; otherwise a missing H.264 or
    image route only narrows what viewers may receive. No route at all is an error.
    With ``gpu=True`` and no GPU route able to run, the CPU route chosen instead is
    logged with the reasons; with ``gpu=False`` routes that read CUDA frames are
    neither chosen nor kept as fallbacks unless named. PNG viewers get the built-in image
    route in lossless mode (the one route known to make PNG), wherever images are served
    at all. Routes are probed on CUDA device ``device_id`` (the display's).
    """
    routes: dict[str, list[EncoderEntry]] = {}
    reasons = []
    asked_for: tuple[tuple[Transport, str | None], ...] = (("webcodecs", video_encoder), ("image", image_encoder))
    for transport, name in asked_for:
        if transport == "image" and name is None:
            continue
        try:
            # image_encoder left at "image" on a GPU display: a GPU image route (jpeg_gpu) where one runs
            asked = None if gpu and transport == "image" and name == "image" else name
            first = select_encoder(asked, transport=transport, gpu=gpu, host_only=not gpu, device_id=device_id)
        except (EncoderUnavailable, KeyError) as exc:
            if transport == "webcodecs" and name is not None:
                raise
            reasons.append(f"{transport}: {exc}")
            logger.warning("no %s route: %s", transport, exc)
            continue
        if gpu and asked is None and not first.reads_cuda:
            _log_gpu_fallback(transport, first, device_id)
        others = [
            s.name
            for s in encoder_status(device_id=device_id)
            if s.available and s.transport == transport and s.name != first.name and (gpu or not s.reads_cuda)
        ]
        routes[transport] = [first, *(get_entry(n) for n in others)]
    if not routes:
        raise EncoderUnavailable("no encode route can run here: " + "; ".join(reasons))
    png = _png_route() if "image" in routes else None
    if png is not None:
        routes["png"] = [png]
    return routes


def gpu_fallback_reasons(transport: Transport, device_id: int = 0) -> list[str]:
    """``"route: reason"`` for each GPU route of ``transport`` that cannot run here (empty: none is blocked)."""
    return [
        f"{s.name}: {s.reason}"
        for s in encoder_status(device_id=device_id)
        if s.transport == transport and s.reads_cuda and not s.available
    ]


def _log_gpu_fallback(transport: Transport, chosen: EncoderEntry, device_id: int) -> None:
    why = gpu_fallback_reasons(transport, device_id)
    if why:
        logger.warning(
            "gpu=True, but no GPU %s route can run here, so %s encodes on the CPU "
            "(CUDA frames reach it through one download each); why: %s",
            transport,
            chosen.name,
            "; ".join(why),
        )


class PngStills:
    """The image route asked for a lossless PNG on every frame, for viewers that take only PNG."""

    transport: Transport = "image"

    def __init__(self, config: EncoderConfig) -> None:
        from rfb.encoders import image

        self._encoder = image.create(config)
        self.name = self._encoder.name

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        return self._encoder.encode(frame, lossless=True)

    def flush(self) -> list[EncodedPayload]:
        return self._encoder.flush()

    def close(self) -> None:
        self._encoder.close()


def _png_route() -> EncoderEntry | None:
    from rfb.encoders import image

    reason = image.probe()
    if reason is not None:
        logger.warning("no png route: %s", reason)
        return None
    return EncoderEntry(
        image.NAME,
        PngStills,
        transport="image",
        probe=image.probe,
        description="the image route in lossless mode: a PNG per frame",
    )
