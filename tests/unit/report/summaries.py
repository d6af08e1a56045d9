"""Per-mode summaries for the report's tests, built as the rig builds them
(results.aggregate)."""

from rig.bench import results

VMS = ["vm-down", "vm-up"]


def mode_summary(mode, per_run):
    """A per-mode summary (results.aggregate) of runs given as metric dicts."""
    runs = [results.RunSummary("quick", mode, n, True, m, {}) for n, m in
            enumerate(per_run, 1)]
    return results.aggregate(runs)


def run_metrics_dict(**over):
    m = {"host.swap_in": 10, "host.swap_out": 1000}
    for vm in VMS:
        m |= {f"{vm}.qemu.elapsed_s": 100.0, f"{vm}.qemu.user_s": 50.0,
              f"{vm}.qemu.sys_s": 1.0, f"{vm}.qemu.cpu_pct": 51.0,
              f"{vm}.qemu.major_faults": 10, f"{vm}.qemu.minor_faults": 100,
              f"{vm}.guest.records_total": 9000, f"{vm}.guest.swap_in": 0,
              f"{vm}.guest.swap_out": 0, f"{vm}.guest.oom_kills": 0}
    return m | over
