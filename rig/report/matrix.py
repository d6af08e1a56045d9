"""A benchmark matrix's report: the matrix of every scenario x every mode at the top, then
a section per scenario (rig.bench.matrix runs the matrix).

    rig matrix-report results/matrix/<stamp>   -> results/matrix/<stamp>/report/report.{md,html}
                                                  and each <scenario>/report/ (report.py)

The matrix has one group of rows per scenario: host swap-out, each VM's workload score,
guest swap-out and OOM kills summed over the VMs; one column per mode, each value the
median over the mode's complete runs; the best value of a row in bold. Then the host
swap-out of every mode as a ratio to vanilla's and free page reporting's, and per
scenario: the RFC-layout tables (``tables``), every mode against vanilla (``compare``)
and a link to the scenario's own full report with plots (``report.write_report``).

Pure (``build`` and the rows: summaries in, document out) apart from ``load_scenario``
and ``write_matrix_report``. The text names directories relative to the matrix
directory, never by the machine's absolute paths.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rig.bench import results
from rig.bench.matrix import MatrixSpec, read_spec, rerun_command
from rig.bench.results import Summary, metric_median, metric_stats, score_of, vm_names
from rig.errors import UsageError
from rig.report import tables
from rig.report.compare import comparison_headers, comparison_rows
from rig.report.document import (
    Block,
    Code,
    Heading,
    Para,
    Table,
    bold,
    table,
    to_html,
    to_markdown,
)
from rig.report.load import REPORT_DIR, load_results, scenario_of_run
from rig.report.report import choose_baseline, write_report

#: Modes the host swap-out of every mode is put in ratio to, when a scenario has them.
RATIO_BASES = ("vanilla", "free-page-reporting")

#: A workload score's label in the matrix and its decimals, by its metric.
_SCORE_LABELS = {"records_total": ("ebizzy records/s", 0), "mb_s": ("read MB/s", 1),
                 "touch_s": ("idle touch time (s)", 2)}


@dataclass(frozen=True)
class ScenarioResults:
    """One scenario of a matrix: its set ("tuning", "validation"; None if unknown), its
    description and its per-mode summaries (results.Summary) in the matrix's mode order;
    none when it has not run yet."""

    name: str
    set: str | None
    description: str
    summaries: tuple[Summary, ...] = ()

    def summary(self, mode: str) -> Summary | None:
        return next((s for s in self.summaries if s.get("mode") == mode), None)


@dataclass(frozen=True)
class MatrixRow:
    """One row of the matrix: a metric of a scenario, its value in each mode (None:
    the mode has none), the decimals it is shown with and which way is better."""

    scenario: str
    metric: str
    values: tuple[float | None, ...]
    decimals: int
    higher_is_better: bool

    def shown(self, value: float) -> float:
        """The value as the table shows it (a small count's non-integer median with one
        decimal): the best is judged on what a reader sees, so equal-looking values tie."""
        return round(value, _decimals(value, self.decimals))

    def best(self) -> tuple[int, ...]:
        """The indices of the best value(s); every tie; none without values."""
        have = [self.shown(v) for v in self.values if v is not None]
        if not have:
            return ()
        target = max(have) if self.higher_is_better else min(have)
        return tuple(i for i, v in enumerate(self.values)
                     if v is not None and self.shown(v) == target)

    def cells(self) -> list[str]:
        """The mode cells: the value ("-" when missing), the best ones in bold."""
        best = self.best()
        return [("-" if v is None else
                 (bold if i in best else str)(tables.fmt(v, _decimals(v, self.decimals))))
                for i, v in enumerate(self.values)]


def _decimals(value: float, decimals: int) -> int:
    """A small count's median between two runs (0.5 OOM kills) keeps a decimal."""
    return decimals if decimals or abs(value) >= 100 or float(value).is_integer() else 1


def summed_median(summary: Summary | None, names: Sequence[str]) -> float | None:
    """The median over a mode's runs of the sum of `names` within each run (the runs that
    have every one of them); None when a metric is missing."""
    if summary is None or not names:
        return None
    stats = [metric_stats(summary, n) for n in names]
    if any(s is None for s in stats):
        return None
    per_run: list[dict[int, float]] = []
    for s in stats:
        assert s is not None
        runs, values = s.get("from_runs"), s.get("values")
        if not runs or not values or len(runs) != len(values):  # fall back on medians
            return sum(float(metric_median(summary, n) or 0.0) for n in names)
        per_run.append(dict(zip(runs, values, strict=True)))
    common = sorted(set.intersection(*(set(m) for m in per_run)))
    if not common:
        return None
    return float(statistics.median(sum(m[r] for m in per_run) for r in common))


