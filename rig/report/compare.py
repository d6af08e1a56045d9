"""Comparing two modes' metrics (pure: summary dicts in, rows of strings out): the metrics
a comparison covers (``metric_specs``, primary or secondary), the change in percent,
Welch's test and confidence interval over the runs, Holm's correction of the secondary
metrics, their formatting, and the rows of a mode-vs-baseline comparison table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rig.bench.results import Summary, metric_stats
from rig.report.holm import holm
from rig.report.tables import fmt
from rig.report.welch import WelchResult, confidence_interval, welch

ALPHA = 0.05
CONFIDENCE = 0.95


@dataclass(frozen=True)
class MetricSpec:
    """A metric of the comparison: its label, name (a VM's without the "<vm>." prefix in
    VM_SPECS), decimals, and whether it is primary: one of the few outcomes named in
    advance that the benchmark is about, judged at ALPHA on its own; the others are
    secondary, corrected together for multiple comparisons (Holm)."""

    label: str
    name: str
    decimals: int
    primary: bool = False


# The RFC's per-VM columns (tables.VM_COLUMNS) with the units and precision of a
# comparison (CPU% keeps a decimal: a difference under 1 % would vanish otherwise).
# Primary per VM: the workload's score, guest swap-out and OOM kills (the reproduction
# gate's guest figures, rig/scenarios/quick.toml); guest swap-in only follows swap-out.
VM_SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("QEMU elapsed (s)", "qemu.elapsed_s", 2),
    MetricSpec("QEMU user (s)", "qemu.user_s", 2),
    MetricSpec("QEMU sys (s)", "qemu.sys_s", 2),
    MetricSpec("QEMU CPU%", "qemu.cpu_pct", 1),
    MetricSpec("QEMU major faults", "qemu.major_faults", 0),
    MetricSpec("QEMU minor faults", "qemu.minor_faults", 0),
    MetricSpec("total recs (records/s)", "guest.records_total", 0, primary=True),
    MetricSpec("read rate (MB/s)", "guest.mb_s", 1, primary=True),
    MetricSpec("idle touch time (s)", "guest.touch_s", 2, primary=True),
    MetricSpec("guest swap in (pages)", "guest.swap_in", 0),
    MetricSpec("guest swap out (pages)", "guest.swap_out", 0, primary=True),
    MetricSpec("guest OOM kills", "guest.oom_kills", 0, primary=True),
    MetricSpec("balloon minimum (MiB)", "balloon.min_mib", 0),
)
HOST_SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("host swap in (pages)", "host.swap_in", 0),
    MetricSpec("host swap out (pages)", "host.swap_out", 0, primary=True),
    MetricSpec("host peak usage (MiB)", "host.peak_usage_mib", 0),
    MetricSpec("host peak swap (MiB)", "host.peak_swap_mib", 0),
    MetricSpec("workload wall time (s)", "elapsed_s", 2),
)


def metric_specs(vms: Sequence[str]) -> list[MetricSpec]:
    """The metrics a comparison covers: host first, then each VM's."""
    specs = list(HOST_SPECS)
    for vm in vms:
        specs += [MetricSpec(f"{vm} {s.label}", f"{vm}.{s.name}", s.decimals, s.primary)
                  for s in VM_SPECS]
    return specs


def primary_labels() -> str:
    """The primary metrics in words, for the report's text."""
    host = [s.label for s in HOST_SPECS if s.primary]
    vm = [s.label for s in VM_SPECS if s.primary]
    return f"{', '.join(host)}; per VM: {', '.join(vm)}"


def pct_change(base: float | None, other: float | None) -> float | None:
    """(other - base) / base in percent; 0 when both are 0; None when base is 0 alone or
    either is missing."""
    if base is None or other is None:
        return None
    if base == 0:
        return 0.0 if other == 0 else None
    return (other - base) / abs(base) * 100.0


