"""Welch's t-test and the functions under it, against values known independently."""

import math
import statistics

import pytest

from rig.report.welch import (
    betainc,
    confidence_interval,
    t_cdf,
    t_quantile,
    t_two_sided_p,
    welch,
)


def test_exact_means_and_variances():
    """Means and variances are exact before the one rounding (statistics.mean and
    variance): constant samples of inexact floats have no spread at all."""
    r = welch([0.1, 0.1, 0.1], [0.1, 0.1])
    assert r is not None
    assert (r.t, r.p, r.df, r.mean_a, r.se) == (0.0, 1.0, 3.0, 0.1, 0.0)
    assert welch([0.1, 0.1, 0.1], [0.2, 0.2]) is None
    r = welch([0.1, 0.2, 0.3], [2, 4, 4, 4, 5, 5, 7, 9])  # s² = 0.01 and 32/7
    assert r is not None
    assert (r.mean_a, r.mean_b) == (0.2, 5.0)
    assert r.t == pytest.approx((0.2 - 5.0) / math.sqrt(0.01 / 3 + 32 / 7 / 8), rel=1e-14)


def test_rejects_non_finite():
    with pytest.raises(ValueError, match="finite"):
        welch([1.0, math.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        welch([1.0, 2.0], [1.0, math.inf])


@pytest.mark.parametrize("x", [0.0, 0.05, 0.3, 0.5, 0.77, 0.99, 1.0])
def test_incomplete_beta_closed_forms(x):
    assert betainc(1, 1, x) == pytest.approx(x, abs=1e-14)
    assert betainc(3, 1, x) == pytest.approx(x ** 3, abs=1e-14)
    assert betainc(1, 4, x) == pytest.approx(1 - (1 - x) ** 4, abs=1e-14)
    # I_x(2, 2) = 3x^2 - 2x^3
    assert betainc(2, 2, x) == pytest.approx(3 * x * x - 2 * x ** 3, abs=1e-14)
    # symmetry I_x(a, b) = 1 - I_{1-x}(b, a)
    assert betainc(2.5, 0.5, x) == pytest.approx(1 - betainc(0.5, 2.5, 1 - x), abs=1e-14)


def test_incomplete_beta_half_and_domain():
    for a in (0.5, 1, 7.5, 40):
        assert betainc(a, a, 0.5) == pytest.approx(0.5, abs=1e-14)
    with pytest.raises(ValueError):
        betainc(0, 1, 0.5)
    with pytest.raises(ValueError):
        betainc(1, 1, 1.5)


@pytest.mark.parametrize("t", [-40.0, -3.0, -0.5, 0.0, 0.7, 2.0, 9.5])
def test_t_cdf_closed_forms(t):
    """Student t CDFs that have elementary closed forms (df = 1, 2, 3, 4)."""
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-14)
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-14)
    u = t / math.sqrt(3)
    assert t_cdf(t, 3) == pytest.approx(0.5 + (math.atan(u) + u / (1 + u * u)) / math.pi,
                                        abs=1e-14)
    q = 1 + t * t / 4
    assert t_cdf(t, 4) == pytest.approx(
        0.5 + 0.375 * (t / math.sqrt(q)) * (1 - t * t / (12 * q)), abs=1e-14)


@pytest.mark.parametrize(("df", "t975"), [
    (1, 12.706204736), (2, 4.302652730), (5, 2.570581836), (10, 2.228138852),
    (30, 2.042272456),
])
def test_two_sided_p_at_table_critical_values(df, t975):
    """The 97.5 % quantiles of the t tables give p = 0.05 two-sided."""
    assert t_two_sided_p(t975, df) == pytest.approx(0.05, abs=1e-9)
    assert t_two_sided_p(-t975, df) == pytest.approx(0.05, abs=1e-9)


