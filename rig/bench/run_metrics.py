"""A run's metrics, computed from its raw files alone (so anyone can recompute them).

Raw files of a run directory (written by rig.bench):
  host-vmstat.start / .end      the host's /proc/vmstat around the workload
  <vm>.qemu-stat.start / .end   /proc/<qemu pid>/stat around the workload
  <vm>.stream.txt               what the VM's workload script printed (rig.workload)
  timing.json                   {"elapsed_s": workload wall time, "clk_tck": ...}
  samples.jsonl                 host usage, swap and balloons once a second
  timeline.jsonl                the daemon's inputs and commands (modes with a daemon)
  autoballoond.stat             /proc/<daemon pid>/stat at the end of the workload
  autoballoond.status           /proc/<daemon pid>/status then (VmHWM: its peak RSS)
  host-memcg-stat.start / .end  the host memory cgroup's memory.stat around the workload
  host-meminfo.start / .end     the host's /proc/meminfo then (machine-wide swap in use)
  host-memcg.json               {"memsw_max_usage_bytes": ...} of the host cgroup at the end
  <vm>.guest-vmstat.start       the guest's /proc/vmstat before the daemon started (when
                                absent, the one its workload script printed at its start)
  <vm>.guest-msgstats.start / .end  the guest driver's debugfs msg_stats around the
                                workload (guests with the message queue only)

The start snapshots are all taken before the daemon starts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rig.bench import hostcheck, procstat, results
from rig.bench.workload import parse_stream

Metrics = dict[str, float | int]


def _read(run_dir: Path, name: str) -> str:
    path = run_dir / name
    if not path.exists():
        raise ValueError(f"{run_dir}: raw file {name} is missing")
    return path.read_text()


def compute(run_dir: Path, vms: Sequence[str]) -> tuple[bool, Metrics]:
    """(complete, metrics): complete when every VM's workload stream ran to its end."""
    timing = json.loads(_read(run_dir, "timing.json"))
    elapsed, clk_tck = float(timing["elapsed_s"]), int(timing["clk_tck"])
    metrics: Metrics = {"elapsed_s": round(elapsed, 3)}
    h0 = procstat.parse_vmstat(_read(run_dir, "host-vmstat.start"))
    h1 = procstat.parse_vmstat(_read(run_dir, "host-vmstat.end"))
    host_delta = procstat.vmstat_delta(h0, h1)
    metrics.update(results.host_metrics(host_delta))
    # The zero-filled swap-outs enter the cross-check (summary "checks"), not the metrics:
    # they are in every older run's raw files, whose recomputed metrics must not change.
    metrics.update(host_cgroup_metrics(run_dir, host_delta["pswpout"],
                                       int(zero_swaps(h0, h1).get("swap_out_zero", 0)))[0])
    complete = True
    for vm in vms:
        q0 = procstat.parse_proc_stat(_read(run_dir, f"{vm}.qemu-stat.start"))
        q1 = procstat.parse_proc_stat(_read(run_dir, f"{vm}.qemu-stat.end"))
        usage = procstat.qemu_usage(q0, q1, clk_tck=clk_tck, elapsed_s=elapsed)
        metrics.update(results.qemu_metrics(vm, usage))
        run = parse_stream(_read(run_dir, f"{vm}.stream.txt"))
        if not run.done:
            complete = False
            continue
        score = results.SCORES[run.kind]
        for step in run.steps:
            if step.score is not None:
                value = step.score if run.kind != "ebizzy" else int(step.score)
                metrics[f"{vm}.guest.step{step.n}.{score.step}"] = value
        g0 = run_dir / f"{vm}.guest-vmstat.start"
        start = g0.read_text() if g0.exists() else run.vmstat_start
        delta = procstat.vmstat_delta(procstat.parse_vmstat(start),
                                      procstat.parse_vmstat(run.vmstat_end))
        oom = procstat.parse_oom_kills(delta)
        metrics.update(results.guest_metrics(
            vm, kind=run.kind, score=run.score_total, vmstat_delta=delta,
            oom_kills=oom if oom is not None else run.dmesg_oom_kills))
        metrics[f"{vm}.guest.failed_steps"] = run.failed_steps
        metrics.update(guest_msg_metrics(run_dir, vm))
    metrics.update(_sampled(run_dir, vms))
    daemon_stat = run_dir / "autoballoond.stat"
    if daemon_stat.exists():  # the daemon's own CPU over its life (it starts with the run)
        st = procstat.parse_proc_stat(daemon_stat.read_text())
        metrics["daemon.cpu_s"] = round((st.utime_ticks + st.stime_ticks) / clk_tck, 2)
    daemon_status = run_dir / "autoballoond.status"
    if daemon_status.exists():
        hwm = hostcheck.status_kib(daemon_status.read_text(), "VmHWM")
        if hwm is not None:
            metrics["daemon.peak_rss_mib"] = round(hwm / 1024, 1)
    timeline = run_dir / "timeline.jsonl"
    if timeline.exists():
        records = results.read_jsonl(timeline)
        metrics["daemon.commands"] = sum(r.get("kind") == "command" for r in records)
        metrics["daemon.host_pressure_events"] = sum(
            r.get("event") == "HostPressure" for r in records)
        metrics["daemon.guest_pressure_events"] = sum(
            r.get("event") == "GuestPressure" for r in records)
    return complete, metrics


