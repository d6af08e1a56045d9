"""The benchmark matrix's orchestration: the plan, the spec (matrix.json), the default
suite, and running and resuming a matrix with a fake run function on temporary
directories."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from rig.bench import matrix, results
from rig.bench.matrix import MatrixSpec
from rig.bench.runner import BenchContext
from rig.errors import RigError, UsageError
from rig.layout import REPO_ROOT, Layout
from rig.progress import Progress
from rig.scenario import MODES, load
from tests.unit.report.summaries import VMS, run_metrics_dict

SCENARIOS = REPO_ROOT / "rig" / "scenarios"


# ---- the plan and the spec --------------------------------------------------------------

def test_plan_goes_scenario_by_scenario_with_the_modes_interleaved():
    assert matrix.plan(["cache", "quick"], ["vanilla", "auto"], 2) == [
        ("cache", "vanilla", 1), ("cache", "auto", 1),
        ("cache", "vanilla", 2), ("cache", "auto", 2),
        ("quick", "vanilla", 1), ("quick", "auto", 1),
        ("quick", "vanilla", 2), ("quick", "auto", 2)]
    assert matrix.plan(["a"], ["x"], 1) == [("a", "x", 1)]
    assert len(matrix.plan(["a", "b", "c"], MODES, 2)) == 36


def _scenario(name, suite_set, workload=True):
    base = load("quick" if workload else "smoke", SCENARIOS)
    return replace(base, name=name, bench=replace(base.bench, set=suite_set))


def test_the_default_suite_is_tuning_then_validation_by_name():
    scs = [_scenario("zeta", "tuning"), _scenario("cache", "validation"),
           _scenario("alpha", "validation"), _scenario("quick", "tuning"),
           _scenario("adhoc", None), _scenario("smoke", "tuning", workload=False)]
    assert matrix.suite(scs) == ["quick", "zeta", "alpha", "cache"]
    assert matrix.benchmarkable(scs) == ["adhoc", "alpha", "cache", "quick", "zeta"]


def test_the_real_scenarios_give_a_suite():
    scs = [load(p.stem, SCENARIOS) for p in sorted(SCENARIOS.glob("*.toml"))]
    names = matrix.suite(scs)
    assert "quick" in names and "smoke" not in names


def test_choose_defaults_and_refusals():
    scs = [_scenario("quick", "tuning"), _scenario("cache", "validation"),
           _scenario("adhoc", None)]
    spec = matrix.choose(scs, names=None, modes=None, runs=None, command="rig matrix")
    assert spec == MatrixSpec(("quick", "cache"), MODES, 2, None, "rig matrix")
    spec = matrix.choose(scs, names=["adhoc"], modes=["auto", "vanilla"], runs=1,
                         accel="tcg")
    assert (spec.scenarios, spec.modes, spec.runs, spec.accel) == (
        ("adhoc",), ("auto", "vanilla"), 1, "tcg")
    with pytest.raises(UsageError, match=r"unknown scenario nope: use adhoc, cache, quick"):
        matrix.choose(scs, names=["quick", "nope"], modes=None, runs=None)
    with pytest.raises(UsageError, match=r"unknown mode fast: use vanilla, auto-seed, auto"):
        matrix.choose(scs, names=None, modes=["fast"], runs=None)
    with pytest.raises(UsageError, match="mode named twice: auto"):
        matrix.choose(scs, names=None, modes=["auto", "auto"], runs=None)
    with pytest.raises(UsageError, match="--runs must be at least 1"):
        matrix.choose(scs, names=None, modes=None, runs=0)
    with pytest.raises(UsageError, match="no scenario has a .bench. set"):
        matrix.choose([_scenario("adhoc", None)], names=None, modes=None, runs=None)


def test_spec_round_trips_and_bad_ones_are_refused():
    spec = MatrixSpec(("quick", "cache"), ("vanilla", "auto"), 3, "kvm", "rig matrix --runs 3",
                      "20250101T000000")
    assert MatrixSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    good = spec.to_json()
    old = {k: v for k, v in good.items() if k not in ("command", "stamp")}
    assert MatrixSpec.from_json(old) == replace(spec, command="", stamp="")
    for bad, message in [({**good, "schema": 2}, "schema 1"),
                         ({**good, "modes": []}, "'modes' must be a non-empty list"),
                         ({**good, "runs": 0}, "'runs' must be an integer >= 1"),
                         ({**good, "runs": True}, "'runs'"),
                         ({**good, "accel": "xen"}, "'accel'"),
                         ({**good, "stamp": 5}, "'stamp' must be a string"),
                         ([], "schema 1")]:
        with pytest.raises(ValueError, match=message):
            MatrixSpec.from_json(bad)


def test_rerun_command():
    spec = MatrixSpec(("quick", "cache"), ("vanilla", "auto+fpr"), 2)
    assert matrix.rerun_command(spec) == (
        "rig matrix --scenarios quick cache --modes vanilla auto+fpr --runs 2")
    assert matrix.rerun_command(replace(spec, accel="tcg")).endswith("--runs 2 --accel tcg")


def test_a_resume_takes_the_matrix_arguments_and_refuses_others():
    stored = MatrixSpec(("quick", "cache"), ("vanilla", "auto"), 2, "tcg", "rig matrix ...")
    same = matrix.resumed(stored, names=None, modes=None, runs=None)
    assert same == stored
    assert matrix.resumed(stored, names=["quick", "cache"], modes=["vanilla", "auto"],
                          runs=2, accel="tcg") == stored
    with pytest.raises(UsageError, match=r"runs 3 \(the matrix has 2\)"):
        matrix.resumed(stored, names=None, modes=None, runs=3)
    with pytest.raises(UsageError, match=r"scenarios quick \(the matrix has quick cache\)"):
        matrix.resumed(stored, names=["quick"], modes=None, runs=None)
    with pytest.raises(UsageError, match=r"accel kvm \(the matrix has tcg\)"):
        matrix.resumed(stored, names=None, modes=None, runs=None, accel="kvm")


def test_prepare_and_read_spec(tmp_path: Path):
    d = matrix.matrix_dir(tmp_path / "results", "20250101T000000")
    assert d == tmp_path / "results" / "matrix" / "20250101T000000"
    with pytest.raises(UsageError, match="no matrix.json"):
        matrix.read_spec(d)
    spec = MatrixSpec(("quick",), ("vanilla",), 1, None, "rig matrix")
    matrix.prepare(d, spec)
    assert json.loads((d / "matrix.json").read_text())["scenarios"] == ["quick"]
    assert matrix.read_spec(d) == spec
    with pytest.raises(UsageError, match="exists: resume it with --resume"):
        matrix.prepare(d, spec)
    (d / "matrix.json").write_text("{")
    with pytest.raises(UsageError, match="matrix.json: "):
        matrix.read_spec(d)


def test_aside_names():
    assert matrix.aside_name("run-2", ["run-1", "run-2"]) == "run-2.incomplete-1"
    assert matrix.aside_name("run-2", ["run-2.incomplete-1", "run-2.incomplete-2"]) == (
        "run-2.incomplete-3")


# ---- running and resuming ---------------------------------------------------------------

class FakeRuns:
    """A run function: writes a run directory as runner.run_once does, complete unless
    (scenario, mode, n) is in `incomplete`, raising for those in `raises`."""

    def __init__(self, incomplete=(), raises=()):
        self.calls: list[tuple[str, str, int]] = []
        self.incomplete, self.raises = set(incomplete), set(raises)

    def __call__(self, ctx, mode, n, out):
        key = (ctx.scenario.name, mode, n)
        self.calls.append(key)
        results.begin_run(out)
        (out / "scenario.toml").write_text(ctx.scenario_text)
        if key in self.raises:
            results.write_json_atomic(out / results.SUMMARY, results.RunSummary(
                key[0], mode, n, False, {}, {}).to_json())
            raise RigError(f"boom in {key}")
        complete = key not in self.incomplete
        summary = results.RunSummary(key[0], mode, n, complete,
                                     run_metrics_dict(**{"host.swap_out": 100 * n}), {})
        if complete:
            results.finish_run(out, summary, vms=VMS)
        else:
            results.write_json_atomic(out / results.SUMMARY, summary.to_json())
        return summary


class Contexts:
    def __init__(self, tmp_path: Path):
        self.stream = io.StringIO()
        self.progress = Progress(stream=self.stream, clock=lambda: 0.0)
        self.layout = Layout(tmp_path, tmp_path / "c", tmp_path / "s", tmp_path / "r")
        self.asked: list[str] = []

    def __call__(self, name: str) -> BenchContext:
        self.asked.append(name)
        sc = replace(load("quick", SCENARIOS), name=name)
        return BenchContext(self.layout, None, sc, f"# {name}\n", self.progress)  # type: ignore[arg-type]


SPEC = MatrixSpec(("cache", "quick"), ("vanilla", "auto"), 2, None, "rig matrix")


def test_a_matrix_runs_in_plan_order_and_writes_each_mode_summary(tmp_path: Path):
    d = tmp_path / "m"
    matrix.prepare(d, SPEC)
    runs, ctxs = FakeRuns(incomplete=[("quick", "auto", 2)]), Contexts(tmp_path)
    outcome = matrix.run_matrix(d, SPEC, ctxs, runs)
    assert runs.calls == matrix.plan(SPEC.scenarios, SPEC.modes, SPEC.runs)
    assert ctxs.asked == ["cache", "quick"]  # one context per scenario
    assert outcome.skipped == [] and outcome.failed == []
    assert outcome.incomplete == [("quick", "auto", 2)]
    assert list(outcome.summaries) == ["cache", "quick"]
    assert [s["mode"] for s in outcome.summaries["quick"]] == ["vanilla", "auto"]
    auto = json.loads((d / "quick" / "auto" / "summary.json").read_text())
    assert auto["incomplete_runs"] == [2] and auto["metrics"]["host.swap_out"]["values"] == [100]
    log = ctxs.stream.getvalue()
    assert "==> matrix 1/8: cache vanilla run 1 ..." in log
    assert "==> matrix 8/8: quick auto run 2 ..." in log
    assert "matrix 8/8: quick auto run 2 is incomplete" in log
    # each scenario directory is a bench results directory
    assert results.run_state(d / "cache" / "auto" / "run-2") == "complete"


def test_a_resume_skips_complete_runs_and_moves_incomplete_ones_aside(tmp_path: Path):
    d = tmp_path / "m"
    matrix.prepare(d, SPEC)
    first = FakeRuns(incomplete=[("cache", "auto", 1)], raises=[("quick", "vanilla", 2)])
    matrix.run_matrix(d, SPEC, Contexts(tmp_path), first)
    # a run that never started: no directory at all
    for p in sorted((d / "quick" / "auto" / "run-2").iterdir()):
        p.unlink()
    (d / "quick" / "auto" / "run-2").rmdir()
    # one moved aside before: the next one gets -2
    (d / "cache" / "auto" / "run-1.incomplete-1").mkdir()

    again, ctxs = FakeRuns(), Contexts(tmp_path)
    outcome = matrix.run_matrix(d, SPEC, ctxs, again)
    assert again.calls == [("cache", "auto", 1), ("quick", "vanilla", 2), ("quick", "auto", 2)]
    assert len(outcome.skipped) == 5 and outcome.incomplete == []
    aside = d / "cache" / "auto" / "run-1.incomplete-2"
    assert (aside / results.INCOMPLETE).is_file()  # nothing deleted
    assert results.run_state(d / "cache" / "auto" / "run-1") == "complete"
    assert (d / "quick" / "vanilla" / "run-2.incomplete-1").is_dir()
    # the moved runs are not runs of the mode any more
    assert [r.run for r in results.load_mode(d / "cache" / "auto", "cache")] == [1, 2]
    cache_auto = json.loads((d / "cache" / "auto" / "summary.json").read_text())
    assert cache_auto["complete"] and cache_auto["runs"] == 2
    log = ctxs.stream.getvalue()
    assert "matrix 1/8: cache vanilla run 1: complete already, skipped" in log
    assert ("matrix 2/8: cache auto run 1: incomplete, moved aside to run-1.incomplete-2; "
            "redoing it") in log
    # everything complete: a third pass runs nothing
    third = FakeRuns()
    assert len(matrix.run_matrix(d, SPEC, Contexts(tmp_path), third).skipped) == 8
    assert third.calls == []


def test_a_failing_run_is_recorded_and_three_in_a_row_stop_the_matrix(tmp_path: Path):
    d = tmp_path / "m"
    matrix.prepare(d, SPEC)
    runs = FakeRuns(raises=[("cache", "vanilla", 1)])
    outcome = matrix.run_matrix(d, SPEC, Contexts(tmp_path), runs)
    assert len(runs.calls) == 8
    assert outcome.failed == ["matrix 1/8: cache vanilla run 1 failed: RigError: "
                              "boom in ('cache', 'vanilla', 1)"]
    assert outcome.incomplete == [("cache", "vanilla", 1)]

    d2 = tmp_path / "m2"
    matrix.prepare(d2, SPEC)
    runs = FakeRuns(raises=matrix.plan(SPEC.scenarios, SPEC.modes, SPEC.runs))
    with pytest.raises(RigError, match=r"3 runs in a row failed, the last: matrix 3/8: "
                       r".*resume with --resume"):
        matrix.run_matrix(d2, SPEC, Contexts(tmp_path), runs)
    assert len(runs.calls) == 3


def test_a_usage_error_in_a_run_stops_at_once(tmp_path: Path):
    d = tmp_path / "m"
    matrix.prepare(d, SPEC)

    def bad(ctx, mode, n, out):
        raise UsageError("bad scenario")

    with pytest.raises(UsageError, match="bad scenario"):
        matrix.run_matrix(d, SPEC, Contexts(tmp_path), bad)


def test_changed_scenarios_are_found(tmp_path: Path):
    d = tmp_path / "m"
    matrix.prepare(d, SPEC)
    matrix.run_matrix(d, SPEC, Contexts(tmp_path), FakeRuns())
    assert matrix.changed_scenarios(d, {"cache": "# cache\n", "quick": "# quick\n"}) == []
    assert matrix.changed_scenarios(d, {"cache": "# cache v2\n", "quick": "# quick\n"}) == [
        "cache"]


def test_a_matrix_mode_directory_is_read_by_the_markers(tmp_path: Path):
    d = tmp_path / "m"
    matrix.prepare(d, SPEC)
    matrix.run_matrix(d, SPEC, Contexts(tmp_path), FakeRuns())
    mode_dir = d / "quick" / "auto"
    (mode_dir / "run-2" / results.INCOMPLETE).write_text("")
    (mode_dir / "run-3").mkdir()  # begun, nothing written yet
    runs = results.load_mode(mode_dir, "quick")
    assert [(r.run, r.complete) for r in runs] == [(1, True), (2, False), (3, False)]
    summary = results.write_mode_summary(mode_dir, "quick")
    assert summary is not None and summary["incomplete_runs"] == [2, 3]
    with pytest.raises(ValueError, match="is of quick/auto run 1, not cache/auto run 1"):
        results.load_mode(mode_dir, "cache")
