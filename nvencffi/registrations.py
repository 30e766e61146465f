"""A bounded LRU of NVENC input registrations, keyed by what a registration describes.

Registering a CUDA pointer with NVENC (``nvEncRegisterResource``) is far slower than
mapping it, and frameworks' memory pools hand back the same allocation frame after frame.
So registrations are cached by (pointer, pitch, width, height, buffer format): a reused
buffer registers once. The cache is bounded; the least recently used registration is
unregistered when a new one would exceed the bound, never while it is mapped.

A registration describes an address range, not an allocation. If the caller frees a
cached buffer and the allocator hands the same address out again for a buffer of the
same layout, the registration is still right for it. If the address is not reused,
NVENC keeps a stale registration until it is evicted, forgotten (``forget(pointer)``)
or the session closes; stale entries cost a cache slot and a little driver memory, and
they are only dangerous if the address is mapped again with the old layout, which the
key rules out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

Key = tuple[int, int, int, int, int]  # (pointer, pitch, width, height, buffer format)


class RegistrationCache:
    """Registered-resource handles by key, least recently used first."""

    def __init__(self, capacity: int, unregister: Callable[[Any], None]) -> None:
        if capacity < 1:
            raise ValueError(f"registration_cache_size must be at least 1, got {capacity}")
        self.capacity = capacity
        self._unregister = unregister
        self._entries: OrderedDict[Key, Any] = OrderedDict()
        self._mapped: set[Key] = set()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._entries))

    def lookup(self, key: Key) -> Any | None:
        """The handle for ``key`` (marking it most recently used), or None."""
        handle = self._entries.get(key)
        if handle is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return handle

    def make_room(self) -> None:
        """Unregister least recently used entries until one more fits."""
        while len(self._entries) >= self.capacity:
            victim = next((k for k in self._entries if k not in self._mapped), None)
            if victim is None:
                return  # everything is mapped (cannot happen with one frame in flight)
            self._unregister(self._entries[victim])  # raises: stays cached, close() retries
            del self._entries[victim]

    def add(self, key: Key, handle: Any) -> None:
        self._entries[key] = handle

    def mark_mapped(self, key: Key, mapped: bool) -> None:
        if mapped:
            self._mapped.add(key)
        else:
            self._mapped.discard(key)

    def forget(self, pointer: int) -> int:
        """Unregister every entry at ``pointer`` (not mapped ones); returns how many."""
        victims = [k for k in self._entries if k[0] == pointer and k not in self._mapped]
        for key in victims:
            self._unregister(self._entries[key])
            del self._entries[key]
        return len(victims)

    def drain(self) -> Iterator[Any]:
        """Remove and yield every handle (the caller unregisters them)."""
        self._mapped.clear()
        while self._entries:
            _, handle = self._entries.popitem(last=False)
            yield handle
