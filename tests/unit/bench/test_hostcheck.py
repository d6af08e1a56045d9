"""Measurement checks: swap areas and zswap on fake /proc/swaps and sysfs trees, the
host cgroup's swap figures and their cross-check against /proc/vmstat, balloons at full
size, a process's memory cgroup and peak RSS."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.bench import hostcheck as hc

SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
OURS = "/var/lib/autoballoon/host-swapfile"


def swaps(*paths: str) -> str:
    return SWAPS_HEADER + "".join(f"{p}\tfile\t\t4194300\t\t0\t\t-2\n" for p in paths)


def test_swap_areas_and_foreign_ones():
    assert hc.swap_areas(SWAPS_HEADER) == []
    assert hc.swap_areas(swaps(OURS, "/dev/sda2")) == [OURS, "/dev/sda2"]
    assert hc.foreign_swap_areas(swaps(OURS), OURS) == []
    assert hc.foreign_swap_areas(swaps(OURS, "/dev/zram0"), OURS) == ["/dev/zram0"]
    assert hc.foreign_swap_areas(swaps("/swap.img"), "") == ["/swap.img"]


def fake_root(tmp_path: Path, zswap: str | None, swappiness: str = "60",
              thp: str | None = "always [madvise] never") -> Path:
    if zswap is not None:
        f = tmp_path / hc.ZSWAP_ENABLED
        f.parent.mkdir(parents=True)
        f.write_text(zswap + "\n")
    f = tmp_path / hc.SWAPPINESS
    f.parent.mkdir(parents=True)
    f.write_text(swappiness + "\n")
    if thp is not None:
        f = tmp_path / hc.THP_ENABLED
        f.parent.mkdir(parents=True)
        f.write_text(thp + "\n")
    return tmp_path


@pytest.mark.parametrize(("value", "on"), [("N", False), ("Y", True), ("1", True),
                                           ("0", False), (None, False)])
def test_zswap_state_from_sysfs(tmp_path: Path, value, on):
    root = fake_root(tmp_path, value)
    state = hc.zswap_state(root)
    assert state == (value if value is not None else "absent")
    assert hc.zswap_on(state) is on


def test_swap_problems():
    assert hc.swap_problems(swaps(OURS), OURS, "N") == []
    assert hc.swap_problems(swaps(OURS), OURS, "absent") == []
    [p] = hc.swap_problems(swaps(OURS, "/dev/sda2"), OURS, "N")
    assert "another swap area" in p and "/dev/sda2" in p
    [p] = hc.swap_problems(swaps(OURS), OURS, "Y")
    assert "zswap is enabled" in p
    assert len(hc.swap_problems(swaps(OURS, "/dev/sda2"), OURS, "Y")) == 2


def test_host_env(tmp_path: Path):
    root = fake_root(tmp_path, "N", "10")
    assert hc.host_env(root) == {"vm_swappiness": "10", "zswap_enabled": "N",
                                 "thp_enabled": "always [madvise] never"}
    bare = tmp_path / "bare"
    bare.mkdir()
    assert hc.host_env(bare)["zswap_enabled"] == "absent"


# the v1 memory.stat of a partition (excerpt, as on the project machines)
V1_STAT = """cache 0
rss 0
swap 0
pgmajfault 0
total_cache 1052672
total_rss 743956480
total_swap 209715200
total_swapcached 4194304
total_pgmajfault 1234
"""


def test_cgroup_swap_from_v1_memory_stat():
    stat = hc.parse_kv(V1_STAT + "garbage line here\n")
    assert stat["total_swap"] == 200 << 20
    # hierarchical (not the cgroup's own 0), swapped-in pages' slots (swap cache) included
    assert hc.cgroup_swap_bytes(stat) == 204 << 20
    assert hc.cgroup_swap_bytes({"swap": 4096}) == 4096
    assert hc.cgroup_swap_bytes({"swap": 4096, "swapcached": 8192}) == 12288
    assert hc.cgroup_swap_bytes({"anon": 1}) is None  # v2: memory.swap.current instead
    assert hc.cgroup_events(stat, stat) == {}  # v1 has no per-cgroup swap events


def test_cgroup_events_from_v2_memory_stat():
    start = hc.parse_kv("anon 1\npswpin 10\npswpout 100\n")
    end = hc.parse_kv("anon 1\npswpin 25\npswpout 1100\n")
    assert hc.cgroup_events(start, end) == {"swap_in": 15, "swap_out": 1000}


def test_cross_check_consistent():
    page = hc.PAGE
    c = hc.cross_check(1000, hc.SwapReading(0, 0), hc.SwapReading(800 * page, 810 * page))
    assert c["ok"] and c["cgroup_swap_growth_pages"] == 800
    assert c["vmstat_pswpout_pages"] == 1000 and c["cgroup_share_of_swap_gained_pct"] == 98.77
    assert c["detail"] == "consistent"
    assert hc.cross_check(0, hc.SwapReading(0, 0), hc.SwapReading(0, 0))["ok"]


def test_cross_check_catches_uncounted_swap_and_foreign_swappers():
    page = hc.PAGE
    c = hc.cross_check(100, hc.SwapReading(0, 0), hc.SwapReading(500 * page, 500 * page))
    assert not c["ok"] and "counted only 100" in c["detail"]
    # zero-filled pages take a slot without I/O (swpout_zero, not pswpout)
    c = hc.cross_check(100, hc.SwapReading(0, 0), hc.SwapReading(500 * page, 500 * page),
                       zero_out_delta=400)
    assert c["ok"] and c["vmstat_swpout_zero_pages"] == 400
    c = hc.cross_check(1000, hc.SwapReading(0, 0), hc.SwapReading(500 * page, 1000 * page))
    assert not c["ok"] and "50.0 %" in c["detail"]


def test_cross_check_counts_traffic_not_slots_left_before_the_run():
    """An auto run that swapped nothing failed with "0.0 %": slots an earlier run's
    destroyed QEMU left in use (freed lazily, charged to no live cgroup) were counted as
    another swapper. What the machine held before the run is nobody's traffic."""
    page = hc.PAGE
    c = hc.cross_check(0, hc.SwapReading(0, 37 * page), hc.SwapReading(0, 37 * page))
    assert c["ok"] and c["cgroup_share_of_swap_gained_pct"] == 100.0
    c = hc.cross_check(900, hc.SwapReading(0, 37 * page), hc.SwapReading(900 * page, 937 * page))
    assert c["ok"] and c["cgroup_share_of_swap_gained_pct"] == 100.0
    # a few slots kept in the swap cache after swap-in leave the cgroup's counter only
    c = hc.cross_check(22, hc.SwapReading(0, 0), hc.SwapReading(0, 22 * page))
    assert c["ok"], c["detail"]
    c = hc.cross_check(22, hc.SwapReading(0, 0), hc.SwapReading(0, 257 * page))
    assert not c["ok"]
    # a foreign swapper during the run still fails, whatever was there before
    c = hc.cross_check(900, hc.SwapReading(0, 37 * page), hc.SwapReading(450 * page, 937 * page))
    assert not c["ok"] and "50.0 %" in c["detail"]


def test_balloons_not_full():
    assert hc.balloons_not_full({"a": (681984, 681984)}) == []
    assert hc.balloons_not_full({"a": (681984, 681984), "b": (681984, 550912)}) == [
        "b (538 of 666 MiB)"]


def test_memory_cgroup_of():
    v1 = "12:memory:/autoballoon.partition\n11:cpuset:/autoballoon.partition\n0::/x\n"
    assert hc.memory_cgroup_of(v1) == "/autoballoon.partition"
    assert hc.memory_cgroup_of("4:cpu,cpuacct:/\n0::/autoballoon.partition\n") == (
        "/autoballoon.partition")
    assert hc.memory_cgroup_of("4:cpu,cpuacct:/\n") is None


def test_status_peak_rss():
    text = "Name:\tpython3\nVmPeak:\t  300000 kB\nVmHWM:\t   45120 kB\nVmRSS:\t 44000 kB\n"
    assert hc.status_kib(text, "VmHWM") == 45120
    assert hc.status_kib(text, "VmSwap") is None
