"""One test (at least) per rule of the auto policy (A1..A9, see host/autoballoon/POLICIES.md)."""

from autoballoon.events import (
    BalloonActual,
    GuestPressure,
    GuestStats,
    HostPressure,
    Tick,
    VmAdded,
    VmInfo,
)
from autoballoon.model import Model
from autoballoon.policies import AutoParams, AutoPolicy

# Steps only (A2 without the headroom fraction), for tests whose arithmetic is about
# another rule.
STEPS_ONLY = {"take_fractions": (0.0, 0.0, 0.0, 0.0)}


def make(*vms, **params):
    model = Model(AutoPolicy(AutoParams(**params)))
    for name, max_mib, current in vms:
        model.handle(VmAdded(0, VmInfo(name, max_mib), current))
    return model


def drive(model, event):
    """Handle ``event``; the balloons then reach their targets at once."""
    cmds = model.handle(event)
    for cmd in cmds:
        model.handle(BalloonActual(event.t, cmd.vm, cmd.target_mib))
    return cmds


def stats(model, t, vm, usable, actual=None, swap_in=0):
    actual = model.vm(vm).actual_mib if actual is None else actual
    return model.handle(GuestStats(t, vm, {"actual": actual, "usable": usable, "swap_in": swap_in}))


def test_a1_floor_is_guest_need_plus_margin():
    model = make(("a", 2048, 2048))
    stats(model, 1, "a", usable=548)  # need 1500 MiB
    for t in range(2, 200):
        drive(model, HostPressure(t, "critical"))
        stats(model, t + 0.5, "a", usable=548 - (2048 - model.vm("a").target_mib))
    # margin = max(64, 5% of 2048 = 102) -> floor 1602
    assert model.vm("a").target_mib == 1500 + 102


def test_a1_floor_never_below_absolute_minimum():
    model = make(("a", 1024, 1024), min_floor_mib=300, margin_mib=0, margin_fraction=0)
    for t in range(1, 100):
        target = model.vm("a").target_mib
        stats(model, t, "a", usable=target, actual=target)  # an idle guest: needs nothing
        drive(model, HostPressure(t + 0.5, "critical"))
    assert model.vm("a").target_mib == 300


def test_a1_without_fresh_stats_keeps_half_the_maximum():
    model = make(("a", 1024, 1024))
    for t in range(1, 100):
        drive(model, HostPressure(t, "critical"))
    assert model.vm("a").target_mib == 512
    stats(model, 100, "a", usable=900)
    drive(model, HostPressure(101, "critical"))
    assert model.vm("a").target_mib < 512  # fresh stats allow more
    model.handle(Tick(200))  # stats are now 100 s old
    drive(model, HostPressure(201, "critical"))
    assert model.vm("a").target_mib < 512  # never raised by the blind floor itself


def test_a2_step_scales_with_host_level():
    taken = {}
    for level in ("low", "between", "medium", "critical"):
        model = make(("a", 2048, 2048), take_fractions=(0.0, 0.0, 0.0, 0.0))
        stats(model, 0, "a", usable=1900)
        [cmd] = drive(model, HostPressure(1, level))
        taken[level] = 2048 - cmd.target_mib
    assert taken == {"low": 16, "between": 32, "medium": 64, "critical": 128}


def test_a2_or_a_fraction_of_the_headroom_when_more():
    taken = {}
    for level in ("low", "between", "medium", "critical"):
        model = make(("a", 2048, 2048))
        stats(model, 0, "a", usable=1900)  # floor 148 + 102 = 250: 1798 MiB above it
        [cmd] = drive(model, HostPressure(1, level))
        taken[level] = 2048 - cmd.target_mib
    assert taken == {"low": 224, "between": 449, "medium": 899, "critical": 899}
    model = make(("a", 2048, 2048))
    stats(model, 0, "a", usable=200)  # 98 MiB above the floor: the step is more
    [cmd] = drive(model, HostPressure(1, "critical"))
    assert 2048 - cmd.target_mib == 98  # never below the floor


def test_a3_prefers_the_vm_with_most_free():
    model = make(("a", 2048, 2048), ("b", 2048, 2048), take_fractions=(0.0, 0.0, 0.0, 0.0))
    stats(model, 0, "a", usable=1500)  # floor 2048-1500+102 = 650 -> 1398 above
    stats(model, 0, "b", usable=300)  # floor 1850 -> 198 above
    cmds = {c.vm: 2048 - c.target_mib for c in drive(model, HostPressure(1, "medium"))}
    assert cmds["a"] > 4 * cmds["b"]
    assert cmds["a"] + cmds["b"] <= 128  # the budget: one step per eligible VM
    model = make(("a", 2048, 2048), ("b", 2048, 2048))
    stats(model, 0, "a", usable=1500)
    stats(model, 0, "b", usable=300)
    cmds = {c.vm: 2048 - c.target_mib for c in drive(model, HostPressure(1, "medium"))}
    assert cmds == {"a": 699, "b": 99}  # half of each headroom


