"""`rig host up` / `rig host down`: a memory-limited "host" on this machine.

Up: daemons (virtlogd, libvirtd) if none runs, /dev/kvm usable by libvirt's QEMU user,
the resource partition cgroup with the host's RAM as its limit, a swapfile, and the
accelerator decision. Every change is appended to a record file the moment it is made,
so `host down` (or the cleanup of an interrupted `host up`) reverts exactly what was done
and nothing else.

A record whose host no longer exists (the machine rebooted, or the run that wrote it was
killed with its daemons) is stale: `host up` says so, cleans up what is left of it with the
same `host down`, and goes on. A record whose host may still be in use is never touched.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rig.errors import RigError
from rig.host import accel as accel_mod
from rig.host import cgroups, daemons, swap
from rig.layout import Layout
from rig.progress import Progress
from rig.scenario import HostSpec

PARTITION = "/autoballoon"
KVM_DEV = Path("/dev/kvm")


class HostAlreadyUp(RigError):
    """A host record exists: someone else's host, never to be torn down by this caller."""


@dataclass
class KvmPerms:
    uid: int
    gid: int
    mode: int


@dataclass
class HostRecord:
    """What `host up` did, in order. Saved after every step."""

    ram_mib: int = 0
    swap_mib: int = 0
    partition: str = PARTITION
    accel: str = "tcg"
    domain_type: str = "qemu"
    accel_reason: str = ""
    memory_cgroup: str = ""
    daemons: list[dict[str, int | str]] = field(default_factory=list)
    cgroup_dirs: list[str] = field(default_factory=list)
    swapfile: str = ""
    kvm_perms: dict[str, int] | None = None
    thp_enabled: str = ""
    thp_restore: str = ""  # the THP mode to put back on `host down` ("" = untouched)
    boot_id: str = ""  # the machine boot the record belongs to ("" = written before it was kept)
    owner: dict[str, int] | None = None  # the process running `host up` (pid, start_ticks)
    complete: bool = False  # `host up` finished

    @classmethod
    def load(cls, path: Path) -> HostRecord | None:
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Liveness:
    """What is still alive of a recorded host, read from the machine."""

    boot_id: str
    owner_alive: bool  # the process that ran `host up`
    daemons_alive: tuple[bool, ...]  # per recorded daemon, in the record's order
    memcg_exists: bool
    memcg_tasks: int  # processes in the partition's memory cgroup tree (QEMUs sit below it)


def stale_reason(rec: HostRecord, live: Liveness) -> str | None:
    """Why `rec` describes a host that no longer exists, or None when it may be in use.

    Processes in the partition cgroup (VMs running) always mean in use: only `host down`,
    asked for by a person, may end those.
    """
    if rec.boot_id and rec.boot_id != live.boot_id:
        return "it was written before this machine last booted"
    if live.memcg_tasks:
        return None
    if rec.owner is not None and not rec.complete and not live.owner_alive:
        return "the `host up` that wrote it died before finishing"
    if rec.daemons and not any(live.daemons_alive):
        names = ", ".join(f"{d['name']} pid {d['pid']}" for d in rec.daemons)
        return f"every daemon it started ({names}) is gone"
    if rec.memory_cgroup and not live.memcg_exists:
        return f"its memory cgroup {rec.memory_cgroup} is gone"
    return None


def read_liveness(rec: HostRecord) -> Liveness:
    def alive(d: dict[str, int | str]) -> bool:
        return daemons.is_alive(daemons.Daemon(str(d["name"]), int(d["pid"]),
                                               int(d["start_ticks"])))

    memcg = Path(rec.memory_cgroup) if rec.memory_cgroup else None
    tasks = 0
    if memcg is not None and memcg.is_dir():
        try:
            tasks = len(cgroups.tree_procs(memcg))
        except OSError:
            tasks = 1  # unreadable: assume in use
    return Liveness(
        boot_id=BOOT_ID.read_text().strip(),
        owner_alive=rec.owner is not None and alive({"name": "owner", **rec.owner}),
        daemons_alive=tuple(alive(d) for d in rec.daemons),
        memcg_exists=memcg is not None and memcg.is_dir(),
        memcg_tasks=tasks,
    )


