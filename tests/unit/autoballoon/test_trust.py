"""trust.cross_check: what a guest's stats may claim against its QEMU process's RSS."""

import pytest
from autoballoon.trust import cross_check


@pytest.mark.parametrize(("stats", "target", "rss", "expected"), [
    # honest, at its target: nothing cut
    ({"actual": 1024, "usable": 400, "unused": 300}, 1024, 700,
     {"actual": 1024, "usable": 400, "unused": 324}),
    # claims nothing usable: at least target - RSS
    ({"actual": 1024, "usable": 0, "unused": 0}, 1024, 576,
     {"actual": 1024, "usable": 448, "unused": 448}),
    # claims size 0 (it wrote the balloon's "actual"): the host's target counts
    ({"actual": 0, "usable": 0}, 606, 576, {"actual": 606, "usable": 30}),
    # an inflation on its way (actual above target): its size stands
    ({"actual": 900, "usable": 100}, 800, 700, {"actual": 900, "usable": 200}),
    # a size above the maximum: the maximum
    ({"actual": 1 << 40, "usable": 0}, 512, 300, {"actual": 1024, "usable": 724}),
    # more RSS than size: nothing raised
    ({"actual": 512, "usable": 10, "swap_in": 5}, 512, 600,
     {"actual": 512, "usable": 10, "swap_in": 5}),
    # no "actual" in its stats: the target
    ({"usable": 0}, 700, 500, {"actual": 700, "usable": 200}),
])
def test_cross_check(stats, target, rss, expected):
    assert cross_check(stats, target, 1024, rss) == expected


def test_the_need_never_exceeds_the_rss_whatever_the_claims():
    for actual in (0, 100, 512, 1024, 5000):
        for usable in (0, 50, 2000):
            for target in (128, 512, 1024):
                out = cross_check({"actual": actual, "usable": usable}, target, 1024, 300)
                assert out["actual"] - out["usable"] <= 300
