"""The model's bookkeeping and the invariants it enforces whatever the policy says."""

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from autoballoon.events import (
    BalloonActual,
    BalloonCommand,
    GuestPressure,
    GuestStats,
    HostPressure,
    ManualTarget,
    SetEnabled,
    Tick,
    VmAdded,
    VmInfo,
    VmRemoved,
)
from autoballoon.model import Model, ModelParams, SetPolicy
from autoballoon.policies import Policy, SeedPolicy, TargetChange, make_policy
from autoballoon.vm_state import VmState


@dataclass
class Scripted(Policy):
    """Returns whatever the test put in ``wanted`` on any host pressure or tick."""

    wanted: list[TargetChange] = field(default_factory=list)
    guest_calls: int = 0

    def on_host_pressure(self, view, level, now):
        return list(self.wanted)

    def on_tick(self, view, now):
        return list(self.wanted)

    def on_guest_pressure(self, view, vm, level, now):
        self.guest_calls += 1
        return []


def model_with(policy, *vms, **params):
    model = Model(policy, ModelParams(**params))
    for name, max_mib, current, floor in vms:
        model.handle(VmAdded(0, VmInfo(name, max_mib, floor), current))
    return model


def test_add_sets_baseline_and_remove_drops_state():
    model = model_with(Scripted(), ("a", 1024, 900, 256))
    vm = model.vm("a")
    assert (vm.max_mib, vm.floor_mib, vm.target_mib, vm.actual_mib) == (1024, 256, 900, 900)
    assert vm.auto_inflated_mib == 0 and vm.enabled and not vm.manual
    model.handle(VmRemoved(1, "a"))
    assert model.vm("a") is None and model.vms == {}


def test_command_applied_to_state_with_cause():
    policy = Scripted([TargetChange("a", 800, "why")])
    model = model_with(policy, ("a", 1024, 1024, 256))
    assert model.handle(HostPressure(5, "low")) == [BalloonCommand(5, "a", 800, "why")]
    assert model.vm("a").target_mib == 800
    assert model.vm("a").auto_inflated_mib == 224
    assert model.vm("a").last_inflate_t == 5


def test_floor_and_max_clamped():
    policy = Scripted([TargetChange("a", 10, "greedy")])
    model = model_with(policy, ("a", 1024, 1024, 256))
    [cmd] = model.handle(HostPressure(1, "critical"))
    assert cmd.target_mib == 256 and cmd.cause == "greedy (clamped)"
    assert model.handle(HostPressure(2, "critical")) == []  # already at the floor
    policy.wanted = [TargetChange("a", 99999, "give all")]
    [cmd] = model.handle(Tick(3))
    assert cmd.target_mib == 1024 and model.vm("a").auto_inflated_mib == 0


def test_deflation_never_exceeds_what_automation_took():
    policy = Scripted([TargetChange("a", 900, "take")])
    model = model_with(policy, ("a", 2048, 1000, 128))
    model.handle(HostPressure(1, "low"))
    policy.wanted = [TargetChange("a", 2048, "give")]
    [cmd] = model.handle(Tick(2))
    assert cmd.target_mib == 1000  # the baseline, not the maximum
    assert model.handle(Tick(3)) == []


def test_default_floor_used_when_vm_has_none():
    model = model_with(Scripted([TargetChange("a", 0, "x")]), ("a", 1024, 1024, None))
    assert model.handle(HostPressure(1, "low"))[0].target_mib == 128


def test_one_command_per_vm_per_event_last_wins():
    policy = Scripted([TargetChange("a", 900, "first"), TargetChange("a", 800, "second")])
    model = model_with(policy, ("a", 1024, 1024, 128))
    assert model.handle(HostPressure(1, "low")) == [BalloonCommand(1, "a", 800, "second")]


def test_no_command_when_disabled_per_vm_or_globally():
    policy = Scripted([TargetChange("a", 900, "x"), TargetChange("b", 900, "x")])
    model = model_with(policy, ("a", 1024, 1024, 128), ("b", 1024, 1024, 128))
    model.handle(SetEnabled(1, "a", False))
    assert [c.vm for c in model.handle(HostPressure(2, "low"))] == ["b"]
    model.handle(SetEnabled(3, None, False))
    policy.wanted = [TargetChange("a", 800, "x"), TargetChange("b", 800, "x")]
    assert model.handle(HostPressure(4, "low")) == []
    model.handle(SetEnabled(5, None, True))
    model.handle(SetEnabled(5, "a", True))
    assert {c.vm for c in model.handle(HostPressure(6, "low"))} == {"a", "b"}


