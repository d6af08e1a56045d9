"""Benchmark results on disk: the directory layout, run markers and summaries.

    <root>/<scenario>/<stamp>/<mode>/summary.json          per mode (aggregate())
    <root>/<scenario>/<stamp>/<mode>/run-<n>/summary.json  per run (RunSummary)
    <root>/<scenario>/<stamp>/<mode>/run-<n>/INCOMPLETE    while the run is going on
    <root>/<scenario>/<stamp>/<mode>/run-<n>/...           raw files of the run

Both summary.json files are a documented, versioned interface: docs/summary-json.md.

A run directory gets its INCOMPLETE marker first thing (begin_run) and loses it only
once a summary saying "complete": true is on disk (finish_run), so a run that crashed,
was interrupted or never wrote its summary is never mistaken for a complete one.

Pure logic (names, validation, aggregation, JSON shapes) is separate from the few small
functions that touch the filesystem (write_json_atomic, begin_run, finish_run, run_state,
load_mode, write_mode_summary).
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rig.bench.procstat import QemuUsage

SCHEMA_VERSION = 1
SUMMARY = "summary.json"
INCOMPLETE = "INCOMPLETE"
RUN_PREFIX = "run-"
_RUN_RE = re.compile(r"^run-(\d+)$")

Number = int | float
RunState = Literal["complete", "incomplete", "missing"]

# The required metrics (docs/summary-json.md has their units).
HOST_METRICS = ("host.swap_in", "host.swap_out")
QEMU_METRICS = ("elapsed_s", "user_s", "sys_s", "cpu_pct", "major_faults", "minor_faults")
GUEST_METRICS = ("swap_in", "swap_out", "oom_kills")  # and the workload's score (SCORES)


@dataclass(frozen=True)
class Score:
    """A workload kind's score: ``<vm>.guest.<metric>`` over the run and
    ``<vm>.guest.step<n>.<step>`` per step (docs/summary-json.md)."""

    metric: str
    step: str
    unit: str
    higher_is_better: bool = True


#: The score of each workload kind (rig.scenario.WORKLOAD_KINDS).
SCORES: dict[str, Score] = {
    "ebizzy": Score("records_total", "records_s", "records/s summed over the steps"),
    "stream": Score("mb_s", "mb_s", "MB/s, mean of the steps"),
    "reread": Score("mb_s", "mb_s", "MB/s, mean of the steps"),
    "idle": Score("touch_s", "touch_s", "s to write its memory, summed over the steps "
                  "(lower is better)", higher_is_better=False),
}


# --- layout -------------------------------------------------------------------------------

def _component(what: str, value: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\0" in value:
        raise ValueError(f"{what} must be one path component, got {value!r}")
    return value


def mode_dir(root: Path, scenario: str, stamp: str, mode: str) -> Path:
    return (root / _component("scenario", scenario) / _component("stamp", stamp)
            / _component("mode", mode))


def run_dir(root: Path, scenario: str, stamp: str, mode: str, n: int) -> Path:
    """Runs are numbered from 1."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"run number must be an integer >= 1, got {n!r}")
    return mode_dir(root, scenario, stamp, mode) / f"{RUN_PREFIX}{n}"


# --- metric names -------------------------------------------------------------------------

def metric_names(vms: Sequence[str], kinds: Mapping[str, str] | None = None) -> list[str]:
    """The metrics every complete run must have, host first, then per VM in `vms` order;
    a VM's score by its workload kind in `kinds` (default ebizzy)."""
    names = list(HOST_METRICS)
    for vm in vms:
        score = SCORES[(kinds or {}).get(vm, "ebizzy")]
        names += [f"{vm}.qemu.{m}" for m in QEMU_METRICS]
        names += [f"{vm}.guest.{m}" for m in (score.metric, *GUEST_METRICS)]
    return names


def score_of(summary: Mapping[str, Any], vm: str) -> tuple[str, Score] | None:
    """(metric name, Score) of a VM's workload score in a summary (per run or per mode);
    None when it has none."""
    metrics = summary.get("metrics", {})
    for score in SCORES.values():
        name = f"{vm}.guest.{score.metric}"
        if name in metrics:
            return name, score
    return None


def _check_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"metric {name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"metric {name} must be finite, got {value!r}")


def validate_run_metrics(metrics: Mapping[str, object], vms: Sequence[str],
                         kinds: Mapping[str, str] | None = None) -> None:
    """ValueError naming the first missing required metric (or a non-number value).
    Metrics beyond the required ones are allowed."""
    for name in metric_names(vms, kinds):
        if name not in metrics:
            raise ValueError(f"missing metric {name}")
    for name, value in metrics.items():
        _check_number(name, value)


def host_metrics(delta: Mapping[str, int]) -> dict[str, Number]:
    """host.* from a vmstat_delta of the host's /proc/vmstat over the run."""
    return {"host.swap_in": delta["pswpin"], "host.swap_out": delta["pswpout"]}


