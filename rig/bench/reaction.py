"""Reaction time of autoballoond: from a host pressure event or a guest message reaching
the daemon to the return of its setMemory call, over many events on a real VM.

One VM runs the test build of our guest driver (debugfs msg_inject). Each round:
  1. the host's memory cgroup limit is lowered just under its usage, so the kernel
     reclaims and vmpressure fires; the daemon (policy `seed`, hysteresis 0 so every
     round counts) inflates the VM; the limit is restored;
  2. one well-formed PRESSURE message is injected in the guest; the daemon deflates.
The daemon stamps each input on arrival (its monotonic clock) and writes the delay to
the end of setMemory into its timeline as `reaction_s`; this module only collects them.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from autoballoon.daemon import DaemonConfig

from rig import scenario
from rig.bench.daemon_proc import DaemonProcess, wait_for
from rig.build.bootstrap import Stack, image_for
from rig.errors import RigError
from rig.host import lifecycle as host
from rig.layout import Layout
from rig.progress import Progress
from rig.vm import domains as vm

SCENARIO = """\
# reaction: one VM with the test build of the guest driver, in a host squeezed by hand;
# stresses the daemon's path from a pressure input to setMemory, nothing else.
[host]
ram_mib = 2048
swap_mib = 1024

[[vm]]
name = "react"
memory_mib = 768
guest_swap_mib = 128
guest_driver = "test"
"""
# One valid PRESSURE message (virtio_balloon_msg_hdr type 1, len 8, seq 0; level 1 = low,
# intervals 1), as printf(1) octal escapes.
PRESSURE_MSG = r"\001\000\010\000\000\000\000\000\001\000\000\000\001\000\000\000"
INJECT = ("for d in /sys/kernel/debug/virtio*/; do [ -e $d/msg_inject ] && "
          f"printf '{PRESSURE_MSG}' > $d/msg_inject && exit 0; done; exit 1")
SQUEEZE_MIB = 16  # enough reclaim for vmpressure's 512-page window
PRESSURE_MIN_INTERVAL_S = DaemonConfig.pressure_min_interval_s  # the daemon's default


@dataclass(frozen=True)
class Stats:
    n: int
    median_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Stats:
        if not seconds:
            return cls(0, math.nan, math.nan, math.nan)
        ms = sorted(s * 1000 for s in seconds)
        return cls(len(ms), statistics.median(ms), percentile(ms, 99), ms[-1])


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Reaction:
    host: Stats
    guest: Stats
    all: Stats

    def table(self) -> str:
        rows = [("host pressure -> setMemory", self.host),
                ("guest message -> setMemory", self.guest), ("all", self.all)]
        lines = [f"{'input':<28} {'events':>6} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}"]
        lines += [f"{name:<28} {s.n:>6} {s.median_ms:>10.2f} {s.p99_ms:>8.2f} {s.max_ms:>8.2f}"
                  for name, s in rows]
        return "\n".join(lines)


def analyse(records: list[dict]) -> Reaction:
    """Split the timeline's commands by cause (pure: the timeline's records in)."""
    cmds = [r for r in records if r.get("kind") == "command"]
    host_s = [r["reaction_s"] for r in cmds if r["cause"].startswith("host pressure")]
    guest_s = [r["reaction_s"] for r in cmds if r["cause"].startswith("guest pressure")]
    return Reaction(Stats.of(host_s), Stats.of(guest_s), Stats.of(host_s + guest_s))


@contextmanager
def squeezed(memcg: Path) -> Iterator[None]:
    limit = memcg / "memory.limit_in_bytes"
    old = limit.read_text().strip()
    usage = int((memcg / "memory.usage_in_bytes").read_text())
    try:
        try:
            limit.write_text(str(usage - (SQUEEZE_MIB << 20)))
        except OSError as e:
            # EBUSY: the kernel reclaimed but could not get under the new limit in time
            # (the guest's memory is busy). The reclaim happened, and so did vmpressure.
            if e.errno != errno.EBUSY:
                raise
        yield
    finally:
        limit.write_text(old)


def _count(d: DaemonProcess, prefix: str) -> int:
    return sum(r.get("kind") == "command" and r["cause"].startswith(prefix)
               for r in d.records())


def measure(layout: Layout, stack: Stack, progress: Progress, rounds: int,
            workdir: Path) -> Reaction:
    if rounds < 1:
        raise RigError("reaction needs at least one round")
    sc = scenario.parse(SCENARIO, "reaction")
    spec = sc.vms[0]
    image = image_for(layout, progress, stack, spec.guest_driver)
    with host.session(layout, sc.host, progress) as host_rec:
        conn = vm.connect()
        try:
            with progress.step("start the VM"):
                rec = vm.up(conn, layout, sc, spec, host_rec, image, stack.qemu.binary,
                            autodestroy=True)
                vm.wait_ssh(rec, timeout_s=90)
            memcg = Path(host_rec.memory_cgroup)
            if not (memcg / "memory.limit_in_bytes").exists():
                raise RigError("reaction needs a cgroup-v1 memory controller (vmpressure)")
            with DaemonProcess(workdir, "seed", str(memcg),
                               params={"hysteresis_s": 0.0}) as d:
                d.start(expect_vms=1)
                with progress.step(f"{rounds} rounds of host pressure + guest message") :
                    for i in range(rounds):
                        _round(d, rec, memcg)
                        if (i + 1) % 10 == 0 or i + 1 == rounds:
                            progress.info(f"round {i + 1}/{rounds}")
                d.stop()
                records = d.records()
        finally:
            vm.down(conn, layout, spec.name)
            conn.close()
    result = analyse(records)
    (workdir / "reaction.json").write_text(json.dumps(dataclasses.asdict(result), indent=1))
    return result


def _round(d: DaemonProcess, rec: vm.VmRecord, memcg: Path) -> None:
    hosts = _count(d, "host pressure")
    # The daemon forwards at most one host event per PRESSURE_MIN_INTERVAL_S (vmpressure
    # fires in bursts): squeezing sooner would only produce suppressed events.
    last = max((r["wall"] for r in d.records() if r.get("kind") == "input"
                and r.get("event") == "HostPressure"), default=0.0)
    time.sleep(max(0.0, last + PRESSURE_MIN_INTERVAL_S + 0.05 - time.time()))
    with squeezed(memcg):
        wait_for("a command caused by host pressure",
                 lambda: _count(d, "host pressure") > hosts, 30, alive=d.proc)
    guests = _count(d, "guest pressure")
    r = vm.ssh_exec(rec, INJECT)
    if r.status != 0:
        raise RigError(f"{rec.name}: cannot inject a guest message (is this the test driver?)"
                       f": {r.stderr.strip()}")
    wait_for("a command caused by the guest message",
             lambda: _count(d, "guest pressure") > guests, 30, alive=d.proc)
