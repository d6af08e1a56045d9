"""A fake libvirt host for the daemon's tests: domains, a connection that can drop, and
failures on demand (failed setMemory, a domain stopping mid-command, a hung QEMU monitor).

``FakeHost`` is the hypervisor; ``FakeAdapter`` satisfies ``autoballoon.adapter.Adapter``
the way ``LibvirtAdapter`` does (AdapterError for every failure, events to the sink, one
bulk stats call per poll that leaves out a domain whose monitor hangs), and ``Harness``
drives a ``Daemon`` on it step by step with a fake clock, or in a thread.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoballoon.adapter import AdapterError, Disconnected, DomainRef, DomainStats, DomainUp
from autoballoon.config import DaemonConfig
from autoballoon.events import VmRemoved
from autoballoon.loop import Daemon
from autoballoon.saved_state import SavedState
from autoballoon.timeline import Timeline

_IDS = itertools.count(1)


@dataclass
class FakeDomain:
    name: str
    max_mib: int = 1024
    current_mib: int = 1024  # libvirt's current memory: the balloon's size as it last saw it
    saved: SavedState | None = None  # our element in the live metadata
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    domid: int = field(default_factory=lambda: next(_IDS))
    stats: dict[str, int] = field(default_factory=lambda: {"actual": 1024, "usable": 512})
    running: bool = True
    # The balloon target the fake hypervisor keeps once anybody set one (libvirt keeps
    # none: LibvirtAdapter.domain_stats), and its QEMU process's pid (None: unknown).
    target_mib: int | None = None
    pid: int | None = None


@dataclass
class FakeHost:
    domains: dict[str, FakeDomain] = field(default_factory=dict)
    reachable: bool = True  # libvirtd accepts connections
    fail_set: dict[str, int] = field(default_factory=dict)  # vm -> setMemory failures to come
    stop_after_set: set[str] = field(default_factory=set)  # the domain stops once set
    # setMemory waits for it; until it is set, the domain's stats are left out (NOWAIT)
    hang: dict[str, threading.Event] = field(default_factory=dict)
    set_log: list[tuple[str, int]] = field(default_factory=list)  # successful setMemory
    # setMemoryStatsPeriod calls that reached a running domain: (vm, domain id, period)
    period_log: list[tuple[str, int, int]] = field(default_factory=list)
    fail_period: set[str] = field(default_factory=set)  # the VMs whose period call fails
    adapters: list[FakeAdapter] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, *domains: FakeDomain) -> FakeHost:
        return cls({d.name: d for d in domains})

    def factory(self, sink: Callable[[object], None], clock: Callable[[], float]
                ) -> FakeAdapter:
        adapter = FakeAdapter(self, sink, clock)
        self.adapters.append(adapter)
        return adapter

    @property
    def adapter(self) -> FakeAdapter:
        return self.adapters[-1]

    # -- what happens on the host -------------------------------------------------------

    def reboot(self, name: str) -> FakeDomain:
        """The domain stops and starts again (a new id; its live metadata is gone)."""
        old = self.domains[name]
        new = FakeDomain(name, old.max_mib, old.max_mib, None, old.uuid)
        self.domains[name] = new
        return new

    def setmem(self, name: str, target_mib: int) -> None:
        """The operator's setMemory (virsh setmem), and the balloon follows it."""
        d = self.domains[name]
        d.target_mib = d.current_mib = target_mib

    def drop_connection(self, reachable: bool = True) -> None:
        """libvirtd goes away: the open connection dies and its close callback fires."""
        self.reachable = reachable
        self.adapter.lost()