def _fix_kvm_perms(rec: HostRecord, save: Callable[[], None]) -> None:
    """Give /dev/kvm to group kvm (0660) so libvirt's QEMU user can open it.

    Without it libvirt re-probes QEMU on every lookup and a domain start takes ~1 min.
    """
    if not KVM_DEV.exists():
        return
    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return
    st = KVM_DEV.stat()
    mode = stat.S_IMODE(st.st_mode)
    if st.st_gid == kvm_gid and mode & 0o060 == 0o060:
        return
    rec.kvm_perms = asdict(KvmPerms(st.st_uid, st.st_gid, mode))
    save()
    os.chown(KVM_DEV, st.st_uid, kvm_gid)
    os.chmod(KVM_DEV, mode | 0o060)


def up(layout: Layout, spec: HostSpec, progress: Progress, forced_accel: str | None = None
       ) -> HostRecord:
    """Bring the host up; on any failure or interrupt, revert what was done and re-raise."""
    try:
        return _up(layout, spec, progress, forced_accel)
    except HostAlreadyUp:
        raise
    except BaseException:
        down(layout, progress)
        raise


@contextmanager
def session(layout: Layout, spec: HostSpec, progress: Progress,
            accel: str | None = None) -> Iterator[HostRecord]:
    """A host for the duration of a `with` block: up on entry, down on any exit."""
    rec = up(layout, spec, progress, accel)
    try:
        yield rec
    finally:
        down(layout, progress)


THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def thp_selected(text: str) -> str:
    """The bracketed mode of a THP sysfs file ("always [madvise] never" -> "madvise")."""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    raise RigError(f"cannot read the THP mode from {text.strip()!r}")


def _up(layout: Layout, spec: HostSpec, progress: Progress, forced_accel: str | None
        ) -> HostRecord:
    path = layout.host_record
    old = HostRecord.load(path)
    if old is not None:
        reason = stale_reason(old, read_liveness(old))
        if reason is None:
            raise HostAlreadyUp(f"a host is already up ({path}); run `rig host down` first")
        progress.info(f"{path} is stale: {reason}; cleaning up what is left of that host")
        down(layout, progress)
    me = os.getpid()
    rec = HostRecord(ram_mib=spec.ram_mib, swap_mib=spec.swap_mib,
                     boot_id=BOOT_ID.read_text().strip(),
                     owner={"pid": me, "start_ticks": daemons.start_ticks(me) or 0})

    def save() -> None:
        rec.save(path)

    save()
    with progress.step("accelerator"):
        a = accel_mod.choose(accel_mod.read_facts(), forced_accel)
        rec.accel, rec.domain_type, rec.accel_reason = a.name, a.domain_type, a.reason
        if THP.exists() and spec.thp != "keep":
            before = thp_selected(THP.read_text())
            if before != spec.thp:
                rec.thp_restore = before
                save()
                THP.write_text(spec.thp)
        rec.thp_enabled = THP.read_text().strip() if THP.exists() else "absent"
        save()
        progress.info(f"using {a.name.upper()}: {a.reason}")
        progress.info(f"host THP mode: {rec.thp_enabled}")
    with progress.step("/dev/kvm for libvirt's QEMU user"):
        _fix_kvm_perms(rec, save)
    with progress.step("libvirt daemons") as s:
        started = []
        for name in ("virtlogd", "libvirtd"):
            if daemons.find_running(name) is not None:
                progress.info(f"{name} already running: using it, will not stop it")
                continue
            d = daemons.start(name)
            rec.daemons.append(asdict(d))
            save()
            started.append(f"{name} pid {d.pid}")
        if not started:
            s.cached("already running")
        else:
            progress.info("started " + ", ".join(started))
    with progress.step(f"partition cgroup {PARTITION} limited to {spec.ram_mib} MiB"):
        mounts = Path("/proc/self/mounts").read_text()
        hier = cgroups.parse_mounts(mounts, cgroups.read_text)
        plan = cgroups.plan_partition(hier, PARTITION, spec.ram_mib << 20, cgroups.read_text)
        rec.memory_cgroup = str(plan.memory_dir)

        def created(d: Path) -> None:
            rec.cgroup_dirs.append(str(d))
            save()

        cgroups.create_partition(plan, created)
        progress.info(f"memory limit on {plan.memory_dir}; {len(plan.dirs)} hierarchies")
    if spec.swap_mib:
        with progress.step(f"swapfile of {spec.swap_mib} MiB"):
            sf = layout.state / "host-swapfile"
            rec.swapfile = str(sf)
            save()
            swap.create(sf, spec.swap_mib)
    rec.complete = True
    save()
    return rec