def fmt_pct(change: float | None) -> str:
    if change is None:
        return "n/a"
    return "0.0%" if round(change, 1) == 0 else f"{change:+.1f}%"


def fmt_p(r: WelchResult | None) -> str:
    """Welch's two-sided p-value; n/a when the test cannot be done."""
    if r is None:
        return "n/a"
    if r.p < 0.001:
        return "<0.001"
    return f"{r.p:.3g}" if r.p < 0.1 else f"{r.p:.2f}"


def fmt_signed(value: float, decimals: int) -> str:
    """A signed number ("+1,234", "-0.50"); unsigned what rounds to zero ("0", "0.00")."""
    if round(value, decimals) == 0:
        return fmt(0.0, decimals)
    return f"{value:+,.{decimals}f}"


def fmt_ci(r: WelchResult | None, decimals: int) -> str:
    """The CONFIDENCE interval of mean(other) - mean(base), "low to high"; n/a when the
    test cannot be done or there is no spread at all."""
    ci = None if r is None else confidence_interval(r, CONFIDENCE)
    if ci is None:
        return "n/a"
    return f"{fmt_signed(ci[0], decimals)} to {fmt_signed(ci[1], decimals)}"


def verdict(primary: bool, r: WelchResult | None, holm_rejects: bool | None,
            alpha: float = ALPHA) -> str:
    """The significance cell: a primary metric at p < alpha on its own ("yes (primary)",
    "no (primary)", "n/a (primary)"), a secondary one by Holm's procedure over the
    table's secondary p-values ("yes (Holm)", "no (Holm)", "n/a")."""
    if primary:
        if r is None:
            return "n/a (primary)"
        return f"{'yes' if r.p < alpha else 'no'} (primary)"
    if r is None or holm_rejects is None:
        return "n/a"
    return f"{'yes' if holm_rejects else 'no'} (Holm)"


def fmt_stats(m: dict[str, Any] | None, decimals: int) -> str:
    """mean, and ± sample stdev when there are several runs."""
    if m is None:
        return "-"
    text = fmt(float(m["mean"]), decimals)
    if len(m.get("values", ())) > 1:
        text += f" ± {fmt(float(m['stdev']), decimals)}"
    return text


COMPARISON_HEADERS = ("metric", "{base}", "{other}", "change",
                      f"{CONFIDENCE * 100:.0f} % CI of the difference", "p",
                      "significant")


def comparison_headers(base: str, other: str) -> list[str]:
    return [h.format(base=base, other=other) for h in COMPARISON_HEADERS]


def comparison_rows(base: Summary, other: Summary, vms: Sequence[str],
                    alpha: float = ALPHA) -> list[list[str]]:
    """One row per metric either mode has: the two means (± stdev over runs), the change
    of `other` against `base`, the confidence interval of the difference of the means
    (other - base, Welch), Welch's p over the runs and the verdict: primary metrics at
    p < alpha each, secondary ones by Holm's procedure over this table's secondary
    p-values. Means are those of the summaries: a rate (records/s, CPU%) is the mean of
    the per-run rates, never recomputed from totals."""
    found = []
    for spec in metric_specs(vms):
        b, o = metric_stats(base, spec.name), metric_stats(other, spec.name)
        if b is None and o is None:
            continue
        r = None if b is None or o is None else welch(b["values"], o["values"])
        found.append((spec, b, o, r))
    rejects = holm([None if spec.primary or r is None else r.p for spec, _, _, r in found],
                   alpha)
    rows = []
    for (spec, b, o, r), rejected in zip(found, rejects, strict=True):
        change = pct_change(None if b is None else float(b["mean"]),
                            None if o is None else float(o["mean"]))
        rows.append([spec.label, fmt_stats(b, spec.decimals), fmt_stats(o, spec.decimals),
                     fmt_pct(change), fmt_ci(r, spec.decimals), fmt_p(r),
                     verdict(spec.primary, r, rejected, alpha)])
    return rows
