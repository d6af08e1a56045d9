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


def stats(model, t, vm, usable, actual=None, swap_in=0, major_fault=0):
    actual = model.vm(vm).actual_mib if actual is None else actual
    return model.handle(GuestStats(t, vm, {"actual": actual, "usable": usable, "swap_in": swap_in,
                                           "major_fault": major_fault}))


def test_a1_floor_is_guest_need_plus_margin():
    model = make(("a", 2048, 2048), probe_step_mib=0)  # A14 off: its need is flat
    stats(model, 1, "a", usable=548)  # need 1500 MiB
    for t in range(2, 200):
        drive(model, HostPressure(t, "medium"))  # (sustained critical: A12)
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
        drive(model, HostPressure(t, "medium"))
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
    # (14: 6 s after the last critical event, the A12 override is over)
    [cmd] = model.handle(GuestPressure(14, "a", "low"))
    assert cmd.target_mib == 4096 - 1024 + 256  # max(64, 25% of 1024)
    assert cmd.cause.startswith("guest pressure low: release")
    [cmd] = model.handle(GuestPressure(15, "a", "medium"))  # 2 x max(64, 25% of 768)
    assert cmd.target_mib == 4096 - 768 + 384
    [cmd] = model.handle(GuestPressure(16, "a", "critical"))  # everything
    assert cmd.target_mib == 4096


def test_a6_release_cancels_inflation_in_progress():
    model = make(("a", 4096, 4096))
    for t in range(1, 9):
        model.handle(HostPressure(t, "critical"))
    model.handle(BalloonActual(9, "a", 4096 - 100))  # balloon far behind the target
    [cmd] = model.handle(GuestPressure(14, "a", "low"))  # after the A12 override
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


def test_a9_give_back_is_shared_within_the_hosts_headroom():
    """20 VMs want +32 MiB each; the host has 100 MiB above twice its reserve: 100 in all."""
    from autoballoon.events import HostMemory

    names = [f"vm{i:02d}" for i in range(20)]
    model = make(*[(n, 1024, 1024) for n in names])
    for t in range(1, 5):
        drive(model, HostPressure(t, "critical"))  # each down to its blind floor, 512
    model.handle(HostMemory(40, free_mib=2 * 409 + 100, total_mib=4096))  # reserve 409
    cmds = model.handle(Tick(41))
    given = {c.vm: c.target_mib - 512 for c in cmds}
    assert sum(given.values()) == 100
    assert sorted(given.values()) == [4, 32, 32, 32]
    assert model.handle(Tick(42)) == []  # the host's figure has not moved since: no more
    model.handle(HostMemory(43, free_mib=2 * 409 + 64, total_mib=4096))
    cmds = model.handle(Tick(44))
    assert {c.vm for c in cmds}.isdisjoint(given) and len(cmds) == 2  # 64 MiB more


def test_a9_give_back_goes_to_the_neediest_first():
    from autoballoon.events import HostMemory

    model = make(("a", 2048, 2048), ("b", 2048, 2048), ("c", 2048, 2048))
    for t in range(1, 5):
        drive(model, HostPressure(t, "critical"))  # each down to its blind floor, 1024
    stats(model, 39, "a", usable=900)  # floor 124 + 102: 798 MiB above it
    stats(model, 39, "b", usable=150)  # floor 874 + 102: 48 MiB above it, the neediest
    stats(model, 39, "c", usable=500)
    model.handle(HostMemory(40, free_mib=2 * 409 + 32, total_mib=4096))
    [cmd] = model.handle(Tick(41))
    assert (cmd.vm, cmd.target_mib) == ("b", 1024 + 32)


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


def _floor(model, vm, t):
    return model.policy.floor(model.view().vms[vm], t)


def test_a1_a_growing_guest_keeps_its_growth_above_the_margin():
    """quick: a guest growing 100 MiB per 10 s, taken to need + margin, swapped at each step."""
    model = make(("a", 1024, 1024))
    for t in range(0, 7):
        stats(model, t, "a", usable=1024 - 300)  # need 300
    for t in range(10, 17):
        stats(model, t, "a", usable=1024 - 400)  # need 400: grew 100 over 10 s
    margin = model.policy.margin(model.view().vms["a"])
    assert _floor(model, "a", 16) == 400 + margin + 100


