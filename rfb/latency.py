"""One viewer's recent publish-to-drawn latencies, and their summary over a window.

The server is the one place that knows both ends of a frame's trip without any clock
agreement: it stamped the frame at ``publish()`` and it receives the viewer's ``ack``
once the frame was drawn. Each drawn ack adds one sample, ``ack received - published``
on the server's monotonic clock (the ack's own trip back is included: half a round trip).

Samples are kept for a bounded time and count, so a viewer connected for days costs
the same as one connected for a minute. A summary is computed on demand: once a second
for the viewer's ``stats`` message, and whenever ``display.viewers`` or
``display.stats`` is read.

A summary reads only the samples of its window. They are the newest ones, kept in
ack order, so it walks back from the newest until the window's start and sorts just
those: O(k log k) for the k frames in the window (about 60 for the usual 1 s window),
whatever the 60 s horizon holds. Exact percentiles from a sort beat a histogram here:
k is small for the windows that are read often, a histogram's buckets would round the
figures the ``stats`` message shows, and a time-sliding window cannot subtract
samples from one running histogram anyway. On the 2-core development machine (shared,
so best of 5), 8192 samples over 60 s::

    python -m timeit -s "from rfb.latency import LatencyWindow; w = LatencyWindow(now=0.0);
        [w.add(60 * i / 8192, 0.01 + i % 97 * 1e-4) for i in range(8192)]" "w.summary(1.0, now=60.0)"

takes 16 us for the 1 s window (136 samples; filtering the whole log instead takes
250 us), and about 0.5 ms for the whole 60 s window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_HORIZON_S = 60.0  # samples older than this are forgotten
DEFAULT_MAX_SAMPLES = 8192  # and at most this many are kept (over 2 minutes at 60 fps)
NUMPY_FROM = 512  # samples in a window past which NumPy's percentile beats sorting a list


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Frames drawn by one viewer in a window, and their publish-to-ack latency.

    ``fps`` is the rate of drawn acks over the window (the part of it the viewer was
    connected for). The latency fields are None when no frame was drawn in the window.
    """

    window_s: float
    frames: int
    fps: float
    median_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


class LatencyWindow:
    """A bounded log of ``(ack time, latency)`` samples; thread-safe.

    Samples are added on the server's event loop (where acks arrive) and summarised
    there or from the caller's thread (``display.viewers``), hence the lock. They are
    kept in ack order: an ``at`` earlier than the last one counts as the last one.
    """

    def __init__(
        self, *, horizon_s: float = DEFAULT_HORIZON_S, max_samples: int = DEFAULT_MAX_SAMPLES, now: float | None = None
    ) -> None:
        if horizon_s <= 0 or max_samples < 1:
            raise ValueError(f"expected a positive horizon and sample count, got {horizon_s!r} s, {max_samples!r}")
        self.horizon_s = horizon_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self._lock = threading.Lock()
        self._since = time.monotonic() if now is None else now
        self.total = 0  # samples ever added

    def add(self, at: float, latency_s: float) -> None:
        """One frame drawn: acked at ``at`` (monotonic seconds), ``latency_s`` after it was published."""
        if not math.isfinite(latency_s) or latency_s < 0:
            raise ValueError(f"expected a finite latency >= 0 s, got {latency_s!r}")
        with self._lock:
            if self._samples and at < self._samples[-1][0]:
                at = self._samples[-1][0]
            self._samples.append((at, latency_s))
            self.total += 1
            self._forget(at)

    def summary(self, window_s: float, now: float | None = None) -> LatencySummary:
        """The samples acked in the last ``window_s`` seconds (at most the horizon)."""
        if not window_s > 0:
            raise ValueError(f"expected a positive window, got {window_s!r}")
        now = time.monotonic() if now is None else now
        window_s = min(window_s, self.horizon_s)
        with self._lock:
            self._forget(now)
            latencies = []
            for at, latency in reversed(self._samples):  # newest first: stop at the window's start
                if now - at > window_s:
                    break
                if at <= now:
                    latencies.append(latency)
        span = min(window_s, max(now - self._since, 1e-3))  # a viewer that just joined: its own span
        fps = round(len(latencies) / span, 1)
        if not latencies:
            return LatencySummary(window_s, 0, fps)
        if len(latencies) > NUMPY_FROM:
            ms = np.asarray(latencies, dtype=np.float64) * 1000.0
            median, p95, p99 = (round(float(v), 2) for v in np.percentile(ms, (50, 95, 99)))
            return LatencySummary(window_s, len(ms), fps, median, p95, p99, round(float(ms.max()), 2))
        ordered = sorted(lat * 1000.0 for lat in latencies)
        median, p95, p99 = (round(_percentile(ordered, q), 2) for q in (50, 95, 99))
        return LatencySummary(window_s, len(ordered), fps, median, p95, p99, round(ordered[-1], 2))

    def _forget(self, now: float) -> None:
        samples = self._samples
        while samples and now - samples[0][0] > self.horizon_s:
            samples.popleft()


def _percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of sorted values, interpolated linearly (NumPy's default method)."""
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
