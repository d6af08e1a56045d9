"""Holm's step-down procedure for multiple comparisons, from scratch (pure).

A comparison table tests many metrics at once; at p < 0.05 each, one in twenty true
"no difference" metrics would come out significant by chance. Holm (1979) keeps the
chance of even one false "significant" in a family of m tests at alpha: sort the
p-values, p(1) <= ... <= p(m); reject while p(k) < alpha / (m - k + 1) (k from 1), and
stop at the first that is not (it and every larger one are not rejected). The adjusted
p-values say the same thing as numbers: p~(k) = max over j <= k of min(1, (m - j + 1)
p(j)), rejected exactly when p~(k) < alpha (R's ``p.adjust(p, "holm")``).

A test that could not be done (None: too few runs, no spread) is no member of the
family: it does not count in m and gets None back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _check(pvalues: Sequence[float | None]) -> list[tuple[float, int]]:
    """The tested p-values with their positions, smallest first (ties in given order)."""
    for p in pvalues:
        if p is not None and (isinstance(p, bool) or not isinstance(p, int | float)
                              or math.isnan(p) or not 0.0 <= p <= 1.0):
            raise ValueError(f"not a p-value: {p!r}")
    return sorted(((p, i) for i, p in enumerate(pvalues) if p is not None),
                  key=lambda pi: pi[0])


def holm(pvalues: Sequence[float | None], alpha: float = 0.05) -> list[bool | None]:
    """Which of the tests Holm's step-down procedure rejects at family-wise level alpha:
    True (significant), False (not), None where the p-value is None (not tested). Tied
    p-values always get the same verdict (the thresholds grow as k does)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha is in (0, 1), got {alpha}")
    tested = _check(pvalues)
    m = len(tested)
    out: list[bool | None] = [None] * len(pvalues)
    rejecting = True
    for k, (p, i) in enumerate(tested):  # k = 0 for the smallest: threshold alpha / m
        rejecting = rejecting and p < alpha / (m - k)
        out[i] = rejecting
    return out


def holm_adjusted(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (None where the p-value is None), in the given order."""
    tested = _check(pvalues)
    m = len(tested)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for k, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out
