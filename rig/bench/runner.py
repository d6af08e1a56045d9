"""The benchmark runner: one scenario, one mode, N runs, each on a fresh host.

A run: host up (partition cgroup + swap), the scenario's VMs booted, the daemon started
with the mode's policy (none for vanilla and free-page-reporting), start snapshots (host
/proc/vmstat, each QEMU's /proc/<pid>/stat), every VM's workload schedule started at once
(one SSH channel each, streaming progress and raw output), a sampler of host memory and
balloons every second, end snapshots taken while the QEMUs still run, then everything
torn down. The run directory is marked INCOMPLETE until its summary.json says complete.

Collectors (this module's I/O) stay thin; the math is in procstat, workload and results.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt

from rig.bench import procstat, results, run_metrics
from rig.bench.daemon_proc import DaemonProcess
from rig.bench.workload import GuestRun, StreamParser, guest_script
from rig.build.bootstrap import Stack, image_for
from rig.errors import RigError
from rig.host import lifecycle as host
from rig.layout import Layout
from rig.progress import Progress
from rig.scenario import Scenario
from rig.vm import domains as vm

# The daemon's policy for each mode (None: no daemon).
MODE_POLICY: dict[str, str | None] = {
    "vanilla": None,
    "auto-seed": "seed",
    "auto": "auto",
    "free-page-reporting": None,
    "stats-polling": "stats-polling",
}
SAMPLE_PERIOD_S = 1.0
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


# ---- host-side readings ----------------------------------------------------------------

def memcg_usage_mib(memcg: Path) -> int:
    for name in ("memory.usage_in_bytes", "memory.current"):
        f = memcg / name
        if f.exists():
            return int(f.read_text()) >> 20
    raise RigError(f"{memcg}: no memory usage file (memory.usage_in_bytes / memory.current)")


def swap_used_mib() -> int:
    info = procstat.parse_meminfo(Path("/proc/meminfo").read_text())
    return (info["SwapTotal"] - info["SwapFree"]) >> 10


HOST_VMSTAT = Path("/proc/vmstat")


def host_vmstat() -> dict[str, int]:
    return procstat.parse_vmstat(HOST_VMSTAT.read_text())


def qemu_stat_text(rec: vm.VmRecord) -> str:
    return Path(f"/proc/{vm.qemu_pid(rec)}/stat").read_text()


@dataclass
class Sampler:
    """Host usage, swap and each VM's balloon every second, as JSON lines."""

    out: Path
    memcg: Path
    domains: dict[str, str]  # VM name -> domain name
    steps: Callable[[], dict[str, int]]
    period_s: float = SAMPLE_PERIOD_S
    latest: dict[str, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = vm.connect()
        t0 = time.monotonic()
        try:
            with self.out.open("a") as f:
                while not self._stop.is_set():
                    f.write(json.dumps(self._sample(conn, time.monotonic() - t0)) + "\n")
                    f.flush()
                    self._stop.wait(self.period_s)
        finally:
            conn.close()

    def _sample(self, conn: libvirt.virConnect, t: float) -> dict[str, Any]:
        vms: dict[str, Any] = {}
        steps = self.steps()
        for name, dom_name in self.domains.items():
            try:
                dom = conn.lookupByName(dom_name)
                actual = dom.info()[2] >> 10
            except libvirt.libvirtError:
                actual = None
            vms[name] = {"actual_mib": actual, "step": steps.get(name, 0)}
        vmstat = host_vmstat()
        self.latest = {"t": round(t, 3), "wall": round(time.time(), 3),
                       "host_usage_mib": memcg_usage_mib(self.memcg),
                       "swap_used_mib": swap_used_mib(),
                       "pswpin": vmstat["pswpin"], "pswpout": vmstat["pswpout"], "vms": vms}
        return self.latest

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


# ---- one VM's workload ------------------------------------------------------------------

@dataclass
class GuestStream:
    """Runs one VM's schedule over SSH in a thread, parsing as lines arrive."""

    rec: vm.VmRecord
    script: str
    raw: Path
    silence_s: float
    parser: StreamParser = field(default_factory=StreamParser)
    status: int | None = None
    error: str | None = None
    _thread: threading.Thread | None = None

    def start(self) -> GuestStream:
        self._thread = threading.Thread(target=self._run, name=f"guest-{self.rec.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with self.raw.open("w") as raw:
            def on_line(line: str) -> None:
                raw.write(line if line.endswith("\n") else line + "\n")
                raw.flush()
                self.parser.feed(line)

            try:
                self.status = vm.ssh_stream(
                    self.rec, "cat > /tmp/ab-run.sh && sh /tmp/ab-run.sh", on_line,
                    timeout_s=self.silence_s, stdin=self.script)
            except Exception as e:
                self.error = f"{type(e).__name__}: {e}"

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    @property
    def run(self) -> GuestRun:
        return self.parser.run


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
        "thp_enabled": host_rec.thp_enabled,
        "host_kernel": os.uname().release,
        "libvirt": f"{lv // 1000000}.{lv // 1000 % 1000}.{lv % 1000}",
        "qemu": {"source_version": s.qemu.source_version, "build_key": s.qemu.key,
                 "patches": list(s.qemu.patches)},
        "guest_kernel": {"abi": s.kernel.abi, "version": s.kernel.version},
        "guest_module": {"key": s.module.key, "version": s.module.version,
                         "patches": list(s.module.patches)},
        "image": s.image.key,
        "workload": "ebizzy (ours)" if ctx.ebizzy is None else f"ebizzy binary {ctx.ebizzy}",
        "rig_revision": rig_revision(ctx.layout.repo),
        "command": ctx.command,
    }


# ---- a run ------------------------------------------------------------------------------

def _boot(ctx: BenchContext, conn: libvirt.virConnect, host_rec: host.HostRecord,
          mode: str) -> dict[str, vm.VmRecord]:
    recs: dict[str, vm.VmRecord] = {}
    for spec in ctx.scenario.vms:
        image = image_for(ctx.layout, ctx.progress, ctx.stack, spec.guest_driver)
        recs[spec.name] = vm.up(conn, ctx.layout, ctx.scenario, spec, host_rec, image,
                                ctx.stack.qemu.binary,
                                free_page_reporting=mode == "free-page-reporting")
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
        total = len(sched.chunks) if sched else 0
        r = st.run
        step = ("done" if r.done else f"step {r.current_step}/{total} ({r.current_chunks} ch)"
                if r.current_step else "waiting")
        actual = sampler.latest.get("vms", {}).get(name, {}).get("actual_mib")
        parts.append(f"{name} {step}, balloon {actual if actual is not None else '?'} MiB")
    if sampler.latest:
        parts.append(f"host {sampler.latest['host_usage_mib']} MiB, "
                     f"swap {sampler.latest['swap_used_mib']} MiB")
    return " | ".join(parts)


def run_once(ctx: BenchContext, mode: str, n: int, out: Path) -> results.RunSummary:
    """One complete run into `out` (marked INCOMPLETE until it is)."""
    sc = ctx.scenario
    if sc.workload is None:
        raise RigError(f"scenario {sc.name} has no [workload]: nothing to benchmark")
    results.begin_run(out)
    (out / "scenario.toml").write_text(ctx.scenario_text)
    metrics: dict[str, float | int] = {}
    env: dict[str, Any] = {}
    complete = False
    names = [v.name for v in sc.vms]
    try:
        with host.session(ctx.layout, sc.host, ctx.progress, ctx.accel) as host_rec:
            conn = vm.connect()
            daemon: DaemonProcess | None = None
            try:
                env = environment(ctx, mode, host_rec, conn)
                results.write_json_atomic(out / "env.json", env)
                with ctx.progress.step(f"boot {', '.join(names)}"):
                    recs = _boot(ctx, conn, host_rec, mode)
                binary = (_install_ebizzy(recs, ctx.ebizzy) if ctx.ebizzy is not None
                          else None)
                policy = MODE_POLICY[mode]
                memcg = Path(host_rec.memory_cgroup)
                if policy is not None:
                    with ctx.progress.step(f"start autoballoond (policy {policy})"):
                        daemon = DaemonProcess(out, policy, str(memcg), params=ctx.policy_params,
                                               extra_args=ctx.daemon_args).start(
                            expect_vms=len(recs))
                _measure(ctx, out, recs, memcg, binary)
                if daemon is not None:
                    if daemon.proc is not None and daemon.proc.poll() is None:
                        (out / "autoballoond.stat").write_text(
                            Path(f"/proc/{daemon.proc.pid}/stat").read_text())
                    daemon.stop()  # its timeline is complete from here on
                complete, metrics = run_metrics.compute(out, names)
            finally:
                if daemon is not None:
                    daemon.stop()
                with ctx.progress.step("tear down the VMs"):
                    for name in names:
                        vm.down(conn, ctx.layout, name)
                conn.close()
    finally:
        summary = results.RunSummary(sc.name, mode, n, complete, metrics, env)
        if complete:
            results.finish_run(out, summary, vms=names)
        else:
            results.write_json_atomic(out / results.SUMMARY, summary.to_json())
    return summary


def _measure(ctx: BenchContext, out: Path, recs: dict[str, vm.VmRecord], memcg: Path,
             binary: str | None) -> None:
    """Run the workload and write the run's raw files (run_metrics reads them)."""
    sc = ctx.scenario
    assert sc.workload is not None
    w = sc.workload
    silence = max(max(s.start_s for s in w.schedules), w.step_s) + 180
    streams = {}
    for name, rec in recs.items():
        sched = w.schedule(name)
        if sched is None:
            continue
        script = guest_script(w, sched) if binary is None else guest_script(w, sched, binary)
        streams[name] = GuestStream(rec, script, out / f"{name}.stream.txt", silence)
    sampler = Sampler(out / "samples.jsonl", memcg, {n: r.domain for n, r in recs.items()},
                      lambda: {n: s.run.current_step for n, s in streams.items()})
    vm0 = HOST_VMSTAT.read_text()
    q0 = {name: qemu_stat_text(rec) for name, rec in recs.items()}
    t0 = time.monotonic()
    sampler.start()
    deadline = t0 + w.duration_s() * 3 + 300
    try:
        with ctx.progress.step(f"workload ({w.duration_s():.0f} s of schedule)"):
            for st in streams.values():
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
        q1 = {name: qemu_stat_text(rec) for name, rec in recs.items()}
        vm1 = HOST_VMSTAT.read_text()
    finally:
        sampler.stop()
    (out / "host-vmstat.start").write_text(vm0)
    (out / "host-vmstat.end").write_text(vm1)
    for name in recs:
        (out / f"{name}.qemu-stat.start").write_text(q0[name])
        (out / f"{name}.qemu-stat.end").write_text(q1[name])
    results.write_json_atomic(out / "timing.json", {"elapsed_s": round(elapsed, 3),
                                                    "clk_tck": os.sysconf("SC_CLK_TCK")})
    for name, st in streams.items():
        if st.error:
            ctx.progress.info(f"{name}: workload stream failed: {st.error}")
        for step in st.run.steps:
            (out / f"{name}.ebizzy-{step.n}.txt").write_text(step.output)


def run_mode(ctx: BenchContext, mode: str, runs: int, mode_dir: Path
             ) -> dict[str, Any]:
    """`runs` runs of one mode; the per-mode summary.json (written atomically)."""
    for n in range(1, runs + 1):
        out = mode_dir / f"run-{n}"
        with ctx.progress.step(f"{ctx.scenario.name} {mode} run {n}/{runs}"):
            summary = run_once(ctx, mode, n, out)
        if not summary.complete:
            ctx.progress.info(f"run {n} of {mode} is incomplete; see {out}")
    return results.write_mode_summary(mode_dir)


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S")


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