def _simpson_two_sided(t, df, n=20000):
    """2 * integral of the t density from |t| to a far bound, plus the far tail (df > 2
    makes it negligible at 1e4): an independent check for fractional df."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def pdf(x):
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    a, b = abs(t), abs(t) + 200.0
    h = (b - a) / n
    s = pdf(a) + pdf(b) + sum((4 if i % 2 else 2) * pdf(a + i * h) for i in range(1, n))
    return 2 * s * h / 3


@pytest.mark.parametrize(("t", "df"), [(2.2514, 5.5208), (0.3, 3.7), (4.0, 17.9)])
def test_two_sided_p_fractional_df_against_integration(t, df):
    assert t_two_sided_p(t, df) == pytest.approx(_simpson_two_sided(t, df), abs=1e-6)


def test_welch_by_hand():
    """a: mean 2.5, s² 5/3; b: mean 6, s² 10. se² = 5/12 + 2 = 29/12,
    t = -3.5 / sqrt(29/12), df = (29/12)² / ((5/12)²/3 + 2²/4) = 2523/457."""
    r = welch([1, 2, 3, 4], [2, 4, 6, 8, 10])
    assert r is not None
    assert r.t == pytest.approx(-3.5 / math.sqrt(29 / 12), rel=1e-14)
    assert r.df == pytest.approx(2523 / 457, rel=1e-14)
    assert r.p == pytest.approx(_simpson_two_sided(r.t, r.df), abs=1e-6)
    assert (r.mean_a, r.mean_b) == (2.5, 6.0)


def test_welch_matches_r_t_test():
    """R's t.test (Welch by default) on two published examples."""
    r = welch([11, 9, 10, 11, 10, 12, 9, 11, 12, 9], [11, 13, 10, 13, 12, 9, 11, 12, 12, 11])
    assert r is not None  # R: t = -1.8325, df = 17.9, p-value = 0.08356
    assert (round(r.t, 4), round(r.df, 1), round(r.p, 5)) == (-1.8325, 17.9, 0.08356)
    # R's `t.test(extra ~ group, data = sleep)`: t = -1.8608, df = 17.776, p = 0.07939
    g1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    g2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    r = welch(g1, g2)
    assert r is not None
    assert (round(r.t, 4), round(r.df, 3), round(r.p, 5)) == (-1.8608, 17.776, 0.07939)
    # swapping the samples flips t and keeps df and p
    s = welch(g2, g1)
    assert s is not None
    assert (s.t, s.df, s.p) == pytest.approx((-r.t, r.df, r.p), rel=1e-12)


def test_welch_not_computable():
    assert welch([1.0], [1.0, 2.0]) is None
    assert welch([1.0, 2.0], []) is None
    assert welch([3, 3, 3], [5, 5]) is None  # no spread at all, different means


def test_welch_constant_equal_samples_and_one_constant_side():
    r = welch([0, 0, 0], [0, 0])
    assert r is not None
    assert (r.t, r.p, r.df) == (0.0, 1.0, 3.0)
    # one side constant: df is the other side's n - 1, as the formula gives
    r = welch([5, 5, 5], [1, 2, 3])
    assert r is not None
    assert r.df == pytest.approx(2.0)
    assert r.t == pytest.approx(3 / math.sqrt(1 / 3))
    # equal means with spread: t = 0, p = 1
    r = welch([1, 3], [2, 2, 2])
    assert r is not None and r.t == 0.0 and r.p == pytest.approx(1.0)


def test_significant_difference_is_small_p():
    r = welch([100, 101, 99, 100], [120, 119, 121, 120])
    assert r is not None and r.p < 1e-4


# ---- Student t quantiles ----------------------------------------------------------------

@pytest.mark.parametrize(("p", "df", "expected"), [
    # t tables (R's qt to 9 decimals)
    (0.975, 1, 12.706204736), (0.975, 2, 4.302652730), (0.975, 4, 2.776445105),
    (0.975, 5, 2.570581836), (0.975, 10, 2.228138852), (0.975, 30, 2.042272456),
    (0.975, 1000, 1.962339081),
    (0.95, 1, 6.313751515), (0.995, 10, 3.169272673), (0.9, 5, 1.475884049),
    (0.025, 4, -2.776445105), (0.05, 1, -6.313751515),
])
def test_t_quantile_table_values(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("p", [1e-6, 0.001, 0.1, 0.3, 0.5, 0.6, 0.9, 0.975, 0.999])
def test_t_quantile_closed_forms(p):
    """df = 1 (Cauchy): tan(pi (p - 1/2)) = -1 / tan(pi p) (precise near p = 0 too);
    df = 2: (2p - 1) / sqrt(2 p (1 - p))."""
    assert t_quantile(p, 1) == pytest.approx(-1 / math.tan(math.pi * p), rel=1e-12, abs=1e-15)
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)),
                                             rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("df", [0.5, 1.3, 2.0, 3.7, 5.5208, 17.9, 250.0])
