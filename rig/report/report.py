"""A benchmark's report for reviewers: report.md, report.html and PNG plots.

    rig report results/<scenario>/<stamp>      -> results/<scenario>/<stamp>/report/

Every number comes from the summaries (docs/summary-json.md) and the raw files of the
runs: tables and comparisons from the per-mode summaries (the per-run values they
list feed Welch's t-test), plots from samples.jsonl and timeline.jsonl, the environment
from env.json. Each run's summary is also checked against a recomputation from its raw
files (rig.run_metrics).

Layout of this module: the document model and its two renderers (pure), the tables and
comparisons (pure: summary dicts in, rows of strings out), the plot data (pure), then
the I/O: loading a results directory, drawing the PNGs, writing the files.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from rig import scenario as scenario_mod
from rig.bench import results, run_metrics
from rig.errors import RigError, UsageError
from rig.report import tables
from rig.report.welch import welch
from rig.vm.domain_xml import DOMAIN_PREFIX

ALPHA = 0.05
REPORT_DIR = "report"
PUBLISHED_LABEL = "published (2013 RFC, KVM, 2 GiB host)"
PLOT_SIZE_IN = (9.0, 4.0)  # at PLOT_DPI: 900 x 400 px
PLOT_DPI = 100

Summary = dict[str, Any]


# ---- the document model (pure) ---------------------------------------------------------

@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    """Plain text; `code` spans in backticks."""

    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    file: str  # a PNG beside the report
    alt: str


Block = Heading | Para | Code | Table | Figure


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], caption: str = "") -> Table:
    return Table(tuple(headers), tuple(tuple(r) for r in rows), caption)


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Code):
            out.append(f"```\n{b.text}\n```")
        elif isinstance(b, Table):
            text = markdown_table(b.headers, b.rows)
            out.append(f"{b.caption}\n\n{text}" if b.caption else text)
        else:
            out.append(f"![{b.alt}]({b.file})")
    return "\n\n".join(out) + "\n"


_NUMERIC = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?(%| ± [\d,]*\.?\d+)?$")
_PAD_MAX = 40  # wider cells are not padded (a plain-text reader gives up on them anyway)


def is_numeric(cell: str) -> bool:
    return bool(_NUMERIC.match(cell))


def numeric_columns(rows: Sequence[Sequence[str]], ncols: int) -> list[bool]:
    """Columns to right-align: every cell a number or a blank ("-", "n/a"), one at least
    a number."""
    blank = ("-", "n/a")
    return [any(is_numeric(r[i]) for r in rows)
            and all(is_numeric(r[i]) or r[i] in blank for r in rows) for i in range(ncols)]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub table: columns of numbers right-aligned, the rest left-aligned; padded
    so it reads as plain text too."""
    cells = [[c.replace("|", "\\|") for c in r] for r in rows]
    right = numeric_columns(rows, len(headers))
    widths = [min(_PAD_MAX, max([len(h), *(len(r[i]) for r in cells)]))
              for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w)
                                 for c, w, r in zip(row, widths, right, strict=True)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if r else (":" + "-" * (w + 1))
                         for w, r in zip(widths, right, strict=True)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])
_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 15px;
       line-height: 1.45; color: #1d1d1f; background: #fff; margin: 0 auto;
       max-width: 1100px; padding: 1.5em 2em 4em; }
