"""The benchmark runner: one scenario, its modes, N runs each, each run on a fresh host.

Modes are interleaved across runs (A1 B1 A2 B2 ...; ``interleave``), so a slow spell of
the machine hits every mode rather than one; each mode's summary is written when its
last run is done.

A run: host up (partition cgroup + swap), the host's swap checked (our swapfile the only
swap area, zswap off; hostcheck), the scenario's VMs booted, every balloon checked to be
at full size, start snapshots (host /proc/vmstat and /proc/meminfo, the host memory
cgroup's memory.stat, each QEMU's /proc/<pid>/stat, each guest's /proc/vmstat), then the
daemon started inside the host's cgroups with the mode's policy (none for vanilla and
free-page-reporting), every VM's workload schedule started at once
(one SSH channel each, streaming progress and raw output), a sampler of host memory and
balloons every second, end snapshots taken while the QEMUs still run, then everything
torn down. The run directory is marked INCOMPLETE until its summary.json says complete.

Collectors (this module's I/O) stay thin; the math is in procstat, workload and results.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt

from rig.bench import hostcheck, results, run_metrics
from rig.bench.daemon_proc import DaemonProcess
from rig.bench.guest_stream import GuestStream
from rig.bench.liar import FLOOD_REMOTE, flood_script, flooded, stop_command
from rig.bench.sampler import HOST_VMSTAT, Sampler
from rig.bench.workload import guest_script
from rig.build.bootstrap import Stack, image_for
from rig.errors import RigError
from rig.host import lifecycle as host
from rig.layout import Layout
from rig.progress import Progress
from rig.scenario import Scenario
from rig.vm import domains as vm
from rig.vm import msgvq

# The daemon's policy for each mode (None: no daemon).
MODE_POLICY: dict[str, str | None] = {
    "vanilla": None,
    "auto-seed": "seed",
    "auto": "auto",
    "free-page-reporting": None,
    "stats-polling": "stats-polling",
    "auto+fpr": "auto",
}
# Modes whose domains have free page reporting on.
FPR_MODES = frozenset({"free-page-reporting", "auto+fpr"})
PROGRESS_PERIOD_S = 5.0


@dataclass(frozen=True)
class BenchContext:
    layout: Layout
    stack: Stack
    scenario: Scenario
    scenario_text: str
    progress: Progress
    accel: str | None = None
    ebizzy: Path | None = None  # a real ebizzy binary (static) to use instead of ours
    command: str = ""
    policy_params: dict[str, object] = field(default_factory=dict)
    daemon_args: tuple[str, ...] = ()


# ---- host-side readings (the sampler and its readings: rig.bench.sampler) ------------

def qemu_stat_text(rec: vm.VmRecord) -> str:
    return Path(f"/proc/{vm.qemu_pid(rec)}/stat").read_text()


# ---- the environment --------------------------------------------------------------------

def rig_revision(repo: Path) -> str:
    try:
        rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                "--untracked-files=no"], check=True, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return rev + ("-dirty" if dirty else "")


def environment(ctx: BenchContext, mode: str, host_rec: host.HostRecord,
                conn: libvirt.virConnect) -> dict[str, Any]:
    s = ctx.stack
    lv = conn.getLibVersion()
    return {
        "scenario": ctx.scenario.name,
        "scenario_sha256": hashlib.sha256(ctx.scenario_text.encode()).hexdigest(),
        "mode": mode,
        "policy": MODE_POLICY[mode],
        "policy_params": ctx.policy_params,
        "daemon_args": list(ctx.daemon_args),
        "accel": host_rec.accel,
        "accel_reason": host_rec.accel_reason,
        **hostcheck.host_env(),  # vm_swappiness, zswap_enabled, thp_enabled (as run)
        "thp_scenario": ctx.scenario.host.thp,
        "host_kernel": os.uname().release,
        "libvirt": f"{lv // 1000000}.{lv // 1000 % 1000}.{lv % 1000}",
        "qemu": {"source_version": s.qemu.source_version, "build_key": s.qemu.key,
                 "patches": list(s.qemu.patches)},
        "guest_kernel": {"abi": s.kernel.abi, "version": s.kernel.version},
        "guest_module": {"key": s.module.key, "version": s.module.version,
                         "patches": list(s.module.patches)},
        "image": s.image.key,
        "workload": _workload_programs(ctx),
        "rig_revision": rig_revision(ctx.layout.repo),
        "command": ctx.command,
    }


def _workload_programs(ctx: BenchContext) -> str:
    """What the guests run: "ebizzy (ours)", "ebizzy binary PATH", "abload (ours): stream,
    idle", or both joined by "; "."""
    w = ctx.scenario.workload
    kinds = sorted({s.kind for s in w.schedules}) if w is not None else ["ebizzy"]
    out = []
    if "ebizzy" in kinds:
        out.append("ebizzy (ours)" if ctx.ebizzy is None else f"ebizzy binary {ctx.ebizzy}")
    abload = [k for k in kinds if k != "ebizzy"]
    if abload:
        out.append(f"abload (ours): {', '.join(abload)}")
    return "; ".join(out)


