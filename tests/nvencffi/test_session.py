"""A session's life as the header asks for it: opening (and failing to), the CUDA stream
NVENC keeps a pointer to, fresh parameter structs, and end of stream before destroying.

The strict emulator counts what a driver would not forgive: a destroy without EOS after
encoding (``unflushed_destroys``), a failed open's handle never destroyed
(``failed_open_leaks``), any call with a NULL session (``null_session_calls``), a stream
pointer that no longer holds the stream at encode time (``dead_stream_pointers``), a
non-zero reserved field (``reserved_field_errors``).
"""

from __future__ import annotations

import ctypes

import pytest

import nvencffi
from nvencffi import errors
from tests.support.frames import nv12_frame
from tests.support.nvenc_fixtures import assert_released


def new_encoder(**kwargs) -> nvencffi.NvencEncoder:
    return nvencffi.NvencEncoder(1280, 720, context=nvencffi.NullContext(), **kwargs)


def test_a_session_that_encoded_ends_its_stream_before_it_is_destroyed(emulator) -> None:
    frame, *_ = nv12_frame(1280, 720)
    with new_encoder() as enc:
        enc.encode(frame)
        enc.encode(frame)
    ledger = emulator.ledger()
    assert ledger["eos"] == 1
    assert ledger["unflushed_destroys"] == 0
    assert_released(emulator)


def test_no_second_eos_after_a_flush_and_none_without_frames(emulator) -> None:
    frame, *_ = nv12_frame(1280, 720)
    with new_encoder() as enc:
        enc.encode(frame)
        enc.flush()
    assert emulator.ledger()["eos"] == 1
    with new_encoder():
        pass
    with new_encoder() as enc:
        enc.encode(frame)
        enc.flush()
        enc.encode(frame)  # encoding again makes another EOS due
    assert emulator.ledger()["eos"] == 3
    assert_released(emulator)


def test_an_encoder_garbage_collected_open_still_ends_its_stream(emulator) -> None:
    frame, *_ = nv12_frame(1280, 720)
    enc = new_encoder()
    enc.encode(frame)
    with pytest.warns(ResourceWarning, match="unclosed"):
        enc.__del__()
    assert emulator.ledger()["eos"] == 1
    assert_released(emulator)


@pytest.mark.parametrize("status", ["NV_ENC_ERR_OUT_OF_MEMORY", "NV_ENC_ERR_INVALID_DEVICE"])
def test_a_failed_open_destroys_its_handle_and_never_asks_a_null_session(emulator, status) -> None:
    emulator.inject_fault("nvEncOpenEncodeSessionEx", status)
    with pytest.raises(errors.NvencError) as info:
        new_encoder()
    assert info.value.name == status
    ledger = emulator.ledger()
    assert ledger["failed_open_leaks"] == 0 and ledger["null_session_calls"] == 0
    assert_released(emulator)


def test_no_engine_keeps_the_drivers_words_and_leaks_no_handle(emulator) -> None:
    emulator.set_unsupported_device(True)
    with pytest.raises(nvencffi.NvencUnavailable, match="has no NVENC video encode engine"):
        new_encoder()
    ledger = emulator.ledger()
    assert ledger["failed_open_leaks"] == 0 and ledger["null_session_calls"] == 0
    assert_released(emulator)


def test_the_cuda_stream_pointer_lives_as_long_as_the_encoder(emulator) -> None:
    stream = 0x7E57
    frame, *_ = nv12_frame(1280, 720)
    with new_encoder(cuda_stream=stream) as enc:
        (session,) = emulator.sessions()
        held = session["input_stream"]
        assert held == session["output_stream"] != 0
        for _ in range(3):
            [bytearray(4096) for _ in range(64)]  # churn the allocator between calls
            enc.encode(frame)
            assert ctypes.c_void_p.from_address(held).value == stream  # still our CUstream
    assert emulator.ledger()["dead_stream_pointers"] == 0
    assert_released(emulator)


def test_parameter_structs_are_fresh_for_every_call(emulator) -> None:
    """The emulator scribbles over the output fields of what it was given; a struct the
    driver wrote into must never go back to it (reserved fields stay zero)."""
    frame, *_ = nv12_frame(1280, 720)
    with new_encoder() as enc:
        for i in range(6):
            enc.encode(frame, force_idr=(i == 3))
        enc.reconfigure(bitrate=1_000_000)
        enc.encode(frame)
        enc.sequence_params()
    ledger = emulator.ledger()
    assert ledger["reserved_field_errors"] == 0 and ledger["errors"] == 0
    assert ledger["idr_frames"] == 2
    assert_released(emulator)


def test_reserved_fields_of_a_copied_config_are_zeroed() -> None:
    """The config starts as a copy of the driver's preset; whatever its reserved fields
    held, they go back as 0 (nested unions untouched: only the member we fill is ours)."""
    from nvencffi import _api
    from nvencffi._ffi import ffi

    config = ffi.new("NV_ENC_CONFIG *")
    h264 = config.encodeCodecConfig.h264Config
    config.reserved[5] = config.rcParams.reserved[2] = h264.reserved1[0] = 7
    config.reserved2[1] = ffi.cast("void *", 0x1000)
    h264.reservedBitFields = 1
    h264.idrPeriod = 30
    for part in (config, config.rcParams, h264, h264.h264VUIParameters):
        _api.zero_reserved(part)
    assert (config.reserved[5], config.rcParams.reserved[2], h264.reserved1[0], h264.reservedBitFields) == (0, 0, 0, 0)
    assert config.reserved2[1] == ffi.NULL
    assert h264.idrPeriod == 30
