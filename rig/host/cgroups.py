"""The "host" as a libvirt resource partition: one cgroup in every mounted hierarchy.

libvirt maps `<partition>/NAME</partition>` to a directory `NAME.partition` at the top of
each hierarchy it uses, and does not create it. We create it everywhere a cgroup
hierarchy is mounted (cgroup v1 controllers, named v1 hierarchies, the unified v2 one)
and put the host's RAM size on it as the memory limit: memory.limit_in_bytes on the v1
memory controller, memory.max where v2 owns the memory controller.

The mount table is parsed from text and the filesystem root is a parameter, so both
layouts are tested on a fake tree.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rig.errors import RigError


@dataclass(frozen=True)
class Hierarchy:
    mountpoint: Path
    version: int  # 1 or 2
    controllers: frozenset[str]  # v1: from mount options; v2: from cgroup.controllers


def parse_mounts(text: str, read: Callable[[Path], str]) -> list[Hierarchy]:
    """Hierarchies from /proc/self/mounts text; `read` reads a file (fake-able)."""
    found: list[Hierarchy] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        _dev, mnt, fstype, opts = parts[:4]
        mnt = mnt.replace("\\040", " ")
        if fstype == "cgroup":
            ctrls = {o for o in opts.split(",") if o not in ("rw", "ro", "relatime", "noatime",
                     "nosuid", "nodev", "noexec", "clone_children", "noprefix")}
            found.append(Hierarchy(Path(mnt), 1, frozenset(ctrls)))
        elif fstype == "cgroup2":
            try:
                ctrls = set(read(Path(mnt) / "cgroup.controllers").split())
            except OSError:
                ctrls = set()
            found.append(Hierarchy(Path(mnt), 2, frozenset(ctrls)))
    return found


def memory_hierarchy(hierarchies: list[Hierarchy]) -> Hierarchy:
    """Where the memory controller lives: v1 'memory' if mounted, else v2 with memory."""
    for h in hierarchies:
        if h.version == 1 and "memory" in h.controllers:
            return h
    for h in hierarchies:
        if h.version == 2 and "memory" in h.controllers:
            return h
    raise RigError("no cgroup hierarchy has the memory controller; enable memory cgroups")


def partition_dirname(partition: str) -> str:
    """libvirt's mapping: "/autoballoon" -> "autoballoon.partition"."""
    name = partition.strip("/")
    if not name or "/" in name:
        raise ValueError(f"partition must be one level like /name, got {partition!r}")
    return f"{name}.partition"


@dataclass(frozen=True)
class PartitionPlan:
    """What creating the partition writes: directories, then (file, value) pairs."""

    dirs: tuple[Path, ...]
    writes: tuple[tuple[Path, str], ...]
    memory_dir: Path


def plan_partition(
    hierarchies: list[Hierarchy], partition: str, ram_bytes: int, read: Callable[[Path], str]
) -> PartitionPlan:
    name = partition_dirname(partition)
    mem = memory_hierarchy(hierarchies)
    dirs: list[Path] = []
    writes: list[tuple[Path, str]] = []
    for h in hierarchies:
        d = h.mountpoint / name
        if h.version == 2 and "memory" in h.controllers:
            # v2: the parent must delegate memory to its children before memory.max exists.
            subtree = read(h.mountpoint / "cgroup.subtree_control").split()
            if "memory" not in subtree:
                writes.append((h.mountpoint / "cgroup.subtree_control", "+memory"))
        dirs.append(d)
        if h.version == 1 and "cpuset" in h.controllers:
            for f in ("cpuset.cpus", "cpuset.mems"):
                writes.append((d / f, read(h.mountpoint / f).strip()))
    mdir = mem.mountpoint / name
    if mem.version == 1:
        writes.append((mdir / "memory.limit_in_bytes", str(ram_bytes)))
    else:
        writes.append((mdir / "memory.max", str(ram_bytes)))
    return PartitionPlan(tuple(dirs), tuple(writes), mdir)


# ---- adapters -------------------------------------------------------------------------

def read_text(path: Path) -> str:
    return path.read_text()


def create_partition(plan: PartitionPlan, on_created: Callable[[Path], None]) -> None:
    """mkdir every directory (reporting each one we created), then apply the writes.

    Writes to a parent's subtree_control come before the mkdirs in the plan's order of
    effect: v2 needs the controller enabled before the child's memory.max appears.
    """
    parent_writes = [(f, v) for f, v in plan.writes if f.parent not in plan.dirs]
    child_writes = [(f, v) for f, v in plan.writes if f.parent in plan.dirs]
    for f, v in parent_writes:
        f.write_text(v)
    for d in plan.dirs:
        if d.exists():
            raise RigError(f"{d} already exists: another host is up; run `rig host down` first")
        d.mkdir()
        on_created(d)
    for f, v in child_writes:
        f.write_text(v)


def tree_procs(d: Path) -> list[int]:
    """Every process in cgroup `d` and the cgroups below it (libvirt puts each QEMU in a
    child of the partition, never in the partition itself)."""
    pids: list[int] = []
    for procs in sorted(d.rglob("cgroup.procs")):
        try:
            pids += [int(p) for p in procs.read_text().split()]
        except FileNotFoundError:
            continue  # the cgroup went away while we looked
    return pids


def remove_dir(d: Path, deadline_s: float = 20.0) -> None:
    """rmdir a cgroup, polling while it is still busy (processes leaving, libvirt cleaning)."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            # Children libvirt left behind (empty machine cgroups) go first.
            for child in sorted((p for p in d.iterdir() if p.is_dir()), reverse=True):
                remove_dir(child, max(0.0, end - time.monotonic()))
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() > end:
                raise RigError(f"cannot remove cgroup {d}: {e.strerror}; "
                               "a process may still be inside it (see its cgroup.procs)") from e
            time.sleep(0.2)
