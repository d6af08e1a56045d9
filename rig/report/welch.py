"""Welch's two-sample t-test, from scratch (pure; the standard library only).

Used by reports to say whether a difference between two modes' runs is significant,
and how large it may be (a confidence interval of the difference of the means). The
Student t CDF comes from the regularized incomplete beta function, evaluated with its
continued fraction (modified Lentz), the way Numerical Recipes does it:

    two-sided p = I_x(df/2, 1/2)  with  x = df / (df + t^2)

Its quantiles (``t_quantile``) invert that by bisection.

Means and variances are the standard library's (``statistics.mean`` and
``statistics.variance``): exact over the values (fractions inside) before the one
rounding to float, so a constant sample has a variance of exactly 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

Number = int | float

_TINY = 1e-300
_EPS = 1e-15
_MAX_ITERATIONS = 500


def _check_finite(xs: Sequence[Number]) -> None:
    for x in xs:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise ValueError(f"not a finite number: {x!r}")


def _beta_cf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (converges fast for x < (a+1)/(a+b+2))."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITERATIONS + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta I_{x}({a}, {b}): continued fraction did not "
                          "converge")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"incomplete beta needs a, b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"incomplete beta needs 0 <= x <= 1, got {x}")
    if x == 0.0 or x == 1.0:
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df > 0 degrees of freedom (df may be fractional)."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with df > 0 degrees of freedom."""
    tail = t_two_sided_p(t, df) / 2.0
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p for Student's t with df > 0 degrees of freedom, 0 < p < 1.

    Bisection on the two-sided tail (``t_two_sided_p(|t|, df) = 2 min(p, 1 - p)``, which
    falls as |t| grows), to the last bit of a float: the tail, not the CDF, keeps
    quantiles near p = 1 as precise as those near p = 0."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs 0 < p < 1, got {p}")
    if not df > 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if p == 0.5:
        return 0.0
    tail = 2.0 * min(p, 1.0 - p)
    lo, hi = 0.0, 1.0
    while t_two_sided_p(hi, df) > tail:  # bracket: the tail at hi is at most the target
        lo, hi = hi, hi * 2.0
    while True:
        mid = (lo + hi) / 2.0
        if mid in (lo, hi):
            break
        if t_two_sided_p(mid, df) > tail:
            lo = mid
        else:
            hi = mid
    t = (lo + hi) / 2.0
    return t if p > 0.5 else -t


@dataclass(frozen=True)
class WelchResult:
    """t = (mean(a) - mean(b)) / se, se = sqrt(s_a²/n_a + s_b²/n_b); df by
    Welch-Satterthwaite; p two-sided."""

    t: float
    df: float
    p: float
    mean_a: float
    mean_b: float
    se: float


def welch(a: Sequence[Number], b: Sequence[Number]) -> WelchResult | None:
    """Welch's t-test of a against b; None ("n/a") when it cannot be computed: either side
    has fewer than 2 values, or both have zero variance and different means (t would be
    infinite on no evidence of spread). Two constant samples with the same mean are no
    difference at all: t = 0, p = 1 (df then is n_a + n_b - 2)."""
    if len(a) < 2 or len(b) < 2:
        return None
    _check_finite(a)
    _check_finite(b)
    na, nb = len(a), len(b)
    ma, mb = float(statistics.mean(a)), float(statistics.mean(b))
    sa, sb = float(statistics.variance(a)) / na, float(statistics.variance(b)) / nb
    se2 = sa + sb
    if se2 == 0.0:
        if ma == mb:
            return WelchResult(0.0, float(na + nb - 2), 1.0, ma, mb, 0.0)
        return None
    se = math.sqrt(se2)
    t = (ma - mb) / se
    df = se2 * se2 / (sa * sa / (na - 1) + sb * sb / (nb - 1))
    return WelchResult(t, df, t_two_sided_p(t, df), ma, mb, se)


def confidence_interval(r: WelchResult, level: float = 0.95) -> tuple[float, float] | None:
    """Welch's confidence interval of mean(b) - mean(a), the difference of the means:
    mean_b - mean_a ± t_{(1+level)/2, df} · se. None when there is no spread at all
    (se = 0: both samples constant; the interval would be a point, on no evidence)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"a confidence level is in (0, 1), got {level}")
    if r.se == 0.0:
        return None
    half = t_quantile((1.0 + level) / 2.0, r.df) * r.se
    diff = r.mean_b - r.mean_a
    return diff - half, diff + half
