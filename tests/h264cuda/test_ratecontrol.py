"""Rate control of the golden model: the integer step and the QP it leads to."""

from __future__ import annotations

import math

import pytest

from rfb.h264cuda.model.ratecontrol import DEFAULT_QP_MIN, MAX_STEP, QP_MAX, QP_MIN, RateControl, qp_step


@pytest.mark.parametrize("target", [1000, 33_333, 266_666])
def test_step_is_rounded_six_log2_of_the_ratio(target: int) -> None:
    for bits in range(target // 5, 5 * target, max(1, target // 97)):
        exact = 6 * math.log2(bits / target)
        expected = max(-MAX_STEP, min(MAX_STEP, math.floor(exact + 0.5)))
        assert qp_step(bits, target) == expected, (bits, target, exact)


def test_step_refuses_nonpositive_sizes() -> None:
    with pytest.raises(ValueError, match="positive bits and target, got 0 and 10"):
        qp_step(0, 10)


def test_overshoot_raises_qp_fully_and_undershoot_lowers_it_by_one() -> None:
    rc = RateControl(target_bits=10_000, qp_i=30, qp_p=28)
    rc.update(idr=False, qp=28, bits=40_000)  # 4x over: +12, at most +6
    assert rc.qp(False) == 34 and rc.qp(True) == 30
    rc.update(idr=False, qp=34, bits=2_500)  # 4x under: -12, at most -1
    assert rc.qp(False) == 33
    rc.update(idr=True, qp=30, bits=20_000)  # 2x over: +6
    assert rc.qp(True) == 36


def test_a_picture_over_twice_the_budget_is_coded_again_higher() -> None:
    rc = RateControl(target_bits=10_000)
    assert rc.retry_qp(30, 20_000) is None
    assert rc.retry_qp(30, 20_001) == 36
    assert rc.retry_qp(30, 10**9) == 36  # one step of at most MAX_STEP
    assert rc.retry_qp(QP_MAX, 10**9) is None


def test_qp_stays_within_its_range() -> None:
    rc = RateControl(target_bits=10_000, qp_i=QP_MAX, qp_p=20)
    rc.update(idr=True, qp=QP_MAX, bits=10**9)
    rc.update(idr=False, qp=DEFAULT_QP_MIN, bits=1)
    assert (rc.qp(True), rc.qp(False)) == (QP_MAX, DEFAULT_QP_MIN)
    low = RateControl(target_bits=10_000, qp_min=QP_MIN)
    low.update(idr=False, qp=QP_MIN, bits=1)
    assert low.qp(False) == QP_MIN


def test_p_pictures_start_no_finer_than_the_idr_before_them() -> None:
    rc = RateControl(target_bits=10_000, qp_i=30, qp_p=28)
    rc.update(idr=True, qp=36, bits=10_000)
    assert rc.qp(False) == 36
    rc.update(idr=True, qp=20, bits=10_000)
    assert rc.qp(False) == 36
