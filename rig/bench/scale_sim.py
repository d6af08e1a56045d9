"""A simulated libvirt host of many VMs, for ``rig daemon-scale``: autoballoond's real
decision loop, workers and stats poller run against it in real time.

``SimHost`` holds the guests and satisfies the daemon's ``Adapter`` Protocol through
``SimAdapter`` (as tests/unit/autoballoon/fake_libvirt.py does for the unit tests, with
call latencies); ``EventSource`` is libvirt's event thread and the host pressure thread
in one: it hands the daemon host pressure events, guest messages and the balloon changes
that follow its setMemory calls, at the rates of ``Rates``.

Latencies (``Latencies``): time.sleep on the calling thread (a blocked thread costs no
CPU, as one waiting for libvirtd does not):
- one bulk stats call (getAllDomainStats): a round trip plus libvirtd asking each
  guest's QEMU monitor in turn (``bulk_stats_s`` + ``bulk_stats_per_vm_s`` per VM);
- setMemory (``set_memory_s``): the 1-5 ms this project measures from a pressure input
  to the return of setMemory (host/README.md, "Measured") are mostly this call;
- setMetadata (``set_metadata_s``): libvirtd also writes the domain's status file.
What the daemon's process does besides waiting is real: the figures of each VM are
built as libvirt reports them (KiB, ``balloon.*`` names) and converted by the adapter's
own ``bulk_memory_stats``, each VM's QEMU process size is read from a /proc-like tree
(``proc_dir``: one ``status`` file per VM, laid out as Linux's) as on a real host.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from autoballoon.adapter import AdapterError, DomainRef, DomainStats, DomainUp
from autoballoon.events import BalloonActual, GuestPressure, HostPressure
from autoballoon.libvirt_adapter import bulk_memory_stats
from autoballoon.saved_state import SavedState


@dataclass(frozen=True)
class Latencies:
    """Seconds each simulated libvirt call blocks its caller (estimates, see above)."""

    bulk_stats_s: float = 0.003
    bulk_stats_per_vm_s: float = 0.0002
    set_memory_s: float = 0.001
    set_metadata_s: float = 0.002
    #: A setMemory's BALLOON_CHANGE arrives this long after it (QEMU reports the
    #: balloon's size at most once a second).
    balloon_change_s: float = 0.5


@dataclass(frozen=True)
class Rates:
    """How often inputs reach the daemon besides its own polls and their answers."""

    #: Host pressure events per second: PSI fires at most once per 2 s window (and the
    #: daemon forwards at most one per second); a host under sustained pressure.
    host_pressure_per_s: float = 0.5
    host_levels: tuple[str, ...] = ("low", "low", "low", "between", "medium")
    #: Guest messages per VM per second, on average (Poisson): one every 20 s; QEMU
    #: coalesces a flood to one event per message interval anyway.
    guest_messages_per_vm_s: float = 0.05
    guest_levels: tuple[str, ...] = ("low", "low", "low", "medium", "critical")


#: /proc/PID/status of a QEMU process as Linux 6.1 lays it out (58 lines), for the reads.
STATUS = """Name:\tqemu-system-x86\nUmask:\t0077\nState:\tS (sleeping)\nTgid:\t{pid}
Ngid:\t0\nPid:\t{pid}\nPPid:\t1\nTracerPid:\t0\nUid:\t64055\t64055\t64055\t64055
Gid:\t64055\t64055\t64055\t64055\nFDSize:\t128\nGroups:\t64055\nNStgid:\t{pid}
NSpid:\t{pid}\nNSpgid:\t{pid}\nNSsid:\t{pid}\nKthread:\t0\nVmPeak:\t 3402424 kB
VmSize:\t 3336888 kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\nVmHWM:\t {rss} kB
VmRSS:\t {rss} kB\nRssAnon:\t {anon} kB\nRssFile:\t   30720 kB\nRssShmem:\t    2048 kB
VmData:\t 2293320 kB\nVmStk:\t     132 kB\nVmExe:\t    7680 kB\nVmLib:\t   38352 kB
VmPTE:\t    4500 kB\nVmSwap:\t       0 kB\nHugetlbPages:\t       0 kB\nCoreDumping:\t0
THP_enabled:\t1\nuntag_mask:\t0xffffffffffffffff\nThreads:\t6\nSigQ:\t0/96551
SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000010002240
SigIgn:\t0000000000001000\nSigCgt:\t0000000100004243\nCapInh:\t0000000000000000
CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff
CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1
Speculation_Store_Bypass:\tthread vulnerable\nSpeculationIndirectBranch:\tconditional enabled
Cpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t00000000,00000001
Mems_allowed_list:\t0\nvoluntary_ctxt_switches:\t51234\nnonvoluntary_ctxt_switches:\t812
"""


@dataclass
class SimGuest:
    name: str
    max_mib: int
    pid: int
    demand_mib: int  # what it uses (the middle of a slow sine, +/- 10 %)
    phase: float
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    domid: int = 1
    actual_mib: int = 0  # the balloon's size (reaches each target balloon_change_s later)
    saved: SavedState | None = None
    swap_in_kib: int = 0

    def record(self, now: float) -> dict[str, int]:
        """Its getAllDomainStats balloon record, as libvirt gives it (KiB, counters)."""
        used = int(self.demand_mib * (1 + 0.1 * math.sin(now / 30 + self.phase)))
        actual = self.actual_mib << 10
        usable = max(self.actual_mib - used, 0) << 10
        if usable < 32 << 10:
            self.swap_in_kib += 2048  # a guest squeezed below its need swaps
        record = dict(_RECORD)  # the binding builds it in C: keep the Python work small
        record["balloon.current"], record["balloon.maximum"] = actual, self.max_mib << 10
        record["balloon.swap_in"] = record["balloon.swap_out"] = self.swap_in_kib
        record["balloon.unused"], record["balloon.usable"] = usable // 2, usable
        record["balloon.available"] = actual - (64 << 10)
        record["balloon.last-update"], record["balloon.disk_caches"] = int(now), usable // 3
        record["balloon.rss"] = (used + 100) << 10
        return record


_RECORD = dict.fromkeys(
    ("balloon.current", "balloon.maximum", "balloon.swap_in", "balloon.swap_out",
     "balloon.major_fault", "balloon.minor_fault", "balloon.unused", "balloon.available",
     "balloon.usable", "balloon.last-update", "balloon.disk_caches",
     "balloon.hugetlb_pgalloc", "balloon.hugetlb_pgfail", "balloon.rss"), 0) | {
    "balloon.major_fault": 100, "balloon.minor_fault": 100_000}


class SimHost:
    """``vms`` guests of ``max_mib`` each, their /proc tree under ``proc_dir``."""

    def __init__(self, vms: int, proc_dir: Path, latencies: Latencies | None = None,
                 max_mib: int = 2048, seed: int = 0) -> None:
        self.latencies = latencies or Latencies()
        self.proc_dir = proc_dir
        rng = random.Random(seed)
        self.guests = {}
        for i in range(vms):
            name = f"sim-{i:04}"
            g = SimGuest(name, max_mib, 10_000 + i, int(max_mib * rng.uniform(0.3, 0.7)),
                         rng.uniform(0, 2 * math.pi), actual_mib=max_mib)
            self.guests[name] = g
            rss_kib = (g.demand_mib + 150) << 10  # what it touched + QEMU's own
            (proc_dir / str(g.pid)).mkdir(parents=True, exist_ok=True)
            (proc_dir / str(g.pid) / "status").write_text(
                STATUS.format(pid=g.pid, rss=rss_kib, anon=rss_kib - (32 << 10)))
        self.sink: Callable[[object], None] = lambda _item: None
        self.events: EventSource | None = None
        self.set_calls = 0
        self.stats_calls = 0

    def factory(self, sink: Callable[[object], None], clock: Callable[[], float]
                ) -> SimAdapter:
        self.sink = sink
        return SimAdapter(self, clock)


class SimAdapter:
    """The daemon's Adapter on a ``SimHost`` (autoballoon.adapter's contract)."""

    def __init__(self, host: SimHost, clock: Callable[[], float]) -> None:
        self.host, self.clock = host, clock
        self.open = False

    def connect(self) -> list[DomainUp]:
        self.open = True
        ups = [DomainUp(self.clock(), g.name, g.max_mib, g.actual_mib, g.uuid, g.domid,
                        g.saved) for g in self.host.guests.values()]
        for up in ups:
            self.host.sink(up)
        return ups

    def close(self) -> None:
        self.open = False

    def alive(self) -> bool:
        return self.open

    def _guest(self, ref: DomainRef) -> SimGuest:
        g = self.host.guests.get(ref.name)
        if not self.open or g is None or g.uuid != ref.uuid:
            raise AdapterError(f"{ref.name}: no such domain")
        return g

    def set_target(self, ref: DomainRef, target_mib: int) -> None:
        time.sleep(self.host.latencies.set_memory_s)
        g = self._guest(ref)
        self.host.set_calls += 1
        if self.host.events is not None:
            self.host.events.balloon_moves(g, target_mib)

    def set_stats_period(self, ref: DomainRef, period_s: int) -> None:
        self._guest(ref)  # once per VM at its start: not a cost the simulation measures

    def save_state(self, ref: DomainRef, state: SavedState) -> None:
        time.sleep(self.host.latencies.set_metadata_s)
        self._guest(ref).saved = state

    def domain_stats(self, refs: Sequence[DomainRef]) -> dict[DomainRef, DomainStats]:
        lat = self.host.latencies
        time.sleep(lat.bulk_stats_s + lat.bulk_stats_per_vm_s * len(self.host.guests))
        if not self.open:
            raise AdapterError("domain stats: not connected")
        self.host.stats_calls += 1
        now = time.monotonic()
        wanted = {(r.uuid, r.domid): r for r in refs}
        records = [(g, g.record(now)) for g in self.host.guests.values()]
        return {ref: DomainStats(bulk_memory_stats(record)) for g, record in records
                if (ref := wanted.get((g.uuid, g.domid))) is not None}

    def qemu_pid(self, ref: DomainRef) -> int | None:
        g = self.host.guests.get(ref.name)
        return None if g is None else g.pid


class EventSource:
    """One thread putting host pressure, guest messages and balloon changes to the sink
    at their times (real time), until ``stop``."""

    THREAD = "sim-events"

    def __init__(self, host: SimHost, rates: Rates | None = None, seed: int = 1) -> None:
        self.host, self.rates = host, rates or Rates()
        self.rng = random.Random(seed)
        self.counts = {"HostPressure": 0, "GuestPressure": 0, "BalloonActual": 0}
        self._lock = threading.Lock()
        self._due: list[tuple[float, int, str, int]] = []  # (when, seq, vm, actual_mib)
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.THREAD, daemon=True)
        host.events = self

    def start(self) -> EventSource:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def balloon_moves(self, g: SimGuest, target_mib: int) -> None:
        """A setMemory: the balloon reaches ``target_mib`` and libvirt says so later."""
        with self._lock:
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + self.host.latencies.balloon_change_s,
                                       self._seq, g.name, target_mib))

    def _run(self) -> None:
        r, rng, names = self.rates, self.rng, list(self.host.guests)
        guest_rate = r.guest_messages_per_vm_s * len(names)
        now = time.monotonic()
        next_host = now + rng.uniform(0, 1 / r.host_pressure_per_s)
        next_guest = now + rng.expovariate(guest_rate) if guest_rate > 0 else math.inf
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_host:
                self._put(HostPressure(now, rng.choice(r.host_levels)))
                next_host += 1 / r.host_pressure_per_s
            if now >= next_guest:
                self._put(GuestPressure(now, rng.choice(names), rng.choice(r.guest_levels)))
                next_guest += rng.expovariate(guest_rate)
            with self._lock:
                moved = []
                while self._due and self._due[0][0] <= now:
                    moved.append(heapq.heappop(self._due))
                next_move = self._due[0][0] if self._due else math.inf
            for _, _, name, actual in moved:
                self.host.guests[name].actual_mib = actual
                self._put(BalloonActual(now, name, actual))
            wake = min(next_host, next_guest, next_move, now + 0.05)
            self._stop.wait(max(0.0, wake - time.monotonic()))

    def _put(self, item: object) -> None:
        self.counts[type(item).__name__] += 1
        self.host.sink(item)


__all__ = ["EventSource", "Latencies", "Rates", "SimAdapter", "SimGuest", "SimHost"]
