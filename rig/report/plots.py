"""The report's plots: a run's time series (``trace``: samples.jsonl with timeline.jsonl's
commands and pressure events on the same clock) and each step's ebizzy rates
(``step_rates``), both pure; drawn as PNGs with matplotlib (``plot_trace``,
``plot_steps``); ``draw_figures`` draws every figure of a results directory."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from rig.bench import results
from rig.bench.results import Summary
from rig.report.load import ModeInfo, all_vms, read_jsonl, run_vms, scenario_of_run
from rig.vm.domain_xml import DOMAIN_PREFIX

PLOT_SIZE_IN = (9.0, 4.0)  # at PLOT_DPI: 900 x 400 px
PLOT_DPI = 100


@dataclass(frozen=True)
class Trace:
    """One run over time (s since the sampler's start)."""

    t: tuple[float, ...]
    host_usage_mib: tuple[float, ...]
    swap_used_mib: tuple[float, ...]
    actual_mib: dict[str, tuple[float | None, ...]]
    targets: dict[str, tuple[tuple[float, float], ...]]  # vm -> (t, target MiB)
    host_pressure: tuple[tuple[float, str], ...]  # (t, level)
    guest_pressure: tuple[tuple[float, str, str], ...]  # (t, vm, level)
    host_free_mib: tuple[tuple[float, float], ...] = ()  # HostMemory inputs: (t, free)


def vm_of(domain: object, vms: Sequence[str]) -> str | None:
    """The scenario VM a timeline record names (it uses libvirt domain names)."""
    if not isinstance(domain, str):
        return None
    if domain in vms:
        return domain
    short = domain.removeprefix(DOMAIN_PREFIX)
    return short if short in vms else None


def trace(samples: Sequence[Mapping[str, Any]], timeline: Sequence[Mapping[str, Any]],
          vms: Sequence[str]) -> Trace:
    """Time series of samples.jsonl, with timeline.jsonl's commands and pressure events
    put on the samples' clock through their common wall-clock time."""
    if samples:
        offset = float(samples[0]["t"]) - float(samples[0]["wall"])
    else:
        offset = -min((float(r["wall"]) for r in timeline if "wall" in r), default=0.0)
    targets: dict[str, list[tuple[float, float]]] = {vm: [] for vm in vms}
    host: list[tuple[float, str]] = []
    guest: list[tuple[float, str, str]] = []
    free: list[tuple[float, float]] = []
    for r in timeline:
        if "wall" not in r:
            continue
        t = float(r["wall"]) + offset
        if r.get("kind") == "command":
            vm = vm_of(r.get("vm"), vms)
            if vm is not None and r.get("target_mib") is not None:
                targets[vm].append((t, float(r["target_mib"])))
        elif r.get("kind") == "input" and r.get("event") == "HostPressure":
            host.append((t, str(r.get("level", "?"))))
        elif (r.get("kind") == "input" and r.get("event") == "HostMemory"
              and r.get("free_mib") is not None):
            free.append((t, float(r["free_mib"])))
        elif r.get("kind") == "input" and r.get("event") == "GuestPressure":
            vm = vm_of(r.get("vm"), vms)
            if vm is not None:
                guest.append((t, vm, str(r.get("level", "?"))))

    def actual(s: Mapping[str, Any], vm: str) -> float | None:
        v = s.get("vms", {}).get(vm, {}).get("actual_mib")
        return None if v is None else float(v)

    return Trace(
        t=tuple(float(s["t"]) for s in samples),
        host_usage_mib=tuple(float(s["host_usage_mib"]) for s in samples),
        swap_used_mib=tuple(float(s["swap_used_mib"]) for s in samples),
        actual_mib={vm: tuple(actual(s, vm) for s in samples) for vm in vms},
        targets={vm: tuple(v) for vm, v in targets.items()},
        host_pressure=tuple(host),
        guest_pressure=tuple(guest),
        host_free_mib=tuple(free),
    )


def interpolate(ts: Sequence[float], ys: Sequence[float | None], t: float) -> float | None:
    """ys at time t, linearly between samples (the nearest end outside them)."""
    pts = [(a, b) for a, b in zip(ts, ys, strict=True) if b is not None]
    if not pts:
        return None
    if t <= pts[0][0]:
        return pts[0][1]
    for (t0, y0), (t1, y1) in pairwise(pts):
        if t0 <= t <= t1:
            return y0 if t1 == t0 else y0 + (y1 - y0) * (t - t0) / (t1 - t0)
    return pts[-1][1]


@dataclass(frozen=True)
class StepRate:
    step: int
    chunks: int | None
    mean: float
    stdev: float
    runs: int


_STEP_RE = re.compile(r"^(?P<vm>[a-z][a-z0-9-]*)\.guest\.step(?P<n>\d+)\.records_s$")


def step_rates(summary: Summary, chunks: Mapping[str, Sequence[int]] | None = None
               ) -> dict[str, list[StepRate]]:
    """vm -> ebizzy records/s of each step: the mean (and stdev) over runs of the per-run
    rates, as the per-mode summary has them; chunks per step from the scenario."""
    out: dict[str, list[StepRate]] = {}
    for name, m in summary.get("metrics", {}).items():
        match = _STEP_RE.match(name)
        if not match:
            continue
        vm, n = match["vm"], int(match["n"])
        sched = (chunks or {}).get(vm, ())
        out.setdefault(vm, []).append(StepRate(
            n, sched[n - 1] if n <= len(sched) else None, float(m["mean"]),
            float(m["stdev"]), len(m.get("values", ()))))
    return {vm: sorted(v, key=lambda s: s.step) for vm, v in sorted(out.items())}


_LEVEL_COLOURS = {"low": "#e6b800", "medium": "#ff8c00", "critical": "#d62728"}
_VM_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _pyplot() -> Any:
    with warnings.catch_warnings():
        # matplotlib 3.9 calls pyparsing names that pyparsing 3.3 deprecates
        warnings.simplefilter("ignore", DeprecationWarning)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=PLOT_DPI, metadata={"Software": None})
    _pyplot().close(fig)


