"""rfb.routes: which encode routes a display runs per group, best first, and the fallbacks.

The GPU fallback and its logged reasons are exercised with a real display in
tests/test_display.py (test_gpu_true_without_a_usable_gpu_route_falls_back_to_cpu_and_says_why).
"""

from __future__ import annotations

import pytest

from rfb.encoders.base import EncoderUnavailable
from rfb.routes import PngStills, gpu_fallback_reasons, resolve_routes
from tests.conftest import EncoderLog


def test_routes_put_the_chosen_one_first_then_the_other_available_ones(test_encoders: EncoderLog,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
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

    def nothing(name: str | None, *, transport: str, gpu: bool) -> None:
        raise EncoderUnavailable(f"no {transport} route in this test")

    monkeypatch.setattr(routes, "select_encoder", nothing)
    with pytest.raises(EncoderUnavailable, match="no encode route can run here: webcodecs: no webcodecs route"):
        resolve_routes(None, "image", gpu=False)


def test_png_viewers_get_the_image_route_in_lossless_mode(test_encoders: EncoderLog) -> None:
    (png,) = resolve_routes("test-h264", "test-image", gpu=False)["png"]
    assert png.factory is PngStills and png.transport == "image"


def test_gpu_fallback_reasons_name_each_blocked_gpu_route() -> None:
    from rfb.encoders.registry import encoder_status

    blocked = {s.name: s.reason for s in encoder_status() if s.reads_cuda and not s.available and s.transport == "image"}
    assert gpu_fallback_reasons("image") == [f"{name}: {reason}" for name, reason in blocked.items()]