class FakeAdapter:
    def __init__(self, host: FakeHost, sink: Callable[[object], None],
                 clock: Callable[[], float]) -> None:
        self.host, self.sink, self.clock = host, sink, clock
        self.open = False
        self.connects = 0
        self.stats_calls: list[list[str]] = []  # the VMs each domain_stats call asked for

    def connect(self) -> list[DomainUp]:
        if not self.host.reachable:
            raise AdapterError("cannot connect: libvirtd is not running")
        self.open = True
        self.connects += 1
        ups = [DomainUp(self.clock(), d.name, d.max_mib, d.current_mib, d.uuid, d.domid,
                        d.saved) for d in self.host.domains.values() if d.running]
        for u in ups:
            self.sink(u)
        return ups

    def close(self) -> None:
        self.open = False

    def alive(self) -> bool:
        return self.open

    def lost(self) -> None:
        self.open = False
        self.sink(Disconnected(self.clock(), "libvirt closed the connection (reason 0)"))

    def stop(self, name: str) -> None:
        """The domain shuts down (lifecycle event)."""
        self.host.domains[name].running = False
        self.sink(VmRemoved(self.clock(), name))

    def _domain(self, ref: DomainRef) -> FakeDomain:
        if not self.open:
            raise AdapterError("not connected to libvirt")
        d = self.host.domains.get(ref.name)
        if d is None or not d.running or (d.uuid, d.domid) != (ref.uuid, ref.domid):
            raise AdapterError(f"Domain not found: {ref.name} is not running")
        return d

    def set_target(self, ref: DomainRef, target_mib: int) -> None:
        hang = self.host.hang.get(ref.name)
        if hang is not None:
            hang.wait()
        d = self._domain(ref)
        with self.host.lock:
            if self.host.fail_set.get(ref.name, 0) > 0:
                self.host.fail_set[ref.name] -= 1
                raise AdapterError(f"internal error: unable to change {ref.name}'s memory")
            d.current_mib = d.target_mib = target_mib
            self.host.set_log.append((ref.name, target_mib))
            if ref.name in self.host.stop_after_set:
                d.running = False  # gone before the metadata can be written

    def set_stats_period(self, ref: DomainRef, period_s: int) -> None:
        self._domain(ref)
        if ref.name in self.host.fail_period:
            raise AdapterError(f"setMemoryStatsPeriod of {ref.name}: Operation not supported: "
                               "no memory balloon driver")
        with self.host.lock:
            self.host.period_log.append((ref.name, ref.domid, period_s))

    def domain_stats(self, refs: Sequence[DomainRef]) -> dict[DomainRef, DomainStats]:
        if not self.open:
            raise AdapterError("domain stats: not connected to libvirt")
        self.stats_calls.append([r.name for r in refs])
        found = {}
        for ref in refs:
            hang = self.host.hang.get(ref.name)
            try:
                d = self._domain(ref)
            except AdapterError:
                continue  # gone or rebooted: left out
            if hang is None or hang.is_set():
                found[ref] = DomainStats(dict(d.stats), d.target_mib)
        return found

    def save_state(self, ref: DomainRef, state: SavedState) -> None:
        self._domain(ref).saved = state

    def qemu_pid(self, ref: DomainRef) -> int | None:
        d = self.host.domains.get(ref.name)
        return None if d is None or not d.running else d.pid


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A Daemon on a FakeHost, stepped by hand (fake clock) or run in a thread."""

    def __init__(self, host: FakeHost, policy: str = "seed",
                 params: dict[str, Any] | None = None, queue_bound: int | None = None,
                 timeline: bool = True, real_time: bool = False) -> None:
        self.host = host
        self.clock: Callable[[], float] = time.monotonic if real_time else FakeClock()
        self.out = io.StringIO() if timeline else None
        self.config = DaemonConfig(policy=policy, pressure_kind=None, tick_s=1.0,
                                   stats_period_s=1.0,
                                   policy_params=params if params is not None
                                   else {"hysteresis_s": 0})
        kw: dict[str, Any] = {} if queue_bound is None else {"queue_bound": queue_bound}
        self.daemon = Daemon(self.config, Timeline(self.out), clock=self.clock,
                             adapter_factory=host.factory, **kw)
        self.thread: threading.Thread | None = None

    def now(self) -> float:
        return self.clock()

    def put(self, item: object) -> None:
        self.daemon.put(item)

    def settle(self, timeout_s: float = 5.0) -> None:
        """Step until every input is handled and every worker is idle."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            self.daemon.step(0.01)
            if self.daemon.idle():
                self.daemon.step(0.0)
                if self.daemon.idle():
                    return
        raise AssertionError("the daemon did not settle")

    def start(self) -> Harness:
        self.settle()
        return self

    def advance(self, seconds: float) -> None:
        assert isinstance(self.clock, FakeClock)
        self.clock.now += seconds
        self.settle()

    def poll(self) -> None:
        """One more stats period: the daemon polls every VM (and reconciles)."""
        self.advance(self.config.stats_period_s)

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.daemon.control(request)

    def show(self) -> dict[str, Any]:
        return self.daemon.control({"cmd": "show"})

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        assert self.out is not None
        recs = [json.loads(line) for line in self.out.getvalue().splitlines()]
        return [r for r in recs if kind is None or r["kind"] == kind]

    def restart(self) -> Harness:
        """This daemon is gone (no goodbye); a new one starts on the same host."""
        return Harness(self.host, self.config.policy, dict(self.config.policy_params)).start()

    # -- in a thread, in real time ------------------------------------------------------

    def run_in_thread(self) -> None:
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)
        self.thread.start()

    def stop_thread(self) -> None:
        for event in self.host.hang.values():
            event.set()
        self.daemon.stop()
        if self.thread is not None:
            self.thread.join(10)


def wait_until(what: str, check: Callable[[], object], timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"not within {timeout_s} s: {what}")
