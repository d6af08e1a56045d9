"""The RFC's published numbers, and our ratios beside theirs."""

import re

import pytest

from rig.layout import REPO_ROOT
from rig.report.published import fmt_ratio, published, published_rows

from .summaries import mode_summary, run_metrics_dict

DESIGN = REPO_ROOT.parent / "shared" / "DESIGN.md"


def test_published_numbers_are_designs_table():
    pub = published()
    assert pub["vanilla"]["host.swap_out"] == 372551.0
    assert pub["automatic"]["host.swap_out"] == 8225.33
    assert pub["automatic"]["vm-up.guest.swap_out"] == 822.66
    if not DESIGN.is_file():
        pytest.skip(f"{DESIGN} is not beside the repository")
    text = DESIGN.read_text()
    cols = ["qemu.elapsed_s", "qemu.user_s", "qemu.sys_s", "qemu.cpu_pct",
            "qemu.major_faults", "qemu.minor_faults", "guest.records_total",
            "guest.swap_in", "guest.swap_out"]
    found = 0
    for line in text.splitlines():
        m = re.match(r"^\| (vanilla|automatic) \| (vm-\w+) \| (.*) \|$", line)
        if m:
            values = [float(v) for v in m.group(3).split(" | ")]
            assert {f"{m.group(2)}.{c}": v for c, v in zip(cols, values, strict=True)}.items() \
                <= pub[m.group(1)].items()
            found += 1
    assert found == 4
    m = re.search(r"Host swap: vanilla ([\d.]+) in / ([\d.]+) out; automatic ([\d.]+) in / "
                  r"([\d.]+) out", text)
    assert m is not None
    assert [float(v) for v in m.groups()] == [
        pub["vanilla"]["host.swap_in"], pub["vanilla"]["host.swap_out"],
        pub["automatic"]["host.swap_in"], pub["automatic"]["host.swap_out"]]


def test_published_rows_put_ratios_side_by_side():
    van = mode_summary("vanilla", [run_metrics_dict(**{"host.swap_out": 100000,
                                                       "vm-up.qemu.major_faults": 2000})])
    auto = mode_summary("auto", [run_metrics_dict(**{"host.swap_out": 2200,
                                                     "vm-up.qemu.major_faults": 60})])
    rows = {r[0]: r for r in published_rows(van, auto)}
    assert rows["host swap out (pages)"] == [
        "host swap out (pages)", "372,551", "8,225.33", "0.022", "100,000", "2,200", "0.022"]
    assert rows["vm-up QEMU major faults"] == [
        "vm-up QEMU major faults", "2,053.66", "63.66", "0.031", "2,000", "60", "0.030"]
    # 0 / 0: no ratio; 822.66 / 0 neither
    assert rows["vm-up guest swap out (pages)"][3] == "n/a"
    assert rows["vm-up guest swap out (pages)"][6] == "n/a"
    assert len(rows) == 2 + 2 * 9
    assert [fmt_ratio(r) for r in (None, 0.0, 7.29e-05, 0.5, 12.34)] == \
        ["n/a", "0.0", "7.3e-05", "0.500", "12.3"]
