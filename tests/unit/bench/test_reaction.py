"""The reaction-time analysis of a daemon timeline (pure)."""

import math

import pytest

from rig.bench.reaction import Stats, analyse, percentile


def test_percentile_nearest_rank():
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_analyse_splits_by_cause_and_ignores_inputs():
    records = [
        {"kind": "input", "event": "HostPressure"},
        {"kind": "command", "cause": "host pressure low", "reaction_s": 0.002},
        {"kind": "command", "cause": "guest pressure low: deflate", "reaction_s": 0.004},
        {"kind": "command", "cause": "guest pressure low: cancel inflation", "reaction_s": 0.006},
        {"kind": "command", "cause": "host calm: give back", "reaction_s": 0.5},
    ]
    r = analyse(records)
    assert (r.host.n, r.guest.n, r.all.n) == (1, 2, 3)
    assert r.guest.median_ms == pytest.approx(5.0)
    assert r.all.max_ms == pytest.approx(6.0)
    assert "guest message -> setMemory" in r.table()


def test_no_events_is_nan_not_an_error():
    s = Stats.of([])
    assert s.n == 0 and math.isnan(s.p99_ms)
