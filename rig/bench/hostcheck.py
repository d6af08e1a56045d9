"""Checks that make a run's host figures defensible, and the readings behind them.

- Before a run: the only active swap area must be the host's own swapfile (another one
  would take swap traffic the run does not account for), and zswap must be off (it
  turns swap-outs into compressed RAM that /proc/vmstat pswpout does not count the same
  way). Either one fails the run.
- The environment every run records: vm.swappiness, zswap's state and the THP mode.
- Host swap from the host memory cgroup's own counters, cross-checked against the
  machine-wide /proc/vmstat pswpin/pswpout deltas (``cross_check``).

What the memory cgroup offers (measured on the project's machines, host kernel 6.18 with
cgroup v1 memory): memory.stat ``swap`` / ``total_swap`` and ``swapcached`` /
``total_swapcached`` (bytes of swap the cgroup holds now; ``total_`` includes
descendants, where libvirt puts each QEMU; see ``cgroup_swap_bytes``) and
``memory.memsw.max_usage_in_bytes`` (peak RAM + swap). These are levels, not event
counts: v1 has no per-cgroup pswpin/pswpout. cgroup v2's memory.stat has ``pswpin`` /
``pswpout`` on newer kernels; where the memory cgroup is v2 and has them, they are read
as exact per-cgroup event counts (``cgroup_events``).

Pure functions take text or a filesystem root, so they are tested on fake trees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAGE = 4096
ZSWAP_ENABLED = Path("sys/module/zswap/parameters/enabled")
SWAPPINESS = Path("proc/sys/vm/swappiness")
THP_ENABLED = Path("sys/kernel/mm/transparent_hugepage/enabled")


# ---- swap areas and zswap ----------------------------------------------------------------

def swap_areas(proc_swaps: str) -> list[str]:
    """The active swap areas' paths from /proc/swaps text (its header line skipped)."""
    return [line.split()[0].replace("\\040", " ") for line in proc_swaps.splitlines()[1:]
            if line.strip()]


def foreign_swap_areas(proc_swaps: str, ours: str) -> list[str]:
    """Active swap areas other than `ours` (compared as resolved paths)."""
    mine = str(Path(ours).resolve()) if ours else None
    return [a for a in swap_areas(proc_swaps) if str(Path(a).resolve()) != mine]


def zswap_state(root: Path = Path("/")) -> str:
    """zswap's `enabled` parameter ("Y"/"N"), or "absent" when the kernel has no zswap."""
    f = root / ZSWAP_ENABLED
    return f.read_text().strip() if f.is_file() else "absent"


def zswap_on(state: str) -> bool:
    return state.upper() in ("Y", "1")


def swap_problems(proc_swaps: str, ours: str, zswap: str) -> list[str]:
    """Why host swap cannot be measured honestly on this host (empty when it can)."""
    problems = []
    foreign = foreign_swap_areas(proc_swaps, ours)
    if foreign:
        problems.append(f"another swap area is active besides {ours or 'none of ours'}: "
                        f"{', '.join(foreign)} (swapoff it first)")
    if zswap_on(zswap):
        problems.append("zswap is enabled (/sys/module/zswap/parameters/enabled = "
                        f"{zswap}); disable it: echo N > /sys/module/zswap/parameters/enabled")
    return problems


def host_env(root: Path = Path("/")) -> dict[str, str]:
    """vm.swappiness, zswap and the THP mode, as env.json records them."""
    def read(rel: Path) -> str:
        f = root / rel
        return f.read_text().strip() if f.is_file() else "absent"

    return {"vm_swappiness": read(SWAPPINESS), "zswap_enabled": zswap_state(root),
            "thp_enabled": read(THP_ENABLED)}


# ---- the memory cgroup's swap ------------------------------------------------------------

def parse_kv(text: str) -> dict[str, int]:
    """`name value` lines (memory.stat) into a dict; lines that are not are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def cgroup_swap_bytes(stat: Mapping[str, int]) -> int | None:
    """Swap space the cgroup and its descendants occupy now, from its v1 memory.stat:
    ``total_swap + total_swapcached`` (hierarchical; else the cgroup's own ``swap +
    swapcached``); None where there is no ``swap`` (v2 reports it in memory.swap.current).

    Both parts are needed: on cgroup v1 a page swapped back in is uncharged from
    ``swap`` (it is charged as memory again) while its slot stays in use as swap cache,
    counted in ``swapcached``. Their sum is what the machine's SwapTotal - SwapFree
    counts (measured: 68,794 pages both, after a quick vanilla run)."""
    for prefix in ("total_", ""):
        if f"{prefix}swap" in stat:
            return stat[f"{prefix}swap"] + stat.get(f"{prefix}swapcached", 0)
    return None


def cgroup_events(start: Mapping[str, int], end: Mapping[str, int]) -> dict[str, int]:
    """Exact per-cgroup swap events (v2 memory.stat pswpin/pswpout) over the run, when the
    kernel provides them; {} otherwise (cgroup v1 has no such counters)."""
    if all(k in start and k in end for k in ("pswpin", "pswpout")):
        return {"swap_in": end["pswpin"] - start["pswpin"],
                "swap_out": end["pswpout"] - start["pswpout"]}
    return {}


@dataclass(frozen=True)
class SwapReading:
    """The host's swap at one instant: the memory cgroup's and the machine's (bytes)."""

    cgroup_bytes: int
    machine_bytes: int


