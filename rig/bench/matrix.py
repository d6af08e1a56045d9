"""A benchmark matrix: every scenario of the suite in every mode, N runs each, in one
directory (``rig matrix``).

    <results>/matrix/<stamp>/matrix.json                      what the matrix is (MatrixSpec)
    <results>/matrix/<stamp>/<scenario>/<mode>/run-<n>/...     one run (rig.bench.results)
    <results>/matrix/<stamp>/<scenario>/<mode>/summary.json    a mode's summary
    <results>/matrix/<stamp>/<scenario>/<mode>/run-<n>.incomplete-<k>/   a run redone

Each ``<results>/matrix/<stamp>/<scenario>/`` is laid out exactly like a ``rig bench``
results directory (``results/<scenario>/<stamp>/``), so ``rig report`` works on it as is.

The order of the runs (``plan``): scenario by scenario, and within a scenario the modes
interleaved as ``runner.interleave`` does (run 1 of every mode, then run 2, ...). A
matrix is resumable: run again on its directory, it skips every complete run, moves an
incomplete run directory aside (``run-<n>.incomplete-<k>``: ``results.load_mode`` and the
report ignore it, nothing is deleted) and redoes it; a resume must have the arguments
matrix.json recorded.

Pure logic (the plan, the spec, the default suite) is separate from the few functions
that touch the filesystem (read_spec, prepare, move_aside, run_matrix).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.bench import results, runner
from rig.bench.runner import BenchContext
from rig.errors import RigError, UsageError
from rig.scenario import MODES, SCENARIO_SETS, Scenario

MATRIX_DIR = "matrix"
MATRIX_JSON = "matrix.json"
SPEC_SCHEMA = 1
DEFAULT_RUNS = 2
#: Runs that fail in a row (an exception, not merely an incomplete run) before the matrix
#: gives up: the machine, not one run, is in trouble then; --resume continues.
MAX_FAILURES_IN_A_ROW = 3
_RUN_RE = re.compile(r"^run-\d+$")

#: runner.run_once's signature: (context, mode, run number, run directory) -> summary.
RunFn = Callable[[BenchContext, str, int, Path], results.RunSummary]


# --- what a matrix is --------------------------------------------------------------------

@dataclass(frozen=True)
class MatrixSpec:
    """matrix.json: the scenarios, modes and runs of a matrix, the accelerator it was
    asked for (None: the rig's choice), the command line that started it and its stamp
    (the name of its directory when it started; a copy keeps it)."""

    scenarios: tuple[str, ...]
    modes: tuple[str, ...]
    runs: int
    accel: str | None = None
    command: str = ""
    stamp: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"schema": SPEC_SCHEMA, "scenarios": list(self.scenarios),
                "modes": list(self.modes), "runs": self.runs, "accel": self.accel,
                "command": self.command, "stamp": self.stamp}

    @classmethod
    def from_json(cls, obj: object) -> MatrixSpec:
        """Parse and check a matrix.json object (ValueError naming what is wrong)."""
        if not isinstance(obj, dict) or obj.get("schema") != SPEC_SCHEMA:
            raise ValueError(f"not a schema {SPEC_SCHEMA} matrix.json object")
        names = {}
        for key in ("scenarios", "modes"):
            value = obj.get(key)
            if (not isinstance(value, list) or not value
                    or not all(isinstance(v, str) and v for v in value)):
                raise ValueError(f"{key!r} must be a non-empty list of names")
            names[key] = tuple(value)
        runs, accel = obj.get("runs"), obj.get("accel")
        command, stamp = obj.get("command", ""), obj.get("stamp", "")
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise ValueError(f"'runs' must be an integer >= 1, got {runs!r}")
        if accel not in (None, "kvm", "tcg"):
            raise ValueError(f"'accel' must be kvm, tcg or null, got {accel!r}")
        for key, value in (("command", command), ("stamp", stamp)):
            if not isinstance(value, str):
                raise ValueError(f"{key!r} must be a string, got {value!r}")
        return cls(names["scenarios"], names["modes"], runs, accel, command, stamp)

    def differences(self, other: MatrixSpec) -> list[str]:
        """What `other` asks for that this matrix is not (command line and stamp aside)."""
        out = []
        for key in ("scenarios", "modes", "runs", "accel"):
            mine, theirs = getattr(self, key), getattr(other, key)
            if mine != theirs:
                out.append(f"{key} {_words(theirs)} (the matrix has {_words(mine)})")
        return out


def _words(value: object) -> str:
    if isinstance(value, tuple):
        return " ".join(value)
    return "auto" if value is None else str(value)


def rerun_command(spec: MatrixSpec) -> str:
    """The command that runs this matrix again (into a new directory)."""
    accel = f" --accel {spec.accel}" if spec.accel else ""
    return (f"rig matrix --scenarios {' '.join(spec.scenarios)} --modes "
            f"{' '.join(spec.modes)} --runs {spec.runs}{accel}")


def plan(scenarios: Sequence[str], modes: Sequence[str], runs: int
         ) -> list[tuple[str, str, int]]:
    """The order of a matrix's runs: scenario by scenario, the modes interleaved within
    each (runner.interleave)."""
    return [(sc, mode, n) for sc in scenarios for mode, n in runner.interleave(modes, runs)]


def suite(scenarios: Sequence[Scenario]) -> list[str]:
    """The default scenarios of a matrix: those with a [workload] and a [bench] set,
    the tuning set first, then the validation set, each by name."""
    chosen = [s for s in scenarios if s.workload is not None and s.bench.set is not None]
    order = {name: i for i, name in enumerate(SCENARIO_SETS)}
    return [s.name for s in sorted(chosen, key=lambda s: (order.get(s.bench.set or "",
                                                                     len(order)), s.name))]


def benchmarkable(scenarios: Sequence[Scenario]) -> list[str]:
    """The names a matrix may be given: every scenario with a [workload], by name."""
    return sorted(s.name for s in scenarios if s.workload is not None)


def check_names(what: str, given: Sequence[str], valid: Sequence[str]) -> list[str]:
    """`given` when every name is one of `valid` and none repeats; else a UsageError
    listing the valid ones."""
    unknown = [g for g in given if g not in valid]
    if unknown:
        raise UsageError(f"unknown {what} {', '.join(unknown)}: use {', '.join(valid)}")
    repeated = sorted({g for g in given if given.count(g) > 1})
    if repeated:
        raise UsageError(f"{what} named twice: {', '.join(repeated)}")
    return list(given)


def choose(scenarios: Sequence[Scenario], *, names: Sequence[str] | None,
           modes: Sequence[str] | None, runs: int | None, accel: str | None = None,
           command: str = "", stamp: str = "") -> MatrixSpec:
    """The spec of a new matrix from the command's arguments (None: the default: the
    suite, every mode, DEFAULT_RUNS) and the scenarios there are."""
    valid = benchmarkable(scenarios)
    chosen = check_names("scenario", names, valid) if names else suite(scenarios)
    if not chosen:
        raise UsageError("no scenario has a [bench] set: name scenarios with --scenarios "
                         f"({', '.join(valid)})")
    chosen_modes = check_names("mode", modes, MODES) if modes else list(MODES)
    runs = DEFAULT_RUNS if runs is None else runs
    if runs < 1:
        raise UsageError("--runs must be at least 1")
    return MatrixSpec(tuple(chosen), tuple(chosen_modes), runs, accel, command, stamp)


def resumed(stored: MatrixSpec, *, names: Sequence[str] | None,
            modes: Sequence[str] | None, runs: int | None, accel: str | None = None
            ) -> MatrixSpec:
    """The spec of a resumed matrix: matrix.json's, refusing (UsageError) arguments that
    differ from it; arguments not given (None) take matrix.json's values."""
    asked = MatrixSpec(tuple(names or stored.scenarios), tuple(modes or stored.modes),
                       stored.runs if runs is None else runs, accel or stored.accel,
                       stored.command)
    diffs = stored.differences(asked)
    if diffs:
        raise UsageError("a resume runs the matrix it finds, and matrix.json differs: "
                         + "; ".join(diffs))
    return stored


