"""Does a benchmark still reproduce the RFC's result? (pure: summaries in, verdicts out)

The thresholds live in the scenario's [reproduction] table (rig/scenarios/quick.toml says
why each has its value); CI runs `rig bench quick --check` and fails on any FAIL line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rig.bench.results import metric_mean, metric_median, vm_names
from rig.scenario import Reproduction


@dataclass(frozen=True)
class Verdict:
    check: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.check}: {self.detail}"


def check(spec: Reproduction, summaries: dict[str, dict[str, Any]]) -> list[Verdict]:
    base, mode = summaries.get(spec.baseline), summaries.get(spec.mode)
    if base is None or mode is None:
        missing = spec.baseline if base is None else spec.mode
        return [Verdict("modes", False, f"no results for {missing}: run both "
                                        f"{spec.baseline} and {spec.mode}")]
    out = [Verdict("complete", bool(base["complete"] and mode["complete"]),
                   f"{spec.baseline} {base['runs']} run(s), {spec.mode} {mode['runs']} "
                   "run(s), all complete" if base["complete"] and mode["complete"]
                   else "a run is incomplete: its numbers cannot be trusted")]
    b_out, m_out = metric_mean(base, "host.swap_out"), metric_mean(mode, "host.swap_out")
    if b_out is None or m_out is None:
        out.append(Verdict("host swap-out", False, "host.swap_out missing"))
    else:
        ratio = b_out / max(m_out, 1.0)
        out.append(Verdict(
            "host swap-out", ratio >= spec.min_swap_out_ratio,
            f"{spec.baseline} {b_out:,.0f} / {spec.mode} {m_out:,.0f} pages = {ratio:.1f}x "
            f"(needs >= {spec.min_swap_out_ratio:g}x)"))
        if spec.min_baseline_swap_out:
            out.append(Verdict(
                f"{spec.baseline} stresses the host", b_out >= spec.min_baseline_swap_out,
                f"{spec.baseline} host swap-out {b_out:,.0f} pages "
                f"(needs >= {spec.min_baseline_swap_out:,.0f})"))
    vms = sorted(set(vm_names([base])) | set(vm_names([mode])))
    if not vms:
        out.append(Verdict("VMs", False, "no per-VM metrics in either mode's summary"))
        return out
    out.append(_per_vm_bound(mode, vms, "guest.oom_kills", "guest OOM kills",
                             spec.max_oom_kills))
    if spec.max_guest_swap_out is not None:
        out.append(_per_vm_bound(mode, vms, "guest.swap_out", f"{spec.mode} guest swap-out",
                                 spec.max_guest_swap_out))
    for vm in vms:
        # medians: one run slowed by the shared machine must not decide (quick.toml)
        records = f"{vm}.guest.records_total"
        b, m = metric_median(base, records), metric_median(mode, records)
        if b is None or m is None or b <= 0:
            out.append(Verdict(f"{vm} ebizzy records", False, f"{records} missing"))
            continue
        change = (m - b) / b * 100
        out.append(Verdict(f"{vm} ebizzy records", change >= -spec.max_records_loss_pct,
                           f"{spec.mode} {m:,.0f} vs {spec.baseline} {b:,.0f} records/s (medians) "
                           f"({change:+.1f} %, allowed -{spec.max_records_loss_pct:g} %)"))
    return out


def _per_vm_bound(summary: dict[str, Any], vms: list[str], suffix: str, check_name: str,
                  bound: float) -> Verdict:
    """Every VM's mean of ``suffix`` at most ``bound``; a missing metric fails."""
    means = {vm: metric_mean(summary, f"{vm}.{suffix}") for vm in vms}
    missing = [vm for vm, v in means.items() if v is None]
    if missing:
        return Verdict(check_name, False, f"{suffix} missing for {', '.join(missing)}")
    return Verdict(check_name, all(v is not None and v <= bound for v in means.values()),
                   ", ".join(f"{vm} {v:,.4g}" for vm, v in means.items())
                   + f" (mean per run; allowed {bound:,.4g})")
