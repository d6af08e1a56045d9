"""The plots' data: a run's time series and each step's ebizzy rates."""

import pytest

from rig.report.plots import interpolate, step_rates, trace

from .summaries import VMS, mode_summary


def test_trace_puts_the_timeline_on_the_samples_clock():
    samples = [
        {"t": 0.0, "wall": 1000.5, "host_usage_mib": 500, "swap_used_mib": 0,
         "vms": {"vm-down": {"actual_mib": 666, "step": 0}, "vm-up": {"actual_mib": None}}},
        {"t": 1.0, "wall": 1001.5, "host_usage_mib": 900, "swap_used_mib": 10,
         "vms": {"vm-down": {"actual_mib": 600, "step": 1}, "vm-up": {"actual_mib": 666}}},
    ]
    timeline = [
        {"wall": 1000.0, "kind": "libvirt", "state": "connected"},
        {"wall": 1000.75, "kind": "input", "event": "HostPressure", "level": "critical"},
        {"wall": 1000.8, "kind": "command", "vm": "autoballoon-vm-down", "target_mib": 600,
         "cause": "host pressure"},
        {"wall": 1001.0, "kind": "input", "event": "GuestPressure", "vm": "autoballoon-vm-up",
         "level": "low"},
        {"wall": 1001.2, "kind": "command", "vm": "somebody-else", "target_mib": 1},
        {"wall": 1001.5, "kind": "input", "event": "HostMemory", "free_mib": 68,
         "total_mib": 1280},
    ]
    tr = trace(samples, timeline, VMS)
    assert tr.t == (0.0, 1.0)
    assert tr.host_usage_mib == (500.0, 900.0)
    assert tr.actual_mib == {"vm-down": (666.0, 600.0), "vm-up": (None, 666.0)}
    assert tr.targets == {"vm-down": ((pytest.approx(0.3), 600.0),), "vm-up": ()}
    assert tr.host_pressure == ((0.25, "critical"),)
    assert tr.guest_pressure == ((0.5, "vm-up", "low"),)
    assert tr.host_free_mib == ((1.0, 68.0),)
    assert interpolate(tr.t, tr.host_usage_mib, 0.25) == 600.0
    assert interpolate(tr.t, tr.actual_mib["vm-up"], 0.5) == 666.0
    assert interpolate(tr.t, tr.host_usage_mib, 7.0) == 900.0
    assert interpolate((), (), 1.0) is None


def test_step_rates_are_the_summary_means():
    s = mode_summary("auto", [{"vm-up.guest.step1.records_s": 100,
                               "vm-up.guest.step2.records_s": 300},
                              {"vm-up.guest.step1.records_s": 200,
                               "vm-up.guest.step2.records_s": 300}])
    rates = step_rates(s, {"vm-up": (112, 212)})
    assert [(r.step, r.chunks, r.mean, r.runs) for r in rates["vm-up"]] == [
        (1, 112, 150.0, 2), (2, 212, 300.0, 2)]
    assert step_rates(s)["vm-up"][0].chunks is None
