"""RFC-layout tables from per-mode summaries."""

from rig.bench.results import vm_names
from rig.report.tables import fmt, rfc_tables


def summary(mode, swap_out, recs):
    def m(v):
        return {"mean": v, "stdev": 0.0, "values": [v]}

    metrics = {"host.swap_in": m(10), "host.swap_out": m(swap_out)}
    for vm in ("vm-down", "vm-up"):
        metrics |= {f"{vm}.qemu.elapsed_s": m(65.5), f"{vm}.qemu.user_s": m(53.0),
                    f"{vm}.qemu.sys_s": m(1.25), f"{vm}.qemu.cpu_pct": m(83.0),
                    f"{vm}.qemu.major_faults": m(3735), f"{vm}.qemu.minor_faults": m(10513),
                    f"{vm}.guest.records_total": m(recs), f"{vm}.guest.swap_in": m(0),
                    f"{vm}.guest.swap_out": m(0), f"{vm}.guest.oom_kills": m(0)}
    return {"mode": mode, "runs": 1, "complete": True, "metrics": metrics}


def test_rfc_tables():
    text = rfc_tables([summary("vanilla", 131258, 9134), summary("auto", 4000, 9200)])
    lines = text.splitlines()
    assert lines[0].startswith("Host swap")
    assert "| vanilla |    1 |           10 |       131,258 |" in text
    # the report's renderer: mode and VM left-aligned, the numbers right-aligned
    assert "| auto    | vm-down |   65.50 | 53.00 | 1.25 |   83 |    3,735 |   10,513 |" \
        "      9,200 |       0 |        0 |         0 |" in text
    assert vm_names([summary("a", 1, 1)]) == ["vm-down", "vm-up"]


def test_missing_values():
    assert fmt(None, 2) == "-"
    assert fmt(1234.5, 1) == "1,234.5"