def scenario_rows(sr: ScenarioResults, modes: Sequence[str]) -> list[MatrixRow]:
    """The matrix rows of one scenario (none when it has no results)."""
    if not sr.summaries:
        return []
    per_mode = [sr.summary(m) for m in modes]

    def row(metric: str, values: Sequence[float | None], decimals: int,
            higher: bool = False) -> MatrixRow:
        return MatrixRow(sr.name, metric, tuple(values), decimals, higher)

    def median(name: str) -> list[float | None]:
        return [None if s is None else metric_median(s, name) for s in per_mode]

    vms = vm_names(sr.summaries)
    rows = [row("host swap-out (pages)", median("host.swap_out"), 0)]
    for vm in vms:
        found = next((f for s in sr.summaries if (f := score_of(s, vm)) is not None), None)
        if found is None:
            continue
        name, score = found
        label, decimals = _SCORE_LABELS.get(score.metric, (score.metric, 2))
        rows.append(row(f"{vm} {label}", median(name), decimals, score.higher_is_better))
    rows.append(row("guest swap-out (pages, sum of VMs)",
                    [summed_median(s, [f"{vm}.guest.swap_out" for vm in vms])
                     for s in per_mode], 0))
    rows.append(row("guest OOM kills (sum of VMs)",
                    [summed_median(s, [f"{vm}.guest.oom_kills" for vm in vms])
                     for s in per_mode], 0))
    return rows


MATRIX_CAPTION = (
    "Each value is the median over the mode's complete runs; guest swap-out and OOM kills "
    "are summed over the scenario's VMs within each run first. Bold: the best value of the "
    "row (every tie); lower is better for swap-out, OOM kills and idle touch time, higher "
    "for ebizzy records/s and read MB/s. \"-\": the mode has no value (no complete run), "
    "and cannot be best.")


def matrix_table(scenarios: Sequence[ScenarioResults], modes: Sequence[str]) -> Table:
    """The matrix: scenario, metric, one column per mode, the best mode(s)."""
    rows = []
    for sr in scenarios:
        for i, r in enumerate(scenario_rows(sr, modes)):
            best = ", ".join(modes[j] for j in r.best()) or "-"
            rows.append([sr.name if i == 0 else "", r.metric, *r.cells(), best])
    return table(["scenario", "metric", *modes, "best"], rows, MATRIX_CAPTION)


def matrix_markdown(scenarios: Sequence[ScenarioResults], modes: Sequence[str]) -> str:
    return to_markdown([matrix_table(scenarios, modes)])


def fmt_ratio(value: float | None, base: float | None) -> str:
    """value / base; n/a when either is missing or base is 0."""
    if value is None or base is None or base == 0:
        return "n/a"
    r = value / base
    return f"{r:,.2f}" if r == 0 or r >= 0.1 else f"{r:.2g}"


def ratio_rows(scenarios: Sequence[ScenarioResults], modes: Sequence[str]
               ) -> list[list[str]]:
    """Per scenario and base mode (RATIO_BASES, those it has): every mode's median host
    swap-out divided by the base's."""
    rows = []
    for sr in scenarios:
        for base in RATIO_BASES:
            bs = sr.summary(base)
            if bs is None or base not in modes:
                continue
            b = metric_median(bs, "host.swap_out")
            rows.append([sr.name, base, *(
                fmt_ratio(None if (s := sr.summary(m)) is None
                          else metric_median(s, "host.swap_out"), b) for m in modes)])
    return rows


def _incomplete(scenarios: Sequence[ScenarioResults], modes: Sequence[str]) -> list[str]:
    out = []
    for sr in scenarios:
        if not sr.summaries:
            out.append(f"{sr.name} (not run yet)")
            continue
        for m in modes:
            s = sr.summary(m)
            if s is None:
                out.append(f"{sr.name} {m} (not run yet)")
            else:
                out += [f"{sr.name} {m} run {n}" for n in s.get("incomplete_runs", [])]
    return out


def scenario_section(sr: ScenarioResults) -> list[Block]:
    """A scenario's section: what it is, its tables, its modes against vanilla."""
    b: list[Block] = [Heading(2, f"{sr.name} ({sr.set} set)" if sr.set else sr.name)]
    if sr.description:
        b.append(Para(sr.description))
    summaries = list(sr.summaries)
    if not summaries:
        b.append(Para("No results yet."))
        return b
    rep = f"{sr.name}/{REPORT_DIR}/report"
    link = f"../{rep}"  # from <matrix>/report/, where this report is
    b.append(Para(f"Its results are in `{sr.name}/` (a `rig bench` results directory); "
                  f"its full report, with plots, the environment and the raw-file check: "
                  f"[{rep}.md]({link}.md) ([HTML]({link}.html))."))
    b.append(table(tables.HOST_HEADERS, tables.host_rows(summaries),
                   "Host swap (pages; mean of runs)"))
    b.append(table(tables.vm_headers(summaries), tables.vm_rows(summaries),
                   "Per VM: QEMU process (s, CPU%, faults); guest: the workload's score, "
                   "swap (pages), OOM kills; means of runs"))
    names = [s["mode"] for s in summaries]
    baseline = choose_baseline(names, None)
    base = summaries[names.index(baseline)]
    vms = vm_names(summaries)
    for s in summaries:
        if s["mode"] == baseline:
            continue
        b.append(Heading(3, f"{sr.name}: {s['mode']} vs {baseline}"))
        b.append(table(comparison_headers(baseline, s["mode"]),
                       comparison_rows(base, s, vms)))
    return b