# --- the matrix directory ----------------------------------------------------------------

def matrix_dir(results_root: Path, stamp: str) -> Path:
    return results_root / MATRIX_DIR / stamp


def read_spec(d: Path) -> MatrixSpec:
    """A matrix directory's matrix.json (UsageError when there is none or it is bad)."""
    path = d / MATRIX_JSON
    if not path.is_file():
        raise UsageError(f"{d}: no {MATRIX_JSON} (give a matrix directory: "
                         f"results/{MATRIX_DIR}/<stamp>)")
    try:
        return MatrixSpec.from_json(json.loads(path.read_text()))
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: {e}") from None


def prepare(d: Path, spec: MatrixSpec) -> None:
    """Create a new matrix directory with its matrix.json (refused if it exists)."""
    if d.exists():
        raise UsageError(f"{d} exists: resume it with --resume {d}")
    d.mkdir(parents=True)
    results.write_json_atomic(d / MATRIX_JSON, spec.to_json())


def aside_name(run: str, taken: Sequence[str]) -> str:
    """run-<n>.incomplete-<k>, the smallest k >= 1 not in `taken`."""
    k = 1
    while f"{run}.incomplete-{k}" in taken:
        k += 1
    return f"{run}.incomplete-{k}"


def move_aside(run_dir: Path) -> Path:
    """Rename an incomplete run directory out of the run-<n> names; return where to."""
    taken = [p.name for p in run_dir.parent.iterdir()]
    target = run_dir.with_name(aside_name(run_dir.name, taken))
    run_dir.rename(target)
    return target


