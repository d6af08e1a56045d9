"""Measurements of the message virtqueue in a running VM: guest pressure -> QMP event.

The guest's first direct-reclaim stall is timed in the guest by `abprobe stall` (polls
/proc/vmstat every millisecond); the host-side event carries QEMU's host timestamp. The
two clocks are related by the offset measured over SSH (minimum round trip of several
`abprobe now` samples), so a latency has an uncertainty of half that round trip.

`msg_stats` reads the driver's own counters (debugfs msg_stats: samples, messages sent
per level, and the reclaim it judged with the balloon's share apart; `name value` lines,
as rig.bench.hostcheck.parse_kv reads them).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from rig.errors import RigError
from rig.vm import domains as vm
from rig.vm.qmp_events import EventWatcher, QmpEvent

PRESSURE_EVENT = "BALLOON_GUEST_PRESSURE"
# A tmpfs without the default 50%-of-RAM cap: filling it past MemAvailable forces reclaim
# (its pages can only go to swap).
HOG = "/run/hog/fill"
MOUNT_HOG = ("grep -q ' /run/hog ' /proc/mounts || "
             "{ mkdir -p /run/hog && mount -t tmpfs -o size=8g hog /run/hog; }")


def hog_command(mib: int) -> str:
    """Shell: write `mib` MiB into the hog tmpfs (then the caller removes HOG)."""
    return f"{MOUNT_HOG}; dd if=/dev/zero of={HOG} bs=1M count={mib} 2>&1"
#: Levels that say an allocation is in trouble (the guest is not merely recycling cache).
SERIOUS = ("medium", "critical")
MSG_STATS = ("for d in /sys/kernel/debug/virtio*/; do [ -e $d/msg_stats ] && "
             "cat $d/msg_stats && exit 0; done; exit 1")


@dataclass(frozen=True)
class ClockOffset:
    offset_s: float  # guest clock minus host clock
    rtt_s: float  # round trip of the best sample: the offset is +- rtt/2


@dataclass(frozen=True)
class Trial:
    latency_s: float  # host event time - guest first direct-reclaim stall (host clock)
    uncertainty_s: float
    level: str
    event: QmpEvent


def clock_offset(rec: vm.VmRecord, samples: int = 7) -> ClockOffset:
    best: ClockOffset | None = None
    for _ in range(samples):
        t0 = time.time()
        r = vm.ssh_exec(rec, "abprobe now")
        t1 = time.time()
        if r.status != 0:
            raise RigError(f"{rec.name}: abprobe missing from the image: {r.stderr.strip()}")
        guest = int(r.stdout.strip()) / 1e9
        sample = ClockOffset(guest - (t0 + t1) / 2, t1 - t0)
        if best is None or sample.rtt_s < best.rtt_s:
            best = sample
    assert best is not None
    return best


def mem_available_mib(rec: vm.VmRecord) -> int:
    r = vm.ssh_exec(rec, "awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo")
    return int(r.stdout.strip())


def quiesce(watcher: EventWatcher, quiet_s: float = 2.0, limit_s: float = 60.0
            ) -> list[QmpEvent]:
    """Wait until no event has come for `quiet_s` (the guest has settled); return those seen."""
    seen: list[QmpEvent] = []
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        ev = watcher.get(quiet_s)
        if ev is None:
            return seen
        seen.append(ev)
    raise RigError(f"events did not stop within {limit_s:.0f} s")


def msg_stats(rec: vm.VmRecord) -> str:
    """The guest driver's debugfs msg_stats, `name value` lines (RigError if the guest
    has none)."""
    r = vm.ssh_exec(rec, MSG_STATS)
    if r.status != 0:
        raise RigError(f"{rec.name}: no msg_stats in debugfs (is the message queue on?)")
    return r.stdout


def pressure_trial(rec: vm.VmRecord, watcher: EventWatcher, offset: ClockOffset,
                   extra_mib: int = 96, timeout_s: float = 30.0) -> Trial:
    """Fill tmpfs (swap-backed, so anonymous demand) past the available memory; time the
    guest's first direct-reclaim stall to the first medium or critical host event."""
    hog = mem_available_mib(rec) + extra_mib
    armed = vm.ssh_exec(rec, "rm -f /tmp/probe.out; (abprobe stall 60 >/tmp/probe.out"
                             " 2>&1 &); for i in $(seq 100); do grep -q armed /tmp/probe.out"
                             " 2>/dev/null && exit 0; usleep 20000; done; exit 1")
    if armed.status != 0:
        raise RigError(f"{rec.name}: abprobe did not start")
    watcher.drain()
    vm.ssh_exec(rec, f"({hog_command(hog)}; touch /tmp/hog.done) >/dev/null 2>&1 &")
    try:
        event = None
        end = time.monotonic() + timeout_s
        while event is None and (left := end - time.monotonic()) > 0:
            ev = watcher.get(left)
            if ev is not None and ev.data.get("level") in SERIOUS:
                event = ev
        if event is None:
            raise RigError(f"{rec.name}: no medium or critical {PRESSURE_EVENT} within "
                           f"{timeout_s:.0f} s of a {hog} MiB tmpfs hog")
        out = ""
        end = time.monotonic() + timeout_s
        while "stall" not in out and time.monotonic() < end:
            out = vm.ssh_exec(rec, "cat /tmp/probe.out").stdout
        if "stall" not in out:
            raise RigError(f"{rec.name}: abprobe saw no direct-reclaim stall: {out.strip()}")
        guest_ns = int(out.split("stall")[1].split()[0])
    finally:
        vm.ssh_exec(rec, "while [ ! -e /tmp/hog.done ]; do usleep 50000; done;"
                         f" rm -f {HOG} /tmp/hog.done", timeout_s=120)
    reclaim_host = guest_ns / 1e9 - offset.offset_s
    return Trial(event.timestamp - reclaim_host, offset.rtt_s / 2,
                 str(event.data.get("level")), event)


def summary(trials: list[Trial]) -> dict[str, float]:
    lat = [t.latency_s for t in trials]
    return {"trials": len(lat), "median_s": statistics.median(lat), "max_s": max(lat),
            "min_s": min(lat), "uncertainty_s": max(t.uncertainty_s for t in trials)}