def test_a1_growth_is_capped_and_a_shrinking_or_new_guest_has_none():
    model = make(("a", 2048, 2048), ("b", 2048, 2048), ("c", 2048, 2048))
    for t in range(0, 7):
        stats(model, t, "a", usable=2048 - 300)
        stats(model, t, "b", usable=2048 - 900)
    for t in range(10, 17):
        stats(model, t, "a", usable=2048 - 900)  # grew 600
        stats(model, t, "b", usable=2048 - 300)  # shrank 600
        stats(model, t, "c", usable=2048 - 300)  # no history 10 s back
    view = model.view()
    margin = model.policy.margin(view.vms["a"])
    cap = AutoParams().growth_cap_mib
    assert _floor(model, "a", 16) == 900 + margin + cap
    assert model.policy.growth(view.vms["b"], 16, 300) == 0
    assert model.policy.growth(view.vms["c"], 16, 300) == 0


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


# ---------------------------------------------------------------- trust (README "Trust model")


def test_a1_a_guest_cannot_claim_more_than_its_qemu_process_holds():
    from autoballoon.events import VmRss

    model = make(("a", 2048, 2048), probe_step_mib=0)  # A14 off: its need is flat
    for t in range(1, 60):
        model.handle(VmRss(t, "a", 700))  # the host sees 700 MiB in the QEMU process
        stats(model, t, "a", usable=0)  # the guest claims all 2048 are in use
        drive(model, HostPressure(t + 0.5, "medium"))
    assert model.vm("a").target_mib == 700 + 102  # the need cut to 700, plus the margin


def test_a1_without_stats_the_floor_is_at_most_what_the_process_holds():
    from autoballoon.events import VmRss

    model = make(("a", 2048, 2048))
    for t in range(1, 30):
        model.handle(VmRss(t, "a", 300))
        drive(model, HostPressure(t + 0.5, "medium"))
    assert model.vm("a").target_mib == 300 + 102  # not half of 2048


def test_a11_guest_pressure_exempts_a_vm_for_at_most_its_claim_budget():
    """A message every 20 s kept a guest out of reach forever (A4 alone)."""
    model = make(("a", 2048, 2048))
    taken_at, released_after_budget = [], []
    for t in range(0, 1200):
        if t % 2 == 0:
            stats(model, t, "a", usable=model.vm("a").actual_mib - 200)  # needs 200
        if t % 20 == 0:
            cmds = drive(model, GuestPressure(t + 0.1, "a", "low"))
            if 125 <= t < 600:
                released_after_budget += cmds
        before = model.vm("a").target_mib
        drive(model, HostPressure(t + 0.5, "low"))
        if model.vm("a").target_mib < before:
            taken_at.append(t)
    assert taken_at and taken_at[0] <= 121  # exempt for the budget (120 s), then taken
    assert released_after_budget == []  # claims beyond the budget buy nothing
    policy = model.policy
    for start in range(0, 1200 - 600, 30):  # every 600 s window: at most 120 s exempt
        exempt = sum(policy.exempt("a", start + i / 10) for i in range(6000))
        assert exempt <= 1200 + 1


def test_a11_swap_in_claims_share_the_budget():
    model = make(("a", 2048, 2048))
    swap, held = 0, 0
    for t in range(0, 600, 2):
        swap += 8  # the guest claims to swap in 8 MiB every poll, forever
        stats(model, t, "a", usable=model.vm("a").actual_mib - 200, swap_in=swap)
        before = model.vm("a").target_mib
        drive(model, HostPressure(t + 1, "low"))
        held += before - 302 >= 4 and model.vm("a").target_mib == before  # could be taken
    assert held <= 120 // 2 + 1  # held off (A7) for at most 120 s of the 600


def test_a12_sustained_host_critical_takes_down_to_the_hard_floor_whatever_the_claims():
    model = make(("a", 2048, 2048), ("b", 2048, 2048))
    for t in range(0, 60):
        stats(model, t, "a", usable=0)  # claims to need every MiB (no RSS to check)
        stats(model, t, "b", usable=model.vm("b").actual_mib - 100)
        if t % 20 == 0:
            drive(model, GuestPressure(t + 0.1, "a", "critical"))
        drive(model, HostPressure(t + 0.5, "critical"))  # the host thrashes for a minute
    assert model.vm("a").target_mib == 512  # a quarter of its maximum, not its claim
    assert model.vm("b").target_mib == 100 + 102  # an honest floor below it still holds
    assert drive(model, GuestPressure(60.1, "a", "critical")) == []  # nothing above it
    for t in range(61, 70):
        drive(model, HostPressure(t, "medium"))  # critical is over
    assert drive(model, GuestPressure(70, "a", "critical"))  # claims count again


