"""Comparing modes: the change, Welch's p and confidence interval, primary and secondary
metrics (Holm), and the comparison rows."""

import pytest

from rig.report.compare import (
    HOST_SPECS,
    VM_SPECS,
    comparison_headers,
    comparison_rows,
    fmt_ci,
    fmt_p,
    fmt_pct,
    fmt_signed,
    metric_specs,
    pct_change,
    primary_labels,
    verdict,
)
from rig.report.welch import welch

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


def test_fmt_p():
    assert fmt_p(welch([1.0], [1.0, 2.0])) == "n/a"  # one run
    assert fmt_p(welch([3, 3], [5, 5])) == "n/a"  # no spread, different means
    assert fmt_p(welch([0, 0, 0], [0, 0, 0])) == "1.00"
    # R: t.test(...) p-value = 0.08356
    assert fmt_p(welch([11, 9, 10, 11, 10, 12, 9, 11, 12, 9],
                       [11, 13, 10, 13, 12, 9, 11, 12, 12, 11])) == "0.0836"
    assert fmt_p(welch([100, 101, 99, 100], [120, 119, 121, 120])) == "<0.001"
    # a = [1, 2, 3], b = [4, 5, 6]: t = -3 / sqrt(2/3), df = 4, p = 0.0213
    assert fmt_p(welch([1, 2, 3], [4, 5, 6])) == "0.0213"
    assert fmt_p(welch([1, 2, 3], [2, 3, 4])) == "0.29"


def test_fmt_ci():
    # 3 ± t_{0.975, 4} sqrt(2/3) = 3 ± 2.2670
    assert fmt_ci(welch([1, 2, 3], [4, 5, 6]), 2) == "+0.73 to +5.27"
    assert fmt_ci(welch([4, 5, 6], [1, 2, 3]), 0) == "-5 to -1"
    assert fmt_ci(welch([1000, 2000, 3000], [1000, 2000, 3000]), 0) == "-2,267 to +2,267"
    assert fmt_ci(welch([1, 2, 3], [1, 2, 3]), 0) == "-2 to +2"
    assert fmt_ci(welch([1.0], [1.0, 2.0]), 0) == "n/a"  # one run
    assert fmt_ci(welch([3, 3], [5, 5]), 0) == "n/a"  # no test
    assert fmt_ci(welch([0, 0, 0], [0, 0]), 0) == "n/a"  # p = 1, but no interval
    assert fmt_ci(None, 1) == "n/a"
    assert [fmt_signed(v, d) for v, d in ((0.4, 0), (-0.4, 0), (-0.004, 2), (1234.5, 1))] \
        == ["0", "0", "0.00", "+1,234.5"]


def test_verdict():
    sig, not_sig = welch([1, 2, 3], [4, 5, 6]), welch([1, 2, 3], [2, 3, 4])  # 0.0213, 0.29
    assert verdict(True, sig, None) == "yes (primary)"
    assert verdict(True, not_sig, None) == "no (primary)"
    assert verdict(True, None, None) == "n/a (primary)"
    assert verdict(False, sig, True) == "yes (Holm)"
    assert verdict(False, sig, False) == "no (Holm)"  # p < 0.05, not after correction
    assert verdict(False, None, None) == "n/a"
    assert verdict(True, sig, None, alpha=0.01) == "no (primary)"


def test_primary_metrics():
    assert [s.name for s in HOST_SPECS if s.primary] == ["host.swap_out"]
    scores = ["guest.records_total", "guest.mb_s", "guest.touch_s"]
    assert [s.name for s in VM_SPECS if s.primary] == [
        *scores, "guest.swap_out", "guest.oom_kills"]
    primary = [s.name for s in metric_specs(VMS) if s.primary]
    assert primary == ["host.swap_out",
                       *(f"{vm}.{m}" for vm in VMS
                         for m in (*scores, "guest.swap_out", "guest.oom_kills"))]
    assert primary_labels() == ("host swap out (pages); per VM: total recs (records/s), "
                                "read rate (MB/s), idle touch time (s), "
                                "guest swap out (pages), guest OOM kills")


def test_comparison_headers():
    assert comparison_headers("vanilla", "auto") == [
        "metric", "vanilla", "auto", "change", "95 % CI of the difference", "p",
        "significant"]


