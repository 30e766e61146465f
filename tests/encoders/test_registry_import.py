"""A built-in route whose module fails to import is reported, not fatal to the others."""

from __future__ import annotations

import pytest

from rfb.encoders import registry
from rfb.encoders.base import EncoderConfig, EncoderUnavailable


def test_unimportable_builtin_is_listed_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "BUILTIN_MODULES", registry.BUILTIN_MODULES + ("rfb.encoders._no_such_route",))
    monkeypatch.setattr(registry, "_entries", {})
    monkeypatch.setattr(registry, "_probe_cache", {})
    monkeypatch.setattr(registry, "_builtins_loaded", False)

    status = {s.name: s for s in registry.encoder_status()}

    assert status["h264_cpu"].available  # the working routes are still there
    broken = status["_no_such_route"]
    assert not broken.available
    assert "cannot import rfb.encoders._no_such_route" in broken.reason
    assert "_no_such_route" not in registry.available_video_encoders()
    with pytest.raises(EncoderUnavailable, match="cannot import"):
        registry.get_entry("_no_such_route").factory(EncoderConfig(16, 16))
