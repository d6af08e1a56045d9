"""Tables in the RFC's layout from per-mode summaries (pure: dicts in, text out), and how
every part of the report prints a number (``fmt``). A summary's metrics are read with
``rig.bench.results`` (``metric_stats``, ``metric_mean``, ``vm_names``)."""

from __future__ import annotations

from collections.abc import Sequence

from rig.bench.results import Summary, metric_mean, vm_names
from rig.report.document import markdown_table

# (header, metric suffix after "<vm>.", decimals)
VM_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("elapsed", "qemu.elapsed_s", 2),
    ("user", "qemu.user_s", 2),
    ("sys", "qemu.sys_s", 2),
    ("CPU%", "qemu.cpu_pct", 0),
    ("major f.", "qemu.major_faults", 0),
    ("minor f.", "qemu.minor_faults", 0),
    ("total recs", "guest.records_total", 0),
    ("MB/s", "guest.mb_s", 1),
    ("touch s", "guest.touch_s", 2),
    ("swap in", "guest.swap_in", 0),
    ("swap out", "guest.swap_out", 0),
    ("OOM kills", "guest.oom_kills", 0),
)


def fmt(value: float | None, decimals: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{decimals}f}"


HOST_HEADERS = ("mode", "runs", "host swap in", "host swap out")


def host_rows(summaries: Sequence[Summary]) -> list[list[str]]:
    """Rows under HOST_HEADERS: one per mode, means over its runs."""
    return [[s["mode"], str(s["runs"]), fmt(metric_mean(s, "host.swap_in"), 0),
             fmt(metric_mean(s, "host.swap_out"), 0)] for s in summaries]


#: Workload scores (rig.bench.results.SCORES) that only some scenarios have: a table
#: leaves out the score columns no row has.
_SCORE_COLUMNS = ("guest.mb_s", "guest.touch_s")


#: The RFC's own per-VM columns (ebizzy only) and their headers.
RFC_VM_COLUMNS = tuple(c for c in VM_COLUMNS if c[1] not in _SCORE_COLUMNS)
VM_HEADERS = ("mode", "VM", *(h for h, _, _ in RFC_VM_COLUMNS))


def _columns(summaries: Sequence[Summary]) -> list[tuple[str, str, int]]:
    return [c for c in VM_COLUMNS if c[1] not in _SCORE_COLUMNS
            or any(metric_mean(s, f"{vm}.{c[1]}") is not None
                   for s in summaries for vm in vm_names([s]))]


def vm_headers(summaries: Sequence[Summary]) -> list[str]:
    """VM_HEADERS without the score columns none of `summaries` has."""
    return ["mode", "VM", *(h for h, _, _ in _columns(summaries))]


def vm_rows(summaries: Sequence[Summary]) -> list[list[str]]:
    """Rows under vm_headers(summaries): one per mode and VM, means over the mode's
    runs."""
    columns = _columns(summaries)
    rows = []
    for s in summaries:
        for vm in vm_names([s]):
            rows.append([s["mode"], vm, *(fmt(metric_mean(s, f"{vm}.{suffix}"), d)
                                           for _, suffix, d in columns)])
    return rows


def host_table(summaries: Sequence[Summary]) -> str:
    return markdown_table(HOST_HEADERS, host_rows(summaries))


def vm_table(summaries: Sequence[Summary]) -> str:
    return markdown_table(vm_headers(summaries), vm_rows(summaries))


def rfc_tables(summaries: Sequence[Summary]) -> str:
    """Host swap, then QEMU and guest figures per VM; means over each mode's runs."""
    return (f"Host swap (pages; mean of runs)\n{host_table(summaries)}\n\n"
            f"Per VM (QEMU process: s, %, faults; guest: ebizzy records/s summed over its "
            f"runs or abload MB/s / touch s, swap pages)\n{vm_table(summaries)}")
