"""rfb.encoders.registry: registration, probes and their cache, and the choice of a route."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import rfb
from rfb.encoders import registry
from rfb.encoders.base import EncodedPayload, EncoderConfig, EncoderUnavailable
from rfb.frames import RawFrame


class NullBackend:
    name = "null"
    transport = "webcodecs"

    def encode(self, frame: RawFrame, *, force_keyframe: bool = False) -> list[EncodedPayload]:
        return []

    def flush(self) -> list[EncodedPayload]:
        return []

    def close(self) -> None:
        pass


def factory(config: EncoderConfig) -> NullBackend:
    return NullBackend()


@pytest.fixture(autouse=True)
def isolated_registry() -> Iterator[None]:
    """Each test sees the built-in routes and leaves the registry as it found it."""
    with registry.temporary_routes():
        yield


@pytest.fixture
def only_test_routes() -> Iterator[None]:
    """Hide the built-in routes, so choices depend on the test's routes alone."""
    with registry.temporary_routes(builtins=False):
        yield


def test_builtin_routes_are_registered_from_their_modules() -> None:
    names = {s.name for s in registry.encoder_status()}
    assert {"h264_cpu", "image", "nvenc_cpu"} <= names
    status = {s.name: s for s in registry.encoder_status()}
    assert status["h264_cpu"].available and status["h264_cpu"].reason is None
    assert status["image"].transport == "image"
    if not status["nvenc_cpu"].available:
        assert status["nvenc_cpu"].reason  # a reason a user can read, never an exception


def test_public_api_reexports() -> None:
    assert rfb.register_video_encoder is registry.register_video_encoder
    assert rfb.available_video_encoders is registry.available_video_encoders
    assert "h264_cpu" in rfb.available_video_encoders(transport="webcodecs")
    assert "image" in rfb.available_video_encoders(transport="image")


def test_register_select_and_unregister(only_test_routes: None) -> None:
    registry.register_video_encoder("fast", factory, priority=5, description="test route")
    registry.register_video_encoder("slow", factory, priority=1)
    assert registry.available_video_encoders() == ["fast", "slow"]
    assert registry.select_encoder().name == "fast"
    assert registry.select_encoder("slow").name == "slow"
    entry = registry.get_entry("fast")
    assert entry.factory is factory and entry.description == "test route" and entry.transport == "webcodecs"
    registry.unregister_video_encoder("fast")
    assert registry.select_encoder().name == "slow"
    with pytest.raises(KeyError, match=r"no encoder named 'fast'; registered: \['slow'\]"):
        registry.unregister_video_encoder("fast")
    with pytest.raises(KeyError, match=r"no encoder named 'nope'"):
        registry.get_entry("nope")


def test_duplicate_names_need_replace(only_test_routes: None) -> None:
    registry.register_video_encoder("x", factory)
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        registry.register_video_encoder("x", factory)
    registry.register_video_encoder("x", factory, priority=9, replace=True)
    assert registry.get_entry("x").priority == 9