def restart_libvirtd(layout: Layout) -> daemons.Daemon:
    """Stop and start the libvirtd this host started (for tests of clients that must
    survive it); the record then names the new process, so `host down` stops that one."""
    rec = HostRecord.load(layout.host_record)
    if rec is None:
        raise RigError("no host is up")
    for i, d in enumerate(rec.daemons):
        if d["name"] == "libvirtd":
            daemons.stop(daemons.Daemon("libvirtd", int(d["pid"]), int(d["start_ticks"])))
            new = daemons.start("libvirtd")
            rec.daemons[i] = asdict(new)
            rec.save(layout.host_record)
            return new
    raise RigError("this host did not start libvirtd, so it will not restart someone else's")


def down(layout: Layout, progress: Progress) -> bool:
    """Revert what the record says; False if no host was up."""
    path = layout.host_record
    rec = HostRecord.load(path)
    if rec is None:
        return False
    errors: list[str] = []

    def attempt(name: str, fn: Callable[[], object]) -> None:
        try:
            with progress.step(name):
                fn()
        except (OSError, RigError) as e:
            errors.append(f"{name}: {e}")

    from rig.vm import (
        domains as vm,  # late: vm needs libvirt, which host down must not require first
    )

    if daemons.find_running("libvirtd"):
        attempt("our domains", lambda: vm.destroy_all(layout))
    else:  # no libvirtd, so no domain of ours can be managed: only its files remain
        attempt("our VMs' files", lambda: vm.forget_all(layout))
    if rec.swapfile:
        attempt("swapfile", lambda: swap.remove(Path(rec.swapfile)))
    if rec.cgroup_dirs:
        attempt(f"partition cgroups ({len(rec.cgroup_dirs)} hierarchies)",
                lambda: [cgroups.remove_dir(Path(d)) for d in reversed(rec.cgroup_dirs)])
    for d in reversed(rec.daemons):
        daemon = daemons.Daemon(str(d["name"]), int(d["pid"]), int(d["start_ticks"]))
        attempt(f"stop {daemon.name} (pid {daemon.pid})", lambda dm=daemon: daemons.stop(dm))
    if rec.thp_restore:
        attempt(f"THP mode back to {rec.thp_restore}",
                lambda: THP.write_text(rec.thp_restore))
    if rec.kvm_perms is not None:
        p = KvmPerms(**rec.kvm_perms)

        def restore() -> None:
            os.chown(KVM_DEV, p.uid, p.gid)
            os.chmod(KVM_DEV, p.mode)

        attempt("/dev/kvm permissions", restore)
    if errors:
        raise RigError("host down left something behind: " + "; ".join(errors))
    path.unlink()
    remove_empty_dirs([layout.run / "vms", layout.run, layout.state / "vms", layout.state])
    return True


def remove_empty_dirs(dirs: list[Path]) -> None:
    """Remove each directory of ``dirs`` that is empty by its turn (children first): the
    ones the rig created for a host, so a machine is left as it was found; a directory
    that still holds anything, or is gone, stays as it is."""
    for d in dirs:
        with contextlib.suppress(OSError):
            d.rmdir()