def build(stamp: str, spec: MatrixSpec, scenarios: Sequence[ScenarioResults]
          ) -> tuple[str, list[Block]]:
    """The matrix report as a document (pure)."""
    modes = list(spec.modes)
    where = f"<results>/matrix/{stamp}"
    title = f"Benchmark matrix: {stamp}"
    sets = ", ".join(f"{s.name} ({s.set or 'no set'})" for s in scenarios)
    missing = _incomplete(scenarios, modes)
    b: list[Block] = [
        Heading(1, title),
        Para(f"Scenarios: {sets}; modes: {', '.join(modes)}; {spec.runs} run(s) of every "
             "mode of every scenario, scenario by scenario, the modes interleaved within "
             "each (run 1 of every mode, then run 2, ...), every run on a fresh host. "
             f"The matrix directory is `{where}`; each scenario's directory in it "
             "(`<scenario>/`) is laid out like a `rig bench` results directory. Every "
             "number comes from the per-mode summaries (docs/summary-json.md)."),
        Para("Runs not counted: " + "; ".join(missing) + "." if missing
             else "Every run is complete."),
        Heading(2, "The matrix"),
        matrix_table(scenarios, modes),
    ]
    ratios = ratio_rows(scenarios, modes)
    if ratios:
        b += [Heading(2, "Host swap-out against vanilla and free page reporting"),
              table(["scenario", "divided by", *modes], ratios,
                    "Each mode's median host swap-out divided by the base mode's (n/a: "
                    "the base swapped out nothing, or a mode has no value)")]
    b += [Heading(2, "How to rerun this"),
          Code(f"{rerun_command(spec)}\nrig matrix-report {where}"),
          Para("The per-scenario comparisons below: change = (mode - vanilla) / vanilla; "
               "Welch's 95 % CI of the difference and p over the runs; primary metrics at "
               "p < 0.05 each, the rest with Holm's correction (each scenario's full "
               "report says more). Means ± sample standard deviation over runs.")]
    for sr in scenarios:
        b += scenario_section(sr)
    return title, b


# --- I/O ---------------------------------------------------------------------------------

def load_scenario(d: Path, name: str, modes: Sequence[str]) -> ScenarioResults:
    """A scenario directory of a matrix (none of its runs may have happened yet)."""
    infos = []
    if d.is_dir():
        try:
            infos = load_results(d)
        except UsageError:  # no mode directory with runs yet
            infos = []
    by_mode = {m.name: m for m in infos if m.summary}
    summaries = tuple(by_mode[m].summary for m in modes if m in by_mode)
    sc = None
    for m in infos:
        for r in m.runs:
            sc = scenario_of_run(d / m.name / f"{results.RUN_PREFIX}{r.n}", name)
            if sc is not None:
                break
        if sc is not None:
            break
    return ScenarioResults(name, sc.bench.set if sc else None,
                           sc.description if sc else "", summaries)


def write_matrix_report(d: Path, embed_images: bool = True,
                        timeline_runs: int | None = None) -> Path:
    """Write every scenario's own report (report.write_report, `embed_images` and
    `timeline_runs` as there)
    and the matrix report, <d>/report/report.md and report.html; return report.md. The
    text names the matrix directory <results>/matrix/<stamp>, its stamp from matrix.json
    (so a copy of it reads the same)."""
    spec = read_spec(d)
    stamp = spec.stamp or d.name
    loaded = []
    for name in spec.scenarios:
        sr = load_scenario(d / name, name, spec.modes)
        if sr.summaries:
            write_report(d / name, shown_as=f"<results>/matrix/{stamp}/{name}",
                         embed_images=embed_images, timeline_runs=timeline_runs)
        loaded.append(sr)
    title, blocks = build(stamp, spec, loaded)
    out = d / REPORT_DIR
    out.mkdir(exist_ok=True)
    md = out / "report.md"
    md.write_text(to_markdown(blocks))
    (out / "report.html").write_text(to_html(blocks, title, {}))
    return md


def load_matrix(d: Path) -> tuple[MatrixSpec, list[ScenarioResults]]:
    """A matrix directory's spec and scenarios (for printing the matrix)."""
    spec = read_spec(d)
    return spec, [load_scenario(d / n, n, spec.modes) for n in spec.scenarios]
