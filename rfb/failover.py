"""Which of a group's routes to run next, when one keeps failing or hangs while it starts.

An encode group (rfb.encodegroup) has candidate routes, best first. A route that fails
now and then is rebuilt; a route that fails ``limit`` times in a row at one size (its
factory raising, or ``encode()`` raising) is *set aside* for that group, and the next
candidate serves the viewers. Without this, a route that raises on every frame would
be rebuilt forever and its viewers would see nothing, although a working route sat
right below it. A set-aside route is tried again after a size change (a new size is a
new encoder configuration, which may well work) or once its back-off has passed
(``backoff`` seconds, doubled each time the same route is set aside again, up to
``backoff_max``); a route tried again after its back-off gets one chance, not
``limit``.

A factory that does not return within ``factory_timeout`` (a driver call that never
comes back) cannot be interrupted: :func:`build` leaves its thread behind, closes the
encoder if one arrives late, and the route is set aside at once, since every new
attempt would cost the deadline and strand another thread. A group that stops (its
display closing) abandons a build in progress the same way instead of waiting for it.

docs/fanout.md states the same rules for users.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rfb.encoders.base import EncoderBackend, EncoderConfig
from rfb.encoders.registry import EncoderEntry

logger = logging.getLogger("rfb.fanout")

Size = tuple[int, int]

_CANCEL_POLL_S = 0.1  # how often a build in progress looks at its cancel event


@dataclass(frozen=True)
class FailoverPolicy:
    """When a group gives up on a route, for how long, and how long a route may take to start.

    ``limit``: failures in a row at one size before the route is set aside.
    ``backoff``: seconds before a set-aside route is tried again at the same size; doubled
    each time the route is set aside again, up to ``backoff_max``.
    ``factory_timeout``: seconds a route's factory may take before it is abandoned.
    """

    limit: int = 3
    backoff: float = 60.0
    backoff_max: float = 960.0
    factory_timeout: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"limit must be a positive integer, got {self.limit!r}")
        for name in ("backoff", "backoff_max", "factory_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


@dataclass(frozen=True)
class SetAside:
    """A route a group no longer builds at ``size`` until ``until`` (``time.monotonic()`` seconds)."""

    route: str
    size: Size
    failures: int  # in a row: the policy's limit, or fewer for a hang or a failed retry
    reason: str  # the last error, "Type: message"
    backoff: float
    until: float
    why: str  # "failed N times in a row", "hung while starting", "failed again after its back-off"


class BuildAbandoned(Exception):
    """A build was given up before its factory returned; its thread was left behind."""


class FactoryTimeout(BuildAbandoned):
    """A route's factory did not return within the deadline."""