def qemu_metrics(vm: str, usage: QemuUsage) -> dict[str, Number]:
    return {f"{vm}.qemu.{m}": getattr(usage, m) for m in QEMU_METRICS}


def guest_metrics(
    vm: str, *, score: Number, vmstat_delta: Mapping[str, int], oom_kills: int,
    kind: str = "ebizzy",
) -> dict[str, Number]:
    """<vm>.guest.* from the workload's score over the run (SCORES[kind]), a vmstat_delta
    of the guest's /proc/vmstat over the run, and its OOM kills (procstat.parse_oom_kills
    of that delta, or procstat.count_dmesg_oom_kills)."""
    return {
        f"{vm}.guest.{SCORES[kind].metric}": score,
        f"{vm}.guest.swap_in": vmstat_delta["pswpin"],
        f"{vm}.guest.swap_out": vmstat_delta["pswpout"],
        f"{vm}.guest.oom_kills": oom_kills,
    }


# --- per-run summary ----------------------------------------------------------------------

@dataclass(frozen=True)
class RunSummary:
    scenario: str
    mode: str
    run: int
    complete: bool
    metrics: dict[str, Number]
    env: dict[str, Any]
    # Measurement cross-checks (e.g. "host_swap"), written only when there are some.
    checks: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The summary.json object (docs/summary-json.md)."""
        return {
            **({"checks": dict(self.checks)} if self.checks else {}),
            "schema": SCHEMA_VERSION,
            "scenario": self.scenario,
            "mode": self.mode,
            "run": self.run,
            "complete": self.complete,
            "metrics": dict(self.metrics),
            "env": dict(self.env),
        }

    @classmethod
    def from_json(cls, obj: object) -> RunSummary:
        """Parse and check a summary.json object; unknown top-level fields are ignored."""
        if not isinstance(obj, dict):
            raise ValueError(f"run summary must be a JSON object, got {type(obj).__name__}")
        _check_schema(obj)
        for key, typ in (("scenario", str), ("mode", str), ("run", int), ("complete", bool),
                         ("metrics", dict), ("env", dict)):
            if key not in obj:
                raise ValueError(f"run summary has no {key!r}")
            value = obj[key]
            if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
                raise ValueError(f"run summary {key!r} must be {typ.__name__}, got {value!r}")
        if obj["run"] < 1:
            raise ValueError(f"run summary 'run' must be >= 1, got {obj['run']}")
        for name, value in obj["metrics"].items():
            _check_number(name, value)
        checks = obj.get("checks", {})
        if not isinstance(checks, dict):
            raise ValueError(f"run summary 'checks' must be dict, got {checks!r}")
        return cls(obj["scenario"], obj["mode"], obj["run"], obj["complete"],
                   dict(obj["metrics"]), dict(obj["env"]), dict(checks))


def _check_schema(obj: Mapping[str, Any]) -> None:
    schema = obj.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise ValueError(f"summary has no integer 'schema', got {schema!r}")
    if schema != SCHEMA_VERSION:
        newer = " (written by a newer rig)" if schema > SCHEMA_VERSION else ""
        raise ValueError(f"summary schema {schema}{newer}; this rig reads {SCHEMA_VERSION}")


# --- per-mode summary ---------------------------------------------------------------------

#: A per-mode summary.json object (``aggregate``'s output; docs/summary-json.md).
Summary = dict[str, Any]


def metric_stats(summary: Summary, name: str) -> dict[str, Any] | None:
    """A metric's entry of a per-mode summary (mean, stdev, values, ...); None if absent."""
    m = summary.get("metrics", {}).get(name)
    return m if isinstance(m, dict) else None


def metric_mean(summary: Summary, name: str) -> float | None:
    """A metric's mean over a mode's runs; None if absent."""
    m = metric_stats(summary, name)
    return None if m is None else float(m["mean"])


def metric_median(summary: Summary, name: str) -> float | None:
    """A metric's median over a mode's runs (its mean when the runs' values are absent);
    None if absent."""
    m = metric_stats(summary, name)
    if m is None:
        return None
    values = m.get("values")
    return float(statistics.median(values)) if values else float(m["mean"])


def vm_names(summaries: Sequence[Summary]) -> list[str]:
    """The VMs of per-mode summaries (every "<vm>.qemu.*" or "<vm>.guest.*" metric), in
    the order they first appear."""
    names: list[str] = []
    for s in summaries:
        for key in s.get("metrics", {}):
            vm, _, rest = key.partition(".")
            if rest.startswith(("qemu.", "guest.")) and vm not in names:
                names.append(vm)
    return names


