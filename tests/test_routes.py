"""rfb.routes: which encode routes a display runs per group, best first, and the fallbacks.

The GPU fallback and its logged reasons are exercised with a real display in
tests/test_display.py (test_gpu_true_without_a_usable_gpu_route_falls_back_to_cpu_and_says_why).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from rfb.encoders.base import EncodedPayload, EncoderConfig, EncoderUnavailable
from rfb.encoders.registry import EncoderEntry
from rfb.frames import RawFrame
from rfb.routes import PngStills, gpu_fallback_reasons, resolve_routes
from tests.conftest import EncoderLog, ProtocolClient


def test_routes_put_the_chosen_one_first_then_the_other_available_ones(
    test_encoders: EncoderLog, caplog: pytest.LogCaptureFixture
) -> None:
    from rfb.encoders.registry import available_video_encoders

    routes = resolve_routes("test-h264", "test-image", gpu=False)
    video = [e.name for e in routes["webcodecs"]]
    assert video[0] == "test-h264" and sorted(video) == sorted(available_video_encoders(transport="webcodecs"))
    assert [e.name for e in routes["image"]][0] == "test-image"
    assert [e.name for e in routes["png"]] == ["image"]  # the one route that makes PNG
    assert list(resolve_routes("test-h264", None, gpu=False)) == ["webcodecs"]
    assert list(resolve_routes("test-h264", "nope", gpu=False)) == ["webcodecs"]
    assert "no image route: \"no encoder named 'nope'" in caplog.text


def test_a_display_needs_at_least_one_route(monkeypatch: pytest.MonkeyPatch) -> None:
    import rfb.routes as routes

    def nothing(name: str | None, *, transport: str, gpu: bool, host_only: bool, device_id: int = 0) -> None:
        raise EncoderUnavailable(f"no {transport} route in this test")

    monkeypatch.setattr(routes, "select_encoder", nothing)
    with pytest.raises(EncoderUnavailable, match="no encode route can run here: webcodecs: no webcodecs route"):
        resolve_routes(None, "image", gpu=False)


def test_png_viewers_get_the_image_route_in_lossless_mode(test_encoders: EncoderLog) -> None:
    (png,) = resolve_routes("test-h264", "test-image", gpu=False)["png"]
    assert png.factory is PngStills and png.transport == "image"


def test_gpu_fallback_reasons_name_each_blocked_gpu_route() -> None:
    from rfb.encoders.registry import encoder_status

    blocked = {
        s.name: s.reason for s in encoder_status() if s.reads_cuda and not s.available and s.transport == "image"
    }
    assert gpu_fallback_reasons("image") == [f"{name}: {reason}" for name, reason in blocked.items()]


# ---------------------------------------------------------------- gpu=False: no route that reads CUDA frames


class CudaOnlyEncoder:
    """A route that reads CUDA frames. Building one is what gpu=False must not do."""

    transport = "webcodecs"
    name = "test-cuda"

    def __init__(self, config: EncoderConfig) -> None:
        BUILT.append(config)

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        raise AssertionError("a gpu=False display ran a route that reads CUDA frames")

    def flush(self) -> list[EncodedPayload]:
        return []

    def close(self) -> None:
        pass


BUILT: list[EncoderConfig] = []


@pytest.fixture
def cuda_route() -> Iterator[str]:
    """ "test-cuda": a route that reads CUDA frames, above every built-in route."""
    from rfb.encoders.registry import register_video_encoder, unregister_video_encoder

    BUILT.clear()
    register_video_encoder("test-cuda", CudaOnlyEncoder, priority=1000, reads_cuda=True, replace=True)
    try:
        yield "test-cuda"
    finally:
        unregister_video_encoder("test-cuda")


def video(routes: dict[str, list[EncoderEntry]]) -> list[str]:
    return [e.name for e in routes["webcodecs"]]


def test_gpu_false_leaves_routes_that_read_cuda_out_unless_named(cuda_route: str) -> None:
    from rfb.encoders.registry import encoder_status

    cuda_readers = {s.name for s in encoder_status() if s.reads_cuda}
    plain = video(resolve_routes(None, None, gpu=False))
    assert plain[0] != cuda_route and not cuda_readers & set(plain), "neither chosen nor kept as a fallback"
    named = video(resolve_routes(cuda_route, None, gpu=False))
    assert named[0] == cuda_route and not cuda_readers & set(named[1:]), (
        "a named route is taken; its fallbacks stay host"
    )
    assert video(resolve_routes(None, None, gpu=True))[0] == cuda_route
    image = [e.name for e in resolve_routes(None, "image", gpu=False)["image"]]
    assert image[0] == "image" and not cuda_readers & set(image)


def test_gpu_false_with_only_cuda_routes_says_why_none_was_taken(
    monkeypatch: pytest.MonkeyPatch, cuda_route: str
) -> None:
    from rfb.encoders import registry

    statuses = [s for s in registry.encoder_status() if s.name == cuda_route]
    monkeypatch.setattr(registry, "encoder_status", lambda refresh=False, device_id=0: statuses)
    with pytest.raises(EncoderUnavailable, match=r"test-cuda: reads CUDA frames, and host routes only were asked for"):
        registry.select_encoder(host_only=True)


@pytest.mark.anyio
async def test_a_gpu_false_display_serves_h264_cpu_below_a_cuda_route(cuda_route: str) -> None:
    """A display started without gpu=True never builds the route that reads CUDA frames."""
    from rfb.benchmark.metrics import H264Decoder
    from rfb.launch import start

    display = start(64, 48, port=0, image_encoder=None)
    try:
        assert display.routes == {"webcodecs": "h264_cpu"}
        client = await ProtocolClient.connect(display)
        display.publish(np.full((48, 64, 3), 128, np.uint8))
        chunk = await client.next_payload()
        with H264Decoder() as decoder:
            (picture,) = decoder.decode(chunk.payload)
        assert chunk.keyframe and picture.shape == (48, 64, 3)
        assert display.stats.groups["webcodecs"].encoder == "h264_cpu" and BUILT == []
        await client.close()
    finally:
        display.close()
