"""The registry of encode routes, their availability, and the choice of the best one.

A route is registered with a factory (``EncoderConfig -> EncoderBackend``) and a probe
that says, without raising, why the route cannot run here (``None`` when it can).
Probes may be costly (an NVENC probe encodes a frame), so their answer is cached, per
CUDA device, until ``refresh=True`` is asked for. A probe that takes a ``device_id``
keyword is asked about the device in question; one that takes no argument answers for
the machine.

Built-in routes live in their own modules and are registered lazily on first use,
so ``import rfb`` stays cheap and never touches CUDA or FFmpeg.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rfb.encoders.base import EncoderBackend, EncoderConfig, EncoderUnavailable, Transport

logger = logging.getLogger("rfb.encoders")

Factory = Callable[[EncoderConfig], EncoderBackend]
Probe = Callable[..., "str | None"]  # () or (*, device_id)

# Modules whose ENTRIES are registered on first use, in no particular order:
# the choice among them is made by priority.
BUILTIN_MODULES: tuple[str, ...] = (
    "rfb.encoders.h264_cpu",
    "rfb.encoders.image",
    "rfb.encoders.nvenc_cpu",
    "rfb.encoders.nvenc_gpu_cffi",
    "rfb.encoders.nvenc_gpu_pyav",
    "rfb.encoders.h264_gpu_nv12",
    "rfb.encoders.h264_cuda",
    "rfb.encoders.jpeg_gpu",
)


@dataclass(frozen=True, slots=True)
class EncoderEntry:
    """A registered route. Higher ``priority`` wins when no name is asked for.

    ``reads_cuda`` marks routes that take CUDA frames as they are, without a host copy.
    They are the candidates of ``serve(gpu=True)``.
    """

    name: str
    factory: Factory
    transport: Transport = "webcodecs"
    probe: Probe | None = None
    priority: int = 0
    reads_cuda: bool = False
    description: str = ""

    @property
    def gpu(self) -> bool:
        """Deprecated name of :attr:`reads_cuda`."""
        return _deprecated_gpu(self.reads_cuda)


@dataclass(frozen=True, slots=True)
class EncoderStatus:
    """What doctor and available_video_encoders() report for one route."""

    name: str
    available: bool
    reason: str | None
    transport: Transport
    priority: int
    reads_cuda: bool
    description: str

    @property
    def gpu(self) -> bool:
        """Deprecated name of :attr:`reads_cuda`."""
        return _deprecated_gpu(self.reads_cuda)


def _deprecated_gpu(reads_cuda: bool) -> bool:
    warnings.warn(
        "the gpu attribute of a route is deprecated; read reads_cuda (the route takes CUDA frames without a host copy)",
        DeprecationWarning,
        stacklevel=3,
    )
    return reads_cuda


class Registry:
    """The registered routes and the probe answers cached for them, behind one lock.

    The process has one, :data:`REGISTRY`, which the module's functions use. Tests and
    embedding frameworks change it for a while through :meth:`temporary`, which puts
    the routes and cached answers back as they were, instead of reaching into its state.
    """

    def __init__(self, builtin_modules: tuple[str, ...] = BUILTIN_MODULES) -> None:
        self.builtin_modules = builtin_modules
        self._lock = threading.RLock()
        self._entries: dict[str, EncoderEntry] = {}
        self._probe_cache: dict[tuple[str, int], str | None] = {}  # (route, CUDA device) -> reason
        self._builtins_loaded = False

    def _load_builtins(self) -> None:
        with self._lock:
            if self._builtins_loaded:
                return
            self._builtins_loaded = True
            for module_name in self.builtin_modules:
                try:
                    module = importlib.import_module(module_name)
                except ImportError as exc:
                    # One broken route must not hide the others: register it as unavailable
                    # under its module's short name, with the import error as the reason.
                    name = module_name.rsplit(".", 1)[-1]
                    reason = f"cannot import {module_name}: {type(exc).__name__}: {exc}"
                    logger.warning("encoder route %s unavailable: %s", name, reason)
                    self._entries.setdefault(name, EncoderEntry(name, _unimportable(reason), probe=lambda r=reason: r))
                    continue
                for entry in getattr(module, "ENTRIES", ()):
                    if entry.name not in self._entries:
                        self._entries[entry.name] = entry

    @contextmanager
    def temporary(self, *, builtins: bool = True, probes: bool = True) -> Iterator[Registry]:
        """Within the block, routes may be registered, replaced and removed freely; at
        exit the routes and the cached probe answers are those of its start.

        ``builtins=False`` starts the block with no route at all (nor cached answers),
        so that choices depend on the routes the block registers alone;
        ``probes=False`` keeps the routes but starts with no cached probe answer, so
        that every probe is asked afresh.
        """
        self._load_builtins()
        with self._lock:
            entries, cache = dict(self._entries), dict(self._probe_cache)
            if not builtins:
                self._entries.clear()
            if not (builtins and probes):
                self._probe_cache.clear()
        try:
            yield self
        finally:
            with self._lock:
                self._entries.clear()
                self._entries.update(entries)
                self._probe_cache.clear()
                self._probe_cache.update(cache)

    def register(
        self,
        name: str,
        factory: Factory,
        *,
        transport: Transport = "webcodecs",
        probe: Probe | None = None,
        priority: int = 0,
        reads_cuda: bool = False,
        description: str = "",
        replace: bool = False,
        gpu: bool | None = None,
    ) -> None:
        """Register an encode route under ``name``.

        ``reads_cuda=True``: the factory's encoders take CUDA frames as they are (see
        :class:`EncoderEntry`). ``gpu`` is its deprecated name, still accepted with a
        ``DeprecationWarning``. Registering a name that is already taken raises
        ``ValueError`` unless ``replace=True``; a replaced route's cached probe answer is
        forgotten.
        """
        if gpu is not None:
            warnings.warn(
                "register_video_encoder(gpu=...) is deprecated; pass reads_cuda=... "
                "(the route takes CUDA frames without a host copy)",
                DeprecationWarning,
                stacklevel=2,
            )
            if reads_cuda and not gpu:
                raise ValueError("reads_cuda=True and gpu=False disagree; pass reads_cuda alone")
            reads_cuda = reads_cuda or gpu
        if not isinstance(name, str) or not name:
            raise ValueError(f"encoder name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise TypeError(f"factory must be callable (EncoderConfig -> EncoderBackend), got {type(factory).__name__}")
        if transport not in ("webcodecs", "image"):
            raise ValueError(f"transport must be 'webcodecs' or 'image', got {transport!r}")
        self.register_entry(
            EncoderEntry(name, factory, transport, probe, priority, reads_cuda, description), replace=replace
        )

    def register_entry(self, entry: EncoderEntry, *, replace: bool = False) -> None:
        """Register a whole :class:`EncoderEntry` (e.g. a built-in one with another probe)."""
        self._load_builtins()
        with self._lock:
            if entry.name in self._entries and not replace:
                raise ValueError(
                    f"an encoder named {entry.name!r} is already registered; pass replace=True to replace it"
                )
            self._entries[entry.name] = entry
            self._forget_probes(entry.name)

    def unregister(self, name: str) -> None:
        """Remove a registered route (mainly for tests and embedding frameworks)."""
        self._load_builtins()
        with self._lock:
            if name not in self._entries:
                raise KeyError(f"no encoder named {name!r}; registered: {sorted(self._entries)}")
            del self._entries[name]
            self._forget_probes(name)

    def get_entry(self, name: str) -> EncoderEntry:
        """The route registered under ``name``; ``KeyError`` naming the registered ones if none."""
        self._load_builtins()
        with self._lock:
            try:
                return self._entries[name]
            except KeyError:
                raise KeyError(f"no encoder named {name!r}; registered: {sorted(self._entries)}") from None

    def forget_probes(self, name: str | None = None) -> None:
        """Forget the cached probe answers of route ``name`` (of every route when None)."""
        with self._lock:
            if name is None:
                self._probe_cache.clear()
            else:
                self._forget_probes(name)

    def cached_probes(self, name: str) -> dict[int, str | None]:
        """The probe answers cached for route ``name``, by CUDA device."""
        with self._lock:
            return {device: reason for (route, device), reason in self._probe_cache.items() if route == name}

    def _forget_probes(self, name: str) -> None:
        for key in [key for key in self._probe_cache if key[0] == name]:
            del self._probe_cache[key]

    def probe_entry(self, entry: EncoderEntry, *, refresh: bool = False, device_id: int = 0) -> str | None:
        """Why ``entry`` cannot run on CUDA device ``device_id`` here, or None.

        Never raises: a crashing probe is a reason.
        """
        key = (entry.name, device_id)
        with self._lock:
            if not refresh and key in self._probe_cache:
                return self._probe_cache[key]
        if entry.probe is None:
            reason = None
        else:
            try:
                reason = entry.probe(device_id=device_id) if _takes_device(entry.probe) else entry.probe()
            except Exception as exc:  # a probe must never take the server down; report it instead
                reason = f"probe failed: {type(exc).__name__}: {exc}"
        with self._lock:
            self._probe_cache[key] = reason
        return reason

    def encoder_status(self, *, refresh: bool = False, device_id: int = 0) -> list[EncoderStatus]:
        """Every registered route, available or not (on CUDA device ``device_id``), with the reason; best first."""
        self._load_builtins()
        with self._lock:
            entries = list(self._entries.values())
        out = []
        for e in entries:
            reason = self.probe_entry(e, refresh=refresh, device_id=device_id)
            out.append(
                EncoderStatus(e.name, reason is None, reason, e.transport, e.priority, e.reads_cuda, e.description)
            )
        out.sort(key=lambda s: (-s.priority, s.name))
        return out


def _unimportable(reason: str) -> Factory:
    def factory(config: EncoderConfig) -> EncoderBackend:
        raise EncoderUnavailable(reason)

    return factory


def _takes_device(probe: Probe) -> bool:
    try:
        return "device_id" in inspect.signature(probe).parameters
    except (TypeError, ValueError):  # a callable without a signature (a builtin): ask it nothing
        return False


REGISTRY = Registry()
"""The process's routes: what serve(), doctor and the module's functions below consult."""

register_video_encoder = REGISTRY.register
unregister_video_encoder = REGISTRY.unregister
get_entry = REGISTRY.get_entry
probe_entry = REGISTRY.probe_entry
encoder_status = REGISTRY.encoder_status
temporary_routes = REGISTRY.temporary


def available_video_encoders(
    *, transport: Transport | None = None, refresh: bool = False, device_id: int = 0
) -> list[str]:
    """Names of the routes that can run here (on CUDA device ``device_id``), best first."""
    return [
        s.name
        for s in encoder_status(refresh=refresh, device_id=device_id)
        if s.available and (transport is None or s.transport == transport)
    ]


def select_encoder(
    name: str | None = None,
    *,
    transport: Transport = "webcodecs",
    gpu: bool = False,
    host_only: bool = False,
    device_id: int = 0,
) -> EncoderEntry:
    """The route to use: ``name`` if given (it must be available), else the best available.

    With ``gpu=True`` the routes that read CUDA frames are preferred; a host route is
    still chosen when none of them can run, since a display that does not start helps
    nobody. ``host_only=True`` leaves the routes that read CUDA frames out (a route
    asked for by name is still taken). Availability is that on CUDA device
    ``device_id`` (the display's).
    """
    if name is not None:
        entry = get_entry(name)
        if entry.transport != transport:
            raise ValueError(f"encoder {name!r} produces {entry.transport!r} payloads, expected {transport!r}")
        reason = probe_entry(entry, device_id=device_id)
        if reason is not None:
            raise EncoderUnavailable(f"encoder {name!r} is not available here: {reason}")
        return entry
    statuses = [s for s in encoder_status(device_id=device_id) if s.transport == transport]
    candidates = [s for s in statuses if s.available and not (host_only and s.reads_cuda)]
    if gpu:
        candidates.sort(key=lambda s: (not s.reads_cuda, -s.priority, s.name))
    if not candidates:
        reasons = "; ".join(f"{s.name}: {_why_not(s, host_only)}" for s in statuses)
        raise EncoderUnavailable(f"no {transport} encoder can run here ({reasons or 'none registered'})")
    return get_entry(candidates[0].name)


def _why_not(status: EncoderStatus, host_only: bool) -> str | None:
    if status.available and host_only and status.reads_cuda:
        return "reads CUDA frames, and host routes only were asked for (name it, or serve with gpu=True)"
    return status.reason
