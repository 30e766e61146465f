"""Bits and NAL framing of the golden model, against the spec's tables and our reader."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rfb.encoders.h264 import BitReader, remove_emulation_prevention
from rfb.h264cuda.model.bitwriter import Bits, nal_unit, se_code_num, ue_length


def bit_string(b: Bits) -> str:
    return format(b.value, f"0{b.length}b") if b.length else ""


@pytest.mark.parametrize(
    ("value", "code"),
    [(0, "1"), (1, "010"), (2, "011"), (3, "00100"), (4, "00101"), (6, "00111"), (7, "0001000"), (8, "0001001")],
)
def test_ue_codes_are_table_9_2(value: int, code: str) -> None:
    assert bit_string(Bits().ue(value)) == code
    assert ue_length(value) == len(code)


@pytest.mark.parametrize(("value", "code_num"), [(0, 0), (1, 1), (-1, 2), (2, 3), (-2, 4), (3, 5), (-3, 6)])
def test_se_maps_as_table_9_3(value: int, code_num: int) -> None:
    assert se_code_num(value) == code_num
    assert bit_string(Bits().se(value)) == bit_string(Bits().ue(code_num))


@given(st.lists(st.tuples(st.sampled_from(["u", "ue", "se"]), st.integers(-5000, 5000)), max_size=40))
def test_what_is_written_reads_back(fields: list[tuple[str, int]]) -> None:
    b = Bits()
    expected = []
    for kind, v in fields:
        if kind == "u":
            b.u(13, abs(v) % 8192)
            expected.append(abs(v) % 8192)
        elif kind == "ue":
            b.ue(abs(v))
            expected.append(abs(v))
        else:
            b.se(v)
            expected.append(v)
    b.trailing()
    r = BitReader(b.to_bytes())
    got = [r.u(13) if kind == "u" else r.ue() if kind == "ue" else r.se() for kind, _ in fields]
    assert got == expected
    assert r.u(1) == 1 and r.remaining < 8 and r.u(r.remaining) == 0


def test_trailing_bits_align_and_append_joins() -> None:
    a = Bits().u(3, 0b101)
    joined = Bits().u(2, 0b11).append(a).trailing()
    assert bit_string(joined) == "11101100"
    assert joined.to_bytes() == b"\xec"


def test_unaligned_bits_and_out_of_range_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="byte-aligned"):
        Bits().u(3, 1).to_bytes()
    with pytest.raises(ValueError, match="0..7 for u\\(3\\), got 8"):
        Bits().u(3, 8)
    with pytest.raises(ValueError, match="ue\\(v\\) >= 0"):
        Bits().ue(-1)


def test_nal_unit_has_start_code_header_and_emulation_prevention() -> None:
    payload = Bits().u(32, 0x00000100).u(8, 0x80)  # 00 00 01 would be a start code
    nal = nal_unit(3, 5, payload)
    assert nal[:5] == b"\x00\x00\x00\x01\x65"
    assert nal[5:] == b"\x00\x00\x03\x01\x00\x80"
    assert remove_emulation_prevention(nal[5:]) == payload.to_bytes()