def test_a13_a_guest_whose_stats_refute_its_flood_soon_buys_nothing():
    """quick-flood: vm-down flooded critical while its stats showed hundreds of MiB usable;
    within A11's budget alone that kept it out of reach for a whole run."""
    model = make(("a", 2048, 2048), ("b", 2048, 2048))  # margin 102 MiB
    exempt_at = []
    for tenth in range(0, 300):
        t = tenth / 10
        if tenth % 10 == 0:
            stats(model, t, "a", usable=600)  # honest stats: plenty usable
            stats(model, t, "b", usable=600)
        if tenth % 2 == 0:
            drive(model, GuestPressure(t, "a", "critical"))
        if tenth % 10 == 5:
            drive(model, HostPressure(t, "medium"))
        if model.policy.exempt("a", t):
            exempt_at.append(t)
    assert exempt_at[0] == 0, "its first messages are honoured like any claim"
    assert max(exempt_at) < 10, exempt_at  # three false claims spend the budget
    assert model.vm("a").auto_inflated_mib > 0  # then ballooned like any other VM
    assert not drive(model, GuestPressure(30, "a", "critical"))  # and nothing comes back


def test_a13_an_honest_burst_the_old_stats_did_not_show_is_never_charged():
    """quick with A13 judged at message time: vm-up's allocation bursts came after its
    last stats, its messages were refuted, and it swapped (CI's gate: 7,333 pages)."""
    model = make(("a", 2048, 2048), ("b", 2048, 2048))
    drive(model, HostPressure(0, "medium"))
    for k in range(5):  # a burst every 30 s
        t = 1 + 30 * k
        stats(model, t, "a", usable=600)  # comfortable just before the burst
        drive(model, GuestPressure(t + 0.5, "a", "critical"))
        stats(model, t + 3, "a", usable=40)  # then really short
        assert model.policy.exempt("a", t + 3)
    assert model.policy._claims.left("a", 150) == 120 - 5 * 20  # A11's holds, no charge


def test_a13_memory_given_after_the_message_does_not_make_it_false():
    model = make(("a", 2048, 2048), ("b", 2048, 2048))
    for t in range(0, 4):
        drive(model, HostPressure(t, "medium"))
    taken = model.vm("a").auto_inflated_mib
    assert taken > 300
    stats(model, 6, "a", usable=300)
    drive(model, GuestPressure(6.5, "a", "critical"))  # critical: all of it comes back
    assert model.vm("a").auto_inflated_mib == 0
    stats(model, 9, "a", usable=taken + 50)  # comfortable only by what it got
    assert model.policy._claims.left("a", 9) == 100 and model.policy.exempt("a", 9)


def test_a13_only_fresh_stats_before_and_late_enough_stats_after_judge():
    model = make(("a", 2048, 2048))
    stats(model, 1, "a", usable=600)
    drive(model, GuestPressure(4.5, "a", "critical"))  # stats 3.5 s old: not judged
    stats(model, 7, "a", usable=600)
    assert model.policy._claims.left("a", 7) == 100  # only the 20 s it was granted
    drive(model, GuestPressure(7.5, "a", "critical"))
    stats(model, 8, "a", usable=600)  # 0.5 s after: may predate the message
    assert model.policy.exempt("a", 8)
    stats(model, 9.5, "a", usable=600)  # 2 s after: the verdict
    assert not model.policy.exempt("a", 9.5)


def test_a13_after_a_false_claim_comfortable_stats_refuse_messages_at_once():
    """quick-flood: after each refutation the next message exempted the liar again for its
    A11 remainder, so it took three verdicts (~6 s) before it could be taken."""
    model = make(("a", 2048, 2048), ("b", 2048, 2048))
    stats(model, 0, "a", usable=150)  # 1.5 margins: the liar of quick-flood's step 2
    drive(model, GuestPressure(0.5, "a", "critical"))
    assert model.policy.exempt("a", 1)
    stats(model, 2.5, "a", usable=150)  # the verdict: false
    assert not model.policy.exempt("a", 2.5)
    left = model.policy._claims.left("a", 2.5)
    assert drive(model, GuestPressure(2.6, "a", "critical")) == []
    assert not model.policy.exempt("a", 3) and model.policy._claims.left("a", 3) == left
    stats(model, 3.5, "a", usable=30)  # really short now: its claims count again
    assert drive(model, GuestPressure(3.6, "a", "critical")) is not None
    assert model.policy.exempt("a", 4)


