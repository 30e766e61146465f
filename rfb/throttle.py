"""Warnings that a hostile client can trigger at will, logged at a bounded rate.

A refused token, a foreign Origin or Host, a connection over the cap: each is worth
telling the operator about, but a client can repeat it thousands of times a second from
fresh connections. A :class:`Throttle` logs the first occurrence of each kind, then at
most one line per ``interval_s`` with the count since the last line; the others go to
DEBUG. The log then grows by a line a minute per kind, whatever the attack.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

INTERVAL_S = 60.0


class Throttle:
    """Rate-limited warnings on ``logger``, per kind (a short string the caller chooses)."""

    def __init__(self, logger: logging.Logger, interval_s: float = INTERVAL_S) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.counts: dict[str, int] = {}  # every occurrence, logged or not, by kind
        self._last: dict[str, tuple[float, int]] = {}  # kind -> (monotonic time, count) at its last warning
        self._lock = threading.Lock()

    def warning(self, kind: str, message: str, *args: Any) -> None:
        """Count one ``kind``; log ``message % args`` unless one was logged within the interval."""
        now = time.monotonic()
        with self._lock:
            count = self.counts[kind] = self.counts.get(kind, 0) + 1
            last = self._last.get(kind)
            due = last is None or now - last[0] >= self.interval_s
            if due:
                self._last[kind] = (now, count)
        if not due:
            self.logger.debug(message, *args)
            return
        since = f" ({count - last[1]} since the last such warning)" if last is not None else ""
        self.logger.warning(message + "%s; more are counted and logged at most once a minute", *args, since)
