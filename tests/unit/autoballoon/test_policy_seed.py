"""The seed policy reproduces the 2013 RFC's algorithm step by step (explicit timestamps)."""

from autoballoon.events import (
    BalloonActual,
    BalloonCommand,
    GuestPressure,
    HostPressure,
    VmAdded,
    VmInfo,
)
from autoballoon.model import Model
from autoballoon.policies import SeedParams, SeedPolicy

MIB = 1331  # the RFC's 1.3 GiB guests


def rfc_model(params=None):
    model = Model(SeedPolicy(params or SeedParams()))
    model.handle(VmAdded(0, VmInfo("vm-down", MIB), MIB))
    model.handle(VmAdded(0, VmInfo("vm-up", MIB), MIB))
    return model


def targets(model):
    return {name: vm.target_mib for name, vm in model.vms.items()}


def test_defaults_are_the_rfcs():
    p = SeedParams()
    assert (p.step_mib, p.hysteresis_s, p.min_host_level) == (32, 60.0, "low")


def test_host_pressure_inflates_every_vm_by_32():
    model = rfc_model()
    assert model.handle(HostPressure(10, "low")) == [
        BalloonCommand(10, "vm-down", MIB - 32, "host pressure low"),
        BalloonCommand(10, "vm-up", MIB - 32, "host pressure low"),
    ]


def test_repeated_host_events_accumulate():
    model = rfc_model()
    for i, level in enumerate(["low", "medium", "critical", "low", "between"]):
        model.handle(HostPressure(10 + i, level))
    assert targets(model) == {"vm-down": MIB - 160, "vm-up": MIB - 160}
    assert model.vm("vm-up").auto_inflated_mib == 160


def test_guest_pressure_cancels_inflation_in_progress():
    model = rfc_model()
    model.handle(HostPressure(10, "low"))
    model.handle(HostPressure(11, "low"))  # target MIB - 64
    model.handle(BalloonActual(11.5, "vm-up", MIB - 20))  # balloon still inflating
    assert model.handle(GuestPressure(12, "vm-up", "low")) == [
        BalloonCommand(12, "vm-up", MIB - 20, "guest pressure low: cancel inflation")
    ]
    assert model.vm("vm-up").auto_inflated_mib == 20
    assert model.vm("vm-down").target_mib == MIB - 64  # the other VM is untouched


def test_guest_pressure_deflates_32_when_balloon_reached_target():
    model = rfc_model()
    for i in range(3):
        model.handle(HostPressure(10 + i, "low"))
    model.handle(BalloonActual(13, "vm-up", MIB - 96))
    [cmd] = model.handle(GuestPressure(14, "vm-up", "medium"))
    assert cmd == BalloonCommand(14, "vm-up", MIB - 64, "guest pressure medium: deflate")


def test_deflate_only_what_automation_inflated():
    model = rfc_model()
    model.handle(HostPressure(10, "low"))
    model.handle(BalloonActual(10.5, "vm-up", MIB - 32))
    assert model.handle(GuestPressure(11, "vm-up", "low"))[0].target_mib == MIB
    model.handle(BalloonActual(11.5, "vm-up", MIB))
    assert model.handle(GuestPressure(12, "vm-up", "low")) == []  # nothing left to give
    assert model.vm("vm-up").target_mib == MIB


def test_deflate_partial_when_less_than_a_step_was_taken():
    model = rfc_model(SeedParams(step_mib=32))
    model.handle(VmAdded(0, VmInfo("small", 1000), 990, auto_inflated_mib=10))
    model.handle(BalloonActual(1, "small", 990))
    [cmd] = model.handle(GuestPressure(2, "small", "low"))
    assert cmd.target_mib == 1000


