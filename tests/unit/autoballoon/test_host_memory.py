from autoballoon.host_memory import from_cgroup, from_meminfo, read

MEMINFO = "MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   12000000 kB\n"


def test_cgroup_limit_and_usage():
    assert from_cgroup(str(1024 << 20), str(1000 << 20), 24_000_000) == (24, 1024)
    assert from_cgroup("9223372036854771712", str(1 << 30), 2 << 20) == (1024, 2048)
    assert from_cgroup("max\n", str(1 << 30), 2 << 20) == (1024, 2048)
    assert from_cgroup(str(1 << 30), str(2 << 30), 4 << 20) == (0, 1024)  # over: no free


def test_meminfo_and_reading_a_fake_tree(tmp_path):
    assert from_meminfo(MEMINFO) == (11718, 23437)
    (tmp_path / "meminfo").write_text(MEMINFO)
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "memory.max").write_text(str(2048 << 20))
    (cg / "memory.current").write_text(str(1024 << 20))
    assert read(cg, proc=tmp_path) == (1024, 2048)
    assert read(None, proc=tmp_path) == (11718, 23437)
