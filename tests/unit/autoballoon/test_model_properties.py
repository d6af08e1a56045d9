"""Property tests: invariants of the model over random (and hostile) event streams."""

from autoballoon.events import (
    BalloonActual,
    GuestPressure,
    GuestStats,
    HostMemory,
    HostPressure,
    ManualTarget,
    SetEnabled,
    StatsPoll,
    Tick,
    VmAdded,
    VmInfo,
    VmRemoved,
    VmRss,
)
from autoballoon.model import Model
from autoballoon.policies import AutoPolicy, SeedPolicy, StatsPollingPolicy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NAMES = ["a", "b", "c"]
HOSTILE = ["ghost", "", "a" * 300]
POLICIES = {"seed": SeedPolicy, "auto": AutoPolicy, "stats": StatsPollingPolicy}

times = st.one_of(
    st.floats(min_value=-10, max_value=1e6),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
huge = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
)
names = st.sampled_from(NAMES + HOSTILE)
stats_maps = st.dictionaries(
    st.sampled_from(["actual", "available", "unused", "usable", "swap_in", "junk", "rss"]),
    huge,
    max_size=8,
)

events = st.one_of(
    st.builds(HostPressure, times, st.sampled_from(["low", "between", "medium", "critical", "x"])),
    st.builds(
        GuestPressure,
        times,
        names,
        st.sampled_from(["low", "medium", "critical", "bogus"]),
        huge,
    ),
    st.builds(BalloonActual, times, names, huge),
    st.builds(
        VmAdded,
        times,
        st.builds(
            VmInfo,
            names,
            st.integers(0, 8192),
            st.one_of(st.none(), st.integers(-100, 9000)),
        ),
        st.integers(-100, 9000),
        st.integers(-100, 9000),
    ),
    st.builds(VmRemoved, times, names),
    st.builds(ManualTarget, times, names, huge),
    st.builds(GuestStats, times, names, stats_maps),
    st.builds(HostMemory, times, huge, huge),
    st.builds(VmRss, times, names, huge),
    st.builds(StatsPoll, times, st.dictionaries(names, huge, max_size=4),
              st.dictionaries(names, stats_maps, max_size=4)),
    st.builds(SetEnabled, times, st.one_of(st.none(), names), st.booleans()),
    st.builds(Tick, times),
)
streams = st.lists(events, max_size=80)


def run(policy_name, stream):
    model = Model(POLICIES[policy_name]())
    for name in NAMES:
        model.handle(VmAdded(0, VmInfo(name, 2048, 256), 2048))
    trace = []
    for event in stream:
        before = model.vms
        was_enabled = model.enabled
        cmds = model.handle(event)
        override = model.host_override()
        trace.append((event, before, was_enabled, cmds, model.vms, override))
    return model, trace


cfg = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cfg
@given(st.sampled_from(list(POLICIES)), streams)
def test_invariants_hold_on_any_stream(policy_name, stream):
    model, trace = run(policy_name, stream)
    for _event, before, was_enabled, cmds, after, override in trace:
        assert len({c.vm for c in cmds}) == len(cmds)  # one command per VM per event
        for cmd in cmds:
            vm0, vm1 = before[cmd.vm], after[cmd.vm]
            assert was_enabled and vm0.enabled and not vm0.manual
            assert cmd.target_mib <= vm0.max_mib
            if cmd.target_mib < vm0.target_mib:
                assert cmd.target_mib >= vm0.floor_mib
            else:
                raised = cmd.target_mib - vm0.target_mib
                assert 0 < raised <= vm0.auto_inflated_mib
                if override:  # sustained host critical: no claim buys more
                    assert cmd.target_mib <= max(vm0.target_mib, vm0.hard_floor_mib)
            assert vm1.target_mib == cmd.target_mib
            assert cmd.cause
        for vm in after.values():
            assert vm.auto_inflated_mib >= 0
            assert vm.target_mib <= vm.max_mib
            assert vm.floor_mib <= vm.max_mib
            assert set(vm.stats) <= {
                "actual", "available", "unused", "usable", "disk_caches",
                "rss", "swap_in", "swap_out", "major_fault", "minor_fault",
            }  # fmt: skip
    assert set(model.vms) <= set(NAMES + HOSTILE)


@cfg
@given(st.sampled_from(list(POLICIES)), streams)
def test_deflation_never_exceeds_inflation_per_vm(policy_name, stream):
    """Per VM and per baseline epoch: given back <= taken (sum over commands)."""
    _, trace = run(policy_name, stream)
    # per VM: what automation may still give back = baseline credit + taken - given back
    credit = dict.fromkeys(NAMES, 0)
    for event, before, _, cmds, after, _ in trace:
        for cmd in cmds:
            delta = cmd.target_mib - before[cmd.vm].target_mib
            credit[cmd.vm] -= delta  # a lowering adds credit, a raise spends it
            assert credit[cmd.vm] >= 0
        for name in set(before) | set(after):
            b, a = before.get(name), after.get(name)
            readded = isinstance(event, VmAdded) and event.vm.name == name
            if a is None:
                credit.pop(name, None)
            elif b is None or readded or (b.manual and not a.manual):
                credit[name] = a.auto_inflated_mib  # a new baseline
            assert credit[name] == a.auto_inflated_mib if a is not None else True