@pytest.mark.parametrize("p", [0.005, 0.2, 0.5, 0.8, 0.975])
def test_t_quantile_inverts_the_cdf(p, df):
    t = t_quantile(p, df)
    assert t_cdf(t, df) == pytest.approx(p, rel=1e-12)
    assert t_quantile(1 - p, df) == pytest.approx(-t, rel=1e-12, abs=1e-15)


def test_t_quantile_tends_to_the_normal():
    """t -> z as df grows; for large df, t ≈ z + (z³ + z) / (4 df) (Cornish-Fisher)."""
    z = statistics.NormalDist().inv_cdf(0.975)  # 1.959963985
    for df in (1e4, 1e6):
        assert t_quantile(0.975, df) == pytest.approx(z + (z ** 3 + z) / (4 * df), abs=1e-6)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959963985, abs=3e-6)
    assert t_quantile(0.975, 100) > t_quantile(0.975, 1000) > z


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (-0.1, 3), (0.5, 0), (0.9, -1)])
def test_t_quantile_domain(p, df):
    with pytest.raises(ValueError):
        t_quantile(p, df)


# ---- confidence interval of the difference of the means ------------------------------------

def test_confidence_interval_matches_r():
    """R's `t.test(extra ~ group, data = sleep)`: 95 percent confidence interval of
    mean(group 1) - mean(group 2): -3.3654832 0.2054832."""
    g1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    g2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    r = welch(g2, g1)  # the interval is of mean(b) - mean(a)
    assert r is not None
    assert confidence_interval(r) == pytest.approx((-3.3654832, 0.2054832), abs=1e-7)
    s = welch(g1, g2)
    assert s is not None
    assert confidence_interval(s) == pytest.approx((-0.2054832, 3.3654832), abs=1e-7)


def test_confidence_interval_by_hand():
    # a = [1, 2, 3], b = [4, 5, 6]: difference 3, se = sqrt(2/3), df = 4
    r = welch([1, 2, 3], [4, 5, 6])
    assert r is not None and r.se == pytest.approx(math.sqrt(2 / 3), rel=1e-14)
    half = 2.776445105 * math.sqrt(2 / 3)
    lo, hi = confidence_interval(r)
    assert (lo, hi) == pytest.approx((3 - half, 3 + half), abs=1e-8)
    # its ends are exactly where a shifted b stops differing at p = 0.05
    assert t_two_sided_p((3 - hi) / r.se, r.df) == pytest.approx(0.05, abs=1e-12)
    assert t_two_sided_p((3 - lo) / r.se, r.df) == pytest.approx(0.05, abs=1e-12)
    # 90 %: t_{0.95, 4} = 2.131846786
    assert confidence_interval(r, 0.90) == pytest.approx(
        (3 - 2.131846786 * r.se, 3 + 2.131846786 * r.se), abs=1e-8)
    # one side constant: se = sqrt(1/3), df = 2, difference mean(b) - mean(a) = 2 - 5
    r = welch([5, 5, 5], [1, 2, 3])
    assert r is not None
    half = 4.302652730 * math.sqrt(1 / 3)
    assert confidence_interval(r) == pytest.approx((-3 - half, -3 + half), abs=1e-8)


def test_confidence_interval_undefined_without_spread():
    r = welch([0, 0, 0], [0, 0])
    assert r is not None and r.p == 1.0
    assert confidence_interval(r) is None  # a point on no evidence: n/a
    assert welch([3, 3], [5, 5]) is None  # and no test either


@pytest.mark.parametrize("level", [0.0, 1.0, 95])
def test_confidence_level_domain(level):
    r = welch([1, 2, 3], [4, 5, 6])
    assert r is not None
    with pytest.raises(ValueError, match="confidence level"):
        confidence_interval(r, level)
