"""The matrix report: its rows (medians, the best of each row, missing values, which way
is better), the ratio table, the document, and a matrix directory's report written from
the golden results."""

from __future__ import annotations

import re
import shutil

import pytest

from rig import cli_matrix
from rig.bench import matrix, results
from rig.bench.matrix import MatrixSpec
from rig.cli import main
from rig.errors import UsageError
from rig.report import matrix as mx
from rig.report.document import is_numeric, to_markdown
from tests import FIXTURES

from .summaries import VMS, run_metrics_dict
from .test_report import md_tables

GOLDEN = FIXTURES / "results" / "quick-golden"
#: An absolute path of a machine (the system's own /dev, /proc, /sys are no such thing).
MACHINE_PATH = re.compile(r"(?<![\w<>.])/(tmp|home|var|work|root|srv|opt|usr|mnt)\b")


def summary(scenario, mode, per_run, incomplete=0):
    """A per-mode summary (results.aggregate) of complete runs given as metric dicts, and
    `incomplete` incomplete runs after them."""
    runs = [results.RunSummary(scenario, mode, n, True, m, {})
            for n, m in enumerate(per_run, 1)]
    runs += [results.RunSummary(scenario, mode, len(per_run) + i, False, {}, {})
             for i in range(1, incomplete + 1)]
    return results.aggregate(runs)


def ebizzy_runs(swap_outs, recs=9000, guest_swap=(0, 0), oom=(0, 0)):
    return [run_metrics_dict(**{"host.swap_out": s, "vm-down.guest.records_total": recs,
                                "vm-up.guest.records_total": recs,
                                "vm-down.guest.swap_out": guest_swap[0],
                                "vm-up.guest.swap_out": guest_swap[1],
                                "vm-down.guest.oom_kills": oom[0],
                                "vm-up.guest.oom_kills": oom[1]})
            for s in swap_outs]


def idle_runs(touch):
    return [{"host.swap_in": 0, "host.swap_out": 50, "vm-a.qemu.elapsed_s": 10.0,
             "vm-a.guest.touch_s": t, "vm-a.guest.swap_out": 3, "vm-a.guest.oom_kills": 0}
            for t in touch]


MODES = ("vanilla", "auto", "free-page-reporting")
QUICK = mx.ScenarioResults("quick", "tuning", "two guests in opposite directions", (
    summary("quick", "vanilla", ebizzy_runs([1000, 3000]), incomplete=1),
    summary("quick", "auto", ebizzy_runs([10, 30], guest_swap=(5, 7))),
    summary("quick", "free-page-reporting", ebizzy_runs([20, 20], recs=8000)),
))
IDLE = mx.ScenarioResults("idle", "validation", "an idle guest", (
    summary("idle", "vanilla", idle_runs([2.0, 2.0])),
    summary("idle", "auto", idle_runs([1.5, 1.7])),
))


def rows_of(sr, modes=MODES):
    return {r.metric: r for r in mx.scenario_rows(sr, modes)}


def test_rows_are_medians_and_the_best_is_bold():
    rows = rows_of(QUICK)
    assert list(rows) == ["host swap-out (pages)", "vm-down ebizzy records/s",
                          "vm-up ebizzy records/s", "guest swap-out (pages, sum of VMs)",
                          "guest OOM kills (sum of VMs)"]
    host = rows["host swap-out (pages)"]
    assert host.values == (2000.0, 20.0, 20.0)
    assert host.cells() == ["2,000", "**20**", "**20**"]  # lower is better; ties both bold
    recs = rows["vm-down ebizzy records/s"]
    assert recs.higher_is_better and recs.cells() == ["**9,000**", "**9,000**", "8,000"]
    guest = rows["guest swap-out (pages, sum of VMs)"]
    assert guest.values == (0.0, 12.0, 0.0) and guest.best() == (0, 2)
    oom = rows["guest OOM kills (sum of VMs)"]
    assert oom.best() == (0, 1, 2)


def test_lower_is_better_for_the_idle_touch_time():
    rows = rows_of(IDLE, ("vanilla", "auto"))
    touch = rows["vm-a idle touch time (s)"]
    assert not touch.higher_is_better
    assert touch.cells() == ["2.00", "**1.60**"]