def changed_scenarios(d: Path, texts: Mapping[str, str]) -> list[str]:
    """The scenarios (name -> its TOML text now) whose complete runs in the matrix `d`
    ran another text (their scenario.toml): resuming would mix two experiments."""
    changed = []
    for name, text in texts.items():
        for summary in sorted((d / name).glob(f"*/{results.RUN_PREFIX}*/{results.SUMMARY}")):
            rd = summary.parent
            toml = rd / "scenario.toml"
            if (results.run_state(rd) == "complete" and toml.is_file()
                    and toml.read_text() != text):
                changed.append(name)
                break
    return changed


def _mode_summary(d: Path, scenario: str) -> results.Summary | None:
    """The mode directory's summary.json, written (results.write_mode_summary); None
    when it has no runs."""
    if not results.load_mode(d, scenario):
        return None
    return results.write_mode_summary(d, scenario)


@dataclass
class MatrixOutcome:
    """What a matrix run did: the per-mode summaries of each scenario (in the spec's mode
    order), the runs it skipped as complete, the runs that raised, and every planned run
    not complete at the end (scenario, mode, n)."""

    summaries: dict[str, list[results.Summary]] = field(default_factory=dict)
    skipped: list[tuple[str, str, int]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    incomplete: list[tuple[str, str, int]] = field(default_factory=list)


def run_matrix(d: Path, spec: MatrixSpec, context: Callable[[str], BenchContext],
               run: RunFn = runner.run_once) -> MatrixOutcome:
    """Run (or resume) the matrix in `d` (prepared: its matrix.json written). `context`
    gives a scenario's BenchContext (its progress reports the steps); `run` does one run
    (runner.run_once). A mode's summary.json is written after its last run."""
    order = plan(spec.scenarios, spec.modes, spec.runs)
    out = MatrixOutcome()
    in_a_row = 0
    ctx: BenchContext | None = None
    for i, (sc, mode, n) in enumerate(order, 1):
        if ctx is None or ctx.scenario.name != sc:
            ctx = context(sc)
        mode_dir = d / sc / mode
        rd = mode_dir / f"{results.RUN_PREFIX}{n}"
        what = f"matrix {i}/{len(order)}: {sc} {mode} run {n}"
        state = results.run_state(rd)
        if state == "complete":
            ctx.progress.info(f"{what}: complete already, skipped")
            out.skipped.append((sc, mode, n))
        else:
            if state == "incomplete":
                moved = move_aside(rd)
                ctx.progress.info(f"{what}: incomplete, moved aside to {moved.name}; "
                                  "redoing it")
            try:
                with ctx.progress.step(what):
                    summary = run(ctx, mode, n, rd)
                in_a_row = 0
                if not summary.complete:
                    ctx.progress.info(f"{what} is incomplete; see {rd}")
            except UsageError:
                raise
            except Exception as e:
                in_a_row += 1
                message = f"{what} failed: {type(e).__name__}: {e}"
                out.failed.append(message)
                ctx.progress.info(message)
                if in_a_row >= MAX_FAILURES_IN_A_ROW:
                    raise RigError(f"{in_a_row} runs in a row failed, the last: {message}; "
                                   f"resume with --resume {d}") from e
        if n == spec.runs and (mode_summary := _mode_summary(mode_dir, sc)) is not None:
            out.summaries.setdefault(sc, []).append(mode_summary)
    out.incomplete = [(sc, mode, n) for sc, mode, n in order
                      if results.run_state(d / sc / mode / f"{results.RUN_PREFIX}{n}")
                      != "complete"]
    return out