def plot_trace(tr: Trace, title: str, path: Path, ram_mib: int | None = None) -> None:
    """Host usage and swap (top); each VM's balloon actual, daemon targets and guest
    pressure (bottom); host pressure events marked on the usage curve."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=PLOT_SIZE_IN)
    top.plot(tr.t, tr.host_usage_mib, color="#333333", lw=1.4, label="host usage")
    top.plot(tr.t, tr.swap_used_mib, color="#7f7f7f", lw=1.2, ls="--", label="swap used")
    if ram_mib:
        top.axhline(ram_mib, color="#bbbbbb", lw=0.8, ls=":", label="host RAM")
    if tr.host_free_mib:
        top.plot([t for t, _ in tr.host_free_mib], [f for _, f in tr.host_free_mib],
                 color="#17becf", lw=0.9, ls="-.", label="free (daemon's input)")
    for level, colour in _LEVEL_COLOURS.items():
        pts = [(t, interpolate(tr.t, tr.host_usage_mib, t))
               for t, lv in tr.host_pressure if lv == level]
        if pts:
            top.plot([p[0] for p in pts], [p[1] for p in pts], "v", color=colour, ms=5,
                     ls="none", label=f"host pressure {level} ({len(pts)})")
    top.set_ylabel("host MiB")
    top.set_ylim(0, max([*tr.host_usage_mib, *tr.swap_used_mib, ram_mib or 0, 1]) * 1.12)
    top.set_title(title, fontsize=10)
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    top.grid(alpha=0.3)
    highest = 1.0
    for i, (vm, ys) in enumerate(tr.actual_mib.items()):
        colour = _VM_COLOURS[i % len(_VM_COLOURS)]
        highest = max([highest, *(y for y in ys if y is not None),
                       *(v for _, v in tr.targets.get(vm, ()))])
        bottom.plot(tr.t, [math.nan if y is None else y for y in ys], color=colour, lw=1.4,
                    label=f"{vm} actual")
        tg = tr.targets.get(vm, ())
        if tg:
            xs = [t for t, _ in tg] + ([tr.t[-1]] if tr.t and tr.t[-1] > tg[-1][0] else [])
            ys2 = [v for _, v in tg] + ([tg[-1][1]] if len(xs) > len(tg) else [])
            bottom.step(xs, ys2, where="post", color=colour, lw=0.9, ls="--",
                        label=f"{vm} target ({len(tg)} commands)")
        gp = [t for t, v, _ in tr.guest_pressure if v == vm]
        if gp:
            bottom.plot(gp, [interpolate(tr.t, ys, t) for t in gp], "o", mfc="none",
                        color=colour, ms=6, ls="none",
                        label=f"{vm} guest pressure ({len(gp)})")
    bottom.set_ylabel("VM memory MiB")
    bottom.set_ylim(0, highest * 1.08)
    bottom.set_xlabel("time since the workload started (s)")
    bottom.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    bottom.grid(alpha=0.3)
    if tr.t:
        bottom.set_xlim(min(tr.t), max(tr.t))
    fig.subplots_adjust(left=0.07, right=0.74, top=0.92, bottom=0.12, hspace=0.12)
    _save(fig, path)


def plot_steps(rates: Mapping[str, Sequence[StepRate]], title: str, path: Path,
               ymax: float | None = None) -> None:
    """Grouped bars: ebizzy records/s per step, one bar per VM, chunks written above."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=PLOT_SIZE_IN)
    width = 0.8 / max(1, len(rates))
    for i, (vm, steps) in enumerate(rates.items()):
        xs = [s.step + (i - (len(rates) - 1) / 2) * width for s in steps]
        errs = [s.stdev if s.runs > 1 else 0.0 for s in steps]
        bars = ax.bar(xs, [s.mean for s in steps], width * 0.95, yerr=errs, capsize=3,
                      color=_VM_COLOURS[i % len(_VM_COLOURS)], label=vm)
        for bar, s in zip(bars, steps, strict=True):
            if s.chunks is not None:
                ax.annotate(f"{s.chunks} ch", (bar.get_x() + bar.get_width() / 2,
                                               bar.get_height()),
                            ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                            textcoords="offset points")
    steps_all = sorted({s.step for v in rates.values() for s in v})
    ax.set_xticks(steps_all, [f"step {n}" for n in steps_all])
    ax.set_ylabel("records/s")
    if ymax:
        ax.set_ylim(0, ymax * 1.12)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.88, top=0.92, bottom=0.08)
    _save(fig, path)


