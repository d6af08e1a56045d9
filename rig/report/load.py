"""Loading a bench's results directory (I/O): every mode directory, its per-mode summary
(or the aggregate of its runs when the mode did not finish), and each run's state,
env.json and raw-file check (its summary against ``rig.bench.run_metrics`` recomputed
from its raw files); also the readers of a run's JSON-lines files and scenario the plots
use."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rig import scenario as scenario_mod
from rig.bench import results, run_metrics
from rig.bench.results import Summary, vm_names
from rig.errors import RigError, UsageError

REPORT_DIR = "report"


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
    return vm_names([{"metrics": metrics}])


def all_vms(modes: Sequence[ModeInfo]) -> list[str]:
    """VM names of every mode with a summary, in the order their QEMU metrics appear."""
    return vm_names([m.summary for m in modes if m.summary])


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RigError(f"{path}: cannot read JSON: {e}") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """A run's JSON-lines file (results.read_jsonl), a bad line a RigError."""
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


def scenario_of_run(run_dir: Path, name: str) -> scenario_mod.Scenario | None:
    """The scenario a run recorded (its scenario.toml); None if missing or unreadable."""
    path = run_dir / "scenario.toml"
    if not path.is_file():
        return None
    try:
        return scenario_mod.parse(path.read_text(), name)
    except RigError:
        return None
