"""Host pressure sources: config validation, trigger text, level choice, rate limit.

The kernel notification objects (eventfd on memory.pressure_level, PSI trigger fds) are
exercised for real in tests/integration/test_pressure_sources.py; here a regular file
stands in for a PSI file to check the loop's stop/close plumbing without root.
"""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

import pytest
from autoballoon.pressure import (
    HostPressureEvent,
    PressureSource,
    PressureSourceError,
    describe_source,
    highest_level,
    levels_fired,
    should_report,
)
from autoballoon.pressure_config import (
    DEFAULT_PSI_THRESHOLDS,
    DEFAULT_V1_MEMCG,
    DEFAULT_V2_CGROUP,
    PROC_PRESSURE_MEMORY,
    PressureConfig,
    PressureConfigError,
    PsiThreshold,
    has_cap_sys_resource,
    parse_threshold,
    psi_trigger,
    vmpressure_registration,
)

# --- config -----------------------------------------------------------------------


def test_defaults_per_kind():
    v = PressureConfig()
    assert v.kind == "vmpressure"
    assert v.resolved_path == DEFAULT_V1_MEMCG
    assert v.active_levels == ("low", "medium", "critical")
    c = PressureConfig(kind="psi-cgroup")
    assert c.psi_file == DEFAULT_V2_CGROUP / "memory.pressure"
    assert c.active_levels == ("low", "between", "medium", "critical")
    h = PressureConfig(kind="psi-host")
    assert h.psi_file == PROC_PRESSURE_MEMORY


def test_memcg_path_is_configurable_and_coerced():
    cfg = PressureConfig(path="/sys/fs/cgroup/memory/other")  # type: ignore[arg-type]
    assert cfg.resolved_path == Path("/sys/fs/cgroup/memory/other")
    assert describe_source(cfg) == "vmpressure:/sys/fs/cgroup/memory/other"


def test_levels_sorted_by_rank():
    cfg = PressureConfig(kind="psi-host", levels=("critical", "low", "between"))
    assert cfg.active_levels == ("low", "between", "critical")


def test_default_psi_triggers():
    cfg = PressureConfig(kind="psi-host")
    assert cfg.psi_triggers() == {
        "low": "some 50000 2000000",
        "between": "some 150000 2000000",
        "medium": "full 100000 2000000",
        "critical": "full 500000 2000000",
    }


def test_psi_trigger_and_vmpressure_line():
    assert psi_trigger(PsiThreshold("full", 100_000), 4_000_000) == "full 100000 4000000"
    assert vmpressure_registration(7, 5, "low") == "7 5 low"
    assert vmpressure_registration(7, 5, "medium", "hierarchy") == "7 5 medium,hierarchy"


@pytest.mark.parametrize("window", [1_000_000, 3_000_000, 2_500_000])
def test_window_must_be_multiple_of_2s_without_cap(window):
    with pytest.raises(PressureConfigError, match="multiple of 2000000") as e:
        PressureConfig(kind="psi-host", window_us=window)
    assert "\n" not in str(e.value) and "CAP_SYS_RESOURCE" in str(e.value)


def test_privileged_allows_sub_2s_window():
    cfg = PressureConfig(
        kind="psi-host",
        window_us=1_000_000,
        privileged=True,
        levels=("low",),
    )
    assert cfg.psi_triggers() == {"low": "some 50000 1000000"}


@pytest.mark.parametrize("window", [400_000, 12_000_000])
def test_window_range(window):
    with pytest.raises(PressureConfigError, match="out of range"):
        PressureConfig(kind="psi-host", window_us=window, privileged=True)


def test_window_ignored_for_vmpressure():
    assert PressureConfig(kind="vmpressure", window_us=1).kind == "vmpressure"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "psi"}, "pressure kind 'psi' is unknown"),
        ({"kind": "psi-host", "levels": ()}, "no pressure levels"),
        ({"kind": "psi-host", "levels": ("high",)}, "level 'high' is unknown"),
        ({"kind": "psi-host", "levels": ("low", "low")}, "repeat"),
        ({"levels": ("between",)}, "not a vmpressure level: use a PSI kind"),
        ({"vmpressure_mode": "loud"}, "vmpressure_mode 'loud' is unknown"),
        (
            {"kind": "psi-host", "thresholds": {"low": PsiThreshold("some", 50_000)}},
            "level 'between' has no PSI threshold",
        ),
        (
            {"kind": "psi-host", "thresholds": {**DEFAULT_PSI_THRESHOLDS,
                                                "low": PsiThreshold("some", 3_000_000)}},
            "exceeds window_us",
        ),
        (
            {"kind": "psi-host", "thresholds": {**DEFAULT_PSI_THRESHOLDS,
                                                "huge": PsiThreshold("some", 1)}},
            "unknown level 'huge'",
        ),
        ({"min_interval_s": -1}, "min_interval_s"),
    ],
)
def test_invalid_configs_give_one_line_errors(kwargs, match):
    with pytest.raises(PressureConfigError, match=match) as e:
        PressureConfig(**kwargs)
    assert "\n" not in str(e.value) and ":" in str(e.value)


@pytest.mark.parametrize(
    ("kind", "stall"), [("half", 1), ("some", 0), ("some", -5), ("full", 1.5), ("some", True)]
)
def test_invalid_thresholds(kind, stall):
    with pytest.raises(PressureConfigError):
        PsiThreshold(kind, stall)


def test_config_is_frozen_and_thresholds_read_only():
    cfg = PressureConfig(kind="psi-host")
    with pytest.raises(AttributeError):
        cfg.kind = "vmpressure"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.thresholds["low"] = PsiThreshold("some", 1)  # type: ignore[index]


