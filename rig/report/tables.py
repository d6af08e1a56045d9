"""Tables in the RFC's layout from per-mode summaries (pure: dicts in, text out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# (header, metric suffix after "<vm>.", decimals)
VM_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("elapsed", "qemu.elapsed_s", 2),
    ("user", "qemu.user_s", 2),
    ("sys", "qemu.sys_s", 2),
    ("CPU%", "qemu.cpu_pct", 0),
    ("major f.", "qemu.major_faults", 0),
    ("minor f.", "qemu.minor_faults", 0),
    ("total recs", "guest.records_total", 0),
    ("swap in", "guest.swap_in", 0),
    ("swap out", "guest.swap_out", 0),
    ("OOM kills", "guest.oom_kills", 0),
)


def _mean(summary: dict[str, Any], name: str) -> float | None:
    m = summary.get("metrics", {}).get(name)
    return None if m is None else float(m["mean"])


def fmt(value: float | None, decimals: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{decimals}f}"


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured table, right-aligned numbers, padded to read as plain text."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"
            for r in rows]
    return "\n".join([line, sep, *body])


def vm_names(summaries: Sequence[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for s in summaries:
        for key in s.get("metrics", {}):
            vm, _, rest = key.partition(".")
            if rest.startswith("qemu.") and vm not in names:
                names.append(vm)
    return names


HOST_HEADERS = ("mode", "runs", "host swap in", "host swap out")
VM_HEADERS = ("mode", "VM", *(h for h, _, _ in VM_COLUMNS))


def host_rows(summaries: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Rows under HOST_HEADERS: one per mode, means over its runs."""
    return [[s["mode"], str(s["runs"]), fmt(_mean(s, "host.swap_in"), 0),
             fmt(_mean(s, "host.swap_out"), 0)] for s in summaries]


def vm_rows(summaries: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Rows under VM_HEADERS: one per mode and VM, means over the mode's runs."""
    rows = []
    for s in summaries:
        for vm in vm_names([s]):
            rows.append([s["mode"], vm, *(fmt(_mean(s, f"{vm}.{suffix}"), d)
                                           for _, suffix, d in VM_COLUMNS)])
    return rows


def host_table(summaries: Sequence[dict[str, Any]]) -> str:
    return markdown(HOST_HEADERS, host_rows(summaries))


def vm_table(summaries: Sequence[dict[str, Any]]) -> str:
    return markdown(VM_HEADERS, vm_rows(summaries))


def rfc_tables(summaries: Sequence[dict[str, Any]]) -> str:
    """Host swap, then QEMU and guest figures per VM; means over each mode's runs."""
    return (f"Host swap (pages; mean of runs)\n{host_table(summaries)}\n\n"
            f"Per VM (QEMU process: s, %, faults; guest: ebizzy records/s summed over its "
            f"runs, swap pages)\n{vm_table(summaries)}")
