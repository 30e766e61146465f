"""Bits and NAL units: fixed-width fields, Exp-Golomb codes (9.1), RBSP trailing bits.

A :class:`Bits` is an immutable-by-convention run of bits held as one Python integer
plus its length. The kernels will produce exactly this per macroblock (a few 32-bit
words and a bit count); the picture is then the concatenation of all of them, whose
offsets are an exclusive prefix sum of the lengths. Nothing here depends on the order
in which the runs were produced, only on the order in which they are joined.
"""

from __future__ import annotations

from collections.abc import Iterable

from rfb.encoders.h264 import add_emulation_prevention

START_CODE = b"\x00\x00\x00\x01"


def ue_length(value: int) -> int:
    """Bits of ``ue(v)`` for ``value`` >= 0: 2 * floor(log2(value + 1)) + 1."""
    return 2 * (value + 1).bit_length() - 1


def se_code_num(value: int) -> int:
    """The ``ue`` code number of ``se(v)`` (Table 9-3): 1 -> 1, -1 -> 2, 2 -> 3, ..."""
    return 2 * value - 1 if value > 0 else -2 * value


class Bits:
    """A growing big-endian bit string: ``value`` holds the last ``length`` bits written."""

    __slots__ = ("value", "length")

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def u(self, nbits: int, value: int) -> Bits:
        """A fixed-width unsigned field ``u(n)``."""
        if nbits < 0 or value < 0 or value >> nbits:
            raise ValueError(f"expected a value in 0..{(1 << max(nbits, 0)) - 1} for u({nbits}), got {value}")
        self.value = (self.value << nbits) | value
        self.length += nbits
        return self

    def code(self, bit_string: str) -> Bits:
        """A variable-length code given as its spec text, e.g. ``'000101'``."""
        return self.u(len(bit_string), int(bit_string, 2)) if bit_string else self

    def flag(self, value: bool) -> Bits:
        return self.u(1, int(value))

    def ue(self, value: int) -> Bits:
        """``ue(v)``: leading zeros, a one, then the low bits of value + 1."""
        if value < 0:
            raise ValueError(f"expected ue(v) >= 0, got {value}")
        return self.u(ue_length(value), value + 1)

    def se(self, value: int) -> Bits:
        """``se(v)``: the ue code of 2|v| - 1 (positive) or 2|v| (negative and zero)."""
        return self.ue(se_code_num(value))

    def append(self, other: Bits) -> Bits:
        self.value = (self.value << other.length) | other.value
        self.length += other.length
        return self

    def extend(self, others: Iterable[Bits]) -> Bits:
        for other in others:
            self.append(other)
        return self

    def trailing(self) -> Bits:
        """``rbsp_trailing_bits()``: a one, then zeros up to the byte boundary."""
        self.u(1, 1)
        return self.u(-self.length % 8, 0)

    def to_bytes(self) -> bytes:
        """The bits as bytes; the length must be a whole number of bytes."""
        if self.length % 8:
            raise ValueError(f"expected a byte-aligned bit string, got {self.length} bits")
        return self.value.to_bytes(self.length // 8, "big")


def nal_unit(nal_ref_idc: int, nal_unit_type: int, rbsp: Bits) -> bytes:
    """One Annex B NAL unit: start code, header byte, RBSP with emulation prevention (7.4.1)."""
    header = bytes([(nal_ref_idc << 5) | nal_unit_type])
    return START_CODE + header + add_emulation_prevention(rbsp.to_bytes())
