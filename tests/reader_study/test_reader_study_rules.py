"""The plain rules: k-of-n consensus and the exam-2 washout gate."""

from datetime import UTC, datetime, timedelta

import pytest

from reader_study.consensus import k_of_n
from reader_study.washout import exam2_gate, washout_ends_at

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("yes", "no", "expected"), [
    (4, 0, True), (4, 2, True), (6, 0, True), (3, 3, False), (2, 3, False), (0, 6, False),
    (3, 2, None), (3, 0, None), (0, 2, None), (0, 0, None),
])
def test_four_of_six(yes, no, expected):
    assert k_of_n(yes, no, k=4, n=6) is expected


def test_consensus_refuses_impossible_counts():
    with pytest.raises(ValueError, match="k"):
        k_of_n(1, 1, k=7, n=6)
    with pytest.raises(ValueError, match="at most n"):
        k_of_n(4, 3, k=4, n=6)


def test_exam2_is_closed_until_exam1_is_finished():
    gate = exam2_gate(exam1_finished_at=None, last_exam1_read_at=T0, washout_days=28,
                      now=T0 + timedelta(days=90))
    assert not gate.is_open and "finished exam 1" in gate.reason


def test_exam2_is_closed_until_washout_has_passed():
    args = {"exam1_finished_at": T0, "last_exam1_read_at": T0, "washout_days": 28}
    early = exam2_gate(**args, now=T0 + timedelta(days=27, hours=23))
    assert not early.is_open and early.opens_at == T0 + timedelta(days=28) and "2026-03-29" in early.reason
    assert exam2_gate(**args, now=T0 + timedelta(days=28)).is_open


def test_an_override_skips_the_washout_but_not_exam1():
    assert exam2_gate(exam1_finished_at=T0, last_exam1_read_at=T0, washout_days=28, now=T0,
                      overridden=True).is_open
    assert not exam2_gate(exam1_finished_at=None, last_exam1_read_at=T0, washout_days=28, now=T0,
                          overridden=True).is_open


def test_negative_washout_is_refused():
    with pytest.raises(ValueError, match="washout_days"):
        washout_ends_at(T0, -1)