def test_from_mapping():
    cfg = PressureConfig.from_mapping(
        {
            "kind": "psi-cgroup",
            "path": "/sys/fs/cgroup/unified/p",
            "levels": ["between", "critical"],
            "thresholds": {"between": "some 200000"},
            "window_us": 4_000_000,
            "min_interval_s": 1.5,
        }
    )
    assert cfg.psi_file == Path("/sys/fs/cgroup/unified/p/memory.pressure")
    assert cfg.psi_triggers() == {
        "between": "some 200000 4000000",
        "critical": "full 500000 4000000",
    }
    assert cfg.min_interval_s == 1.5


def test_from_mapping_rejects_unknown_keys_and_bad_thresholds():
    with pytest.raises(PressureConfigError, match="unknown pressure setting"):
        PressureConfig.from_mapping({"memcg": "/x"})
    with pytest.raises(PressureConfigError, match="'some <stall_us>'"):
        parse_threshold("some 1 2")
    assert parse_threshold("full 7") == PsiThreshold("full", 7)


def test_has_cap_sys_resource():
    assert not has_cap_sys_resource("Name:\tx\nCapEff:\t000001fffeffffff\n")
    assert has_cap_sys_resource("CapEff:\t000001ffffffffff\n")
    assert not has_cap_sys_resource("Name:\tx\n")


# --- level choice and rate limit ------------------------------------------------------


def test_highest_level():
    assert highest_level([]) is None
    assert highest_level(["low"]) == "low"
    assert highest_level(["low", "critical", "medium"]) == "critical"
    assert highest_level(["between", "low"]) == "between"


def test_levels_fired_from_poll_results():
    fd_levels = {10: "low", 11: "medium", 12: "critical"}
    ready = [(3, select.POLLIN), (10, select.POLLIN), (11, select.POLLIN)]
    fired, errors = levels_fired(ready, fd_levels, select.POLLIN)
    assert fired == ["low", "medium"] and errors == []
    assert highest_level(fired) == "medium"


def test_levels_fired_psi_pri_and_errors():
    fd_levels = {4: "low", 5: "between", 6: "medium"}
    ready = [(4, select.POLLPRI), (5, select.POLLPRI | select.POLLERR), (6, select.POLLERR)]
    fired, errors = levels_fired(ready, fd_levels, select.POLLPRI)
    assert fired == ["low", "between"] and errors == [6]


def test_should_report():
    last = HostPressureEvent(10.0, "medium", "s")
    assert should_report(None, "low", 0.0, 5.0)
    assert should_report(last, "low", 10.1, 0.0)
    assert not should_report(last, "low", 11.0, 2.0)
    assert not should_report(last, "medium", 11.0, 2.0)
    assert should_report(last, "critical", 10.01, 2.0)
    assert should_report(last, "medium", 12.0, 2.0)


# --- plumbing with a regular file standing in for a PSI file --------------------------


def fake_psi(tmp_path: Path, **kw) -> PressureConfig:
    f = tmp_path / "memory"
    f.write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    return PressureConfig(kind="psi-host", path=f, **kw)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_fake_psi_writes_trigger_and_closes_everything(tmp_path):
    before = open_fds()
    cfg = fake_psi(tmp_path, levels=("between",))
    with PressureSource(cfg) as src:
        assert len(src.fds()) == 2  # one trigger fd + the stop eventfd
        assert src.wait(0.01) is None  # a regular file never raises POLLPRI
    assert (tmp_path / "memory").read_bytes().startswith(b"some 150000 2000000\0")
    assert not src.is_open and src.fds() == []
    assert open_fds() == before


def test_stop_wakes_a_blocked_loop_from_another_thread(tmp_path):
    before = open_fds()
    src = PressureSource(fake_psi(tmp_path)).open()
    got: list[HostPressureEvent] = []
    t = threading.Thread(target=src.run, args=(got.append,), daemon=True)
    t.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    src.close()
    t.join(2)
    assert not t.is_alive() and time.monotonic() - t0 < 1.0
    assert got == [] and src.fds() == []
    assert open_fds() == before


def test_wait_before_open_and_after_stop(tmp_path):
    src = PressureSource(fake_psi(tmp_path))
    with pytest.raises(PressureSourceError, match="call open"):
        src.wait(0)
    src.open()
    src.stop()
    assert src.wait(None) is None  # returns at once: stopped
    src.close()
    src.open()  # re-open after close works
    assert src.wait(0) is None
    src.close()


def test_open_errors_are_one_line_and_leak_nothing(tmp_path):
    before = open_fds()
    with pytest.raises(PressureSourceError, match="set path to a cgroup v1 memory") as e:
        PressureSource(PressureConfig(path=tmp_path)).open()
    assert "\n" not in str(e.value)
    with pytest.raises(PressureSourceError, match="set path to a cgroup v2 directory"):
        PressureSource(PressureConfig(kind="psi-cgroup", path=tmp_path)).open()
    with pytest.raises(PressureSourceError, match="psi=1"):
        PressureSource(PressureConfig(kind="psi-host", path=tmp_path / "nope")).open()
    assert open_fds() == before


def test_open_failure_midway_closes_opened_fds(tmp_path):
    before = open_fds()
    d = tmp_path / "cg"
    d.mkdir()
    (d / "memory.pressure_level").write_text("")
    (d / "cgroup.event_control").mkdir()  # opening it for writing fails
    with pytest.raises(PressureSourceError, match="cannot open"):
        PressureSource(PressureConfig(path=d)).open()
    assert open_fds() == before
