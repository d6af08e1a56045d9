"""A run's metrics, computed from its raw files alone (so anyone can recompute them).

Raw files of a run directory (written by rig.bench):
  host-vmstat.start / .end      the host's /proc/vmstat around the workload
  <vm>.qemu-stat.start / .end   /proc/<qemu pid>/stat around the workload
  <vm>.stream.txt               what the VM's workload script printed (rig.workload)
  timing.json                   {"elapsed_s": workload wall time, "clk_tck": ...}
  samples.jsonl                 host usage, swap and balloons once a second
  timeline.jsonl                the daemon's inputs and commands (modes with a daemon)
  autoballoond.stat             /proc/<daemon pid>/stat at the end of the workload
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rig.bench import procstat, results
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
    metrics.update(results.host_metrics(procstat.vmstat_delta(h0, h1)))
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
        for step in run.steps:
            if step.result is not None:
                metrics[f"{vm}.guest.step{step.n}.records_s"] = step.result.records_per_s
        delta = procstat.vmstat_delta(procstat.parse_vmstat(run.vmstat_start),
                                      procstat.parse_vmstat(run.vmstat_end))
        oom = procstat.parse_oom_kills(delta)
        metrics.update(results.guest_metrics(
            vm, records_total=run.records_total, vmstat_delta=delta,
            oom_kills=oom if oom is not None else run.dmesg_oom_kills))
        metrics[f"{vm}.guest.failed_steps"] = run.failed_steps
    metrics.update(_sampled(run_dir, vms))
    daemon_stat = run_dir / "autoballoond.stat"
    if daemon_stat.exists():  # the daemon's own CPU over its life (it starts with the run)
        st = procstat.parse_proc_stat(daemon_stat.read_text())
        metrics["daemon.cpu_s"] = round((st.utime_ticks + st.stime_ticks) / clk_tck, 2)
    timeline = run_dir / "timeline.jsonl"
    if timeline.exists():
        records = results.read_jsonl(timeline)
        metrics["daemon.commands"] = sum(r.get("kind") == "command" for r in records)
        metrics["daemon.host_pressure_events"] = sum(
            r.get("event") == "HostPressure" for r in records)
        metrics["daemon.guest_pressure_events"] = sum(
            r.get("event") == "GuestPressure" for r in records)
    return complete, metrics


def _sampled(run_dir: Path, vms: Sequence[str]) -> Metrics:
    samples = results.read_jsonl(run_dir / "samples.jsonl")
    if not samples:
        return {}
    out: Metrics = {"host.peak_usage_mib": max(s["host_usage_mib"] for s in samples),
                    "host.peak_swap_mib": max(s["swap_used_mib"] for s in samples)}
    for vm in vms:
        sizes = [s["vms"][vm]["actual_mib"] for s in samples
                 if s["vms"].get(vm, {}).get("actual_mib") is not None]
        if sizes:
            out[f"{vm}.balloon.min_mib"] = min(sizes)
    return out