def test_manual_target_yields_until_reenabled_and_resets_baseline():
    policy = Scripted([TargetChange("a", 900, "take")])
    model = model_with(policy, ("a", 1024, 1024, 128))
    model.handle(HostPressure(1, "low"))
    model.handle(ManualTarget(2, "a", 600))
    vm = model.vm("a")
    assert vm.manual and vm.target_mib == 600
    policy.wanted = [TargetChange("a", 500, "take")]
    assert model.handle(HostPressure(3, "low")) == []
    model.handle(SetEnabled(4, "a", True))
    vm = model.vm("a")
    assert not vm.manual and vm.auto_inflated_mib == 0 and vm.target_mib == 600
    policy.wanted = [TargetChange("a", 1024, "give")]
    assert model.handle(Tick(5)) == []  # the operator's 600 is the new baseline


def test_disable_enable_without_manual_keeps_what_was_taken():
    policy = Scripted([TargetChange("a", 900, "take")])
    model = model_with(policy, ("a", 1024, 1024, 128))
    model.handle(HostPressure(1, "low"))
    model.handle(SetEnabled(2, "a", False))
    model.handle(SetEnabled(3, "a", True))
    assert model.vm("a").auto_inflated_mib == 124


def test_unknown_vms_and_malformed_events_are_ignored():
    policy = Scripted([TargetChange("ghost", 1, "x")])
    model = model_with(policy, ("a", 1024, 1024, 128))
    before = model.vms
    for event in [
        GuestPressure(1, "ghost", "critical"),
        GuestPressure(1, "a", "apocalyptic"),
        BalloonActual(1, "ghost", 5),
        BalloonActual(1, "a", float("nan")),
        ManualTarget(1, "ghost", 5),
        GuestStats(1, "ghost", {"usable": 1}),
        GuestStats(1, "a", "not a mapping"),
        SetEnabled(1, "ghost", False),
        SetPolicy(1, "not a policy"),
        VmRemoved(1, "ghost"),
        HostPressure(float("nan"), "low"),
        HostPressure(1, "extreme"),
        "not an event",
        None,
    ]:
        assert model.handle(event) == []
    assert model.handle(HostPressure(2, "low")) == []  # change for an unknown VM dropped
    assert model.vms.keys() == before.keys()
    assert model.vm("a").actual_mib == 1024


def test_stats_sanitized_and_bounded():
    model = model_with(Scripted(), ("a", 1024, 1024, 128))
    junk = {f"k{i}": i for i in range(1000)}
    junk.update(usable=-5, unused=10**30, swap_in=float("inf"), actual=True)
    model.handle(GuestStats(1, "a", junk))
    stats = model.vm("a").stats
    assert stats == {"usable": 0, "unused": 1 << 30}


def test_guest_flood_coalesced_unless_level_rises():
    policy = Scripted()
    model = model_with(policy, ("a", 1024, 1024, 128), guest_coalesce_s=1.0)
    for i in range(1000):
        model.handle(GuestPressure(10 + i / 10000, "a", "low"))
    assert policy.guest_calls == 1
    model.handle(GuestPressure(10.5, "a", "critical"))
    assert policy.guest_calls == 2
    model.handle(GuestPressure(11.6, "a", "low"))
    assert policy.guest_calls == 3
    assert model.vm("a").last_guest_pressure_t == 11.6


def test_time_never_goes_backwards():
    model = model_with(Scripted(), ("a", 1024, 1024, 128))
    model.handle(Tick(100))
    model.handle(GuestPressure(50, "a", "low"))
    assert model.vm("a").last_guest_pressure_t == 100
    assert model.now == 100


def test_vm_added_again_resets_and_caps_recovered_state():
    model = model_with(Scripted(), ("a", 1024, 1024, 128))
    model.handle(VmAdded(1, VmInfo("a", 1024, 128), 700, auto_inflated_mib=5000))
    vm = model.vm("a")
    assert (vm.target_mib, vm.auto_inflated_mib) == (700, 324)


def test_max_vms_bounds_state():
    model = model_with(Scripted(), max_vms=3)
    for i in range(10):
        model.handle(VmAdded(i, VmInfo(f"vm{i}", 1024), 1024))
    assert list(model.vms) == ["vm0", "vm1", "vm2"]


def test_set_policy_switches_and_keeps_state():
    model = model_with(make_policy("auto"), ("a", 1024, 1024, 128))
    model.handle(SetPolicy(1, SeedPolicy()))
    assert isinstance(model.policy, SeedPolicy)
    assert model.handle(HostPressure(2, "low"))[0].target_mib == 992