class BuildCancelled(BuildAbandoned):
    """The group stopped (its display is closing) while a factory was still running."""


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Failover:
    """Failure streaks and set-aside routes of one group. Used by its worker thread only."""

    def __init__(
        self, candidates: Sequence[EncoderEntry], policy: FailoverPolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.candidates = list(candidates)
        self.policy = policy
        self._clock = clock
        self._streaks: dict[str, tuple[Size, int]] = {}
        self._aside: dict[str, SetAside] = {}
        self._next_backoff: dict[str, float] = {}

    @property
    def set_aside(self) -> tuple[SetAside, ...]:
        """The routes set aside (in force, or due for their one retry), in candidate order."""
        return tuple(self._aside[e.name] for e in self.candidates if e.name in self._aside)

    def usable(self, size: Size) -> list[EncoderEntry]:
        """The candidates a build at ``size`` may try, best first."""
        now = self._clock()
        return [e for e in self.candidates if not self.held(e.name, size, now)]

    def retry_due(self, current: EncoderEntry | None, size: Size) -> bool:
        """A route better than ``current`` was set aside at ``size`` and its back-off has passed."""
        now = self._clock()
        for entry in self.candidates:
            if current is not None and entry.name == current.name:
                return False
            record = self._aside.get(entry.name)
            if record is not None and record.size == size and now >= record.until:
                return True
        return False

    def succeeded(self, entry: EncoderEntry) -> None:
        """The route encoded a frame: its streak ends and it is no longer set aside."""
        self._streaks.pop(entry.name, None)
        if self._aside.pop(entry.name, None) is not None:
            logger.info("route %s works again; it serves this group", entry.name)

    def failed(self, entry: EncoderEntry, size: Size, error: BaseException, *, hung: bool = False) -> SetAside | None:
        """Count one failure; return the record when the route is set aside by it (the caller logs it)."""
        streak_size, count = self._streaks.get(entry.name, (size, 0))
        if streak_size != size:
            count = 0
        count += 1
        previous = self._aside.get(entry.name)
        if hung:
            why = "hung while starting"
        elif previous is not None and previous.size == size:
            why = "failed again after its back-off"  # a route back from its back-off gets one chance
        elif count >= self.policy.limit:
            why = f"failed {count} times in a row"
        else:
            self._streaks[entry.name] = (size, count)
            return None
        self._streaks.pop(entry.name, None)
        backoff = self._next_backoff.get(entry.name, self.policy.backoff)
        self._next_backoff[entry.name] = min(backoff * 2, self.policy.backoff_max)
        record = SetAside(entry.name, size, count, describe(error), backoff, self._clock() + backoff, why)
        self._aside[entry.name] = record
        return record

    def held(self, name: str, size: Size, now: float | None = None) -> bool:
        """Route ``name`` is set aside at ``size`` and its back-off has not passed."""
        record = self._aside.get(name)
        return record is not None and record.size == size and (self._clock() if now is None else now) < record.until


def build(
    entry: EncoderEntry, config: EncoderConfig, timeout: float, cancel: threading.Event | None = None
) -> EncoderBackend:
    """``entry.factory(config)`` on a thread of its own, given up after ``timeout`` seconds or on ``cancel``.

    Raises what the factory raised, :class:`FactoryTimeout` or :class:`BuildCancelled`.
    An abandoned build keeps its thread (a blocked native call cannot be cancelled); if
    it returns an encoder after all, that encoder is closed on that thread, so nothing
    is left open.
    """
    done = threading.Event()
    lock = threading.Lock()
    # The outcome, handed over under ``lock``: at most one of the two gets its one item.
    built: list[EncoderBackend] = []
    failed: list[BaseException] = []
    abandoned = False

    def run() -> None:
        try:
            encoder = entry.factory(config)
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            with lock:
                failed.append(exc)
                late = abandoned
            done.set()
            if late:
                logger.info("abandoned build of route %s failed after all (%s)", entry.name, describe(exc))
            return
        with lock:
            built.append(encoder)
            late = abandoned
        done.set()
        if late:
            _close_late(entry.name, encoder)

    thread = threading.Thread(target=run, name=f"rfb-build-{entry.name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    # Slices, so that a closing display need not wait out the deadline; a factory that
    # returns at once is not delayed (the wait ends when ``done`` is set).
    while not done.wait(max(0.0, min(_CANCEL_POLL_S, deadline - time.monotonic()))):
        cancelled = cancel is not None and cancel.is_set()
        if not cancelled and time.monotonic() < deadline:
            continue
        with lock:
            abandoned = not built and not failed
        if not abandoned:
            break
        where = f"for {config.width}x{config.height}; its thread {thread.name} is left behind"
        if cancelled:
            raise BuildCancelled(f"route {entry.name}'s build was abandoned: its group stopped {where}")
        raise FactoryTimeout(f"route {entry.name}'s factory did not return within {timeout:g} s {where}")
    thread.join()  # it has handed its outcome over and is ending: no thread outlives a build
    if failed:
        raise failed[0]
    return built[0]


def _close_late(name: str, encoder: EncoderBackend) -> None:
    logger.warning("abandoned build of route %s returned an encoder after its deadline; closing it", name)
    try:
        encoder.close()
    except Exception:  # the encoder is third-party code and nobody else will close it
        logger.exception("closing the late encoder of route %s failed", name)