# ---- a run ------------------------------------------------------------------------------

def _boot(ctx: BenchContext, conn: libvirt.virConnect, host_rec: host.HostRecord,
          mode: str) -> dict[str, vm.VmRecord]:
    recs: dict[str, vm.VmRecord] = {}
    for spec in ctx.scenario.vms:
        image = image_for(ctx.layout, ctx.progress, ctx.stack, spec.guest_driver)
        recs[spec.name] = vm.up(conn, ctx.layout, ctx.scenario, spec, host_rec, image,
                                ctx.stack.qemu.binary,
                                free_page_reporting=mode in FPR_MODES)
    for name, rec in recs.items():
        t = vm.wait_ssh(rec, timeout_s=120)
        ctx.progress.info(f"{name}: SSH after {t:.1f} s")
    return recs


def _install_ebizzy(recs: dict[str, vm.VmRecord], binary: Path) -> str:
    target = "/tmp/ebizzy.user"
    data = binary.read_bytes()
    for rec in recs.values():
        status = vm.ssh_stream(rec, f"cat > {target} && chmod +x {target}", lambda _l: None,
                               timeout_s=60, stdin=data)
        if status != 0:
            raise RigError(f"{rec.name}: could not copy {binary} into the guest")
    return target


def _status_line(t: float, streams: dict[str, GuestStream], sampler: Sampler,
                 scenario: Scenario) -> str:
    parts = [f"[{t:5.0f} s] workload"]
    for name, st in streams.items():
        sched = scenario.workload.schedule(name) if scenario.workload else None
        total = sched.step_count if sched else 0
        r = st.run
        step = ("done" if r.done else f"step {r.current_step}/{total} (size {r.current_chunks})"
                if r.current_step else "waiting")
        actual = sampler.latest.get("vms", {}).get(name, {}).get("actual_mib")
        parts.append(f"{name} {step}, balloon {actual if actual is not None else '?'} MiB")
    if sampler.latest:
        parts.append(f"host {sampler.latest['host_usage_mib']} MiB, "
                     f"swap {sampler.latest['swap_used_mib']} MiB")
    return " | ".join(parts)


def _check_swap(host_rec: host.HostRecord) -> None:
    problems = hostcheck.swap_problems(Path("/proc/swaps").read_text(), host_rec.swapfile,
                                       hostcheck.zswap_state())
    if problems:
        raise RigError("host swap cannot be measured: " + "; ".join(problems))


def _check_balloons(conn: libvirt.virConnect, recs: dict[str, vm.VmRecord]) -> None:
    sizes = {}
    for name, rec in recs.items():
        info = conn.lookupByName(rec.domain).info()
        sizes[name] = (info[1], info[2])
    short = hostcheck.balloons_not_full(sizes)
    if short:
        raise RigError("balloons not at full size at the start of the run: "
                       + ", ".join(short))


def _snapshot(out: Path, suffix: str, recs: dict[str, vm.VmRecord], memcg: Path) -> None:
    """Host /proc/vmstat and /proc/meminfo, the host cgroup's memory.stat, each QEMU's
    /proc/<pid>/stat (run_metrics reads them)."""
    (out / f"host-vmstat.{suffix}").write_text(HOST_VMSTAT.read_text())
    (out / f"host-meminfo.{suffix}").write_text(Path("/proc/meminfo").read_text())
    (out / f"host-memcg-stat.{suffix}").write_text((memcg / "memory.stat").read_text())
    for name, rec in recs.items():
        (out / f"{name}.qemu-stat.{suffix}").write_text(qemu_stat_text(rec))


def _guest_msg_stats(out: Path, suffix: str, recs: dict[str, vm.VmRecord]) -> None:
    """Each guest driver's own counters (debugfs msg_stats: messages sent per level), for
    the guests whose driver has them (run_metrics: <vm>.guest.msg_*)."""
    for name, rec in recs.items():
        with contextlib.suppress(RigError):  # a guest without the message queue
            (out / f"{name}.guest-msgstats.{suffix}").write_text(msgvq.msg_stats(rec))


