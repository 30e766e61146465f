"""Registrations are tied to the allocation they were made for, not to an address.

A pool may free a buffer and hand its address, with the same layout, to another
allocation. The emulator knows allocations by ``buffer_id`` (``describe_pointer``) and
counts a map of a registration whose allocation is gone (``stale_registrations``); the
encoder must notice the new allocation (``CU_POINTER_ATTRIBUTE_BUFFER_ID``), unregister
the old registration and register afresh, while asking the full pointer attributes only
once per new allocation.
"""

from __future__ import annotations

import numpy as np

import nvencffi
from tests.support.frames import decode, nv12_frame
from tests.support.nvenc_fixtures import assert_released, describe_frame


class CountingContext(nvencffi.NullContext):
    """A NullContext that counts the full pointer queries and the per-frame id queries."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.full_queries = 0
        self.id_queries = 0

    def pointer_info(self, pointer):
        self.full_queries += 1
        return super().pointer_info(pointer)

    def buffer_id(self, pointer):
        self.id_queries += 1
        return super().buffer_id(pointer)


def test_a_new_allocation_at_the_same_address_is_registered_afresh(emulator, emulated_context) -> None:
    frame, y_first, _ = nv12_frame(1280, 720, seed=1)
    describe_frame(emulator, frame, buffer_id=11)
    with nvencffi.NvencEncoder(1280, 720, context=emulated_context) as enc:
        units = [enc.encode(frame), enc.encode(frame)]
        assert enc.registration_stats["misses"] == 1
        # the pool frees the buffer and gives the same address to a new allocation
        emulator.forget_pointer(frame.pointer)
        describe_frame(emulator, frame, buffer_id=12)
        frame.array[:720] = 99
        units.append(enc.encode(frame))
        stats = enc.registration_stats
        assert (stats["stale"], stats["misses"], stats["cached"]) == (1, 2, 1)
        assert emulator.ledger()["registered"] == 1  # the old registration is gone
        units.append(enc.encode(frame))
        assert enc.registration_stats["hits"] == 2
    lumas = [planes[0] for planes in decode(units)]
    np.testing.assert_array_equal(lumas[0], y_first)
    assert (lumas[2] == 99).all() and (lumas[3] == 99).all()
    assert emulator.ledger()["stale_registrations"] == 0
    assert_released(emulator)


def test_a_staged_address_taken_by_a_new_allocation_is_judged_again(emulator, emulated_context) -> None:
    frame, *_ = nv12_frame(1280, 720)
    describe_frame(emulator, frame, mempool=True, buffer_id=21)
    with nvencffi.NvencEncoder(1280, 720, context=emulated_context) as enc:
        enc.encode(frame)
        emulator.forget_pointer(frame.pointer)
        describe_frame(emulator, frame, buffer_id=22)  # now ordinary device memory
        enc.encode(frame)
        stats = enc.registration_stats
        assert (stats["staged_mempool"], stats["cached"]) == (1, 1)
        assert [key[0] for key in enc.registrations] == [frame.pointer]
    assert_released(emulator)


def test_pointer_attributes_are_asked_in_full_once_per_allocation(emulator) -> None:
    context = CountingContext(attributes=emulator.pointer_info)
    frames = [nv12_frame(1280, 720, seed=s)[0] for s in range(2)]
    for i, frame in enumerate(frames):
        describe_frame(emulator, frame, buffer_id=100 + i)
    with nvencffi.NvencEncoder(1280, 720, context=context) as enc:
        for i in range(10):
            enc.encode(frames[i % 2])
    assert context.full_queries == 2
    assert context.id_queries == 10  # one cheap attribute per frame
    assert_released(emulator)


def test_without_attributes_registrations_match_by_layout(emulator) -> None:
    frame, *_ = nv12_frame(1280, 720)
    with nvencffi.NvencEncoder(1280, 720, context=nvencffi.NullContext()) as enc:
        for _ in range(3):
            enc.encode(frame)
        stats = enc.registration_stats
        assert (stats["misses"], stats["hits"], stats["stale"]) == (1, 2, 0)
    assert_released(emulator)
