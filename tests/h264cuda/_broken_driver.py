"""A driver module whose import fails (for test_encoder: a broken driver is reported, not taken for a missing one)."""

import rfb_no_such_dependency  # type: ignore[import-not-found]  # noqa: F401
