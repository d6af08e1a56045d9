"""The runner's pure parts: the run order, the modes' daemon policies, the daemon's
cgroup wrapper, and the host cgroup metrics and checks of a run directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from rig.bench import daemon_proc, procstat, run_metrics
from rig.bench import runner as bench
from rig.bench.results import RunSummary
from rig.scenario import MODES


def test_modes_are_interleaved_across_runs():
    assert bench.interleave(["vanilla", "auto+fpr"], 3) == [
        ("vanilla", 1), ("auto+fpr", 1), ("vanilla", 2), ("auto+fpr", 2),
        ("vanilla", 3), ("auto+fpr", 3)]
    assert bench.interleave(["auto"], 2) == [("auto", 1), ("auto", 2)]
    assert bench.interleave(["a", "b", "c"], 1) == [("a", 1), ("b", 1), ("c", 1)]


def test_every_mode_has_a_policy_and_auto_fpr_runs_auto_with_reporting():
    assert set(bench.MODE_POLICY) == set(MODES)
    assert bench.MODE_POLICY["auto+fpr"] == "auto"
    assert {"free-page-reporting", "auto+fpr"} == bench.FPR_MODES


def test_daemon_is_born_in_the_cgroups(tmp_path: Path):
    mem, cpu = tmp_path / "memory", tmp_path / "cpu"
    mem.mkdir()
    argv = daemon_proc.born_in((str(mem), str(cpu)), ["/bin/echo", "hello"])
    assert argv[:2] == ["/bin/sh", "-c"] and argv[-2:] == ["/bin/echo", "hello"]
    r = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert r.stdout == "hello\n"  # the missing cpu cgroup is best effort
    assert (mem / "cgroup.procs").read_text().strip().isdigit()
    assert daemon_proc.born_in((), ["x"]) == ["x"]
    # the first (memory) cgroup is mandatory
    r = subprocess.run(daemon_proc.born_in((str(cpu),), ["/bin/true"]), capture_output=True)
    assert r.returncode != 0


def test_daemon_argv_wraps_only_with_cgroups(tmp_path: Path):
    d = daemon_proc.DaemonProcess(tmp_path, "auto", "/sys/fs/cgroup/memory/x")
    assert d.argv()[1:3] == ["-m", "autoballoon.daemon"]
    d = daemon_proc.DaemonProcess(tmp_path, "auto", "/m", cgroups=("/m",))
    assert d.argv()[0] == "/bin/sh" and "autoballoon.daemon" in d.argv()


def vmstat(pswpin: int, pswpout: int) -> str:
    return "".join(f"{k} {dict(pswpin=pswpin, pswpout=pswpout).get(k, 0)}\n"
                   for k in procstat.VMSTAT_DELTA_KEYS)


MEMINFO = "MemTotal: 24000000 kB\nSwapTotal: 4194300 kB\nSwapFree: {free} kB\n"


def test_host_cgroup_metrics_and_cross_check(tmp_path: Path):
    (tmp_path / "host-memcg-stat.start").write_text("swap 0\ntotal_swap 0\n")
    (tmp_path / "host-memcg-stat.end").write_text(f"swap 0\ntotal_swap {4000 * 4096}\n")
    (tmp_path / "host-meminfo.start").write_text(MEMINFO.format(free=4194300))
    (tmp_path / "host-meminfo.end").write_text(MEMINFO.format(free=4194300 - 16100))
    (tmp_path / "host-memcg.json").write_text(json.dumps({"memsw_max_usage_bytes": 3 << 30}))
    metrics, check = run_metrics.host_cgroup_metrics(tmp_path, 5000)
    assert metrics == {"host.cgroup.memsw_peak_mib": 3072,
                       "host.cgroup.swap_growth_pages": 4000,
                       "host.cgroup.swap_end_pages": 4000,
                       "host.cgroup.swap_share_pct": 99.38}
    assert check is not None and check["ok"]
    (tmp_path / "host-vmstat.start").write_text(vmstat(0, 0))
    (tmp_path / "host-vmstat.end").write_text(vmstat(10, 3000))
    checks = run_metrics.checks(tmp_path)
    assert not checks["host_swap"]["ok"]  # 4000 pages more in swap than 3000 swap-outs
    (tmp_path / "host-vmstat.start").write_text(vmstat(0, 0) + "swpout_zero 7\n")
    (tmp_path / "host-vmstat.end").write_text(vmstat(10, 3000) + "swpout_zero 1007\n")
    assert run_metrics.checks(tmp_path)["host_swap"]["ok"]  # 3000 + 1000 zero-filled
    assert run_metrics.zero_swaps({"swpout_zero": 7}, {"swpout_zero": 1007}) == {
        "swap_out_zero": 1000}


def test_run_without_cgroup_snapshots_has_no_cgroup_metrics(tmp_path: Path):
    assert run_metrics.host_cgroup_metrics(tmp_path, 10) == ({}, None)
    assert run_metrics.checks(tmp_path) == {}


def test_summary_carries_checks_when_there_are_some():
    s = RunSummary("quick", "auto+fpr", 1, True, {"host.swap_in": 1}, {},
                   {"host_swap": {"ok": True}})
    obj = s.to_json()
    assert obj["checks"] == {"host_swap": {"ok": True}}
    assert RunSummary.from_json(obj) == s
    plain = RunSummary("quick", "vanilla", 1, True, {}, {})
    assert "checks" not in plain.to_json()
    assert RunSummary.from_json(plain.to_json()).checks == {}
