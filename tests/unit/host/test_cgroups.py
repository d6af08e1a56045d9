"""Partition set-up on fake cgroup trees: v1 (this machine's layout) and v2."""

from pathlib import Path

import pytest

from rig.errors import RigError
from rig.host import cgroups

V1_MOUNTS = """\
tmpfs {root} tmpfs rw,relatime,mode=755 0 0
cgroup {root}/cpu cgroup rw,relatime,cpu 0 0
cgroup {root}/cpuset cgroup rw,relatime,cpuset 0 0
cgroup {root}/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
cgroup {root}/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 {root}/unified cgroup2 rw,relatime 0 0
/dev/vda / ext4 rw 0 0
"""

V2_MOUNTS = "cgroup2 {root} cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"


def fake_v1(root: Path) -> list[cgroups.Hierarchy]:
    for d in ("cpu", "cpuset", "memory", "systemd", "unified"):
        (root / d).mkdir(parents=True)
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    (root / "unified" / "cgroup.controllers").write_text("")
    return cgroups.parse_mounts(V1_MOUNTS.format(root=root), cgroups.read_text)


def fake_v2(root: Path, subtree: str = "cpu") -> list[cgroups.Hierarchy]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text(subtree + "\n")
    return cgroups.parse_mounts(V2_MOUNTS.format(root=root), cgroups.read_text)


def test_parse_v1_hybrid(tmp_path):
    h = fake_v1(tmp_path)
    assert [(x.mountpoint.name, x.version) for x in h] == [
        ("cpu", 1), ("cpuset", 1), ("memory", 1), ("systemd", 1), ("unified", 2)]
    assert h[3].controllers == {"name=systemd"}
    assert h[2].controllers == {"memory"}
    assert cgroups.memory_hierarchy(h).mountpoint == tmp_path / "memory"


def test_v1_partition_everywhere_with_limit_and_cpuset(tmp_path):
    h = fake_v1(tmp_path)
    plan = cgroups.plan_partition(h, "/autoballoon", 2048 << 20, cgroups.read_text)
    created = []
    cgroups.create_partition(plan, created.append)
    names = {"cpu", "cpuset", "memory", "systemd", "unified"}
    assert {p.parent.name for p in created} == names
    assert all(p.name == "autoballoon.partition" for p in created)
    part = tmp_path / "memory" / "autoballoon.partition"
    assert (part / "memory.limit_in_bytes").read_text() == str(2048 << 20)
    assert plan.memory_dir == part
    cs = tmp_path / "cpuset" / "autoballoon.partition"
    assert (cs / "cpuset.cpus").read_text() == "0-1"
    assert (cs / "cpuset.mems").read_text() == "0"
    # the v2 hierarchy without memory gets no memory.max
    assert not (tmp_path / "unified" / "autoballoon.partition" / "memory.max").exists()


def test_v2_enables_memory_then_sets_max(tmp_path):
    root = tmp_path / "cg"
    h = fake_v2(root)
    assert cgroups.memory_hierarchy(h).version == 2
    plan = cgroups.plan_partition(h, "/autoballoon", 1 << 30, cgroups.read_text)
    cgroups.create_partition(plan, lambda _d: None)
    assert (root / "cgroup.subtree_control").read_text() == "+memory"
    assert (root / "autoballoon.partition" / "memory.max").read_text() == str(1 << 30)


def test_v2_already_delegated_writes_no_subtree_control(tmp_path):
    root = tmp_path / "cg"
    h = fake_v2(root, subtree="cpu memory")
    plan = cgroups.plan_partition(h, "/autoballoon", 1 << 30, cgroups.read_text)
    assert all(f.name != "cgroup.subtree_control" for f, _ in plan.writes)


def test_existing_partition_is_refused(tmp_path):
    h = fake_v1(tmp_path)
    (tmp_path / "memory" / "autoballoon.partition").mkdir()
    plan = cgroups.plan_partition(h, "/autoballoon", 1 << 30, cgroups.read_text)
    created = []
    with pytest.raises(RigError, match="already exists"):
        cgroups.create_partition(plan, created.append)
    # what was created before the refusal was reported, so it can be removed
    assert (tmp_path / "cpu" / "autoballoon.partition") in created


def test_no_memory_controller(tmp_path):
    h = cgroups.parse_mounts(f"cgroup {tmp_path}/cpu cgroup rw,cpu 0 0\n", cgroups.read_text)
    with pytest.raises(RigError, match="memory controller"):
        cgroups.memory_hierarchy(h)


def test_remove_empty_dir_and_children(tmp_path):
    d = tmp_path / "x.partition"
    (d / "machine-1").mkdir(parents=True)
    cgroups.remove_dir(d)
    assert not d.exists()
    cgroups.remove_dir(d)  # already gone: fine


@pytest.mark.parametrize("bad", ["", "/", "/a/b"])
def test_partition_name(bad):
    with pytest.raises(ValueError):
        cgroups.partition_dirname(bad)


def test_tree_procs_counts_the_children_libvirt_puts_qemu_in(tmp_path: Path):
    part = tmp_path / "autoballoon.partition"
    emu = part / "qemu-1-autoballoon-vm-down.libvirt-qemu" / "emulator"
    emu.mkdir(parents=True)
    (part / "cgroup.procs").write_text("")
    (emu / "cgroup.procs").write_text("19431\n")
    (emu.parent / "cgroup.procs").write_text("")
    assert cgroups.tree_procs(part) == [19431]
    assert cgroups.tree_procs(emu.parent.parent / "missing") == []
