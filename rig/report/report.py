"""A benchmark's report for reviewers: report.md, report.html and PNG plots.

    rig report results/<scenario>/<stamp>      -> results/<scenario>/<stamp>/report/

Every number comes from the summaries (docs/summary-json.md) and the raw files of the
runs: tables and comparisons from the per-mode summaries (the per-run values they
list feed Welch's t-test and confidence intervals), plots from samples.jsonl and
timeline.jsonl, the environment from env.json. Each run's summary is also checked
against a recomputation from its raw files (rig.bench.run_metrics).

This module assembles the document (``build``) and writes it (``write_report``), with
the overview, rerun and environment tables it has on its own. The rest of the report:
``load`` (the results directory), ``tables`` (the RFC's layout), ``compare`` (metrics
with statistics, on ``welch`` and ``holm``), ``published`` (the RFC's numbers),
``plots`` and ``document`` (the document model, rendered as Markdown and HTML).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rig.bench.results import metric_stats
from rig.errors import UsageError
from rig.report import tables
from rig.report.compare import (
    comparison_headers,
    comparison_rows,
    fmt_stats,
    primary_labels,
)
from rig.report.document import (
    Block,
    Code,
    Figure,
    Heading,
    Para,
    table,
    to_html,
    to_markdown,
)
from rig.report.load import REPORT_DIR, ModeInfo, all_vms, load_results
from rig.report.plots import draw_figures
from rig.report.published import (
    PUBLISHED_LABEL,
    published_headers,
    published_host_rows,
    published_rows,
    published_vm_rows,
)

#: The strongest peer without a daemon, and the modes compared with it beside the
#: baseline comparisons (when both are in the results).
PEER = "free-page-reporting"
PEER_CHALLENGERS = ("auto", "auto+fpr")


def overview_rows(modes: Sequence[ModeInfo]) -> list[list[str]]:
    rows = []
    for m in modes:
        env = _mode_env(m)
        wall = metric_stats(m.summary, "elapsed_s")
        bad = m.summary.get("incomplete_runs", [])
        rows.append([m.name, str(m.summary.get("runs", 0)),
                     ", ".join(str(n) for n in bad) or "none",
                     str(env.get("policy") or "none"), str(env.get("accel", "?")),
                     fmt_stats(wall, 1)])
    return rows


OVERVIEW_HEADERS = ("mode", "complete runs", "incomplete runs", "daemon policy",
                    "accelerator", "workload wall time (s)")


def _mode_env(m: ModeInfo) -> dict[str, Any]:
    for r in m.runs:
        if r.state == "complete" and r.env:
            return r.env
    return next((r.env for r in m.runs if r.env), {})


def rerun_commands(modes: Sequence[ModeInfo]) -> list[tuple[str, list[str]]]:
    """Each distinct command line the runs recorded, with the modes that ran it."""
    found: dict[str, list[str]] = {}
    for m in modes:
        for r in m.runs:
            cmd = r.env.get("command")
            if isinstance(cmd, str) and cmd and m.name not in found.setdefault(cmd, []):
                found[cmd].append(m.name)
    return list(found.items())


_ENV_ORDER = ("accel", "accel_reason", "thp_enabled", "host_kernel", "libvirt",
              "qemu.source_version", "qemu.build_key", "qemu.patches", "guest_kernel.abi",
              "guest_kernel.version", "guest_module.key", "guest_module.version",
              "guest_module.patches", "image", "workload", "scenario", "scenario_sha256",
              "rig_revision", "policy", "policy_params", "daemon_args")
_ENV_SKIP = ("command", "mode")


def flatten_env(env: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested env.json keys as dotted names; lists joined; an empty dict or list '(none)'."""
    out: dict[str, str] = {}
    for key, value in env.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= flatten_env(value, f"{name}.")
        elif isinstance(value, list | dict):
            out[name] = ", ".join(str(v) for v in value) if value else "(none)"
        else:
            out[name] = "none" if value is None else str(value)
    return out


def env_tables(envs: Mapping[str, Sequence[Mapping[str, Any]]]
               ) -> tuple[list[list[str]], list[list[str]]]:
    """(common, differing): the keys every run of every mode has the same value for
    (key, value), and the rest (key, then one column per mode in `envs` order)."""
    common, differing = [], []
    for row in env_rows(envs):
        values = {v for cell in row[1:] for v in cell.split(" | ")}
        if len(values) == 1:
            common.append([row[0], row[1]])
        else:
            differing.append(row)
    return common, differing


