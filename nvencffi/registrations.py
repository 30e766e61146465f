"""A bounded LRU of NVENC input registrations, each tied to the allocation it was made for.

Registering a CUDA pointer with NVENC (``nvEncRegisterResource``) is far slower than
mapping it, and frameworks' memory pools hand back the same allocation frame after frame.
So registrations are cached by what they describe, (pointer, pitch, width, height, buffer
format): a reused buffer registers once. The cache is bounded; the least recently used
registration is unregistered when a new one would exceed the bound, never while it is
mapped.

A registration belongs to an allocation, not to an address range: NVENC's header asks for
a resource to be unregistered before it is freed, and a pool may hand the same address,
with the same layout, to a different allocation. So each entry also records the
allocation's identity (``CU_POINTER_ATTRIBUTE_BUFFER_ID``, unique per allocation for the
life of the process). The encoder asks for the id of the frame's pointer on every frame
(one attribute, not a full query) and passes it to :meth:`RegistrationCache.lookup`; an
entry made for another allocation is unregistered there and then (``stale`` counts them),
and the frame is registered afresh: nothing is ever encoded through a registration of
memory that was freed. Where the context cannot tell (``buffer_id`` None: the test
suite's ``NullContext`` without an attribute source), entries match by layout alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

Key = tuple[int, int, int, int, int]  # (pointer, pitch, width, height, buffer format)


class RegistrationCache:
    """Registered-resource handles by key, with their allocation's id, least recently used first."""

    def __init__(self, capacity: int, unregister: Callable[[Any], None]) -> None:
        if capacity < 1:
            raise ValueError(f"registration_cache_size must be at least 1, got {capacity}")
        self.capacity = capacity
        self._unregister = unregister
        self._entries: OrderedDict[Key, tuple[Any, int | None]] = OrderedDict()
        self._mapped: set[Key] = set()
        self.hits = 0
        self.misses = 0
        self.stale = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._entries))

    def lookup(self, key: Key, buffer_id: int | None) -> Any | None:
        """The handle for ``key`` made for allocation ``buffer_id`` (marking it most
        recently used), or None. An entry for another allocation is unregistered now."""
        entry = self._entries.get(key)
        if entry is not None:
            handle, known = entry
            if known == buffer_id or known is None:
                self._entries.move_to_end(key)
                self.hits += 1
                return handle
            if key not in self._mapped:
                self.stale += 1
                self._unregister(handle)  # raises: stays cached, the next frame or close() retries
                del self._entries[key]
        self.misses += 1
        return None

    def make_room(self) -> None:
        """Unregister least recently used entries until one more fits."""
        while len(self._entries) >= self.capacity:
            victim = next((k for k in self._entries if k not in self._mapped), None)
            if victim is None:
                return  # everything is mapped (cannot happen with one frame in flight)
            self._unregister(self._entries[victim][0])  # raises: stays cached, close() retries
            del self._entries[victim]

    def add(self, key: Key, handle: Any, buffer_id: int | None) -> None:
        self._entries[key] = (handle, buffer_id)

    def mark_mapped(self, key: Key, mapped: bool) -> None:
        if mapped:
            self._mapped.add(key)
        else:
            self._mapped.discard(key)

    def forget(self, pointer: int) -> int:
        """Unregister every entry at ``pointer`` (not mapped ones); returns how many."""
        victims = [k for k in self._entries if k[0] == pointer and k not in self._mapped]
        for key in victims:
            self._unregister(self._entries[key][0])
            del self._entries[key]
        return len(victims)

    def drain(self) -> Iterator[Any]:
        """Remove and yield every handle (the caller unregisters them)."""
        self._mapped.clear()
        while self._entries:
            _, (handle, _) = self._entries.popitem(last=False)
            yield handle