def test_a13_an_honest_guest_is_never_on_probation():
    model = make(("a", 2048, 2048), ("b", 2048, 2048))
    for t in range(0, 4):
        drive(model, HostPressure(t, "medium"))
    stats(model, 5, "a", usable=300)
    drive(model, GuestPressure(5.5, "a", "critical"))  # vm-up in quick: given 222 MiB
    stats(model, 8, "a", usable=183)  # 183 usable, less than it was given
    drive(model, GuestPressure(8.5, "a", "critical"))
    assert model.policy.exempt("a", 9) and "a" not in model.policy._refuted


def test_a13_stale_stats_do_not_end_a_probation():
    """quick-flood run 2: the liar's stats paused 4 s (a poll skipped its busy monitor);
    one message got through and its 20 s exemption lasted until host critical."""
    model = make(("a", 2048, 2048), ("b", 2048, 2048))
    stats(model, 0, "a", usable=150)
    drive(model, GuestPressure(0.5, "a", "critical"))
    stats(model, 2.5, "a", usable=150)  # refuted
    assert drive(model, GuestPressure(9, "a", "critical")) == []  # stats 6.5 s old
    assert not model.policy.exempt("a", 9.5)


def _probe(model, t0, t1, swap_in=0, major_fault=0):
    """Host pressure each second from t0 to t1 on a guest that holds 1500 of its 2048 MiB
    and never touches it: what the balloon takes, it swaps out (its need falls)."""
    for t in range(t0, t1):
        taken = 2048 - model.vm("a").target_mib
        stats(model, t, "a", usable=548 - min(taken, 548), swap_in=swap_in,
              major_fault=major_fault)
        drive(model, HostPressure(t + 0.5, "medium"))


def test_a14_a_quiet_guest_is_probed_below_its_need_step_by_step():
    model = make(("a", 2048, 2048))
    _probe(model, 0, 20)
    assert model.vm("a").target_mib == 1500 + 102  # A1 until it has been quiet for 20 s
    before = model.vm("a").target_mib
    _probe(model, 20, 21)
    assert before - 32 == model.vm("a").target_mib  # then 32 MiB below its A1 floor per take
    _probe(model, 21, 200)
    hard = model.view().vms["a"].hard_floor_mib
    assert hard == 512
    assert hard <= model.vm("a").target_mib < hard + AutoParams().min_change_mib


def test_a14_swap_in_ends_the_probe_and_a8_gives_back_to_the_a1_floor():
    model = make(("a", 2048, 2048))
    _probe(model, 0, 30)
    probed = model.vm("a").target_mib
    assert probed < 1500
    stats(model, 30, "a", usable=0, swap_in=8)  # it touched what went to its swap
    stats(model, 31, "a", usable=0, swap_in=8)
    assert model.vm("a").target_mib >= probed + 64  # A7, then A8 up to need + margin
    assert drive(model, HostPressure(31.5, "medium")) == []  # no longer quiet


def test_a14_a_guest_growing_faulting_or_complaining_is_not_quiet():
    for kind in ("growing", "faulting", "complaining"):
        model = make(("a", 2048, 2048))
        for t in range(0, 40):
            usable = 548 - (t * 4 if kind == "growing" else 0)  # +4 MiB/s: 160 in 40 s
            if kind == "complaining":
                usable = 40  # short (A13: its claims are plausible)
            stats(model, t, "a", usable=usable, major_fault=t * 300 if kind == "faulting" else 0)
            if kind == "complaining" and t % 15 == 0:
                drive(model, GuestPressure(t + 0.2, "a", "low"))
        assert not model.policy.quiet(model.view().vms["a"], 40), kind


def test_a14_a_quiet_guest_with_little_usable_is_not_distressed():
    model = make(("a", 2048, 2048))
    _probe(model, 0, 40)
    target = model.vm("a").target_mib
    stats(model, 40, "a", usable=5)  # the balloon squeezes it: it swaps, does not swap in
    assert model.vm("a").target_mib == target  # no A7 release


def test_a14_off():
    model = make(("a", 2048, 2048), probe_step_mib=0)
    _probe(model, 0, 100)
    assert model.vm("a").target_mib == 1500 + 102
