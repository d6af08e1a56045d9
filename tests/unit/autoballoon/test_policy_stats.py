"""stats-polling follows MOM's documented balloon rules and defaults."""

from autoballoon.events import (
    GuestPressure,
    GuestStats,
    HostMemory,
    HostPressure,
    Tick,
    VmAdded,
    VmInfo,
)
from autoballoon.model import Model
from autoballoon.policies import StatsPollingParams, StatsPollingPolicy


def make(current=1000, max_mib=1000, auto_inflated=0, **params):
    model = Model(StatsPollingPolicy(StatsPollingParams(**params)))
    model.handle(VmAdded(0, VmInfo("a", max_mib), current, auto_inflated_mib=auto_inflated))
    return model


def sample(model, t, unused, actual=None):
    actual = model.vm("a").actual_mib if actual is None else actual
    model.handle(GuestStats(t, "a", {"actual": actual, "unused": unused}))


def test_defaults_are_moms():
    p = StatsPollingParams()
    assert (p.pressure_threshold, p.pressure_critical, p.min_guest_free_percent) == (
        0.20,
        0.05,
        0.20,
    )
    assert (p.max_balloon_change_percent, p.min_balloon_change_percent) == (0.05, 0.0025)
    assert (p.interval_s, p.history) == (10.0, 10)


def test_shrink_by_at_most_5_percent_under_host_pressure():
    model = make()
    sample(model, 1, unused=800)
    model.handle(HostMemory(1, free_mib=100, total_mib=1000))  # 10% free < 20%
    [cmd] = model.handle(Tick(2))
    assert cmd.target_mib == 950  # max(1000 x 0.95, 200 + 0.2 x 0.1/0.2 x 1000 = 300)
    assert "shrink" in cmd.cause


def test_shrink_stops_at_used_plus_scaled_free():
    model = make()
    sample(model, 1, unused=60)  # used 940
    model.handle(HostMemory(1, free_mib=100, total_mib=1000))
    assert model.handle(Tick(2)) == []  # minimum 940 + 100 = 1040 > current: no shrink


def test_critical_host_forces_guest_below_used():
    model = make()
    sample(model, 1, unused=40)  # used 960
    model.handle(HostMemory(1, free_mib=40, total_mib=1000))  # 4% <= 5% critical
    [cmd] = model.handle(Tick(2))
    assert cmd.target_mib == 950  # max(950, 960 + (0.04 - 0.05) x 1000 = 950)


def test_grow_when_host_not_under_pressure_only_what_was_taken():
    model = make(current=800, max_mib=1000, auto_inflated=200)
    sample(model, 1, unused=600)  # used 200
    model.handle(HostMemory(1, free_mib=500, total_mib=1000))
    [cmd] = model.handle(Tick(2))
    assert cmd.target_mib == 840  # 800 x 1.05; minimum 200 + 0.2 x 1000 = 400
    model.handle(GuestStats(3, "a", {"actual": 840, "unused": 640}))
    model.handle(Tick(12))
    assert model.vm("a").target_mib == 882


def test_grow_never_beyond_what_automation_took():
    model = make(current=800, max_mib=1000, auto_inflated=0)
    sample(model, 1, unused=600)
    assert model.handle(Tick(2)) == []


def test_change_too_small_is_skipped():
    model = make(current=1000, max_mib=1000, max_balloon_change_percent=0.001)
    sample(model, 1, unused=800)
    model.handle(HostMemory(1, free_mib=100, total_mib=1000))
    assert model.handle(Tick(2)) == []  # 1 MiB <= 0.25% of 1000


def test_evaluates_once_per_interval():
    model = make()
    sample(model, 1, unused=800)
    model.handle(HostMemory(1, free_mib=100, total_mib=1000))
    assert model.handle(Tick(2))
    assert model.handle(Tick(5)) == []
    sample(model, 6, unused=800, actual=950)
    assert model.handle(Tick(12))


def test_moving_average_of_samples():
    model = make()
    sample(model, 1, unused=0)
    sample(model, 2, unused=1000)  # average used = 500
    model.handle(HostMemory(1, free_mib=100, total_mib=1000))
    [cmd] = model.handle(Tick(3))
    assert cmd.target_mib == 950  # max(950, 500 + 100 = 600)


def test_ignores_guest_messages():
    model = make(current=800, auto_inflated=200)
    assert model.handle(GuestPressure(1, "a", "critical")) == []


def test_host_level_fallback_without_host_memory():
    model = make()
    sample(model, 1, unused=800)
    model.handle(HostPressure(1, "medium"))
    [cmd] = model.handle(Tick(2))
    assert cmd.target_mib == 950
    model.handle(Tick(20))  # level is stale: host considered calm, nothing to grow
    assert model.vm("a").target_mib == 950


def test_no_stats_no_action():
    model = make()
    model.handle(HostMemory(1, free_mib=10, total_mib=1000))
    assert model.handle(Tick(2)) == []


def test_used_is_cut_to_what_the_qemu_process_holds():
    """M1 (POLICIES.md): claiming every MiB in use no longer stops MOM's shrink."""
    from autoballoon.events import VmRss

    model = make()
    model.handle(VmRss(1, "a", 300))  # the host sees 300 MiB in the QEMU process
    sample(model, 1, unused=0)  # the guest claims 1000 in use: cut to 300
    model.handle(HostMemory(1, free_mib=100, total_mib=1000))
    [cmd] = model.handle(Tick(2))
    assert cmd.target_mib == 950  # as for an honest guest using 300
