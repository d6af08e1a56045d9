"""Reports: the document assembled from the results (overview, environment), and a golden
results directory whose report must show the numbers its raw files give."""

import json
import re
import shutil
import struct

import pytest

from rig.bench import results, run_metrics
from rig.cli import main
from rig.errors import UsageError
from rig.report import report
from rig.report.report import env_tables, write_report
from tests import FIXTURES

from .summaries import VMS

GOLDEN = FIXTURES / "results" / "quick-golden"


def md_tables(text):
    """Every markdown table of a document: (headers, rows of cells)."""
    out, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        below = lines[i + 1] if i + 1 < len(lines) else ""
        if lines[i].startswith("| ") and below.startswith(("|:", "|-")):
            cells = [c.strip() for c in lines[i].strip("|").split(" | ")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append([c.strip() for c in lines[i][2:-2].split(" | ")])
                i += 1
            out.append((cells, rows))
        else:
            i += 1
    return out


def find_table(tables_, first_header, *more):
    for headers, rows in tables_:
        if headers[0] == first_header and all(h in headers for h in more):
            return headers, rows
    raise AssertionError(f"no table with headers {first_header}, {more}")


# ---- the environment tables ------------------------------------------------------------

def test_env_tables_split_common_and_differing():
    envs = {"vanilla": [{"accel": "tcg", "thp_enabled": "never", "qemu": {"patches": ["a", "b"]},
                         "policy": None, "policy_params": {}, "command": "rig run x"}],
            "auto": [{"accel": "tcg", "thp_enabled": "madvise", "qemu": {"patches": ["a", "b"]},
                      "policy": "auto", "policy_params": {"step": 32}},
                     {"accel": "tcg", "thp_enabled": "never", "qemu": {"patches": ["a", "b"]},
                      "policy": "auto", "policy_params": {"step": 32}}]}
    common, differing = env_tables(envs)
    assert common == [["accel", "tcg"], ["qemu.patches", "a, b"]]
    assert differing == [["thp_enabled", "never", "madvise | never"],
                         ["policy", "none", "auto"],
                         ["policy_params", "(none)", "-"],
                         ["policy_params.step", "-", "32"]]


# ---- the golden results directory -----------------------------------------------------

# What rig.run_metrics.compute gives for the golden runs' raw files (frozen: a change in
# the parsers or the math shows up here).
GOLDEN_RAW = {
    "vanilla": {
        "host.swap_in": 12005, "host.swap_out": 118352, "elapsed_s": 66.353,
        "vm-down.qemu.elapsed_s": 66.353, "vm-down.qemu.user_s": 52.72,
        "vm-down.qemu.sys_s": 1.95, "vm-down.qemu.cpu_pct": 82.39265745331788,
        "vm-down.qemu.major_faults": 4210, "vm-down.qemu.minor_faults": 137641,
        "vm-down.guest.records_total": 8751, "vm-down.guest.swap_in": 0,
        "vm-down.guest.swap_out": 0, "vm-down.guest.oom_kills": 0,
        "vm-up.qemu.user_s": 53.29, "vm-up.qemu.sys_s": 2.15,
        "vm-up.qemu.cpu_pct": 83.5531174174491, "vm-up.qemu.major_faults": 1512,
        "vm-up.qemu.minor_faults": 141910, "vm-up.guest.records_total": 9409,
        "vm-up.guest.swap_out": 29, "vm-up.guest.step1.records_s": 1889,
        "vm-up.guest.step5.records_s": 1844, "host.peak_swap_mib": 505,
    },
    "auto": {
        "host.swap_in": 14734, "host.swap_out": 58623, "elapsed_s": 65.674,
        "vm-down.qemu.elapsed_s": 65.674, "vm-down.qemu.user_s": 53.08,
        "vm-down.qemu.sys_s": 1.54, "vm-down.qemu.cpu_pct": 83.1683771355483,
        "vm-down.qemu.major_faults": 4411, "vm-down.qemu.minor_faults": 15503,
        "vm-down.guest.records_total": 8964, "vm-up.qemu.user_s": 53.75,
        "vm-up.qemu.sys_s": 2.06, "vm-up.qemu.cpu_pct": 84.98035752352529,
        "vm-up.qemu.major_faults": 32, "vm-up.qemu.minor_faults": 163858,
        "vm-up.guest.records_total": 9477, "vm-up.guest.swap_in": 0,
        "vm-up.guest.swap_out": 83, "vm-up.guest.oom_kills": 0,
        "vm-up.balloon.min_mib": 240, "daemon.commands": 53,
        "daemon.host_pressure_events": 30, "daemon.guest_pressure_events": 3,
    },
}


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    d = tmp_path_factory.mktemp("results") / "quick" / "golden"
    shutil.copytree(GOLDEN, d)
    md = write_report(d)
    return d, md.read_text(), (d / "report" / "report.html").read_text()


@pytest.mark.parametrize("mode", ["vanilla", "auto"])
def test_golden_raw_files_give_the_frozen_metrics(mode):
    complete, metrics = run_metrics.compute(GOLDEN / mode / "run-1", VMS)
    assert complete
    assert {k: metrics[k] for k in GOLDEN_RAW[mode]} == GOLDEN_RAW[mode]


def test_golden_report_has_every_section(golden):
    _, md, _ = golden
    heads = [line for line in md.splitlines() if line.startswith("#")]
    assert heads == [
        "# Benchmark report: quick, golden", "## How to rerun this",
        "## Results in the RFC's layout", "## Comparison with vanilla",
        "### auto vs vanilla",
        "## Beside the RFC's numbers: published (2013 RFC, KVM, 2 GiB host)",
        "### Ratios to vanilla: published automatic vs our auto",
        "## Plots", "## Environment", "## Raw-file check"]
    assert "rig run quick --mode vanilla --runs 1 --results /tmp/results" in md
    assert "rig run quick --mode auto --runs 1 --results /tmp/results" in md
    assert re.search(r"^rig report /\S+/quick/golden$", md, re.MULTILINE)


def test_golden_rfc_tables_are_the_raw_files_numbers(golden):
    _, md, _ = golden
    tabs = md_tables(md)
    _, host = find_table(tabs, "mode", "host swap in")
    assert host[:2] == [["vanilla", "1", "12,005", "118,352"], ["auto", "1", "14,734", "58,623"]]
    _, vm_rows = find_table(tabs, "mode", "VM", "total recs")
    assert vm_rows[:4] == [
        ["vanilla", "vm-down", "66.35", "52.72", "1.95", "82", "4,210", "137,641", "8,751",
         "0", "0", "0"],
        ["vanilla", "vm-up", "66.35", "53.29", "2.15", "84", "1,512", "141,910", "9,409",
         "0", "29", "0"],
        ["auto", "vm-down", "65.67", "53.08", "1.54", "83", "4,411", "15,503", "8,964",
         "0", "0", "0"],
        ["auto", "vm-up", "65.67", "53.75", "2.06", "85", "32", "163,858", "9,477",
         "0", "83", "0"],
    ]
    # and the same numbers recomputed from the raw files, formatted as the table does
    for row, (mode, vm) in zip(vm_rows[:4], [("vanilla", "vm-down"), ("vanilla", "vm-up"),
                                             ("auto", "vm-down"), ("auto", "vm-up")],
                               strict=True):
        _, raw = run_metrics.compute(GOLDEN / mode / "run-1", VMS)
        assert row[4] == f"{raw[f'{vm}.qemu.sys_s']:,.2f}"
        assert row[6] == f"{raw[f'{vm}.qemu.major_faults']:,}"
        assert row[8] == f"{raw[f'{vm}.guest.records_total']:,}"


def test_golden_comparison_and_published_tables(golden):
    _, md, _ = golden
    tabs = md_tables(md)
    headers, cmp_rows = find_table(tabs, "metric", "vanilla", "auto", "change")
    assert headers == ["metric", "vanilla", "auto", "change", "95 % CI of the difference",
                       "p", "significant"]
    rows = {r[0]: r[1:] for r in cmp_rows}
    # one run a mode: no test, no interval; the primary metrics are marked all the same
    na, na_primary = ["n/a", "n/a", "n/a"], ["n/a", "n/a", "n/a (primary)"]
    assert rows["host swap out (pages)"] == ["118,352", "58,623", "-50.5%", *na_primary]
    assert rows["host swap in (pages)"] == ["12,005", "14,734", "+22.7%", *na]
    assert rows["vm-up QEMU major faults"] == ["1,512", "32", "-97.9%", *na]
    assert rows["vm-down QEMU CPU%"] == ["82.4", "83.2", "+0.9%", *na]
    assert rows["vm-up total recs (records/s)"] == ["9,409", "9,477", "+0.7%", *na_primary]
    assert rows["vm-up balloon minimum (MiB)"] == ["666", "240", "-64.0%", *na]
    assert rows["vm-up guest swap out (pages)"] == ["29", "83", "+186.2%", *na_primary]
    assert rows["vm-down guest OOM kills"] == ["0", "0", "0.0%", *na_primary]
    assert rows["vm-down guest swap in (pages)"] == ["0", "0", "0.0%", *na]
    assert sum(r[-1] == "n/a (primary)" for r in cmp_rows) == 7
    assert "primary metrics, named in advance (host swap out (pages); per VM: total recs" in md
    assert "Holm's step-down procedure" in md
    _, pub = find_table(tabs, "metric", "published ratio", "our ratio")
    prow = {r[0]: r[1:] for r in pub}
    assert prow["host swap out (pages)"] == [
        "372,551", "8,225.33", "0.022", "118,352", "58,623", "0.495"]
    assert prow["vm-up QEMU major faults"] == [
        "2,053.66", "63.66", "0.031", "1,512", "32", "0.021"]
    _, rfc = find_table(tabs, "mode", "VM", "OOM kills")  # ours first, then published
    published_tables = [t for t in tabs if t[1] and t[1][0][0] == "vanilla"
                        and any(r[0] == "automatic" for r in t[1])]
    assert len(published_tables) == 2
    assert published_tables[1][1][3] == ["automatic", "vm-up", "388.79", "310.98", "4.35", "81",
                                         "63.66", "110,307", "4,704.33", "2.67", "822.66", "-"]
    assert rfc[0][0] == "vanilla"


def test_golden_environment_and_raw_file_check(golden):
    _, md, _ = golden
    tabs = md_tables(md)
    _, common = find_table(tabs, "key", "value")
    env = dict(common)
    assert env["accel"] == "tcg"
    assert env["scenario_sha256"] == \
        "f3695a3f2cde3b1172fa07c43425963e355fceecc63e8e3859bde9e5e102dfd3"
    assert env["rig_revision"] == "48ad18fc42b52e63292e7029893df8121141e414-dirty"
    assert env["qemu.source_version"] == "1:7.2+dfsg-7+deb12u18"
    _, diff = find_table(tabs, "key", "vanilla", "auto")
    assert ["thp_enabled", "always madvise [never]", "always [madvise] never"] in diff
    _, check = find_table(tabs, "mode", "run", "state")
    assert check == [["vanilla", "1", "complete", "matches (39 metrics)"],
                     ["auto", "1", "complete", "matches (42 metrics)"]]


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_golden_plots_and_self_contained_html(golden):
    d, md, page = golden
    pngs = sorted(p.name for p in (d / "report").glob("*.png"))
    assert pngs == ["ebizzy-auto.png", "ebizzy-vanilla.png", "timeline-auto-run-1.png",
                    "timeline-vanilla-run-1.png"]
    for name in pngs:
        assert png_size(d / "report" / name) == (900, 400)
        assert (d / "report" / name).stat().st_size < 150_000
        assert f"]({name})" in md
    assert page.count('src="data:image/png;base64,') == 4
    assert page.count("<table>") == len(md_tables(md))
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    assert "<style>" in page


def test_baseline_option_and_rerun_are_stable(golden, tmp_path):
    d, md, _ = golden
    md2 = write_report(d).read_text()
    assert md2 == md
    md3 = write_report(d, baseline="auto").read_text()
    assert "## Comparison with auto" in md3 and "### vanilla vs auto" in md3
    assert "| host swap out (pages) " in md3 and "+101.9%" in md3


def test_a_mode_without_its_summary_is_aggregated_from_its_runs(tmp_path):
    d = tmp_path / "quick" / "x"
    shutil.copytree(GOLDEN, d)
    (d / "auto" / "summary.json").unlink()
    (d / "auto" / "run-1" / results.INCOMPLETE).write_text("")
    md = write_report(d).read_text()
    assert "auto: no per-mode summary.json (the mode did not finish): aggregated its runs" in md
    _, host = find_table(md_tables(md), "mode", "host swap in")
    assert host == [["vanilla", "1", "12,005", "118,352"], ["auto", "0", "-", "-"]]
    assert "| auto    |   1 | incomplete | matches (42 metrics) |" in md


def test_a_mode_whose_first_run_is_still_going(tmp_path):
    d = tmp_path / "quick" / "x"
    shutil.copytree(GOLDEN, d)
    (d / "auto" / "summary.json").unlink()
    (d / "auto" / "run-1" / "summary.json").unlink()
    (d / "auto" / "run-1" / results.INCOMPLETE).write_text("")
    md = write_report(d).read_text()
    assert md.startswith("# Benchmark report: quick, x\n")
    assert "| auto    |   1 | incomplete | no summary           |" in md
    assert "![auto run 1 (incomplete): host memory, swap and balloons]" in md


def test_bad_results_dirs(tmp_path, capsys):
    with pytest.raises(UsageError, match="no such directory"):
        write_report(tmp_path / "missing")
    with pytest.raises(UsageError, match="no mode directories"):
        write_report(tmp_path)
    d = tmp_path / "r"
    shutil.copytree(GOLDEN, d)
    with pytest.raises(UsageError, match=r"--baseline free: not a mode .*\(vanilla, auto\)"):
        write_report(d, baseline="free")
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rig: ") and "no such directory" in err


def test_cli_report(tmp_path, capsys):
    d = tmp_path / "r"
    shutil.copytree(GOLDEN, d)
    assert main(["report", str(d), "--baseline", "vanilla"]) == 0
    out = capsys.readouterr().out
    assert out == f"report: {d}/report/report.md and {d}/report/report.html\n"
    assert report.REPORT_DIR == "report"


def test_auto_is_also_compared_with_free_page_reporting(tmp_path):
    """With free page reporting among the modes, auto (and auto+fpr) get a second
    comparison with it as the base: the strongest peer that needs no daemon."""
    import json

    d = tmp_path / "quick" / "peer"
    shutil.copytree(GOLDEN, d)
    shutil.copytree(d / "vanilla", d / "free-page-reporting")
    for summary in (d / "free-page-reporting").rglob("summary.json"):
        obj = json.loads(summary.read_text())
        obj["mode"] = "free-page-reporting"
        summary.write_text(json.dumps(obj))
    md = write_report(d).read_text()
    heads = [line for line in md.splitlines() if line.startswith("#")]
    i = heads.index("## Against free-page-reporting")
    assert heads[i + 1] == "### auto vs free-page-reporting"
    assert re.search(r"\| metric +\| +free-page-reporting +\| +auto +\|", md)
    # with free page reporting as the baseline there is no second comparison
    assert "## Against" not in write_report(d, "free-page-reporting").read_text()


def test_an_export_plots_the_first_runs_timelines_only(tmp_path):
    """timeline_runs=1 (rig.report.export): one timeline per mode, linked, not embedded."""
    d = tmp_path / "quick" / "golden"
    shutil.copytree(GOLDEN, d)
    run2 = d / "auto" / "run-2"
    shutil.copytree(d / "auto" / "run-1", run2)
    summary = json.loads((run2 / "summary.json").read_text())
    (run2 / "summary.json").write_text(json.dumps({**summary, "run": 2}))
    write_report(d)
    assert (d / "report" / "timeline-auto-run-2.png").is_file()
    md = write_report(d, embed_images=False, timeline_runs=1).read_text()
    pngs = sorted(p.name for p in (d / "report").glob("timeline-*.png"))
    assert pngs == ["timeline-auto-run-1.png", "timeline-vanilla-run-1.png"]
    assert "timeline-auto-run-2.png" not in md
    page = (d / "report" / "report.html").read_text()
    assert '<img src="timeline-auto-run-1.png"' in page and "base64" not in page