def test_a3_vm_at_its_floor_gives_nothing():
    model = make(("a", 2048, 2048), ("b", 2048, 2048))
    stats(model, 0, "a", usable=1500)
    stats(model, 0, "b", usable=102)  # exactly at floor
    assert [c.vm for c in drive(model, HostPressure(1, "medium"))] == ["a"]


def test_a4_hysteresis_after_guest_pressure():
    model = make(("a", 2048, 2048), ("b", 2048, 2048))
    model.handle(GuestPressure(10, "a", "low"))
    assert [c.vm for c in drive(model, HostPressure(20, "medium"))] == ["b"]
    assert [c.vm for c in drive(model, HostPressure(29, "medium"))] == ["b"]
    assert {c.vm for c in drive(model, HostPressure(30, "medium"))} == {"a", "b"}  # 20 s


def test_a5_cooldown_between_inflations():
    model = make(("a", 2048, 2048), inflate_interval_s=2.0)
    assert drive(model, HostPressure(1, "low"))
    assert drive(model, HostPressure(2, "low")) == []
    assert drive(model, HostPressure(3, "low"))


def test_a5_no_stacking_on_a_lagging_balloon():
    model = make(("a", 4096, 4096), max_lag_mib=256, **STEPS_ONLY)
    for t in range(1, 4):
        model.handle(HostPressure(t, "critical"))
    assert model.vm("a").target_mib == 4096 - 256  # the third event did not stack
    assert model.handle(HostPressure(5, "critical")) == []  # actual still 4096
    model.handle(BalloonActual(6, "a", 4096 - 200))
    assert model.handle(HostPressure(7, "critical"))


def test_a6_fast_release_on_guest_pressure():
    model = make(("a", 4096, 4096), **STEPS_ONLY)
    for t in range(1, 9):
        drive(model, HostPressure(t, "critical"))  # takes 8 x 128 = 1024
    model.handle(BalloonActual(9, "a", 4096 - 1024))
    [cmd] = model.handle(GuestPressure(10, "a", "low"))
    assert cmd.target_mib == 4096 - 1024 + 256  # max(64, 25% of 1024)
    assert cmd.cause.startswith("guest pressure low: release")
    [cmd] = model.handle(GuestPressure(11, "a", "medium"))  # 2 x max(64, 25% of 768)
    assert cmd.target_mib == 4096 - 768 + 384
    [cmd] = model.handle(GuestPressure(12, "a", "critical"))  # everything
    assert cmd.target_mib == 4096


def test_a6_release_cancels_inflation_in_progress():
    model = make(("a", 4096, 4096))
    for t in range(1, 9):
        model.handle(HostPressure(t, "critical"))
    model.handle(BalloonActual(9, "a", 4096 - 100))  # balloon far behind the target
    [cmd] = model.handle(GuestPressure(10, "a", "low"))
    assert cmd.target_mib == 4096 - 100
    assert "cancel inflation" in cmd.cause


def test_a7_guest_swapping_in_stats_releases_and_holds_off():
    model = make(("a", 2048, 2048), **STEPS_ONLY)
    stats(model, 0, "a", usable=1000, swap_in=0)
    for t in range(1, 5):
        drive(model, HostPressure(t, "critical"))
    taken = model.vm("a").auto_inflated_mib
    [cmd] = stats(model, 5, "a", usable=1000, swap_in=8)
    assert cmd.cause.startswith("guest stats: swap-in 8 MiB")
    assert cmd.target_mib == 2048 - taken + 128  # max(64, 25%)
    assert drive(model, HostPressure(14, "critical")) == []  # held for distress_hold_s
    assert drive(model, HostPressure(15.5, "critical"))


def test_a7_usable_nearly_gone_releases():
    model = make(("a", 2048, 2048), **STEPS_ONLY)
    stats(model, 0, "a", usable=1500)
    drive(model, HostPressure(1, "critical"))
    [cmd] = stats(model, 2, "a", usable=10)
    assert cmd.cause == "guest stats: usable 10 MiB: release 64 MiB"


def test_a8_floor_repair_exact():
    model = make(("a", 2048, 2048), distress_usable_mib=0)
    stats(model, 0, "a", usable=1800)
    for t in range(1, 5):
        drive(model, HostPressure(t, "critical"))
    model.handle(BalloonActual(5, "a", 1536))
    [cmd] = stats(model, 6, "a", usable=50, actual=1536)  # need 1486 + 102
    assert (cmd.target_mib, cmd.cause) == (1588, "floor: guest needs 1588 MiB")


