"""Comparing two modes' metrics (pure: summary dicts in, rows of strings out): the metrics
a comparison covers (``metric_specs``), the change in percent, Welch's significance over
the runs, their formatting, and the rows of a mode-vs-baseline comparison table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rig.bench.results import Summary, metric_stats
from rig.report.tables import fmt
from rig.report.welch import welch

ALPHA = 0.05


@dataclass(frozen=True)
class MetricSpec:
    label: str
    name: str
    decimals: int


# The RFC's per-VM columns (tables.VM_COLUMNS) with the units and precision of a
# comparison (CPU% keeps a decimal: a difference under 1 % would vanish otherwise).
VM_SPECS: tuple[tuple[str, str, int], ...] = (
    ("QEMU elapsed (s)", "qemu.elapsed_s", 2),
    ("QEMU user (s)", "qemu.user_s", 2),
    ("QEMU sys (s)", "qemu.sys_s", 2),
    ("QEMU CPU%", "qemu.cpu_pct", 1),
    ("QEMU major faults", "qemu.major_faults", 0),
    ("QEMU minor faults", "qemu.minor_faults", 0),
    ("total recs (records/s)", "guest.records_total", 0),
    ("guest swap in (pages)", "guest.swap_in", 0),
    ("guest swap out (pages)", "guest.swap_out", 0),
    ("guest OOM kills", "guest.oom_kills", 0),
    ("balloon minimum (MiB)", "balloon.min_mib", 0),
)
HOST_SPECS: tuple[tuple[str, str, int], ...] = (
    ("host swap in (pages)", "host.swap_in", 0),
    ("host swap out (pages)", "host.swap_out", 0),
    ("host peak usage (MiB)", "host.peak_usage_mib", 0),
    ("host peak swap (MiB)", "host.peak_swap_mib", 0),
    ("workload wall time (s)", "elapsed_s", 2),
)


def metric_specs(vms: Sequence[str]) -> list[MetricSpec]:
    """The metrics a comparison covers: host first, then each VM's."""
    specs = [MetricSpec(label, name, d) for label, name, d in HOST_SPECS]
    for vm in vms:
        specs += [MetricSpec(f"{vm} {label}", f"{vm}.{suffix}", d)
                  for label, suffix, d in VM_SPECS]
    return specs


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


def fmt_p(p: float) -> str:
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.3g}" if p < 0.1 else f"p={p:.2f}"


def significance(base: Sequence[float], other: Sequence[float], alpha: float = ALPHA) -> str:
    """"yes (p=…)" when Welch's two-sided p < alpha, "no (p=…)" otherwise, "n/a" when the
    test cannot be done (fewer than 2 runs on a side, or no spread and different means)."""
    r = welch(base, other)
    if r is None:
        return "n/a"
    return f"{'yes' if r.p < alpha else 'no'} ({fmt_p(r.p)})"


def fmt_stats(m: dict[str, Any] | None, decimals: int) -> str:
    """mean, and ± sample stdev when there are several runs."""
    if m is None:
        return "-"
    text = fmt(float(m["mean"]), decimals)
    if len(m.get("values", ())) > 1:
        text += f" ± {fmt(float(m['stdev']), decimals)}"
    return text


COMPARISON_HEADERS = ("metric", "{base}", "{other}", "change", "significant (Welch, p < 0.05)")


def comparison_headers(base: str, other: str) -> list[str]:
    return [h.format(base=base, other=other) for h in COMPARISON_HEADERS]


def comparison_rows(base: Summary, other: Summary, vms: Sequence[str]) -> list[list[str]]:
    """One row per metric either mode has: the two means (± stdev over runs), the change
    of `other` against `base`, and whether Welch's t-test over the runs finds it
    significant. Means are those of the summaries: a rate (records/s, CPU%) is the mean
    of the per-run rates, never recomputed from totals."""
    rows = []
    for spec in metric_specs(vms):
        b, o = metric_stats(base, spec.name), metric_stats(other, spec.name)
        if b is None and o is None:
            continue
        change = pct_change(None if b is None else float(b["mean"]),
                            None if o is None else float(o["mean"]))
        sig = "n/a" if b is None or o is None else significance(b["values"], o["values"])
        rows.append([spec.label, fmt_stats(b, spec.decimals), fmt_stats(o, spec.decimals),
                     fmt_pct(change), sig])
    return rows