h1 { font-size: 1.7em; border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { font-size: 1.35em; margin-top: 2em; border-bottom: 1px solid #bbb; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .2em 0 1.2em; font-size: 13px; }
p.caption { font-style: italic; margin: 1em 0 .2em; font-size: 13px; }
th, td { border: 1px solid #c8c8c8; padding: .25em .6em; vertical-align: top; }
th { background: #eef1f5; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #f8f9fb; }
pre { background: #f3f3f3; padding: .7em 1em; overflow-x: auto; font-size: 13px; }
code { background: #f3f3f3; padding: 0 .2em; }
figure { margin: 1em 0; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #555; }
"""


def _inline(text: str) -> str:
    parts = text.split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p)
                   for i, p in enumerate(parts))


def to_html(blocks: Sequence[Block], title: str, images: Mapping[str, bytes]) -> str:
    """One self-contained page: inline CSS, PNGs as data: URIs, no script, no network."""
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Code):
            body.append(f"<pre>{html.escape(b.text)}</pre>")
        elif isinstance(b, Table):
            rows = [f'<p class="caption">{_inline(b.caption)}</p>'] if b.caption else []
            rows.append("<table>")
            rows.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>"
                                                 for h in b.headers) + "</tr></thead>")
            rows.append("<tbody>")
            right = numeric_columns(b.rows, len(b.headers))
            for r in b.rows:
                cells = "".join(
                    f'<td class="n">{html.escape(c)}</td>' if n
                    else f"<td>{html.escape(c)}</td>" for c, n in zip(r, right, strict=True))
                rows.append(f"<tr>{cells}</tr>")
            rows.append("</tbody></table>")
            body.append("\n".join(rows))
        else:
            data = base64.b64encode(images[b.file]).decode("ascii")
            body.append(f'<figure><img src="data:image/png;base64,{data}" '
                        f'alt="{html.escape(b.alt)}"><figcaption>{html.escape(b.alt)}'
                        "</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


# ---- metrics, comparisons, published numbers (pure) ------------------------------------

@dataclass(frozen=True)
class MetricSpec:
    label: str
    name: str
    decimals: int


# The RFC's per-VM columns (rig.tables.VM_COLUMNS) with the units and precision of a
# comparison (CPU% keeps a decimal: a difference under 1 % would vanish otherwise).
_VM_SPECS: tuple[tuple[str, str, int], ...] = (
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
_HOST_SPECS: tuple[tuple[str, str, int], ...] = (
    ("host swap in (pages)", "host.swap_in", 0),
    ("host swap out (pages)", "host.swap_out", 0),
    ("host peak usage (MiB)", "host.peak_usage_mib", 0),
    ("host peak swap (MiB)", "host.peak_swap_mib", 0),
    ("workload wall time (s)", "elapsed_s", 2),
)


def metric_specs(vms: Sequence[str]) -> list[MetricSpec]:
    """The metrics a comparison covers: host first, then each VM's."""
    specs = [MetricSpec(label, name, d) for label, name, d in _HOST_SPECS]
    for vm in vms:
        specs += [MetricSpec(f"{vm} {label}", f"{vm}.{suffix}", d)
                  for label, suffix, d in _VM_SPECS]
    return specs


def stats(summary: Summary, name: str) -> dict[str, Any] | None:
    m = summary.get("metrics", {}).get(name)
    return m if isinstance(m, dict) else None


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
    text = tables.fmt(float(m["mean"]), decimals)
    if len(m.get("values", ())) > 1:
        text += f" ± {tables.fmt(float(m['stdev']), decimals)}"
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
        b, o = stats(base, spec.name), stats(other, spec.name)
        if b is None and o is None:
            continue
        change = pct_change(None if b is None else float(b["mean"]),
                            None if o is None else float(o["mean"]))
        sig = "n/a" if b is None or o is None else significance(b["values"], o["values"])
        rows.append([spec.label, fmt_stats(b, spec.decimals), fmt_stats(o, spec.decimals),
                     fmt_pct(change), sig])
    return rows


# The RFC's published table (DESIGN.md, "The idea"): averages of 3 runs, 2 GiB KVM host,
# two 1.3 GiB guests running ebizzy; swap in pages, times in seconds.
PUBLISHED_RUNS = 3
_PUBLISHED_VM_COLUMNS = ("qemu.elapsed_s", "qemu.user_s", "qemu.sys_s", "qemu.cpu_pct",
                         "qemu.major_faults", "qemu.minor_faults", "guest.records_total",
                         "guest.swap_in", "guest.swap_out")
_PUBLISHED_ROWS: dict[str, dict[str, tuple[float, ...]]] = {
    "vanilla": {
        "vm-down": (395.42, 309.60, 3.72, 79, 2772.66, 120046.66, 4692.33, 0, 0),
        "vm-up": (396.40, 310, 4.04, 79, 2053.66, 208394.33, 4684, 0, 0),
    },
    "automatic": {
        "vm-down": (387.95, 309.66, 3.43, 80, 106.66, 29497.33, 4710.66, 0, 0),
        "vm-up": (388.79, 310.98, 4.35, 81, 63.66, 110307, 4704.33, 2.67, 822.66),
    },
}
_PUBLISHED_HOST = {"vanilla": (36478.66, 372551.0), "automatic": (2.66, 8225.33)}


def published() -> dict[str, dict[str, float]]:
    """mode ("vanilla", "automatic") -> metric name -> the RFC's published value."""
    out: dict[str, dict[str, float]] = {}
    for mode, vms in _PUBLISHED_ROWS.items():
        swap_in, swap_out = _PUBLISHED_HOST[mode]
        metrics = {"host.swap_in": swap_in, "host.swap_out": swap_out}
        for vm, values in vms.items():
            metrics |= {f"{vm}.{c}": float(v)
                        for c, v in zip(_PUBLISHED_VM_COLUMNS, values, strict=True)}
        out[mode] = metrics
    return out


def fmt_published(value: float | None) -> str:
    """A published figure as printed (two decimals unless it is whole)."""
    if value is None:
        return "-"
    return tables.fmt(value, 0 if value == int(value) else 2)


def published_host_rows() -> list[list[str]]:
    """Rows under rig.tables.HOST_HEADERS, the published figures as printed."""
    return [[mode, str(PUBLISHED_RUNS), fmt_published(m["host.swap_in"]),
             fmt_published(m["host.swap_out"])] for mode, m in published().items()]


def published_vm_rows() -> list[list[str]]:
    """Rows under rig.tables.VM_HEADERS (the RFC published no OOM figure: "-")."""
    rows = []
    for mode, m in published().items():
        for vm in _PUBLISHED_ROWS[mode]:
            rows.append([mode, vm, *(fmt_published(m.get(f"{vm}.{suffix}"))
                                     for _, suffix, _ in tables.VM_COLUMNS)])
    return rows


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "n/a"
    if r == 0 or r >= 10:
        return f"{r:.1f}"
    return f"{r:.3f}" if r >= 0.01 else f"{r:.1e}"


def published_headers(mode: str) -> list[str]:
    return ["metric", "published vanilla", "published automatic", "published ratio",
            "ours vanilla", f"ours {mode}", "our ratio"]


def published_rows(vanilla: Summary, other: Summary) -> list[list[str]]:
    """The published vanilla and automatic numbers, their ratio (automatic / vanilla),
    and ours beside them (mode / vanilla), for every metric the RFC published."""
    pub = published()
    names = ["host.swap_in", "host.swap_out"] + [
        f"{vm}.{c}" for vm in _PUBLISHED_ROWS["vanilla"] for c in _PUBLISHED_VM_COLUMNS]
    labels = {f"{vm}.{suffix}": f"{vm} {label}"
              for vm in _PUBLISHED_ROWS["vanilla"] for label, suffix, _ in _VM_SPECS}
    labels |= {name: label for label, name, _ in _HOST_SPECS}
    decimals = {name: d for _, name, d in _HOST_SPECS} | {
        f"{vm}.{suffix}": d for vm in _PUBLISHED_ROWS["vanilla"] for _, suffix, d in _VM_SPECS}
    rows = []
    for name in names:
        pv, pa = pub["vanilla"][name], pub["automatic"][name]
        ov, oo = stats(vanilla, name), stats(other, name)
        ovm = None if ov is None else float(ov["mean"])
        oom = None if oo is None else float(oo["mean"])
        d = decimals[name]
        rows.append([labels[name], fmt_published(pv), fmt_published(pa),
                     fmt_ratio(ratio(pa, pv)), tables.fmt(ovm, d), tables.fmt(oom, d),
                     fmt_ratio(ratio(oom, ovm))])
    return rows


# ---- overview, rerun, environment, raw-file check (pure) --------------------------------

@dataclass(frozen=True)
class RunInfo:
    n: int
    state: str  # results.RunState
    metrics: dict[str, float | int]
    env: dict[str, Any]
    check: str = ""  # the raw-file check's verdict


@dataclass(frozen=True)
class ModeInfo:
    name: str
    summary: Summary
    runs: tuple[RunInfo, ...] = field(default_factory=tuple)
    note: str = ""


def overview_rows(modes: Sequence[ModeInfo]) -> list[list[str]]:
    rows = []
    for m in modes:
        env = _mode_env(m)
        wall = stats(m.summary, "elapsed_s")
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


def check_metrics(summary: Mapping[str, float | int],
                  recomputed: Mapping[str, float | int]) -> str:
    """The verdict on a run's summary against a recomputation from its raw files."""
    diffs = []
    for name in sorted(set(summary) | set(recomputed)):
        a, b = summary.get(name), recomputed.get(name)
        if a is None or b is None:
            diffs.append(f"{name} only in {'the raw files' if a is None else 'the summary'}")
        elif not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
            diffs.append(f"{name}: summary {a}, raw files {b}")
    if not diffs:
        return f"matches ({len(summary)} metrics)"
    return "DIFFERS: " + "; ".join(diffs)


def run_vms(metrics: Mapping[str, Any]) -> list[str]:
    """VM names of a run, in the order their QEMU metrics appear."""
    return tables.vm_names([{"metrics": metrics}])


# ---- plot data (pure) -------------------------------------------------------------------

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


# ---- loading a results directory (I/O) -------------------------------------------------

def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RigError(f"{path}: cannot read JSON: {e}") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return results.read_jsonl(path)
    except ValueError as e:
        raise RigError(str(e)) from None


def _is_mode_dir(d: Path) -> bool:
    return d.is_dir() and d.name != REPORT_DIR and (
        (d / results.SUMMARY).is_file()
        or any(p.is_dir() and p.name.startswith(results.RUN_PREFIX) for p in d.iterdir()))


def _run_numbers(d: Path) -> list[int]:
    out = []
    for p in d.iterdir():
        m = re.fullmatch(r"run-(\d+)", p.name)
        if m and p.is_dir():
            out.append(int(m.group(1)))
    return sorted(out)


def _load_run(d: Path, n: int, mode: str) -> tuple[RunInfo, results.RunSummary | None]:
    rd = d / f"{results.RUN_PREFIX}{n}"
    state = results.run_state(rd)
    env_path = rd / "env.json"
    env = _read_json(env_path) if env_path.is_file() else {}
    summary = None
    if (rd / results.SUMMARY).is_file():
        try:
            summary = results.RunSummary.from_json(_read_json(rd / results.SUMMARY))
        except ValueError as e:
            raise RigError(f"{rd / results.SUMMARY}: {e}") from None
        if summary.mode != mode or summary.run != n:
            raise RigError(f"{rd / results.SUMMARY} is of {summary.mode} run {summary.run}, "
                           f"not {mode} run {n}")
        if state != "complete" and summary.complete:
            summary = results.RunSummary(summary.scenario, mode, n, False, summary.metrics,
                                         summary.env)
        env = env or summary.env
    metrics = dict(summary.metrics) if summary else {}
    check = "no summary"
    if summary is not None:
        try:
            _, recomputed = run_metrics.compute(rd, run_vms(metrics))
            check = check_metrics(metrics, recomputed)
        except (ValueError, KeyError, OSError) as e:
            check = f"not recomputable: {e}"
    return RunInfo(n, state, metrics, dict(env), check), summary


def load_mode(d: Path) -> ModeInfo:
    """A mode directory: its per-mode summary.json when there is one (the interface),
    else the aggregate of its runs' summaries; and every run's raw-file check."""
    mode = d.name
    runs: list[RunInfo] = []
    summaries: list[results.RunSummary] = []
    for n in _run_numbers(d):
        info, s = _load_run(d, n, mode)
        runs.append(info)
        summaries.append(s or results.RunSummary("", mode, n, False, {}, {}))
    note = ""
    path = d / results.SUMMARY
    if path.is_file():
        summary = _read_json(path)
        if not isinstance(summary, dict) or summary.get("schema") != results.SCHEMA_VERSION:
            raise RigError(f"{path}: not a schema {results.SCHEMA_VERSION} mode summary")
        if summary.get("mode") != mode:
            raise RigError(f"{path} is of mode {summary.get('mode')!r}, not {mode!r}")
    else:
        scenario = next((s.scenario for s in summaries if s.scenario), "?")
        summaries = [replace(s, scenario=s.scenario or scenario) for s in summaries]
        summary = results.aggregate(summaries) if summaries else {}
        note = "no per-mode summary.json (the mode did not finish): aggregated its runs"
    return ModeInfo(mode, summary, tuple(runs), note)


def _mode_order(name: str) -> tuple[int, str]:
    modes = scenario_mod.MODES
    return (modes.index(name) if name in modes else len(modes), name)


def load_results(results_dir: Path) -> list[ModeInfo]:
    """Every mode directory of a bench results directory, in the rig's mode order."""
    if not results_dir.is_dir():
        raise UsageError(f"{results_dir}: no such directory (give results/<scenario>/<stamp>)")
    dirs = sorted((d for d in results_dir.iterdir() if _is_mode_dir(d)),
                  key=lambda d: _mode_order(d.name))
    if not dirs:
        raise UsageError(f"{results_dir}: no mode directories with runs in it "
                         "(give results/<scenario>/<stamp>)")
    modes = [load_mode(d) for d in dirs]
    scenarios = {m.summary.get("scenario") for m in modes if m.summary} - {"?", None}
    if len(scenarios) > 1:
        raise UsageError(f"{results_dir}: modes of different scenarios: "
                         f"{', '.join(sorted(str(s) for s in scenarios))}")
    return modes


def _scenario_of_run(run_dir: Path, name: str) -> scenario_mod.Scenario | None:
    path = run_dir / "scenario.toml"
    if not path.is_file():
        return None
    try:
        return scenario_mod.parse(path.read_text(), name)
    except RigError:
        return None


# ---- plots (I/O: matplotlib) -----------------------------------------------------------

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


# ---- the report --------------------------------------------------------------------------

def choose_baseline(modes: Sequence[str], baseline: str | None) -> str:
    """The given baseline (it must be one of the modes), else vanilla, else the first."""
    if baseline is not None:
        if baseline not in modes:
            raise UsageError(f"--baseline {baseline}: not a mode of these results "
                             f"({', '.join(modes)})")
        return baseline
    return "vanilla" if "vanilla" in modes else modes[0]


def _vms(modes: Sequence[ModeInfo]) -> list[str]:
    return tables.vm_names([m.summary for m in modes if m.summary])


def build(results_dir: Path, modes: Sequence[ModeInfo], baseline: str,
          figures: Mapping[str, str]) -> tuple[str, list[Block]]:
    """The report as a document (pure, given the loaded modes and the figures drawn:
    file name -> caption, in order)."""
    names = [m.name for m in modes]
    by_name = {m.name: m for m in modes}
    summaries = [m.summary for m in modes if m.summary]
    scenario = next((s["scenario"] for s in summaries if s.get("scenario", "?") != "?"), "?")
    vms = _vms(modes)
    title = f"Benchmark report: {scenario}, {results_dir.name}"
    runs = ", ".join(f"{m.name} {m.summary.get('runs', 0)}" for m in modes)
    b: list[Block] = [
        Heading(1, title),
        Para(f"Scenario `{scenario}` (rig/scenarios/{scenario}.toml); modes: "
             f"{', '.join(names)}; complete runs per mode: {runs}; VMs: "
             f"{', '.join(vms) or 'none'}. Baseline of the comparisons: `{baseline}`. "
             f"Every number below comes from the summaries and raw files in "
             f"`{results_dir}`; means are over each mode's complete runs."),
        table(OVERVIEW_HEADERS, overview_rows(modes)),
    ]
    b += [Para(f"{m.name}: {m.note}.") for m in modes if m.note]

    b.append(Heading(2, "How to rerun this"))
    commands = rerun_commands(modes)
    lines = [f"{cmd}    # {', '.join(ms)}" if len(commands) > 1 else cmd
             for cmd, ms in commands]
    lines.append(f"rig report {results_dir}")
    b.append(Code("\n".join(lines)))
    if len(commands) > 1:
        b.append(Para("The modes come from separate invocations, each of which wrote its "
                      "own results/<scenario>/<stamp>/; the report reads the mode "
                      "directories side by side in one directory."))

    b.append(Heading(2, "Results in the RFC's layout"))
    b.append(table(tables.HOST_HEADERS, tables.host_rows(summaries),
                   "Host swap (pages; mean of runs)"))
    b.append(table(tables.VM_HEADERS, tables.vm_rows(summaries),
                   "Per VM: QEMU process (s, CPU%, faults); guest: ebizzy total recs "
                   "(records/s summed over its steps), swap (pages), OOM kills; means "
                   "of runs"))

    b.append(Heading(2, f"Comparison with {baseline}"))
    b.append(Para("change = (mode - baseline) / baseline (n/a when the baseline is 0). "
                  "significant: Welch's t-test (two-sided) over the runs' values, "
                  "p < 0.05; n/a with fewer than two runs on a side (or no spread at "
                  "all). Values are mean ± sample standard deviation over runs; rates "
                  "(records/s, CPU%) are means of the per-run rates."))
    base = by_name[baseline].summary
    for m in modes:
        if m.name == baseline:
            continue
        b.append(Heading(3, f"{m.name} vs {baseline}"))
        b.append(table(comparison_headers(baseline, m.name),
                       comparison_rows(base, m.summary, vms)))

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


def draw_figures(results_dir: Path, modes: Sequence[ModeInfo], out: Path) -> dict[str, str]:
    """Draw every PNG into `out`; file name -> caption, in report order."""
    figures: dict[str, str] = {}
    vms = _vms(modes)
    all_rates: dict[str, dict[str, list[StepRate]]] = {}
    for m in modes:
        first = results_dir / m.name / f"{results.RUN_PREFIX}{m.runs[0].n}" if m.runs else None
        sc = _scenario_of_run(first, m.summary.get("scenario", "?")) if first else None
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
        for r in m.runs:
            rd = results_dir / m.name / f"{results.RUN_PREFIX}{r.n}"
            samples = _read_jsonl(rd / "samples.jsonl")
            if not samples:
                continue
            tr = trace(samples, _read_jsonl(rd / "timeline.jsonl"), run_vms(r.metrics) or vms)
            sc = _scenario_of_run(rd, m.summary.get("scenario", "?"))
            name = f"timeline-{m.name}-run-{r.n}.png"
            state = "" if r.state == "complete" else f" ({r.state})"
            plot_trace(tr, f"{m.name} run {r.n}{state}: host memory and balloons", out / name,
                       sc.host.ram_mib if sc else None)
            figures[name] = f"{m.name} run {r.n}{state}: host memory, swap and balloons"
    return figures


def write_report(results_dir: Path, baseline: str | None = None) -> Path:
    """Write results_dir/report/report.md, report.html and the PNGs; return report.md."""
    modes = load_results(results_dir)
    chosen = choose_baseline([m.name for m in modes], baseline)
    out = results_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    for old in (*out.glob("timeline-*.png"), *out.glob("ebizzy-*.png")):
        old.unlink()
    figures = draw_figures(results_dir, modes, out)
    title, blocks = build(results_dir, modes, chosen, figures)
    md = out / "report.md"
    md.write_text(to_markdown(blocks))
    images = {f: (out / f).read_bytes() for f in figures}
    (out / "report.html").write_text(to_html(blocks, title, images))
    return md