def test_comparison_rows_means_stdev_change_ci_and_significance():
    base = mode_summary("vanilla", [run_metrics_dict(**{"host.swap_out": v})
                                    for v in (900, 1000, 1100)])
    other = mode_summary("auto", [run_metrics_dict(**{"host.swap_out": v})
                                  for v in (40, 50, 60)])
    rows = {r[0]: r for r in comparison_rows(base, other, VMS)}
    # -950 ± t_{0.975, 2.04} · 58.02 = -950 ± 4.2228 · 58.02 = -950 ± 245.0
    assert rows["host swap out (pages)"] == [
        "host swap out (pages)", "1,000 ± 100", "50 ± 10", "-95.0%", "-1,195 to -705",
        "0.00341", "yes (primary)"]
    # identical constant runs: no change, no evidence of one, no interval
    assert rows["host swap in (pages)"][1:] == [
        "10 ± 0", "10 ± 0", "0.0%", "n/a", "1.00", "no (Holm)"]
    assert rows["vm-up guest OOM kills"][1:] == ["0 ± 0", "0 ± 0", "0.0%", "n/a", "1.00",
                                                  "no (primary)"]
    # metrics neither mode has are left out; VM metrics are labelled with the VM
    assert "host peak swap (MiB)" not in rows
    assert rows["vm-up QEMU CPU%"][1:3] == ["51.0 ± 0.0", "51.0 ± 0.0"]


def _four_runs(mode, **columns):
    """A summary of four runs; columns: metric name -> its four values."""
    return mode_summary(mode, [run_metrics_dict(**{k: v[i] for k, v in columns.items()})
                               for i in range(4)])


def test_secondary_metrics_are_corrected_with_holm_primary_ones_are_not():
    base = _four_runs("vanilla", **{
        "vm-down.qemu.major_faults": [100, 101, 99, 100],
        "vm-down.qemu.sys_s": [1, 2, 3, 4],
        "vm-up.guest.records_total": [1000, 2000, 3000, 4000]})
    other = _four_runs("auto", **{
        "vm-down.qemu.major_faults": [120, 119, 121, 120],
        "vm-down.qemu.sys_s": [4, 5, 6, 7],
        "vm-up.guest.records_total": [4000, 5000, 6000, 7000]})
    rows = {r[0]: r[1:] for r in comparison_rows(base, other, VMS)}
    # 15 secondary tests (host swap in, 7 per VM), 14 of them p = 1: the smallest p
    # (< 0.001) is below 0.05 / 15; the next, 0.0167, is not below 0.05 / 14
    # 20 ± t_{0.975, 6} sqrt(2 (2/3) / 4) = 20 ± 2.447 · 0.577
    assert rows["vm-down QEMU major faults"][3:] == ["+19 to +21", "<0.001", "yes (Holm)"]
    assert rows["vm-down QEMU sys (s)"] == [
        "2.50 ± 1.29", "5.50 ± 1.29", "+120.0%", "+0.77 to +5.23", "0.0167", "no (Holm)"]
    # the same p on a primary metric is judged at 0.05 on its own
    assert rows["vm-up total recs (records/s)"][3:] == ["+766 to +5,234", "0.0167",
                                                        "yes (primary)"]
    assert rows["vm-up guest swap in (pages)"][3:] == ["n/a", "1.00", "no (Holm)"]


def test_holm_family_is_the_tables_secondary_p_values_only():
    """Primary p-values and tests that cannot be done are no members of the family: here
    it has one member (host swap in), judged at 0.05 / 1."""
    def runs(mode, swap_in, swap_out, peak):
        return mode_summary(mode, [{"host.swap_in": i, "host.swap_out": o,
                                    "host.peak_usage_mib": peak}
                                   for i, o in zip(swap_in, swap_out, strict=True)])
    base = runs("vanilla", [1, 2, 3], [1, 2, 3], 5)
    other = runs("auto", [3.5, 4.5, 5.5], [2, 3, 4], 6)
    rows = {r[0]: r[1:] for r in comparison_rows(base, other, [])}
    assert rows["host swap in (pages)"][4:] == ["0.0376", "yes (Holm)"]  # not below 0.025
    assert rows["host swap out (pages)"][4:] == ["0.29", "no (primary)"]
    assert rows["host peak usage (MiB)"][2:] == ["+20.0%", "n/a", "n/a", "n/a"]  # no spread
    assert list(rows) == ["host swap in (pages)", "host swap out (pages)",
                          "host peak usage (MiB)"]


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
    # the same runs on both sides: 0 ± t_{0.975, 2} · se, se = sqrt(s²/2 + s²/2) = 4,243
    assert rows["vm-down total recs (records/s)"][4:] == [
        "-18,255 to +18,255", "1.00", "no (primary)"]


def test_comparison_with_a_missing_metric():
    base = mode_summary("vanilla", [run_metrics_dict()])
    other = mode_summary("auto", [run_metrics_dict(**{"host.peak_swap_mib": 5})])
    rows = {r[0]: r for r in comparison_rows(base, other, VMS)}
    assert rows["host peak swap (MiB)"][1:] == ["-", "5", "n/a", "n/a", "n/a", "n/a"]
    assert rows["host swap out (pages)"][1:] == ["1,000", "1,000", "0.0%", "n/a", "n/a",
                                                 "n/a (primary)"]


@pytest.mark.parametrize("spec", [*HOST_SPECS, *VM_SPECS])
def test_every_spec_has_a_label_name_and_precision(spec):
    assert spec.label and spec.name and spec.decimals in (0, 1, 2)
