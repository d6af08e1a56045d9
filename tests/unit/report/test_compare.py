"""Comparing modes: the change, Welch's significance, and the comparison rows."""

from rig.report.compare import comparison_rows, fmt_pct, pct_change, significance

from .summaries import VMS, mode_summary, run_metrics_dict


def test_pct_change():
    assert pct_change(200, 150) == -25.0
    assert pct_change(-4, -2) == 50.0  # against the magnitude of the baseline
    assert pct_change(0, 0) == 0.0
    assert pct_change(0, 5) is None
    assert pct_change(None, 5) is None
    assert pct_change(5, None) is None
    assert [fmt_pct(c) for c in (22.66, -50.46, 0.0, 0.04, None)] == \
        ["+22.7%", "-50.5%", "0.0%", "0.0%", "n/a"]


def test_significance():
    assert significance([1.0], [1.0, 2.0]) == "n/a"  # one run
    assert significance([3, 3], [5, 5]) == "n/a"  # no spread, different means
    assert significance([0, 0, 0], [0, 0, 0]) == "no (p=1.00)"
    # R: t.test(...) p-value = 0.08356
    assert significance([11, 9, 10, 11, 10, 12, 9, 11, 12, 9],
                        [11, 13, 10, 13, 12, 9, 11, 12, 12, 11]) == "no (p=0.0836)"
    assert significance([100, 101, 99, 100], [120, 119, 121, 120]) == "yes (p<0.001)"
    # a = [1, 2, 3], b = [4, 5, 6]: t = -3 / sqrt(2/3), df = 4, p = 0.0213
    assert significance([1, 2, 3], [4, 5, 6]) == "yes (p=0.0213)"
    assert significance([1, 2, 3], [2, 3, 4]) == "no (p=0.29)"


def test_comparison_rows_means_stdev_change_and_significance():
    base = mode_summary("vanilla", [run_metrics_dict(**{"host.swap_out": v})
                                    for v in (900, 1000, 1100)])
    other = mode_summary("auto", [run_metrics_dict(**{"host.swap_out": v})
                                  for v in (40, 50, 60)])
    rows = {r[0]: r for r in comparison_rows(base, other, VMS)}
    assert rows["host swap out (pages)"] == [
        "host swap out (pages)", "1,000 ± 100", "50 ± 10", "-95.0%", "yes (p=0.00341)"]
    # identical constant runs: no change, no evidence of one
    assert rows["host swap in (pages)"][1:] == ["10 ± 0", "10 ± 0", "0.0%", "no (p=1.00)"]
    # metrics neither mode has are left out; VM metrics are labelled with the VM
    assert "host peak swap (MiB)" not in rows
    assert rows["vm-up QEMU CPU%"][1:3] == ["51.0 ± 0.0", "51.0 ± 0.0"]


def test_rates_are_means_of_the_per_run_rates():
    """CPU% and records/s are averaged as rates: never recomputed from summed totals."""
    fast = run_metrics_dict(**{"vm-down.qemu.elapsed_s": 10.0, "vm-down.qemu.user_s": 9.0,
                               "vm-down.qemu.sys_s": 0.0, "vm-down.qemu.cpu_pct": 90.0,
                               "vm-down.guest.records_total": 9000})
    slow = run_metrics_dict(**{"vm-down.qemu.elapsed_s": 100.0, "vm-down.qemu.user_s": 10.0,
                               "vm-down.qemu.sys_s": 0.0, "vm-down.qemu.cpu_pct": 10.0,
                               "vm-down.guest.records_total": 3000})
    s = mode_summary("vanilla", [fast, slow])
    rows = {r[0]: r for r in comparison_rows(s, s, VMS)}
    # (90 + 10) / 2 = 50, where totals would give 19 / 110 = 17.3 %
    assert rows["vm-down QEMU CPU%"][1] == "50.0 ± 56.6"
    assert rows["vm-down total recs (records/s)"][1] == "6,000 ± 4,243"


def test_comparison_with_a_missing_metric():
    base = mode_summary("vanilla", [run_metrics_dict()])
    other = mode_summary("auto", [run_metrics_dict(**{"host.peak_swap_mib": 5})])
    rows = {r[0]: r for r in comparison_rows(base, other, VMS)}
    assert rows["host peak swap (MiB)"][1:] == ["-", "5", "n/a", "n/a"]
    assert rows["host swap out (pages)"][1:] == ["1,000", "1,000", "0.0%", "n/a"]
