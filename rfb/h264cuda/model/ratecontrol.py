"""Per-picture QP towards a bit budget of bitrate / fps (a one-picture VBV target).

The host learns each picture's size anyway (it reads the bitstream back), so rate
control is host code between pictures, in integers: after a picture of ``bits`` at
``qp`` against a budget of ``target``, the next picture of the same type moves by
d = round(6 log2(bits / target)) (bits roughly halve every 6 QP), at most
:data:`MAX_STEP`, upward in full and downward by half (overshoot is what a
one-picture buffer cannot absorb, undershoot only wastes a little). I and P pictures
keep separate QPs: an IDR costs several P pictures' worth at the same QP.
"""

from __future__ import annotations

from dataclasses import dataclass

QP_MIN = 10
QP_MAX = 51
MAX_STEP = 6


def qp_step(bits: int, target: int) -> int:
    """round(6 log2(bits / target)) within +-MAX_STEP, exactly, in integers.

    d is the smallest integer with bits^12 < 2^(2d + 1) target^12 (ties round up),
    scaled by 2^(2 MAX_STEP + 1) so that every power is whole.
    """
    if bits <= 0 or target <= 0:
        raise ValueError(f"expected positive bits and target, got {bits} and {target}")
    x, y = bits**12 << (2 * MAX_STEP + 1), target**12
    for d in range(-MAX_STEP, MAX_STEP):
        if x < y << (2 * d + 1 + 2 * MAX_STEP + 1):
            return d
    return MAX_STEP


@dataclass(slots=True)
class RateControl:
    """The QP of the next I and P picture, updated from the size of each coded picture."""

    target_bits: int
    qp_i: int = 30
    qp_p: int = 28

    def qp(self, idr: bool) -> int:
        return self.qp_i if idr else self.qp_p

    def update(self, idr: bool, bits: int) -> None:
        step = qp_step(max(bits, 1), self.target_bits)
        step = step if step > 0 else -((-step) // 2)
        if idr:
            self.qp_i = min(max(self.qp_i + step, QP_MIN), QP_MAX)
        else:
            self.qp_p = min(max(self.qp_p + step, QP_MIN), QP_MAX)