def test_a_missing_mode_or_metric_shows_a_dash_and_is_never_best():
    rows = rows_of(IDLE)  # idle has no free-page-reporting
    assert rows["host swap-out (pages)"].cells() == ["**50**", "**50**", "-"]
    nothing = mx.MatrixRow("x", "m", (None, None), 0, False)
    assert nothing.best() == () and nothing.cells() == ["-", "-"]
    # a mode whose only run is incomplete has no metrics at all
    sr = mx.ScenarioResults("quick", None, "", (
        summary("quick", "vanilla", ebizzy_runs([5])),
        summary("quick", "auto", [], incomplete=1)))
    assert rows_of(sr, ("vanilla", "auto"))["host swap-out (pages)"].cells() == ["**5**", "-"]
    assert mx.scenario_rows(mx.ScenarioResults("cache", None, ""), MODES) == []


def test_the_best_is_judged_on_the_values_as_shown():
    row = mx.MatrixRow("x", "m", (1234.4, 1234.2, 1300.0), 0, False)
    assert row.cells() == ["**1,234**", "**1,234**", "1,300"]
    half = mx.MatrixRow("x", "oom", (0.5, 0.0), 0, False)  # a count's median of 0 and 1
    assert half.cells() == ["0.5", "**0**"]
    assert mx.MatrixRow("x", "swap", (150.5, 150.2), 0, False).cells() == ["**150**", "**150**"]
    assert is_numeric("**1,234**") and not is_numeric("**auto**")  # bold numbers align right


def test_vm_sums_are_per_run_before_the_median():
    s = summary("quick", "vanilla", [
        run_metrics_dict(**{"vm-down.guest.swap_out": a, "vm-up.guest.swap_out": b})
        for a, b in ((0, 100), (10, 5), (100, 0))])
    names = [f"{vm}.guest.swap_out" for vm in VMS]
    assert mx.summed_median(s, names) == 100.0  # sums 100, 15, 100 (medians would give 15)
    assert mx.summed_median(s, ["vm-down.guest.nothing"]) is None
    assert mx.summed_median(None, names) is None


def test_ratios_to_vanilla_and_free_page_reporting():
    rows = mx.ratio_rows([QUICK, IDLE], MODES)
    assert rows == [["quick", "vanilla", "1.00", "0.01", "0.01"],
                    ["quick", "free-page-reporting", "100.00", "1.00", "1.00"],
                    ["idle", "vanilla", "1.00", "1.00", "n/a"]]
    assert mx.fmt_ratio(5.0, 0.0) == "n/a" and mx.fmt_ratio(0.0, 5.0) == "0.00"
    assert mx.fmt_ratio(1.0, 300.0) == "0.0033"


SPEC = MatrixSpec(("quick", "idle", "cache"), MODES, 2, None, "rig matrix", "20250101T000000")


def test_the_document_has_the_matrix_at_the_top_and_a_section_per_scenario():
    cache = mx.ScenarioResults("cache", "validation", "")
    title, blocks = mx.build("20250101T000000", SPEC, [QUICK, IDLE, cache])
    md = to_markdown(blocks)
    heads = [line for line in md.splitlines() if line.startswith("#")]
    assert heads == [
        "# Benchmark matrix: 20250101T000000", "## The matrix",
        "## Host swap-out against vanilla and free page reporting", "## How to rerun this",
        "## quick (tuning set)", "### quick: auto vs vanilla",
        "### quick: free-page-reporting vs vanilla", "## idle (validation set)",
        "### idle: auto vs vanilla", "## cache (validation set)"]
    assert title == "Benchmark matrix: 20250101T000000"
    assert ("Runs not counted: quick vanilla run 3; idle free-page-reporting (not run yet); "
            "cache (not run yet).") in md
    headers, rows = md_tables(md)[0]
    assert headers == ["scenario", "metric", *MODES, "best"]
    assert rows[0] == ["quick", "host swap-out (pages)", "2,000", "**20**", "**20**",
                       "auto, free-page-reporting"]
    assert rows[5][:2] == ["idle", "host swap-out (pages)"]
    assert "rig matrix --scenarios quick idle cache --modes vanilla auto " in md
    assert "rig matrix-report <results>/matrix/20250101T000000" in md
    assert "[quick/report/report.md](../quick/report/report.md)" in md  # from report/
    assert "No results yet." in md and "median over the mode's complete runs" in md
    assert not MACHINE_PATH.search(md)
    assert mx.matrix_markdown([QUICK], MODES).startswith("Each value is the median")