def test_hysteresis_blocks_inflation_for_60s_then_expires():
    model = rfc_model()
    model.handle(HostPressure(10, "low"))
    model.handle(BalloonActual(10.5, "vm-up", MIB - 32))
    model.handle(GuestPressure(20, "vm-up", "low"))  # deflates back to MIB
    cmds = model.handle(HostPressure(30, "low"))
    assert [c.vm for c in cmds] == ["vm-down"]
    assert [c.vm for c in model.handle(HostPressure(79.9, "low"))] == ["vm-down"]
    cmds = model.handle(HostPressure(80, "low"))  # exactly 60 s later: expired
    assert [c.vm for c in cmds] == ["vm-down", "vm-up"]
    assert targets(model) == {"vm-down": MIB - 128, "vm-up": MIB - 32}


def test_rfc_scenario_end_to_end():
    """vm-down busy first, vm-up starts later and reports pressure, host calms."""
    model = rfc_model()
    log = []
    for t in (5, 6, 7):
        log += model.handle(HostPressure(t, "low"))
    model.handle(BalloonActual(8, "vm-down", MIB - 96))
    model.handle(BalloonActual(8, "vm-up", MIB - 80))  # vm-up's balloon lags
    log += model.handle(GuestPressure(60, "vm-up", "low"))  # cancel at actual
    model.handle(BalloonActual(61, "vm-up", MIB - 80))
    log += model.handle(GuestPressure(62, "vm-up", "low"))  # then deflate 32
    log += model.handle(HostPressure(70, "low"))  # only vm-down (vm-up in hysteresis)
    assert [(c.t, c.vm, c.target_mib) for c in log] == [
        (5, "vm-down", MIB - 32),
        (5, "vm-up", MIB - 32),
        (6, "vm-down", MIB - 64),
        (6, "vm-up", MIB - 64),
        (7, "vm-down", MIB - 96),
        (7, "vm-up", MIB - 96),
        (60, "vm-up", MIB - 80),
        (62, "vm-up", MIB - 48),
        (70, "vm-down", MIB - 128),
    ]


def test_parameters_are_honoured():
    model = rfc_model(SeedParams(step_mib=64, hysteresis_s=5, min_host_level="medium"))
    assert model.handle(HostPressure(1, "low")) == []
    assert model.handle(HostPressure(2, "between")) == []
    assert model.handle(HostPressure(3, "medium"))[0].target_mib == MIB - 64
    model.handle(BalloonActual(3, "vm-up", MIB - 64))
    model.handle(GuestPressure(4, "vm-up", "low"))
    assert [c.vm for c in model.handle(HostPressure(8, "critical"))] == ["vm-down"]
    assert len(model.handle(HostPressure(9, "critical"))) == 2


def test_floor_still_enforced_by_model():
    model = rfc_model()
    for t in range(200):
        model.handle(HostPressure(t, "low"))
    assert targets(model) == {"vm-down": 128, "vm-up": 128}


def test_sustained_host_critical_changes_nothing_of_the_rfc():
    """seed is the RFC exactly (the auto-seed comparison mode): the model's host critical
    override (POLICIES.md M2), which every other policy is under, is off for it. After
    5 s of host critical pressure a guest's message still keeps its VM out of reach for
    60 s."""
    model = rfc_model()
    model.handle(HostPressure(1, "low"))
    model.handle(BalloonActual(1.5, "vm-up", MIB - 32))
    model.handle(GuestPressure(2, "vm-up", "low"))  # deflates, exempt for 60 s
    for t in (10, 12, 15):
        assert [c.vm for c in model.handle(HostPressure(t, "critical"))] == ["vm-down"]
    assert model.host_override() is False and model.view().host_override is False


def test_switching_from_seed_brings_the_override_back():
    from autoballoon.model import SetPolicy
    from autoballoon.policies import make_policy

    model = rfc_model()
    for t in (10, 12, 15):
        for cmd in model.handle(HostPressure(t, "critical")):
            model.handle(BalloonActual(t, cmd.vm, cmd.target_mib))  # the balloons follow
    assert model.host_override() is False
    model.handle(SetPolicy(16, make_policy("auto")))
    assert model.host_override() is True  # the run of critical was tracked all along
    model.handle(SetPolicy(17, SeedPolicy()))
    assert model.host_override() is False