def draw_figures(results_dir: Path, modes: Sequence[ModeInfo], out: Path,
                 timeline_runs: int | None = None) -> dict[str, str]:
    """Draw every PNG into `out`; file name -> caption, in report order. A timeline for
    each run, or for each mode's first ``timeline_runs`` runs only (an export)."""
    figures: dict[str, str] = {}
    vms = all_vms(modes)
    all_rates: dict[str, dict[str, list[StepRate]]] = {}
    for m in modes:
        first = results_dir / m.name / f"{results.RUN_PREFIX}{m.runs[0].n}" if m.runs else None
        sc = scenario_of_run(first, m.summary.get("scenario", "?")) if first else None
        chunks = ({s.vm: s.chunks for s in sc.workload.schedules}
                  if sc and sc.workload else {})
        all_rates[m.name] = step_rates(m.summary, chunks)
    ymax = max((s.mean + s.stdev for r in all_rates.values() for v in r.values() for s in v),
               default=0.0)
    for m in modes:
        rates = all_rates[m.name]
        if rates:
            name = f"ebizzy-{m.name}.png"
            n = m.summary.get("runs", 0)
            plot_steps(rates, f"{m.name}: ebizzy records/s per step (mean of {n} run(s))",
                       out / name, ymax)
            figures[name] = f"{m.name}: ebizzy records/s per step and VM"
        for r in m.runs[:timeline_runs]:
            rd = results_dir / m.name / f"{results.RUN_PREFIX}{r.n}"
            samples = read_jsonl(rd / "samples.jsonl")
            if not samples:
                continue
            tr = trace(samples, read_jsonl(rd / "timeline.jsonl"), run_vms(r.metrics) or vms)
            sc = scenario_of_run(rd, m.summary.get("scenario", "?"))
            name = f"timeline-{m.name}-run-{r.n}.png"
            state = "" if r.state == "complete" else f" ({r.state})"
            plot_trace(tr, f"{m.name} run {r.n}{state}: host memory and balloons", out / name,
                       sc.host.ram_mib if sc else None)
            figures[name] = f"{m.name} run {r.n}{state}: host memory, swap and balloons"
    return figures
