"""rfb.latency's summaries: the window's samples only, with NumPy's percentiles whatever the path."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rfb.latency import NUMPY_FROM, LatencyWindow


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=NUMPY_FROM * 2))
def test_a_summary_matches_numpy_on_both_paths(latencies: list[float]) -> None:
    window = LatencyWindow(now=0.0)
    for i, latency in enumerate(latencies):
        window.add(1.0 + i * 1e-4, latency)
    summary = window.summary(30.0, now=2.0)
    ms = np.asarray(latencies) * 1000.0
    expected = [round(float(v), 2) for v in np.percentile(ms, (50, 95, 99))] + [round(float(ms.max()), 2)]
    assert [summary.median_ms, summary.p95_ms, summary.p99_ms, summary.max_ms] == expected
    assert summary.frames == len(latencies)


def test_a_summary_counts_only_its_window_from_a_full_log() -> None:
    window = LatencyWindow(now=0.0)
    for i in range(8192):  # 60 s at 136 acks/s: the log is full
        window.add(60 * i / 8192, 0.010 if i < 8000 else 0.050)
    recent = window.summary(1.0, now=60.0)
    assert recent.frames == 136 and recent.median_ms == 50.0 and recent.max_ms == 50.0


def test_an_ack_time_before_the_last_counts_as_the_last() -> None:
    window = LatencyWindow(now=0.0)
    window.add(5.0, 0.01)
    window.add(4.0, 0.02)  # out of order: kept at 5.0, so a window ending at 5.5 sees both
    assert window.summary(1.0, now=5.5).frames == 2