def guest_msg_metrics(run_dir: Path, vm: str) -> Metrics:
    """<vm>.guest.msg_{low,medium,critical}: the pressure messages the guest's driver sent
    during the workload, per level ({} without both msgstats snapshots)."""
    files = [run_dir / f"{vm}.guest-msgstats.{s}" for s in ("start", "end")]
    if not all(f.exists() for f in files):
        return {}
    s0, s1 = (hostcheck.parse_kv(f.read_text()) for f in files)
    return {f"{vm}.guest.msg_{level}": s1.get(f"sent_{level}", 0) - s0.get(f"sent_{level}", 0)
            for level in ("low", "medium", "critical")}


def zero_swaps(h0: dict[str, int], h1: dict[str, int]) -> Metrics:
    """Zero-filled pages swapped out / in without I/O (Linux >= 6.12: swpout_zero,
    swpin_zero), which pswpout / pswpin do not count; {} on older kernels."""
    out: Metrics = {}
    for key, name in (("swpout_zero", "swap_out_zero"), ("swpin_zero", "swap_in_zero")):
        if key in h0 and key in h1:
            out[name] = h1[key] - h0[key]
    return out


def host_cgroup_metrics(run_dir: Path, pswpout_delta: int, zero_out_delta: int = 0
                        ) -> tuple[Metrics, dict[str, object] | None]:
    """host.cgroup.* metrics and the swap cross-check (hostcheck.cross_check) from the
    host memory cgroup's snapshots; ({}, None) for a run without them."""
    names = ("host-memcg-stat.start", "host-memcg-stat.end", "host-meminfo.start",
             "host-meminfo.end")
    if not all((run_dir / n).exists() for n in names):
        return {}, None
    c0, c1 = (hostcheck.parse_kv(_read(run_dir, n)) for n in names[:2])
    m0, m1 = (procstat.parse_meminfo(_read(run_dir, n)) for n in names[2:])
    s0, s1 = hostcheck.cgroup_swap_bytes(c0), hostcheck.cgroup_swap_bytes(c1)
    metrics: Metrics = {}
    events = hostcheck.cgroup_events(c0, c1)
    for k, v in events.items():
        metrics[f"host.cgroup.{k}"] = v
    memcg = run_dir / "host-memcg.json"
    if memcg.exists():
        peak = json.loads(memcg.read_text()).get("memsw_max_usage_bytes")
        if isinstance(peak, int):
            metrics["host.cgroup.memsw_peak_mib"] = peak >> 20
    if s0 is None or s1 is None:
        return metrics, None

    def machine(m: dict[str, int]) -> int:
        return (m["SwapTotal"] - m["SwapFree"]) << 10

    start = hostcheck.SwapReading(s0, machine(m0))
    end = hostcheck.SwapReading(s1, machine(m1))
    check = hostcheck.cross_check(pswpout_delta, start, end, zero_out_delta=zero_out_delta)
    metrics["host.cgroup.swap_growth_pages"] = check["cgroup_swap_growth_pages"]
    metrics["host.cgroup.swap_end_pages"] = s1 // hostcheck.PAGE
    metrics["host.cgroup.swap_share_pct"] = check["cgroup_share_of_swap_gained_pct"]
    return metrics, check


def checks(run_dir: Path) -> dict[str, object]:
    """The run's measurement checks for its summary ("host_swap": the cross-check)."""
    try:
        h0 = procstat.parse_vmstat(_read(run_dir, "host-vmstat.start"))
        h1 = procstat.parse_vmstat(_read(run_dir, "host-vmstat.end"))
    except ValueError:
        return {}
    _, check = host_cgroup_metrics(run_dir, procstat.vmstat_delta(h0, h1)["pswpout"],
                                   int(zero_swaps(h0, h1).get("swap_out_zero", 0)))
    return {} if check is None else {"host_swap": check}


def _sampled(run_dir: Path, vms: Sequence[str]) -> Metrics:
    samples = results.read_jsonl(run_dir / "samples.jsonl")
    if not samples:
        return {}
    out: Metrics = {"host.peak_usage_mib": max(s["host_usage_mib"] for s in samples),
                    "host.peak_swap_mib": max(s["swap_used_mib"] for s in samples)}
    cg = [s["cgroup_swap_mib"] for s in samples if s.get("cgroup_swap_mib") is not None]
    if cg:
        out["host.cgroup.swap_peak_mib"] = max(cg)
    for vm in vms:
        sizes = [s["vms"][vm]["actual_mib"] for s in samples
                 if s["vms"].get(vm, {}).get("actual_mib") is not None]
        if sizes:
            out[f"{vm}.balloon.min_mib"] = min(sizes)
    return out