@cfg
@given(st.sampled_from(list(POLICIES)), streams)
def test_deterministic(policy_name, stream):
    _, t1 = run(policy_name, stream)
    _, t2 = run(policy_name, stream)
    assert [c for *_, cmds, _, _ in t1 for c in cmds] == [c for *_, cmds, _, _ in t2 for c in cmds]


@cfg
@given(st.sampled_from(list(POLICIES)), st.lists(names, max_size=50), st.integers(1, 2000))
def test_flood_from_guests_bounded(policy_name, vms, n):
    model = Model(POLICIES[policy_name]())
    model.handle(VmAdded(0, VmInfo("a", 2048, 256), 2048))
    for i in range(n):
        model.handle(GuestPressure(1 + i * 1e-4, vms[i % len(vms)] if vms else "x", "critical"))
        model.handle(GuestStats(1 + i * 1e-4, "ghost", {"usable": i}))
    assert list(model.vms) == ["a"]
    policy = model.policy
    for attr in ("_needs", "_samples"):
        assert len(getattr(policy, attr, {})) <= 1
    claims = getattr(policy, "_claims", None)
    assert claims is None or len(claims._spans) <= 1


@cfg
@given(st.sampled_from([p for p in POLICIES if p != "seed"]), streams)
def test_no_claim_buys_memory_above_the_hard_floor_under_the_override(policy_name, stream):
    """Sustained host critical pressure first, then anything but VMs coming and going,
    squeezed into its 3 s gap (every policy but seed, the RFC exactly, which the override
    does not apply to). The override holds throughout: no message buys anything; its hard
    floors hold exactly while no automated VM's balloon has owed 32 MiB or more (its size
    above its target) for 2 s, an owing run followed here from the VMs' views alone."""
    critical = [HostPressure(t, "critical") for t in range(0, 7)]
    squeezed = [e for e in stream if not isinstance(e, HostPressure | VmAdded | VmRemoved)]
    for i, e in enumerate(squeezed):
        object.__setattr__(e, "t", 6 + 2.9 * i / max(len(squeezed), 1))
    model, _ = run(policy_name, [])
    owing: dict[str, float] = {}

    def owed(vms, now):
        return any(now - since >= 2 and vms[n].enabled and not vms[n].manual
                   for n, since in owing.items())

    for event in critical + squeezed:
        before = model.vms
        cmds = model.handle(event)
        after, now = model.vms, float(event.t)
        if now >= 6:
            assert model.host_override()
            if isinstance(event, GuestPressure):
                assert cmds == []  # a message buys nothing
        if now >= 5 and not owed(before, now):  # hard floors when it decided
            for cmd in cmds:
                vm0 = before[cmd.vm]
                if cmd.target_mib > vm0.target_mib:
                    assert cmd.target_mib <= max(vm0.target_mib, vm0.hard_floor_mib)
        for name, v in after.items():
            if v.actual_mib - v.target_mib >= 32:
                owing.setdefault(name, now)
            else:
                owing.pop(name, None)
        if now >= 5:
            assert model.hard_floors() is not owed(after, now)


@cfg
@given(st.sampled_from(list(POLICIES)), streams)
def test_the_views_a_state_keeps_are_never_stale(policy_name, stream):
    """Each VM's view is kept until its state changes (vm_state.py): after every event,
    what the model hands out equals a view built afresh, with and without claims."""
    model = Model(POLICIES[policy_name]())
    for name in NAMES:
        model.handle(VmAdded(0, VmInfo(name, 2048, 256), 2048))
    for event in stream:
        model.handle(event)
        for name, state in model._vms.items():
            assert model.vm(name) == state.build_view()
            assert state.view(claims=False) == state.build_view(claims=False)
        assert list(model.view(for_policy=True).vms) == sorted(model._vms) == list(model.vms)


@cfg
@given(st.sampled_from(list(POLICIES)), streams)
def test_every_vm_whose_view_changed_is_named_by_take_changed(policy_name, stream):
    """The daemon republishes only these (snapshot.py): none may be missed."""
    model = Model(POLICIES[policy_name]())
    for name in NAMES:
        model.handle(VmAdded(0, VmInfo(name, 2048, 256), 2048))
    assert model.take_changed() == set(NAMES)
    for event in stream:
        before = model.vms
        model.handle(event)
        after, changed = model.vms, model.take_changed()
        assert {n for n in set(before) | set(after) if before.get(n) != after.get(n)} <= changed