def test_make_policy_names():
    assert {make_policy(n).name for n in ("seed", "auto", "stats-polling")} == {
        "seed",
        "auto",
        "stats-polling",
    }
    try:
        make_policy("nope")
    except KeyError as e:
        assert "known" in str(e)
    else:
        raise AssertionError


def test_guest_figures_cannot_claim_more_than_the_qemu_process_holds():
    from autoballoon.events import VmRss

    model = model_with(Scripted(), ("a", 2048, 2048, 128))
    model.handle(VmRss(1, "a", 700))
    model.handle(GuestStats(2, "a", {"actual": 2048, "usable": 0, "unused": 0,
                                     "disk_caches": 0}))
    stats = model.vm("a").stats
    assert (stats["usable"], stats["unused"]) == (1348, 1348)  # at most 700 in use
    assert model.vm("a").rss_mib == 700
    model.handle(GuestStats(40, "a", {"actual": 2048, "usable": 0}))  # RSS 39 s old
    assert model.vm("a").stats["usable"] == 0


def test_a_stats_poll_is_each_vms_rss_then_its_stats():
    """One StatsPoll input does what VmRss and GuestStats for each VM in turn do."""
    from autoballoon.events import StatsPoll, VmRss

    vms = [("a", 2048, 1024, 128), ("b", 2048, 900, 128), ("c", 2048, 2048, 128)]
    rss = {"a": 700, "b": 400}
    stats = {"a": {"actual": 2048, "usable": 0}, "b": {"actual": 900, "usable": 800},
             "c": {"actual": 2048, "usable": 100}, "ghost": {"usable": 1}}
    one, each = (model_with(make_policy("auto"), *vms) for _ in range(2))
    for model in (one, each):
        model.handle(VmAdded(0, VmInfo("d", 2048), 2048))
        model.handle(HostPressure(1, "medium"))  # something taken, to give back
    got = one.handle(StatsPoll(2, rss, stats))
    want = [c for name in rss for c in each.handle(VmRss(2, name, rss[name]))]
    want += [c for name in stats for c in each.handle(GuestStats(2, name, stats[name]))]
    assert got == want and got  # b needs more than its target: given back
    assert one.vms == each.vms
    assert one.handle(StatsPoll(3, {"a": "x"}, "not a mapping")) == []  # type: ignore


def test_sustained_host_critical_lets_no_claim_buy_memory_above_the_hard_floor():
    policy = Scripted([TargetChange("a", 300, "take"), TargetChange("b", 1500, "take")])
    model = model_with(policy, ("a", 2048, 2048, 128), ("b", 2048, 2048, 128))
    model.handle(HostPressure(1, "low"))  # a at 300, b at 1500
    model.handle(BalloonActual(2, "a", 300))  # the balloons follow
    model.handle(BalloonActual(2, "b", 1500))
    for t in (10, 12, 14):
        model.handle(HostPressure(t, "critical"))
    assert model.view().host_override is False  # 4 s of critical: not yet
    policy.wanted = []
    model.handle(HostPressure(15, "critical"))  # 5 s: the override
    assert model.view().host_override is True
    policy.wanted = [TargetChange("a", 2048, "give"), TargetChange("b", 2048, "give")]
    assert {c.vm: c.target_mib for c in model.handle(Tick(16))} == {"a": 512}  # 2048 / 4
    assert model.handle(Tick(18)) == []  # 3 s after the last critical event: still on
    assert {c.vm: c.target_mib for c in model.handle(Tick(21))} == {"a": 2048, "b": 2048}



def sustained_critical_with_a_take(owed_after_s: float = 2.0) -> tuple[Model, Scripted]:
    """a taken to 300 at t=1, b to 1500; then host critical from t=10 to t=15."""
    policy = Scripted([TargetChange("a", 300, "take"), TargetChange("b", 1500, "take")])
    model = model_with(policy, ("a", 2048, 2048, 128), ("b", 2048, 2048, 128),
                       owed_after_s=owed_after_s)
    model.handle(HostPressure(1, "low"))
    policy.wanted = []
    model.handle(BalloonActual(2, "b", 1500))  # b follows; a's balloon stays at 2048
    for t in (10, 12, 14, 15):
        model.handle(HostPressure(t, "critical"))
    return model, policy