def aggregate(runs: Sequence[RunSummary]) -> dict[str, Any]:
    """The per-mode summary.json object (docs/summary-json.md) of one mode's runs.

    Only complete runs enter the numbers; incomplete ones are listed by number. A metric
    some complete runs lack is aggregated over the runs that have it ("from_runs" says
    which). stdev is the sample standard deviation, 0.0 for a single value."""
    if not runs:
        raise ValueError("no runs to aggregate")
    scenario, mode = runs[0].scenario, runs[0].mode
    for r in runs:
        if (r.scenario, r.mode) != (scenario, mode):
            raise ValueError(
                f"runs of different modes: {scenario}/{mode} and {r.scenario}/{r.mode}"
            )
    ordered = sorted(runs, key=lambda r: r.run)
    numbers = [r.run for r in ordered]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"run numbers repeat: {numbers}")
    complete = [r for r in ordered if r.complete]
    metrics: dict[str, dict[str, Any]] = {}
    for name in sorted({m for r in complete for m in r.metrics}):
        have = [r for r in complete if name in r.metrics]
        values = [r.metrics[name] for r in have]
        for v in values:
            _check_number(name, v)
        metrics[name] = {
            "mean": statistics.fmean(values),
            "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values,
            "from_runs": [r.run for r in have],
        }
    return {
        "schema": SCHEMA_VERSION,
        "scenario": scenario,
        "mode": mode,
        "runs": len(complete),
        "complete": len(complete) == len(ordered),
        "incomplete_runs": [r.run for r in ordered if not r.complete],
        "metrics": metrics,
    }


# --- filesystem ---------------------------------------------------------------------------

def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so readers see the old file or the whole new one, never a part: a
    temporary file in the same directory, fsynced, then renamed over `path`."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def begin_run(d: Path) -> None:
    """Create the run directory marked INCOMPLETE, before anything else goes in it."""
    d.mkdir(parents=True, exist_ok=True)
    if (d / SUMMARY).exists():
        raise ValueError(f"{d} already has a {SUMMARY}; runs are not redone in place")
    (d / INCOMPLETE).write_text("this run has not finished; its numbers are not counted\n")
    _fsync_dir(d)


def finish_run(d: Path, summary: RunSummary, *, vms: Sequence[str],
               kinds: Mapping[str, str] | None = None) -> None:
    """Write the run's summary.json; a complete one must carry every required metric of
    `vms` (their scores by workload kind, `kinds`), and only then is the INCOMPLETE
    marker removed (after the summary is on disk).
    An incomplete summary (a failed run's partial numbers) leaves the marker in place."""
    if summary.complete:
        validate_run_metrics(summary.metrics, vms, kinds)
    write_json_atomic(d / SUMMARY, summary.to_json())
    if summary.complete:
        (d / INCOMPLETE).unlink(missing_ok=True)
        _fsync_dir(d)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def run_state(d: Path) -> RunState:
    """"missing" without a directory; "complete" only with no INCOMPLETE marker and a
    summary.json saying "complete": true; "incomplete" otherwise."""
    if not d.is_dir():
        return "missing"
    summary = d / SUMMARY
    if (d / INCOMPLETE).exists() or not summary.is_file():
        return "incomplete"
    obj = _read_json(summary)
    return "complete" if isinstance(obj, dict) and obj.get("complete") is True else "incomplete"


def load_mode(d: Path, scenario: str | None = None) -> list[RunSummary]:
    """Every run-<n> of a mode directory (<root>/<scenario>/<stamp>/<mode>, or a matrix's
    <stamp>/<scenario>/<mode> with `scenario` given), in run order. Runs that are not
    complete (run_state) come back with complete=False: with whatever their summary
    recorded, or no metrics when they have none."""
    scenario, mode = scenario or d.parent.parent.name, d.name
    found: list[tuple[int, Path]] = []
    if d.is_dir():
        for p in d.iterdir():
            m = _RUN_RE.match(p.name)
            if m and p.is_dir():
                found.append((int(m.group(1)), p))
    out: list[RunSummary] = []
    for n, p in sorted(found):
        state = run_state(p)
        if (p / SUMMARY).is_file():
            s = RunSummary.from_json(_read_json(p / SUMMARY))
            if (s.scenario, s.mode, s.run) != (scenario, mode, n):
                raise ValueError(f"{p / SUMMARY} is of {s.scenario}/{s.mode} run {s.run}, "
                                 f"not {scenario}/{mode} run {n}")
            if state != "complete" and s.complete:
                s = RunSummary(s.scenario, s.mode, s.run, False, s.metrics, s.env,
                               s.checks)
            out.append(s)
        else:
            out.append(RunSummary(scenario, mode, n, False, {}, {}))
    return out


def write_mode_summary(d: Path, scenario: str | None = None) -> dict[str, Any]:
    """Aggregate a mode directory's runs (load_mode) into its summary.json; returns the
    object."""
    runs = load_mode(d, scenario)
    if not runs:
        raise ValueError(f"{d} has no run-<n> directories")
    summary = aggregate(runs)
    write_json_atomic(d / SUMMARY, summary)
    return summary


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines file's records ([] if it does not exist). A last line cut short (the
    writer is still running, or was interrupted) is not a record yet; a bad line
    elsewhere is an error."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines):
                raise ValueError(f"{path}:{i}: not a JSON line") from None
    return out
