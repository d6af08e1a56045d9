"""The RFC's published numbers (pure): its table as DESIGN.md quotes it, the rows that
print it in the RFC's layout, and the rows that put its ratios (automatic / vanilla)
beside ours (mode / vanilla)."""

from __future__ import annotations

from rig.bench.results import Summary, metric_stats
from rig.report import tables
from rig.report.compare import HOST_SPECS, VM_SPECS

PUBLISHED_LABEL = "published (2013 RFC, KVM, 2 GiB host)"

# The RFC's published table (DESIGN.md, "The idea"): averages of 3 runs, 2 GiB KVM host,
# two 1.3 GiB guests running ebizzy; swap in pages, times in seconds.
PUBLISHED_RUNS = 3
_PUBLISHED_VM_COLUMNS = ("qemu.elapsed_s", "qemu.user_s", "qemu.sys_s", "qemu.cpu_pct",
                         "qemu.major_faults", "qemu.minor_faults", "guest.records_total",
                         "guest.swap_in", "guest.swap_out")
_PUBLISHED_ROWS: dict[str, dict[str, tuple[float, ...]]] = {
    "vanilla": {
        "vm-down": (395.42, 309.60, 3.72, 79, 2772.66, 120046.66, 4692.33, 0, 0),
        "vm-up": (396.40, 310, 4.04, 79, 2053.66, 208394.33, 4684, 0, 0),
    },
    "automatic": {
        "vm-down": (387.95, 309.66, 3.43, 80, 106.66, 29497.33, 4710.66, 0, 0),
        "vm-up": (388.79, 310.98, 4.35, 81, 63.66, 110307, 4704.33, 2.67, 822.66),
    },
}
_PUBLISHED_HOST = {"vanilla": (36478.66, 372551.0), "automatic": (2.66, 8225.33)}


def published() -> dict[str, dict[str, float]]:
    """mode ("vanilla", "automatic") -> metric name -> the RFC's published value."""
    out: dict[str, dict[str, float]] = {}
    for mode, vms in _PUBLISHED_ROWS.items():
        swap_in, swap_out = _PUBLISHED_HOST[mode]
        metrics = {"host.swap_in": swap_in, "host.swap_out": swap_out}
        for vm, values in vms.items():
            metrics |= {f"{vm}.{c}": float(v)
                        for c, v in zip(_PUBLISHED_VM_COLUMNS, values, strict=True)}
        out[mode] = metrics
    return out


def fmt_published(value: float | None) -> str:
    """A published figure as printed (two decimals unless it is whole)."""
    if value is None:
        return "-"
    return tables.fmt(value, 0 if value == int(value) else 2)


def published_host_rows() -> list[list[str]]:
    """Rows under tables.HOST_HEADERS, the published figures as printed."""
    return [[mode, str(PUBLISHED_RUNS), fmt_published(m["host.swap_in"]),
             fmt_published(m["host.swap_out"])] for mode, m in published().items()]


def published_vm_rows() -> list[list[str]]:
    """Rows under tables.VM_HEADERS (the RFC published no OOM figure: "-")."""
    rows = []
    for mode, m in published().items():
        for vm in _PUBLISHED_ROWS[mode]:
            rows.append([mode, vm, *(fmt_published(m.get(f"{vm}.{suffix}"))
                                     for _, suffix, _ in tables.RFC_VM_COLUMNS)])
    return rows


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "n/a"
    if r == 0 or r >= 10:
        return f"{r:.1f}"
    return f"{r:.3f}" if r >= 0.01 else f"{r:.1e}"


def published_headers(mode: str) -> list[str]:
    return ["metric", "published vanilla", "published automatic", "published ratio",
            "ours vanilla", f"ours {mode}", "our ratio"]


def published_rows(vanilla: Summary, other: Summary) -> list[list[str]]:
    """The published vanilla and automatic numbers, their ratio (automatic / vanilla),
    and ours beside them (mode / vanilla), for every metric the RFC published."""
    pub = published()
    names = ["host.swap_in", "host.swap_out"] + [
        f"{vm}.{c}" for vm in _PUBLISHED_ROWS["vanilla"] for c in _PUBLISHED_VM_COLUMNS]
    labels = {f"{vm}.{s.name}": f"{vm} {s.label}"
              for vm in _PUBLISHED_ROWS["vanilla"] for s in VM_SPECS}
    labels |= {s.name: s.label for s in HOST_SPECS}
    decimals = {s.name: s.decimals for s in HOST_SPECS} | {
        f"{vm}.{s.name}": s.decimals for vm in _PUBLISHED_ROWS["vanilla"] for s in VM_SPECS}
    rows = []
    for name in names:
        pv, pa = pub["vanilla"][name], pub["automatic"][name]
        ov, oo = metric_stats(vanilla, name), metric_stats(other, name)
        ovm = None if ov is None else float(ov["mean"])
        oom = None if oo is None else float(oo["mean"])
        d = decimals[name]
        rows.append([labels[name], fmt_published(pv), fmt_published(pa),
                     fmt_ratio(ratio(pa, pv)), tables.fmt(ovm, d), tables.fmt(oom, d),
                     fmt_ratio(ratio(oom, ovm))])
    return rows