def cross_check(pswpout_delta: int, start: SwapReading, end: SwapReading,
                min_share_pct: float = 95.0, zero_out_delta: int = 0,
                slack_pages: int = 256) -> dict[str, Any]:
    """Does the machine-wide /proc/vmstat figure measure the host cgroup's swapping?

    Two conditions, both must hold:
    - growth: the swap the cgroup gained over the run (pages) is at most the pages the
      machine swapped out (pswpout delta, plus `zero_out_delta`: since Linux 6.12 a
      zero-filled page takes a swap slot without any I/O and is counted in swpout_zero,
      not pswpout): every page newly in the cgroup's swap was a counted swap-out;
    - share: of the swap the machine gained over the run, the cgroup gained at least
      `min_share_pct` % (or the machine gained none): little swap traffic came from
      elsewhere. Growth, not the level at the end: swap slots left in use before the run
      (a destroyed QEMU's pages still in the swap cache are freed lazily, and their charge
      leaves with its deleted cgroup) are nobody's traffic during the run; counting them
      failed an auto run that swapped nothing at all (0 % of 0 pages). Up to
      `slack_pages` the machine may gain more than the cgroup: a page swapped back in
      keeps its slot in the swap cache, but the cgroup's swap counter lets go of it at
      swap-in (an auto run: 22 pages out, the cgroup +0, the machine +22).
    """
    growth = (end.cgroup_bytes - start.cgroup_bytes) // PAGE
    machine_growth = end.machine_bytes - start.machine_bytes
    share = (100.0 * max(end.cgroup_bytes - start.cgroup_bytes, 0) / machine_growth
             if machine_growth > 0 else 100.0)
    growth_ok = growth <= pswpout_delta + zero_out_delta
    share_ok = share >= min_share_pct or machine_growth <= (
        max(end.cgroup_bytes - start.cgroup_bytes, 0) + slack_pages * PAGE)
    detail = []
    if not growth_ok:
        detail.append(f"the cgroup's swap grew {growth} pages but /proc/vmstat counted "
                      f"only {pswpout_delta} swap-outs (+{zero_out_delta} zero-filled)")
    if not share_ok:
        detail.append(f"the cgroup gained only {share:.1f} % of the swap the machine gained "
                      f"(< {min_share_pct} %): something else swaps")
    return {"ok": growth_ok and share_ok,
            "cgroup_swap_growth_pages": growth,
            "vmstat_pswpout_pages": pswpout_delta,
            "vmstat_swpout_zero_pages": zero_out_delta,
            "cgroup_share_of_swap_gained_pct": round(share, 2),
            "min_share_pct": min_share_pct,
            "detail": "; ".join(detail) or "consistent"}


# ---- balloons at full size ---------------------------------------------------------------

def balloons_not_full(sizes: Mapping[str, tuple[int, int]]) -> list[str]:
    """VMs whose balloon is not at full size: `sizes` maps a VM to (max memory, current
    memory) in KiB, as libvirt's dom.info() gives them."""
    return [f"{vm} ({cur >> 10} of {mx >> 10} MiB)" for vm, (mx, cur) in sizes.items()
            if cur != mx]


def memory_cgroup_of(proc_cgroup: str) -> str | None:
    """The memory cgroup path in /proc/<pid>/cgroup text: the v1 line naming the memory
    controller, else the v2 line ("0::/path"); None if neither is there."""
    v2 = None
    for line in proc_cgroup.splitlines():
        _hid, _, rest = line.partition(":")
        ctrls, _, path = rest.partition(":")
        if "memory" in ctrls.split(","):
            return path
        if _hid == "0" and ctrls == "":
            v2 = path
    return v2


def status_kib(status_text: str, field: str) -> int | None:
    """A `Field:   N kB` line of /proc/<pid>/status (e.g. VmHWM, the peak RSS)."""
    for line in status_text.splitlines():
        name, _, rest = line.partition(":")
        if name == field:
            parts = rest.split()
            return int(parts[0]) if parts and parts[0].isdigit() else None
    return None
