"""Per-picture QP towards a bit budget of bitrate / fps (a one-picture VBV target).

The host learns each picture's size anyway (it reads the bitstream back), so rate
control is host code between pictures, in integers:

- After a picture of ``bits`` at ``qp`` against a budget of ``target``, the next
  picture of the same type starts from qp + d, d = round(6 log2(bits / target)) (bits
  roughly halve every 6 QP), at most :data:`MAX_STEP` upward but only 1 downward:
  overshoot is what a one-picture buffer cannot absorb, while a P picture at a QP
  well below its reference's re-codes everything that did not change (the residual
  against a coarse reference no longer quantises to zero), so a fast descent makes
  the sizes oscillate. I and P pictures keep separate QPs: an IDR costs several P pictures'
  worth at the same QP, and the P QP after an IDR is at least the IDR's (a P picture
  finer than its reference re-codes the whole picture).
- A picture over :data:`VBV_LIMIT` times the budget is coded again once at the higher
  QP (:meth:`RateControl.retry_qp`): the one-picture buffer. On the GPU that is a
  second pass of a millisecond, decided from the length the host reads anyway.
- The QP does not fall below ``qp_min`` (18 by default): below it the gain is
  invisible on rfb's content, and a static picture with budget to spare would be
  re-coded finer and finer instead of settling into P_Skip.
"""

from __future__ import annotations

from dataclasses import dataclass

QP_MIN = 10
QP_MAX = 51
MAX_STEP = 6
VBV_LIMIT = 2
DEFAULT_QP_MIN = 18


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
    qp_p: int = 30
    qp_min: int = DEFAULT_QP_MIN

    def qp(self, idr: bool) -> int:
        return self.qp_i if idr else self.qp_p

    def retry_qp(self, qp: int, bits: int) -> int | None:
        """The QP to code a picture again at when it overshot the one-picture buffer, else None."""
        if bits <= VBV_LIMIT * self.target_bits or qp >= QP_MAX:
            return None
        return min(qp + max(qp_step(bits, self.target_bits), 1), QP_MAX)

    def update(self, idr: bool, qp: int, bits: int) -> None:
        """Account for a picture of ``bits`` coded at ``qp``."""
        step = qp_step(max(bits, 1), self.target_bits)
        step = max(step, -1)
        nxt = min(max(qp + step, self.qp_min), QP_MAX)
        if idr:
            self.qp_i = nxt
            # A P picture finer than the IDR it follows would re-code all of it.
            self.qp_p = max(self.qp_p, qp)
        else:
            self.qp_p = nxt