def run_once(ctx: BenchContext, mode: str, n: int, out: Path) -> results.RunSummary:
    """One complete run into `out` (marked INCOMPLETE until it is)."""
    sc = ctx.scenario
    if sc.workload is None:
        raise RigError(f"scenario {sc.name} has no [workload]: nothing to benchmark")
    if sc.host.thp == "keep":
        raise RigError(f"scenario {sc.name}: a benchmark must pin the THP mode ([host] thp)")
    results.begin_run(out)
    (out / "scenario.toml").write_text(ctx.scenario_text)
    metrics: dict[str, float | int] = {}
    env: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    complete = False
    names = [v.name for v in sc.vms]
    try:
        with host.session(ctx.layout, sc.host, ctx.progress, ctx.accel) as host_rec:
            conn = vm.connect()
            daemon: DaemonProcess | None = None
            try:
                env = environment(ctx, mode, host_rec, conn)
                results.write_json_atomic(out / "env.json", env)
                _check_swap(host_rec)
                with ctx.progress.step(f"boot {', '.join(names)}"):
                    recs = _boot(ctx, conn, host_rec, mode)
                binary = (_install_ebizzy(recs, ctx.ebizzy) if ctx.ebizzy is not None
                          else None)
                _check_balloons(conn, recs)
                memcg = Path(host_rec.memory_cgroup)
                _snapshot(out, "start", recs, memcg)  # before the daemon starts
                for name, rec in recs.items():
                    (out / f"{name}.guest-vmstat.start").write_text(
                        vm.ssh_exec(rec, "cat /proc/vmstat").stdout)
                _guest_msg_stats(out, "start", recs)
                policy = MODE_POLICY[mode]
                if policy is not None:
                    with ctx.progress.step(f"start autoballoond (policy {policy}) in "
                                           f"{memcg.name}"):
                        daemon = DaemonProcess(out, policy, str(memcg), params=ctx.policy_params,
                                               extra_args=ctx.daemon_args,
                                               cgroups=_daemon_cgroups(host_rec)).start(
                            expect_vms=len(recs))
                        _check_daemon_cgroup(daemon, memcg)
                _measure(ctx, out, recs, memcg, binary)
                _guest_msg_stats(out, "end", recs)
                if daemon is not None:
                    if daemon.proc is not None and daemon.proc.poll() is None:
                        for f in ("stat", "status"):
                            (out / f"autoballoond.{f}").write_text(
                                Path(f"/proc/{daemon.proc.pid}/{f}").read_text())
                    daemon.stop()  # its timeline is complete from here on
                complete, metrics = run_metrics.compute(out, names)
                checks = run_metrics.checks(out)
                _report_checks(ctx.progress, checks)
            finally:
                if daemon is not None:
                    daemon.stop()
                with ctx.progress.step("tear down the VMs"):
                    for name in names:
                        vm.down(conn, ctx.layout, name)
                conn.close()
    finally:
        summary = results.RunSummary(sc.name, mode, n, complete, metrics, env, checks)
        if complete:
            results.finish_run(out, summary, vms=names, kinds=_kinds(sc))
        else:
            results.write_json_atomic(out / results.SUMMARY, summary.to_json())
    return summary


def _kinds(sc: Scenario) -> dict[str, str]:
    """Each VM's workload kind (its score's metric depends on it)."""
    assert sc.workload is not None
    return {s.vm: s.kind for s in sc.workload.schedules}


def _daemon_cgroups(host_rec: host.HostRecord) -> tuple[str, ...]:
    """The partition's cgroup directories, the memory one first (the one that must take
    the daemon: its memory counts against the host, as the RFC's in-QEMU policy's did)."""
    mem = host_rec.memory_cgroup
    return (mem, *(d for d in host_rec.cgroup_dirs if d != mem))


def _check_daemon_cgroup(daemon: DaemonProcess, memcg: Path) -> None:
    assert daemon.proc is not None
    text = Path(f"/proc/{daemon.proc.pid}/cgroup").read_text()
    (daemon.workdir / "autoballoond.cgroup").write_text(text)
    where = hostcheck.memory_cgroup_of(text)
    if where is None or not where.startswith(f"/{memcg.name}"):
        raise RigError(f"autoballoond (pid {daemon.proc.pid}) is in memory cgroup {where}, "
                       f"not in {memcg}")


def _report_checks(progress: Progress, checks: dict[str, Any]) -> None:
    c = checks.get("host_swap")
    if c is not None:
        progress.info(f"host swap cross-check {'ok' if c['ok'] else 'FAILED'}: cgroup swap "
                      f"+{c['cgroup_swap_growth_pages']} pages vs /proc/vmstat pswpout "
                      f"{c['vmstat_pswpout_pages']}; the cgroup gained "
                      f"{c['cgroup_share_of_swap_gained_pct']} % of the machine's swap growth "
                      f"({c['detail']})")


