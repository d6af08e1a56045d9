"""`rig smoke`: two VMs in the host, SSH and console in each, one balloon inflated.

Everything started here is torn down on success, failure, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from rig.build.bootstrap import Stack, image_for
from rig.errors import RigError
from rig.host import lifecycle as host
from rig.layout import Layout
from rig.progress import Progress
from rig.scenario import Scenario
from rig.vm import domains as vm

T = TypeVar("T")
INFLATE_MIB = 256
TOLERANCE_KIB = 4 << 10  # balloon pages move in 4 KiB units; allow rounding slack


class CheckFailed(RigError):
    """A smoke check failed: the run stops, is torn down, and its result is still written."""


@dataclass
class Check:
    vm: str
    check: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class SmokeResult:
    scenario: str
    accel: str
    checks: list[Check] = field(default_factory=list)
    boot_to_ssh_s: dict[str, float] = field(default_factory=dict)  # since domain start

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def table(self) -> str:
        rows = [("vm", "check", "result", "seconds", "detail")]
        rows += [(c.vm, c.check, "ok" if c.ok else "FAIL", f"{c.seconds:.1f}", c.detail)
                 for c in self.checks]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join(
            "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows
        )


def _timed(result: SmokeResult, vm_name: str, name: str,
           fn: Callable[[], tuple[bool, str, T]]) -> T:
    """Run one check, record it with its duration; a failed check stops the smoke run."""
    start = time.monotonic()
    try:
        ok, detail, value = fn()
    except (RigError, OSError) as e:
        result.checks.append(Check(vm_name, name, False, str(e), time.monotonic() - start))
        raise CheckFailed(f"{vm_name} {name}: {e}") from e
    result.checks.append(Check(vm_name, name, ok, detail, time.monotonic() - start))
    if not ok:
        raise CheckFailed(f"{vm_name} {name}: {detail}")
    return value


def run_smoke(layout: Layout, scenario: Scenario, stack: Stack, progress: Progress,
              accel: str | None = None) -> SmokeResult:
    result = SmokeResult(scenario.name, "?")
    try:
        _checks(layout, scenario, stack, progress, accel, result)
    except CheckFailed as e:
        progress.info(f"smoke check failed: {e}")
    return result


def _checks(layout: Layout, scenario: Scenario, stack: Stack, progress: Progress,
            accel: str | None, result: SmokeResult) -> None:
    with ExitStack() as es:
        host_rec = es.enter_context(host.session(layout, scenario.host, progress, accel))
        result.accel = host_rec.accel
        conn = vm.connect()
        es.callback(conn.close)
        recs: list[vm.VmRecord] = []
        with progress.step(f"start {len(scenario.vms)} VMs ({host_rec.accel.upper()})"):
            for spec in scenario.vms:
                es.callback(vm.down, conn, layout, spec.name)
                image = image_for(layout, progress, stack, spec.guest_driver)
                recs.append(vm.up(conn, layout, scenario, spec, host_rec, image,
                                  stack.qemu.binary, autodestroy=True))
        with progress.step("wait for SSH in every VM"):
            for rec in recs:
                def ready(rec: vm.VmRecord = rec) -> tuple[bool, str, float]:
                    t = vm.wait_ssh(rec, timeout_s=90)
                    return True, f"SSH ready {t:.1f} s after start", t
                t = _timed(result, rec.name, "boot to SSH", ready)
                result.boot_to_ssh_s[rec.name] = t
                progress.info(f"{rec.name}: SSH ready {t:.1f} s after domain start")
        with progress.step("a command over SSH and over the console"):
            for rec in recs:
                def over_ssh(rec: vm.VmRecord = rec) -> tuple[bool, str, None]:
                    r = vm.ssh_exec(rec, "hostname; uname -r")
                    lines = r.stdout.split()
                    ok = r.status == 0 and bool(lines) and lines[0] == rec.name
                    return ok, " ".join(lines) or r.stderr.strip(), None
                _timed(result, rec.name, "ssh exec", over_ssh)

                def over_console(rec: vm.VmRecord = rec) -> tuple[bool, str, None]:
                    with vm.console(conn, rec) as c:
                        r = c.run("cat /proc/sys/kernel/hostname")
                    ok = r.status == 0 and r.stdout.strip() == rec.name
                    return ok, repr(r.stdout.strip()), None
                _timed(result, rec.name, "console exec", over_console)
        target = recs[0]
        spec = scenario.vm(target.name)
        with progress.step(f"inflate {target.name}'s balloon by {INFLATE_MIB} MiB"):
            def inflate() -> tuple[bool, str, None]:
                before = vm.guest_memtotal_kib(target)
                vm.set_balloon(conn, target, spec.memory_mib - INFLATE_MIB)
                want = before - (INFLATE_MIB << 10)
                end = time.monotonic() + 60
                now = before
                while time.monotonic() < end:
                    now = vm.guest_memtotal_kib(target)
                    if abs(now - want) <= TOLERANCE_KIB:
                        break
                    time.sleep(0.5)
                drop = (before - now) / 1024
                ok = abs(now - want) <= TOLERANCE_KIB
                return ok, f"MemTotal {before} -> {now} kB (-{drop:.1f} MiB)", None
            _timed(result, target.name, f"balloon +{INFLATE_MIB} MiB", inflate)


def write_result(layout: Layout, result: SmokeResult, results_root: Path) -> Path:
    out = results_root / "smoke" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "smoke.json.tmp"
    tmp.write_text(json.dumps({**asdict(result), "ok": result.ok}, indent=2))
    tmp.replace(out / "smoke.json")
    (out / "summary.txt").write_text(result.table() + "\n")
    return out
