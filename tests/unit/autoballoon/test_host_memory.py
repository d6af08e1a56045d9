"""The host's free memory: a memory cgroup's limit minus what it uses that is not easily
reclaimed (its inactive page cache counts as free), never more than the machine's
MemAvailable; without a cgroup, MemAvailable."""

from pathlib import Path

import pytest
from autoballoon.host_memory import from_cgroup, from_meminfo, inactive_file, read

MIB = 1 << 20


def meminfo(total_mib: int, available_mib: int) -> str:
    return (f"MemTotal:       {total_mib << 10} kB\nMemFree:  1000 kB\n"
            f"MemAvailable:   {available_mib << 10} kB\n")


MEMINFO = meminfo(24_000, 12_000)


def v1_stat(inactive_mib: int, local_mib: int = 1) -> str:
    # v1 reports this cgroup's own pages as inactive_file and the hierarchy's as total_*
    return (f"cache {inactive_mib * MIB}\ninactive_file {local_mib * MIB}\n"
            f"active_file {MIB}\ntotal_cache {inactive_mib * MIB}\n"
            f"total_inactive_file {inactive_mib * MIB}\ntotal_active_file {MIB}\n")


def v2_stat(inactive_mib: int) -> str:
    return f"anon {MIB}\nfile {inactive_mib * MIB}\ninactive_file {inactive_mib * MIB}\n"


def test_inactive_page_cache_counts_as_free():
    # 2 GiB limit, 1.8 GiB charged of which 1 GiB inactive cache: 1.25 GiB is free
    assert from_cgroup(str(2048 * MIB), str(1800 * MIB), v2_stat(1000), MEMINFO) == (1248, 2048)
    assert from_cgroup(str(2048 * MIB), str(1800 * MIB), v1_stat(1000), MEMINFO) == (1248, 2048)


def test_cgroup_v1_uses_the_hierarchical_inactive_file():
    assert inactive_file(v1_stat(700, local_mib=3)) == 700 * MIB
    assert inactive_file(v2_stat(700)) == 700 * MIB
    with pytest.raises(ValueError, match="inactive_file"):
        inactive_file("anon 1\n")


def test_an_unlimited_cgroup_is_bounded_by_the_machine():
    tight = meminfo(24_000, 2_000)  # the rest of the machine uses most of it
    for unlimited in ("max\n", "9223372036854771712"):
        assert from_cgroup(unlimited, str(1024 * MIB), v2_stat(0), tight) == (2000, 24_000)


def test_never_more_free_than_the_machine_has_available():
    assert from_cgroup(str(8192 * MIB), str(1024 * MIB), v2_stat(512), meminfo(24_000, 900)) == (
        900, 8192)


def test_limits_and_overcommit():
    assert from_cgroup(str(1024 * MIB), str(1000 * MIB), v2_stat(0), MEMINFO) == (24, 1024)
    assert from_cgroup(str(1 << 30), str(2 << 30), v2_stat(0), MEMINFO) == (0, 1024)  # over
    # a limit above the machine's RAM: the machine is the total
    assert from_cgroup(str(64 << 30), str(1 << 30), v2_stat(0), meminfo(4096, 4000)) == (
        3072, 4096)
    # inactive_file briefly above usage (the two files are read apart): no more than limit
    assert from_cgroup(str(1 << 30), str(100 * MIB), v2_stat(200), MEMINFO) == (1024, 1024)


def test_meminfo_alone():
    assert from_meminfo(MEMINFO) == (12_000, 24_000)
    with pytest.raises(ValueError, match="MemAvailable"):
        from_meminfo("MemTotal: 1 kB\n")


def fake_tree(tmp: Path, files: dict[str, str]) -> Path:
    (tmp / "meminfo").write_text(MEMINFO)
    cg = tmp / "cg"
    cg.mkdir()
    for name, text in files.items():
        (cg / name).write_text(text)
    return cg


def test_reading_a_cgroup_v2_tree(tmp_path):
    cg = fake_tree(tmp_path, {"memory.max": str(2048 * MIB), "memory.current": str(1800 * MIB),
                              "memory.stat": v2_stat(1000)})
    assert read(cg, proc=tmp_path) == (1248, 2048)
    assert read(None, proc=tmp_path) == (12_000, 24_000)


def test_reading_a_cgroup_v1_tree(tmp_path):
    cg = fake_tree(tmp_path, {"memory.limit_in_bytes": "9223372036854771712\n",
                              "memory.usage_in_bytes": str(20_000 * MIB),
                              "memory.stat": v1_stat(10_000)})
    # unlimited: 24000 - (20000 - 10000) = 14000 free in the cgroup, but MemAvailable is 12000
    assert read(cg, proc=tmp_path) == (12_000, 24_000)


def test_reading_an_unlimited_cgroup_sees_the_rest_of_the_machine(tmp_path):
    cg = fake_tree(tmp_path, {"memory.max": "max\n", "memory.current": str(1024 * MIB),
                              "memory.stat": v2_stat(0)})
    (tmp_path / "meminfo").write_text(meminfo(24_000, 2_000))  # others use most of it
    assert read(cg, proc=tmp_path) == (2_000, 24_000)