def _measure(ctx: BenchContext, out: Path, recs: dict[str, vm.VmRecord], memcg: Path,
             binary: str | None) -> None:
    """Run the workload and write the run's end snapshots and raw files (run_metrics
    reads them); the start snapshots are already written."""
    sc = ctx.scenario
    assert sc.workload is not None
    w = sc.workload
    silence = max(max(s.start_s for s in w.schedules),
                  max(w.step_of(s) for s in w.schedules)) + 180
    streams = {}
    for name, rec in recs.items():
        sched = w.schedule(name)
        if sched is None:
            continue
        script = guest_script(w, sched, binary if sched.kind == "ebizzy" else None,
                              data_dev=vm.data_disk_device(sc.vm(name)))
        streams[name] = GuestStream(rec, script, out / f"{name}.stream.txt", silence)
    deadline_s = w.duration_s() * 3 + 300
    liars = {name: GuestStream(rec, flood_script(deadline_s), out / f"{name}.flood.txt",
                               silence, remote=FLOOD_REMOTE)
             for name, rec in recs.items() if sc.vm(name).lies == "flood"}
    sampler = Sampler(out / "samples.jsonl", memcg, {n: r.domain for n, r in recs.items()},
                      lambda: {n: s.run.current_step for n, s in streams.items()})
    t0 = time.monotonic()
    sampler.start()
    deadline = t0 + deadline_s
    try:
        with ctx.progress.step(f"workload ({w.duration_s():.0f} s of schedule)"):
            for st in (*liars.values(), *streams.values()):
                st.start()
            next_line = t0 + PROGRESS_PERIOD_S
            while any(st.alive() for st in streams.values()):
                if time.monotonic() > deadline:
                    raise RigError(f"the workload did not finish within "
                                   f"{deadline - t0:.0f} s")
                for st in streams.values():
                    st.join(0.2)
                if time.monotonic() >= next_line:
                    next_line += PROGRESS_PERIOD_S
                    ctx.progress.info(_status_line(time.monotonic() - t0, streams, sampler, sc))
        elapsed = time.monotonic() - t0
        _check_liars(liars, recs)
        _snapshot(out, "end", recs, memcg)
        memsw = memcg / "memory.memsw.max_usage_in_bytes"
        results.write_json_atomic(out / "host-memcg.json", {
            "memsw_max_usage_bytes": int(memsw.read_text()) if memsw.exists() else None})
    finally:
        sampler.stop()
    results.write_json_atomic(out / "timing.json", {"elapsed_s": round(elapsed, 3),
                                                    "clk_tck": os.sysconf("SC_CLK_TCK")})
    for name, st in streams.items():
        if st.error:
            ctx.progress.info(f"{name}: workload stream failed: {st.error}")
        for step in st.run.steps:
            (out / f"{name}.{step.kind}-{step.n}.txt").write_text(step.output)


def _check_liars(liars: Mapping[str, GuestStream], recs: Mapping[str, vm.VmRecord]) -> None:
    """Stop each lying guest's flood (the workload is over); each flooded for the whole
    workload (rig.bench.liar), or the run fails: it would not measure what it says."""
    for name, st in liars.items():
        vm.ssh_exec(recs[name], stop_command(), timeout_s=30)
        st.join(30.0)
        n = flooded(st.raw.read_text()) if st.raw.exists() else None
        if n is None or st.status != 0:
            raise RigError(f"{name}: its pressure flood failed (status {st.status}, "
                           f"{st.error or 'see ' + str(st.raw)})")


def interleave(modes: Sequence[str], runs: int) -> list[tuple[str, int]]:
    """The order of a benchmark's runs: run 1 of every mode, then run 2 of every mode, ..."""
    return [(mode, n) for n in range(1, runs + 1) for mode in modes]


def run_modes(ctx: BenchContext, mode_dirs: Mapping[str, Path], runs: int
              ) -> list[dict[str, Any]]:
    """`runs` runs of each mode, interleaved; a mode's summary.json (written atomically)
    as soon as its last run is done. The per-mode summaries, in `mode_dirs` order."""
    order = interleave(list(mode_dirs), runs)
    ctx.progress.info("run order: " + ", ".join(f"{m} {n}" for m, n in order))
    summaries: dict[str, dict[str, Any]] = {}
    for i, (mode, n) in enumerate(order, 1):
        out = mode_dirs[mode] / f"run-{n}"
        with ctx.progress.step(f"{ctx.scenario.name} {mode} run {n}/{runs} "
                               f"({i}/{len(order)})"):
            summary = run_once(ctx, mode, n, out)
        if not summary.complete:
            ctx.progress.info(f"run {n} of {mode} is incomplete; see {out}")
        if n == runs:
            summaries[mode] = results.write_mode_summary(mode_dirs[mode])
    return [summaries[m] for m in mode_dirs]


def run_mode(ctx: BenchContext, mode: str, runs: int, mode_dir: Path
             ) -> dict[str, Any]:
    """`runs` runs of one mode; the per-mode summary.json (written atomically)."""
    return run_modes(ctx, {mode: mode_dir}, runs)[0]


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S")


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