# ---- a matrix directory -----------------------------------------------------------------

@pytest.fixture
def golden_matrix(tmp_path):
    """A matrix directory holding the golden quick results, and a scenario not run yet."""
    d = tmp_path / "results" / "matrix" / "20250101T000000"
    matrix.prepare(d, MatrixSpec(("quick", "cache"), ("vanilla", "auto"), 1, None,
                                 f"rig matrix --results {tmp_path}/results",
                                 "20250101T000000"))
    shutil.copytree(GOLDEN, d / "quick")
    return d


def test_write_matrix_report(golden_matrix, tmp_path):
    d = golden_matrix
    md_path = mx.write_matrix_report(d)
    assert md_path == d / "report" / "report.md"
    md, page = md_path.read_text(), (d / "report" / "report.html").read_text()
    for text in (md, page):
        assert str(tmp_path) not in text and not MACHINE_PATH.search(text)
    assert "| quick    | host swap-out (pages)" in md
    assert "118,352" in md and "## cache (validation set)" not in md  # set unknown: no toml
    assert '<a href="../quick/report/report.html">HTML</a>' in page
    assert "<strong>" in page
    own = (d / "quick" / "report" / "report.md").read_text()
    assert own.startswith("# Benchmark report: quick, 20250101T000000\n")
    assert "rig report <results>/matrix/20250101T000000/quick" in own
    assert (d / "quick" / "report" / "report.html").is_file()
    spec, loaded = mx.load_matrix(d)
    assert [s.name for s in loaded] == ["quick", "cache"] and loaded[1].summaries == ()


def test_cli_matrix_report_and_report_of_a_matrix(golden_matrix, capsys):
    d = golden_matrix
    assert main(["matrix-report", str(d)]) == 0
    assert capsys.readouterr().out == (f"report: {d}/report/report.md and "
                                       f"{d}/report/report.html\n")
    assert main(["report", str(d)]) == 0  # a matrix directory: the same
    assert capsys.readouterr().out.startswith(f"report: {d}/report/report.md")
    assert main(["matrix-report", str(d.parent)]) == 2
    assert "no matrix.json" in capsys.readouterr().err
    assert main(["report", str(d), "--baseline", "auto"]) == 2
    assert "compares with vanilla" in capsys.readouterr().err


@pytest.fixture
def no_runs(monkeypatch):
    """`rig matrix` past its checks would need root and boot VMs: fail the test instead."""
    def refuse(what, euid):
        raise AssertionError(f"{what} got past its checks")
    monkeypatch.setattr(cli_matrix, "require_root", refuse)


@pytest.mark.parametrize(("argv", "message"), [
    (["--scenarios", "nope"], "unknown scenario nope: use "),
    (["--scenarios", "smoke"], "unknown scenario smoke"),
    (["--modes", "vanilla", "fast"], "unknown mode fast: use vanilla, auto-seed, auto, "
     "free-page-reporting, stats-polling, auto+fpr"),
    (["--runs", "0"], "--runs must be at least 1"),
])
def test_cli_matrix_refuses_bad_arguments_before_anything(no_runs, capsys, argv, message):
    assert main(["matrix", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    if "scenario" in message:
        assert "quick" in err.split("use ")[1] and "smoke" not in err.split("use ")[1]


def test_cli_matrix_resume_refuses_other_arguments(no_runs, golden_matrix, capsys):
    d = golden_matrix
    assert main(["matrix", "--resume", str(d), "--runs", "3"]) == 2
    assert "runs 3 (the matrix has 1)" in capsys.readouterr().err
    assert main(["matrix", "--resume", str(d), "--results", "x"]) == 2
    assert "no --results with it" in capsys.readouterr().err
    # the golden runs ran another quick.toml than today's
    (d / "quick" / "vanilla" / "run-1" / "scenario.toml").write_text("# another\n")
    assert main(["matrix", "--resume", str(d)]) == 2
    assert "quick changed since this matrix ran" in capsys.readouterr().err
    with pytest.raises(UsageError):
        matrix.read_spec(d / "quick")
