"""Holm's step-down procedure against cases computed by hand (alpha = 0.05 unless said:
the k-th smallest of m p-values is rejected while it and all smaller ones are below
alpha / (m - k + 1); adjusted p-values as R's p.adjust(p, "holm") gives them)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.report.holm import holm, holm_adjusted


def test_no_tests_at_all():
    assert holm([]) == []
    assert holm_adjusted([]) == []
    assert holm([None, None]) == [None, None]
    assert holm_adjusted([None]) == [None]


@pytest.mark.parametrize(("p", "rejected"), [
    (0.0, True), (0.01, True), (0.0499, True),
    (0.05, False),  # strictly below alpha, as everywhere in the report
    (0.06, False), (1.0, False),
])
def test_a_single_test_is_judged_at_alpha(p, rejected):
    assert holm([p]) == [rejected]
    assert holm_adjusted([p]) == [p]


def test_step_down_stops_at_the_first_acceptance():
    # sorted: 0.005 < 0.05/4 = 0.0125 yes; 0.01 < 0.05/3 = 0.0167 yes;
    # 0.03 < 0.05/2 = 0.025 no: stop, so 0.04 (< 0.05 on its own) is not rejected either
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == [True, False, False, True]
    # 4 * 0.005 = 0.02, 3 * 0.01 = 0.03, 2 * 0.03 = 0.06, then max(0.06, 1 * 0.04)
    assert holm_adjusted(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_rejects_more_than_bonferroni():
    # Bonferroni (0.05 / 4 = 0.0125 each) rejects only 0.001; Holm: 0.001 < 0.0125,
    # 0.013 < 0.0167, 0.014 < 0.025, 0.03 < 0.05: all four
    p = [0.03, 0.014, 0.001, 0.013]
    assert holm(p) == [True, True, True, True]
    assert holm_adjusted(p) == pytest.approx([0.039, 0.039, 0.004, 0.039])


def test_adjusted_p_values_are_monotone():
    # 2 * 0.01 = 0.02; 1 * 0.011 = 0.011 is raised to 0.02 (never below a smaller p's)
    assert holm_adjusted([0.011, 0.01]) == pytest.approx([0.02, 0.02])
    assert holm_adjusted([0.04, 0.01]) == pytest.approx([0.04, 0.02])
    assert holm_adjusted([0.6, 0.5]) == [1.0, 1.0]  # capped at 1: 2 * 0.5


@pytest.mark.parametrize(("p", "rejected", "adjusted"), [
    ([0.02, 0.02], [True, True], [0.04, 0.04]),  # 0.02 < 0.025, then 0.02 < 0.05
    ([0.03, 0.03], [False, False], [0.06, 0.06]),  # 0.03 >= 0.025: neither
    ([0.01] * 4, [True] * 4, [0.04] * 4),  # 0.01 < 0.0125
    ([0.0125] * 4, [False] * 4, [0.05] * 4),  # not below 0.05 / 4
    # 0.001 < 0.0125; 0.015 < 0.0167 and < 0.025; 0.3 >= 0.05. Adjusted: 4 * 0.001;
    # 3 * 0.015 = 0.045, then 2 * 0.015 = 0.03 raised to 0.045; 0.3
    ([0.001, 0.015, 0.015, 0.3], [True, True, True, False], [0.004, 0.045, 0.045, 0.3]),
    ([0.001, 0.02, 0.02, 0.3], [True, False, False, False], [0.004, 0.06, 0.06, 0.3]),
])
def test_ties_get_the_same_verdict(p, rejected, adjusted):
    assert holm(p) == rejected
    assert holm(list(reversed(p))) == list(reversed(rejected))
    assert holm_adjusted(p) == pytest.approx(adjusted)


def test_untested_values_are_no_members_of_the_family():
    # m = 2: 0.01 < 0.025, 0.03 < 0.05
    assert holm([None, 0.03, None, 0.01]) == [None, True, None, True]
    assert holm_adjusted([None, 0.03, None, 0.01]) == pytest.approx([None, 0.03, None, 0.02])
    # the same two among two p = 1 tests: m = 4, 0.01 < 0.0125, 0.03 >= 0.05/3
    assert holm([1.0, 0.03, 1.0, 0.01]) == [False, False, False, True]


def test_another_alpha():
    assert holm([0.01, 0.04], alpha=0.1) == [True, True]  # 0.01 < 0.05, 0.04 < 0.1
    assert holm([0.01, 0.04], alpha=0.01) == [False, False]  # 0.01 >= 0.005


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5, True, "0.1"])
def test_rejects_what_is_no_p_value(bad):
    with pytest.raises(ValueError, match="not a p-value"):
        holm([0.1, bad])
    with pytest.raises(ValueError, match="not a p-value"):
        holm_adjusted([bad])


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.05])
def test_rejects_alpha_out_of_range(alpha):
    with pytest.raises(ValueError, match="alpha"):
        holm([0.01], alpha=alpha)


p_values = st.lists(st.one_of(st.none(), st.floats(0.0, 1.0)), max_size=12)


@given(p_values)
def test_between_bonferroni_and_no_correction(ps):
    verdicts = holm(ps)
    m = sum(p is not None for p in ps)
    for p, v in zip(ps, verdicts, strict=True):
        assert (v is None) == (p is None)
        if p is not None:
            if p < 0.05 / m:
                assert v  # Bonferroni's rejections are Holm's
            if v:
                assert p < 0.05  # and Holm's are all uncorrected ones


@given(p_values)
def test_smaller_p_never_gets_a_weaker_verdict(ps):
    tested = [(p, v) for p, v in zip(ps, holm(ps), strict=True) if p is not None]
    for p, v in tested:
        for q, w in tested:
            if q <= p and v:
                assert w
    adjusted = holm_adjusted(ps)
    for p, a in zip(ps, adjusted, strict=True):
        assert (a is None) == (p is None)
        if p is not None:
            assert a is not None and p <= a <= 1.0