@pytest.mark.parametrize(
    ("name", "fac", "transport", "error", "message"),
    [
        ("", factory, "webcodecs", ValueError, "non-empty string, got ''"),
        (None, factory, "webcodecs", ValueError, "non-empty string, got None"),
        ("x", "not callable", "webcodecs", TypeError, "factory must be callable .* got str"),
        ("x", factory, "mjpeg", ValueError, "transport must be 'webcodecs' or 'image', got 'mjpeg'"),
    ],
)
def test_bad_registrations(name: object, fac: object, transport: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        registry.register_video_encoder(name, fac, transport=transport)  # type: ignore[arg-type]


def test_probes_are_cached_until_refresh(only_test_routes: None) -> None:
    calls: list[int] = []
    answers = ["driver missing", None]

    def probe() -> str | None:
        calls.append(1)
        return answers[min(len(calls) - 1, 1)]

    registry.register_video_encoder("probed", factory, probe=probe)
    assert registry.available_video_encoders() == []
    assert registry.available_video_encoders() == []
    assert len(calls) == 1  # cached
    assert registry.available_video_encoders(refresh=True) == ["probed"]
    assert len(calls) == 2
    # replacing a route forgets its cached answer
    registry.register_video_encoder("probed", factory, probe=lambda: "gone", replace=True)
    assert registry.available_video_encoders() == []


def test_a_crashing_probe_is_a_reason(only_test_routes: None) -> None:
    def probe() -> str | None:
        raise OSError("libnvidia-encode.so.1: cannot open shared object file")

    registry.register_video_encoder("crashy", factory, probe=probe)
    (status,) = registry.encoder_status()
    assert not status.available
    assert status.reason == "probe failed: OSError: libnvidia-encode.so.1: cannot open shared object file"


def test_select_by_name_checks_transport_and_availability(only_test_routes: None) -> None:
    registry.register_video_encoder("vid", factory, probe=lambda: "no GPU here")
    registry.register_video_encoder("img", factory, transport="image")
    with pytest.raises(EncoderUnavailable, match="encoder 'vid' is not available here: no GPU here"):
        registry.select_encoder("vid")
    with pytest.raises(ValueError, match="encoder 'img' produces 'image' payloads, expected 'webcodecs'"):
        registry.select_encoder("img")
    assert registry.select_encoder("img", transport="image").name == "img"
    with pytest.raises(EncoderUnavailable, match=r"no webcodecs encoder can run here \(vid: no GPU here\)"):
        registry.select_encoder()


def test_select_with_nothing_registered(only_test_routes: None) -> None:
    with pytest.raises(EncoderUnavailable, match=r"no image encoder can run here \(none registered\)"):
        registry.select_encoder(transport="image")


def test_gpu_preference_falls_back_to_cpu(only_test_routes: None) -> None:
    registry.register_video_encoder("cpu_best", factory, priority=50)
    registry.register_video_encoder("gpu_route", factory, priority=10, reads_cuda=True)
    assert registry.select_encoder().name == "cpu_best"  # by priority
    assert registry.select_encoder(gpu=True).name == "gpu_route"  # GPU routes first
    registry.register_video_encoder("gpu_route", factory, reads_cuda=True, probe=lambda: "no CUDA", replace=True)
    assert registry.select_encoder(gpu=True).name == "cpu_best"  # still a display that starts


def test_gpu_is_a_deprecated_alias_of_reads_cuda(only_test_routes: None) -> None:
    with pytest.warns(DeprecationWarning, match=r"gpu=\.\.\.\) is deprecated; pass reads_cuda"):
        registry.register_video_encoder("old_style", factory, gpu=True)
    entry = registry.get_entry("old_style")
    assert entry.reads_cuda
    with pytest.warns(DeprecationWarning, match="read reads_cuda"):
        assert entry.gpu
    status = next(s for s in registry.encoder_status() if s.name == "old_style")
    with pytest.warns(DeprecationWarning, match="read reads_cuda"):
        assert status.gpu
    with pytest.raises(ValueError, match="reads_cuda=True and gpu=False disagree"), pytest.warns(DeprecationWarning):
        registry.register_video_encoder("both", factory, reads_cuda=True, gpu=False)


def test_status_is_sorted_best_first_and_complete(only_test_routes: None) -> None:
    registry.register_video_encoder("b", factory, priority=1)
    registry.register_video_encoder("a", factory, priority=1)
    registry.register_video_encoder("c", factory, priority=3, probe=lambda: "nope", reads_cuda=True)
    status = registry.encoder_status()
    assert [s.name for s in status] == ["c", "a", "b"]
    assert (status[0].available, status[0].reason, status[0].reads_cuda, status[0].priority) == (False, "nope", True, 3)
    assert registry.available_video_encoders() == ["a", "b"]


def test_builtin_factories_build_working_backends() -> None:
    for name in registry.available_video_encoders():
        entry = registry.get_entry(name)
        backend = entry.factory(EncoderConfig(64, 48))
        try:
            assert backend.transport == entry.transport
        finally:
            backend.close()


def test_temporary_routes_puts_routes_and_probe_answers_back() -> None:
    before = registry.encoder_status()
    asked: list[int] = []
    with registry.temporary_routes():
        registry.register_video_encoder("temp", factory, probe=lambda: asked.append(1) or None)
        registry.unregister_video_encoder("h264_cpu")
        assert "temp" in registry.available_video_encoders() and asked == [1]
        assert registry.REGISTRY.cached_probes("temp") == {0: None}
    assert registry.encoder_status() == before
    with pytest.raises(KeyError, match="no encoder named 'temp'"):
        registry.get_entry("temp")
    assert registry.REGISTRY.cached_probes("temp") == {}


def test_temporary_routes_without_builtins_starts_empty_and_restores_them() -> None:
    with registry.temporary_routes(builtins=False):
        assert registry.encoder_status() == []
        registry.register_video_encoder("only", factory)
        assert registry.select_encoder().name == "only"
    assert registry.get_entry("h264_cpu").name == "h264_cpu"
    with pytest.raises(KeyError):
        registry.get_entry("only")


def test_a_registry_object_has_routes_of_its_own() -> None:
    mine = registry.Registry(builtin_modules=())
    mine.register("mine", factory, description="a route of one registry")
    assert [s.name for s in mine.encoder_status()] == ["mine"]
    with pytest.raises(KeyError):
        registry.get_entry("mine")
    mine.forget_probes()
    assert mine.cached_probes("mine") == {}
    mine.unregister("mine")
    assert mine.encoder_status() == []


def test_temporary_routes_without_probes_asks_every_probe_afresh() -> None:
    asked: list[int] = []
    registry.register_video_encoder("counted", factory, probe=lambda: asked.append(1) or None)
    registry.encoder_status()
    with registry.temporary_routes(probes=False):
        assert registry.REGISTRY.cached_probes("counted") == {}
        registry.encoder_status()
        assert asked == [1, 1]
    assert registry.REGISTRY.cached_probes("counted") == {0: None}
