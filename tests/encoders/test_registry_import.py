"""A built-in route whose module fails to import is reported, not fatal to the others."""

from __future__ import annotations

import pytest

from rfb.encoders import registry
from rfb.encoders.base import EncoderConfig, EncoderUnavailable


def test_unimportable_builtin_is_listed_with_its_reason() -> None:
    routes = registry.Registry(registry.BUILTIN_MODULES + ("rfb.encoders._no_such_route",))

    status = {s.name: s for s in routes.encoder_status()}

    assert status["h264_cpu"].available  # the working routes are still there
    broken = status["_no_such_route"]
    assert not broken.available
    assert "cannot import rfb.encoders._no_such_route" in broken.reason
    with pytest.raises(EncoderUnavailable, match="cannot import"):
        routes.get_entry("_no_such_route").factory(EncoderConfig(16, 16))
    with pytest.raises(KeyError):  # the process's registry is another one, untouched
        registry.get_entry("_no_such_route")