def test_a9_give_back_gradually_when_host_calm():
    model = make(("a", 2048, 2048))
    for t in range(1, 5):
        drive(model, HostPressure(t, "critical"))  # take 512 (down to the blind floor)
    taken = model.vm("a").auto_inflated_mib
    assert model.handle(Tick(20)) == []  # host calm for 16 s only
    [cmd] = model.handle(Tick(34))
    assert cmd.target_mib == 2048 - taken + 32 and cmd.cause == "give back: host calm"
    assert model.handle(Tick(40)) == []  # one step per 10 s
    assert model.handle(Tick(44))
    drive(model, HostPressure(45, "low"))
    assert model.handle(Tick(60)) == []  # pressure again: hold
    for t in range(80, 1000, 10):
        model.handle(Tick(t))
    assert model.vm("a").target_mib == 2048  # everything given back, never more


def test_no_oscillation_on_alternating_signals():
    """Pressure every 20 s never lets give-back start; after guest pressure no re-take."""
    model = make(("a", 2048, 2048))
    stats(model, 0, "a", usable=1800)
    cmds = []
    for t in range(0, 200, 20):
        cmds += drive(model, HostPressure(t + 1, "low"))
        stats(model, t + 2, "a", usable=1800 - model.vm("a").auto_inflated_mib)
        cmds += model.handle(Tick(t + 10))
    assert all(c.cause.startswith("host pressure") for c in cmds)
    targets = [c.target_mib for c in cmds]
    assert targets == sorted(targets, reverse=True)


def test_a9_no_give_back_jump_after_a_daemon_restart():
    # A restarted daemon recovers 64 MiB taken by automation: giving it back waits a full
    # calm period from the restart, it does not happen on the first tick.
    model = Model(AutoPolicy(AutoParams()))
    model.handle(VmAdded(1000, VmInfo("a", 1024), 960, auto_inflated_mib=64))
    assert model.handle(Tick(1001)) == []
    assert model.handle(Tick(1020)) == []
    later = [c for t in range(1031, 1045) for c in model.handle(Tick(t))]
    assert later and later[0].cause == "give back: host calm"
    assert later[0].target_mib > 960


def test_a7_distress_holds_inflation_briefly():
    model = make(("a", 2048, 2048))
    stats(model, 0, "a", usable=10)  # distress: nothing taken yet, nothing to release
    assert drive(model, HostPressure(5, "critical")) == []  # held
    stats(model, 11, "a", usable=1500)  # the workload ended and freed its memory
    assert drive(model, HostPressure(12, "critical"))  # 12 s later: eligible again


def test_a1_need_is_the_largest_over_the_window():
    """A sample taken while the workload restarts must not open the guest to inflation."""
    model = make(("a", 1024, 1024))
    stats(model, 0, "a", usable=50)  # busy: needs 974, floor 1038 > its size
    stats(model, 2, "a", usable=900)  # between two runs: looks empty
    assert drive(model, HostPressure(2.5, "critical")) == []
    stats(model, 7, "a", usable=900)  # the busy sample is now 7 s old (window 6 s)
    [cmd] = drive(model, HostPressure(7.5, "critical"))
    assert cmd.target_mib < 1024 - 300


def test_a7_a_full_guest_that_does_not_swap_is_not_held():
    model = make(("a", 2048, 2048))
    stats(model, 0, "a", usable=10)  # full, no swap-in: no hold
    stats(model, 7, "a", usable=1500)
    assert drive(model, HostPressure(8, "critical"))


def test_a10_host_reserve_takes_before_reclaim_starts():
    from autoballoon.events import HostMemory

    model = make(("a", 2048, 2048))
    stats(model, 0, "a", usable=1500)
    assert model.handle(HostMemory(1, free_mib=200, total_mib=1024)) == []  # reserve 102
    [cmd] = model.handle(HostMemory(2, free_mib=90, total_mib=1024))
    assert cmd.cause.startswith("host reserve: 90 MiB free < 102 MiB (low): take")
    model.handle(BalloonActual(2, "a", cmd.target_mib))
    [cmd2] = model.handle(HostMemory(3, free_mib=40, total_mib=1024))  # below half: between
    assert "(between)" in cmd2.cause and cmd2.target_mib < cmd.target_mib


def test_a9_no_give_back_while_the_host_is_short_of_its_reserve():
    from autoballoon.events import HostMemory

    model = make(("a", 2048, 2048))
    for t in range(1, 5):
        drive(model, HostPressure(t, "critical"))
    model.handle(HostMemory(33, free_mib=150, total_mib=1024))  # < 2 x 102
    assert model.handle(Tick(40)) == []
    model.handle(HostMemory(41, free_mib=300, total_mib=1024))
    assert model.handle(Tick(42))