def env_rows(envs: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[list[str]]:
    """mode -> its runs' env.json objects; one row per key, one column per mode. A key
    whose value differs between a mode's runs shows every value, " | " between them."""
    flat = {mode: [flatten_env(e) for e in runs] for mode, runs in envs.items()}
    keys = {k for runs in flat.values() for e in runs for k in e
            if k.split(".")[0] not in _ENV_SKIP}

    def rank(key: str) -> tuple[int, str]:
        return next(((i, key) for i, k in enumerate(_ENV_ORDER)
                     if key == k or key.startswith(f"{k}.")), (len(_ENV_ORDER), key))

    ordered = sorted(keys, key=rank)
    rows = []
    for key in ordered:
        row = [key]
        for runs in flat.values():
            values = list(dict.fromkeys(e.get(key, "-") for e in runs))
            row.append(" | ".join(values) if values else "-")
        rows.append(row)
    return rows


def choose_baseline(modes: Sequence[str], baseline: str | None) -> str:
    """The given baseline (it must be one of the modes), else vanilla, else the first."""
    if baseline is not None:
        if baseline not in modes:
            raise UsageError(f"--baseline {baseline}: not a mode of these results "
                             f"({', '.join(modes)})")
        return baseline
    return "vanilla" if "vanilla" in modes else modes[0]


def build(results_dir: Path, modes: Sequence[ModeInfo], baseline: str,
          figures: Mapping[str, str], shown_as: str | None = None
          ) -> tuple[str, list[Block]]:
    """The report as a document (pure, given the loaded modes and the figures drawn:
    file name -> caption, in order). `shown_as`: how the text names the results
    directory (default: its path), e.g. a path without the machine's part."""
    names = [m.name for m in modes]
    by_name = {m.name: m for m in modes}
    summaries = [m.summary for m in modes if m.summary]
    scenario = next((s["scenario"] for s in summaries if s.get("scenario", "?") != "?"), "?")
    vms = all_vms(modes)
    where = shown_as or str(results_dir)
    # results/<scenario>/<stamp>, or a matrix's <results>/matrix/<stamp>/<scenario>
    shown = Path(where)
    stamp = shown.parent.name if shown.name == scenario else shown.name
    title = f"Benchmark report: {scenario}, {stamp}"
    runs = ", ".join(f"{m.name} {m.summary.get('runs', 0)}" for m in modes)
    b: list[Block] = [
        Heading(1, title),
        Para(f"Scenario `{scenario}` (rig/scenarios/{scenario}.toml); modes: "
             f"{', '.join(names)}; complete runs per mode: {runs}; VMs: "
             f"{', '.join(vms) or 'none'}. Baseline of the comparisons: `{baseline}`. "
             f"Every number below comes from the summaries and raw files in "
             f"`{where}`; means are over each mode's complete runs."),
        table(OVERVIEW_HEADERS, overview_rows(modes)),
    ]
    b += [Para(f"{m.name}: {m.note}.") for m in modes if m.note]

    b.append(Heading(2, "How to rerun this"))
    commands = rerun_commands(modes)
    lines = [f"{cmd}    # {', '.join(ms)}" if len(commands) > 1 else cmd
             for cmd, ms in commands]
    lines.append(f"rig report {where}")
    b.append(Code("\n".join(lines)))
    if len(commands) > 1:
        b.append(Para("The modes come from separate invocations, each of which wrote its "
                      "own results/<scenario>/<stamp>/; the report reads the mode "
                      "directories side by side in one directory."))

    b.append(Heading(2, "Results in the RFC's layout"))
    b.append(table(tables.HOST_HEADERS, tables.host_rows(summaries),
                   "Host swap (pages; mean of runs)"))
    b.append(table(tables.vm_headers(summaries), tables.vm_rows(summaries),
                   "Per VM: QEMU process (s, CPU%, faults); guest: the workload's score "
                   "(ebizzy: total recs, records/s summed over its steps; stream and "
                   "reread: MB/s, mean of steps; idle: seconds to write its memory), "
                   "swap (pages), OOM kills; means of runs"))

    b.append(Heading(2, f"Comparison with {baseline}"))
    b.append(Para("change = (mode - baseline) / baseline (n/a when the baseline is 0). "
                  "95 % CI of the difference: Welch's 95 % confidence interval of the "
                  "mode's mean minus the baseline's, in the metric's unit; p: Welch's "
                  "two-sided t-test over the runs' values; both n/a with fewer than two "
                  "runs on a side, the CI also with no spread at all (p then is n/a, or 1 "
                  "for equal means). significant: the primary metrics, named in advance "
                  f"({primary_labels()}), at p < 0.05 each; the secondary rest corrected "
                  "for multiple comparisons with Holm's step-down procedure over the "
                  "table's secondary p-values (the k-th smallest of m is significant if "
                  "it and every smaller one are below 0.05 / (m - k + 1)), so that a "
                  "false \"yes (Holm)\" anywhere in a table has at most a 5 % chance. "
                  "Values are mean ± sample standard deviation over runs; rates "
                  "(records/s, CPU%) are means of the per-run rates."))
    base = by_name[baseline].summary
    for m in modes:
        if m.name == baseline:
            continue
        b.append(Heading(3, f"{m.name} vs {baseline}"))
        b.append(table(comparison_headers(baseline, m.name),
                       comparison_rows(base, m.summary, vms)))
    peer = by_name.get(PEER)
    ours = [m for m in modes if m.name in PEER_CHALLENGERS and m.summary]
    if baseline != PEER and peer is not None and peer.summary and ours:
        b.append(Heading(2, f"Against {PEER}"))
        b.append(Para(f"Free page reporting is the strongest peer that needs no daemon "
                      f"(stock Linux and QEMU since 2020): a claim that the daemon helps "
                      f"must hold against it, not only against vanilla. Same statistics "
                      f"as above, with {PEER} as the base."))
        for m in ours:
            b.append(Heading(3, f"{m.name} vs {PEER}"))
            b.append(table(comparison_headers(PEER, m.name),
                           comparison_rows(peer.summary, m.summary, vms)))

    b.append(Heading(2, f"Beside the RFC's numbers: {PUBLISHED_LABEL}"))
    b.append(Para(f"The RFC's table as DESIGN.md quotes it ({PUBLISHED_LABEL}: two "
                  "1.3 GiB guests, ebizzy 60 s per step, averages of 3 runs). Absolute "
                  "numbers depend on the host, the accelerator and the scenario's scale; "
                  "compare the ratios (automatic / vanilla)."))
    b.append(table(tables.HOST_HEADERS, published_host_rows(),
                   f"Host swap (pages), {PUBLISHED_LABEL}"))
    b.append(table(tables.VM_HEADERS, published_vm_rows(),
                   f"Per VM, {PUBLISHED_LABEL} (no OOM figure published)"))
    if "vanilla" in by_name and by_name["vanilla"].summary:
        for m in modes:
            if m.name == "vanilla":
                continue
            b.append(Heading(3, f"Ratios to vanilla: published automatic vs our {m.name}"))
            b.append(table(published_headers(m.name),
                           published_rows(by_name["vanilla"].summary, m.summary),
                           f"published = {PUBLISHED_LABEL}; ours = these results; "
                           "ratio = automatic (or our mode) / vanilla"))
    else:
        b.append(Para("These results have no vanilla mode, so there are no ratios to put "
                      "beside the published ones."))

    b.append(Heading(2, "Plots"))
    b.append(Para("Timelines: host memory usage and swap (top; triangles: host pressure "
                  "events the daemon received, by level); each VM's balloon size "
                  "(actual, solid), the daemon's targets (dashed) and the guest pressure "
                  "messages (circles) (bottom). Bars: ebizzy records/s of each step "
                  "(mean of runs, ± stdev with several), chunks of the step above."))
    for file, caption in figures.items():
        b.append(Figure(file, caption))

    b.append(Heading(2, "Environment"))
    envs = {m.name: [r.env for r in m.runs if r.env] for m in modes}
    common, differing = env_tables(envs)
    b.append(table(["key", "value"], common, "The same in every run (env.json)"))
    if differing:
        b.append(table(["key", *envs], differing,
                       "Different between modes or runs (env.json): mind these when "
                       "comparing"))

    b.append(Heading(2, "Raw-file check"))
    b.append(Para("Each run's summary.json against its metrics recomputed from the raw "
                  "files (rig.run_metrics.compute)."))
    b.append(table(["mode", "run", "state", "summary vs raw files"],
                   [[m.name, str(r.n), r.state, r.check] for m in modes for r in m.runs]))
    return title, b


def write_report(results_dir: Path, baseline: str | None = None,
                 shown_as: str | None = None, embed_images: bool = True,
                 timeline_runs: int | None = None) -> Path:
    """Write results_dir/report/report.md, report.html and the PNGs; return report.md.
    `shown_as`: how the text names results_dir (build). `embed_images`: report.html
    carries the PNGs (self-contained) or, False, links them (document.to_html).
    `timeline_runs`: plot the timelines of each mode's first runs only (None: all)."""
    modes = load_results(results_dir)
    chosen = choose_baseline([m.name for m in modes], baseline)
    out = results_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    for old in (*out.glob("timeline-*.png"), *out.glob("ebizzy-*.png")):
        old.unlink()
    figures = draw_figures(results_dir, modes, out, timeline_runs)
    title, blocks = build(results_dir, modes, chosen, figures, shown_as)
    md = out / "report.md"
    md.write_text(to_markdown(blocks))
    images = {f: (out / f).read_bytes() for f in figures} if embed_images else None
    (out / "report.html").write_text(to_html(blocks, title, images))
    return md