def test_no_hard_floors_while_a_balloon_owes_what_the_host_asked_for():
    """cache-hot (tuning): vm-hot's balloon stayed 222-272 MiB above its target while the
    override cut the growing vm-up below what it needed; the VM that follows pays for the
    one that does not. While any automated VM owes memory for 2 s, the override caps no
    floor and no raise; claims still buy nothing."""
    model, policy = sustained_critical_with_a_take()
    view = model.view()
    assert (view.host_override, view.hard_floors) == (True, False)  # a owes since t=1
    policy.wanted = [TargetChange("b", 2048, "floor: guest needs 2048 MiB")]
    assert {c.vm: c.target_mib for c in model.handle(Tick(16))} == {"b": 2048}  # not cut
    model.handle(BalloonActual(16.5, "a", 320))  # a has reached all but 20 MiB
    assert model.view().hard_floors is True


def test_a_vm_that_owes_cannot_buy_its_way_out_with_messages():
    """quick-flood (tuning), 2026-12-07: the lying vm-down, taken 193 MiB under the
    override, owed it for 2 s and its next critical message released 306 MiB: owing must
    not turn the override's claims rule off, only its hard floors."""
    model, policy = sustained_critical_with_a_take()
    assert model.view().hard_floors is False  # a owes since t=1
    assert model.handle(GuestPressure(16, "a", "critical")) == []
    assert policy.guest_calls == 0  # the policy never hears of it
    assert model.vm("a").last_guest_level == "critical"  # recorded, buys nothing
    model.handle(GuestPressure(21, "a", "critical"))  # the override is over (15 + 5 s)
    assert policy.guest_calls == 1


def test_a_balloon_on_its_way_owes_nothing_yet():
    model, _ = sustained_critical_with_a_take(owed_after_s=20.0)
    assert model.view().hard_floors is True  # a owes since t=1: not for 20 s yet
    model.handle(HostPressure(21, "critical"))
    assert model.view().hard_floors is False


def test_only_an_automated_vm_can_owe():
    model, _ = sustained_critical_with_a_take()
    model.handle(SetEnabled(15.5, "a", False))
    assert model.view().hard_floors is True  # a is the operator's now
    model.handle(SetEnabled(15.6, "a", True))
    assert model.view().hard_floors is False
    model.handle(VmAdded(15.7, VmInfo("a", 2048, 128), 300, actual_mib=2048))  # a reboot
    assert model.view().hard_floors is True  # owes since now, not since t=1
    model.handle(VmRemoved(17.7, "a"))
    assert model.view().hard_floors is True


# -- the views policies get cost what they read ---------------------------------------------

class _Reader(Policy):
    """Reads the VM a guest message names, and every VM on host pressure."""

    name = "reader"

    def on_guest_pressure(self, view, vm, level, now):
        return [TargetChange(vm, view.vms[vm].target_mib - 4, "read one")]

    def on_host_pressure(self, view, level, now):
        return [TargetChange(v.name, v.target_mib - 4, "read all") for v in view.vms.values()]


def test_a_hook_builds_the_views_it_reads_and_no_others(monkeypatch):
    built: list[str] = []
    build = VmState.build_view

    def counting(self, claims=True):
        built.append(self.name)
        return build(self, claims)

    monkeypatch.setattr(VmState, "build_view", counting)
    model = Model(_Reader())
    for i in range(100):
        model.handle(VmAdded(0, VmInfo(f"vm{i:03}", 2048), 2048))
    built.clear()
    model.handle(GuestPressure(1, "vm042", "low"))
    assert built == ["vm042"]  # one VM read: one view built, not a hundred
    built.clear()
    assert model.vm("vm042") is model.vm("vm042")  # kept until its state changes
    assert built == ["vm042"]  # the command changed it: built once again, then kept
    built.clear()
    model.handle(HostPressure(2, "low"))
    assert len(built) == 99  # every VM read: each built once, but vm042's, kept since
    view = model.vm("vm007")
    assert view is not None and isinstance(view.stats, Mapping)
    with pytest.raises(TypeError):
        view.stats["usable"] = 1  # type: ignore[index]  # read-only: the model keeps it


def test_a_view_is_the_record_its_dataclass_would_build():
    import dataclasses

    from autoballoon.views import VmView

    state = VmState("a", 2048, 128, 1500, 1600, auto_inflated_mib=500, rss_mib=900,
                    rss_t=3.0, stats={"usable": 300}, stats_t=4.0, hard_floor_mib=512)
    for claims in (True, False):
        view = state.build_view(claims)
        fields = {f.name: getattr(view, f.name) for f in dataclasses.fields(VmView)}
        assert vars(view) == fields  # every field set, nothing else
        assert view == VmView(**fields)
        with pytest.raises(dataclasses.FrozenInstanceError):
            view.target_mib = 1  # type: ignore[misc]
