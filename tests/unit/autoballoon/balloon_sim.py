"""A host and its guests around a real ``Daemon`` on the fake libvirt, on a fake clock.

``World`` is the simulation the daemon's state machine test drives
(test_daemon_state_machine.py):

- the **host** has ``ram_mib`` of memory; other host processes hold ``base_mib``; each
  running VM's QEMU process holds what its guest touched (its resident set: the guest's
  working set plus its page cache, at most the guest's size) plus a fixed overhead. The
  host's free memory is what is left: the daemon reads it as ``HostMemory`` (the
  collector is patched to read the simulation), and when it runs low the simulation
  sends host pressure, as vmpressure/PSI would;
- each **guest** has a working set (``demand_mib``) and a page cache; it follows the
  target the hypervisor holds within a step (an honest guest exactly), reports its
  memoryStats (MemAvailable = its size minus its working set), swaps and sends pressure
  messages when its working set exceeds its size. Its QEMU process's RSS is written to a
  fake /proc for the daemon's ``VmRss``;
- an **adversarial** guest lies in its stats, floods critical pressure, writes odd
  balloon sizes, inflates partially or not at all, or stops responding for a while.

One ``tick`` is one step of the world: the guests' figures are published, their messages
and the host's pressure queued, the clock moves on and the daemon runs until it is idle
(its Tick, its stats poll, every queued input, every worker's job), then the guests follow
their targets. The daemon's worker threads are real, but the world waits for them: no
input races another in a way the test does not choose.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from autoballoon import host_memory
from autoballoon.adapter import DomainUp
from autoballoon.events import BalloonActual, GuestPressure, HostPressure
from autoballoon.loop import Daemon

from tests.unit.autoballoon.fake_libvirt import FakeDomain, FakeHost, Harness

QEMU_OVERHEAD_MIB = 32
#: auto's defaults (AutoParams) the checks are written against, restated on purpose: a
#: check that read them from the policy under test would move with it.
MIN_FLOOR_MIB = 128
MARGIN_MIB, MARGIN_FRACTION = 64, 0.05
RESERVE_MIB, RESERVE_FRACTION = 64, 0.10
HARD_FLOOR_FRACTION = 0.25
#: The simulated host's pressure levels by its free fraction (below A10's reserve: the
#: daemon is expected to act on the reserve before the host reclaims).
HOST_LEVELS_BY_FREE = ((0.0, "critical"), (0.02, "medium"), (0.035, "between"),
                       (0.05, "low"))


def margin(max_mib: int) -> int:
    return max(MARGIN_MIB, int(MARGIN_FRACTION * max_mib))


def hard_floor(max_mib: int, floor_mib: int = MIN_FLOOR_MIB) -> int:
    return min(max(floor_mib, int(HARD_FLOOR_FRACTION * max_mib)), max_mib)


@dataclass
class Guest:
    name: str
    max_mib: int
    demand_mib: int  # the working set (anonymous memory in use)
    cache_mib: int  # page cache it keeps while it has room
    actual_mib: int  # its memory size: the balloon leaves it this much
    pid: int
    swap_in_mib: int = 0
    # adversarial behaviour
    lie: str | None = None  # stats claim "zero" or "huge" usable memory
    flood: bool = False  # critical pressure at every step
    odd_actual: int | None = None  # the balloon size it writes, whatever its size
    partial: float | None = None  # the share of an inflation it performs (0: refuses)
    silent: int = 0  # steps it does not respond for (no balloon move, stale stats)
    running: bool = True
    reported_actual: int | None = None  # the last balloon size it reported

    @property
    def honest(self) -> bool:
        return (self.lie is None and not self.flood and self.odd_actual is None
                and self.partial is None)

    @property
    def resident(self) -> int:
        """What its QEMU process holds of guest RAM (it touched it)."""
        return min(self.actual_mib, self.demand_mib + self.cache_mib)

    @property
    def deficit(self) -> int:
        return max(self.demand_mib - self.actual_mib, 0)

    def stats(self) -> dict[str, int]:
        actual = self.actual_mib if self.odd_actual is None else self.odd_actual
        usable = max(self.actual_mib - self.demand_mib, 0)  # cache is reclaimable
        unused = max(self.actual_mib - self.resident, 0)
        if self.lie == "zero":
            usable = unused = 0
        elif self.lie == "huge":
            usable = unused = 1 << 40
        return {"actual": actual, "usable": usable, "unused": unused,
                "swap_in": self.swap_in_mib, "available": self.max_mib}

    def need_shown(self) -> int:
        """The need an honest guest's stats show (``actual - usable``)."""
        return min(self.actual_mib, self.demand_mib)

    def pressure_level(self) -> str | None:
        if self.flood:
            return "critical"
        if self.deficit <= 0:
            return None
        return "low" if self.deficit <= 64 else "medium" if self.deficit <= 256 else "critical"

    def follow(self, target: int) -> None:
        """The balloon moves to ``target`` (an adversary's only part of the way down)."""
        if target < self.actual_mib and self.partial is not None:
            target = self.actual_mib - int(self.partial * (self.actual_mib - target))
        self.actual_mib = max(min(target, self.max_mib), 0)
        if self.deficit:
            self.swap_in_mib += min(self.deficit, 64)


@dataclass
class World:
    """The simulated host, its guests and the daemon under test."""

    proc: Path
    ram_mib: int
    guests: dict[str, Guest] = field(default_factory=dict)
    base_mib: int = 0  # other host processes
    injected: tuple[str, int] | None = None  # (level, steps left) of outside pressure
    dt: float = 1.0
    steps: int = 0
    #: the steps (and times) at which the world sent host pressure, by level
    sent: list[tuple[int, float, str]] = field(default_factory=list)
    host: FakeHost = field(default_factory=FakeHost)
    h: Harness | None = None
    restarts: int = 0
    #: (step, vm, target) of every command the model decided
    commands: list[tuple[int, str, int]] = field(default_factory=list)
    _timeline_at: int = 0
    _unread: list[dict] = field(default_factory=list)
    _old_read: Callable[..., tuple[int, int]] | None = None
    _pids: int = 4000
    _status: dict[int, str] = field(default_factory=dict)  # /proc/PID/status as written

    # -- set-up and tear-down -------------------------------------------------------------

    def add_guest(self, name: str, max_mib: int, demand_mib: int, cache_mib: int) -> None:
        self._pids += 1
        g = Guest(name, max_mib, demand_mib, cache_mib, max_mib, self._pids)
        self.guests[name] = g
        self.host.domains[name] = FakeDomain(name, max_mib, max_mib, pid=g.pid)
        self.publish()

    def start(self) -> None:
        self._old_read = host_memory.read
        host_memory.read = self._read_host_memory
        self.h = self._new_harness()

    def close(self) -> None:
        if self.h is not None:
            self._stop_workers(self.h.daemon)
        if self._old_read is not None:
            host_memory.read = self._old_read
            self._old_read = None

    def _new_harness(self) -> Harness:
        now = None if self.h is None else self.h.now()
        h = Harness(self.host, "auto", params={})
        if now is not None:  # one clock for the world, whichever daemon runs
            h.clock.now = now  # type: ignore[attr-defined]
        h.daemon.proc = self.proc
        self._record_commands(h.daemon)
        self.h = h
        self.settle()
        return h

    def _record_commands(self, daemon: Daemon) -> None:
        """Every command the model decides, in order (``commands``): the finest view of
        its targets, turns within one step included."""
        handle = daemon.model.handle

        def recording(event: object) -> list:
            cmds = handle(event)
            self.commands.extend((self.steps, c.vm, c.target_mib) for c in cmds)
            return cmds

        daemon.model.handle = recording  # type: ignore[method-assign]

    @staticmethod
    def _stop_workers(daemon: Daemon) -> None:
        for link in daemon.links.values():
            link.worker.stop()

    # -- what the daemon reads ------------------------------------------------------------

    @property
    def daemon(self) -> Daemon:
        assert self.h is not None
        return self.h.daemon

    def now(self) -> float:
        assert self.h is not None
        return self.h.now()

    def free_mib(self) -> int:
        """The host's free memory (negative: the host is swapping)."""
        held = sum(g.resident + QEMU_OVERHEAD_MIB for g in self.guests.values() if g.running)
        return self.ram_mib - self.base_mib - held

    def reserve_mib(self) -> int:
        return max(RESERVE_MIB, int(RESERVE_FRACTION * self.ram_mib))

    def _read_host_memory(self, memcg: object = None, proc: object = None) -> tuple[int, int]:
        return max(self.free_mib(), 0), self.ram_mib

    def connected(self) -> bool:
        return bool(self.host.adapters) and self.host.adapter.open

    def publish(self) -> None:
        """The guests' stats, balloon sizes and QEMU processes, as libvirt and /proc
        would show them now (a silent guest's stats stay as they were)."""
        for g in self.guests.values():
            d = self.host.domains[g.name]
            status = self.proc / str(g.pid) / "status"
            if not g.running:
                status.unlink(missing_ok=True)
                continue
            text = f"Name:\tqemu\nVmRSS:\t{(g.resident + QEMU_OVERHEAD_MIB) << 10} kB\n"
            if self._status.get(g.pid) != text or not status.exists():
                status.parent.mkdir(parents=True, exist_ok=True)
                status.write_text(text)
                self._status[g.pid] = text
            if not g.silent:
                d.stats = g.stats()

    # -- one step -------------------------------------------------------------------------

    def host_level(self) -> str | None:
        free = self.free_mib()
        for fraction, level in HOST_LEVELS_BY_FREE:
            if free <= fraction * self.ram_mib:
                return level
        return None

    def tick(self, dt: float | None = None) -> None:
        assert self.h is not None
        self.publish()
        if self.connected():  # events only reach the daemon over the connection
            for g in self.guests.values():
                level = g.pressure_level()
                if g.running and not g.silent and level is not None:
                    self.h.put(GuestPressure(self.now(), g.name, level,
                                             8 if g.flood else 1))
        levels = [lvl for lvl in (self.host_level(),
                                  self.injected[0] if self.injected else None) if lvl]
        if self.injected is not None:
            level, left = self.injected
            self.injected = (level, left - 1) if left > 1 else None
        for level in levels:  # the pressure source runs whether libvirt does or not
            self.h.put(HostPressure(self.now(), level))
        self.steps += 1
        self.h.clock.now += self.dt if dt is None else dt  # type: ignore[attr-defined]
        for level in levels:
            self.sent.append((self.steps, self.now(), level))
        self.settle()
        self.respond()
        self.settle()

    def respond(self) -> None:
        """Each responsive guest follows the target its hypervisor holds and reports its
        balloon size (libvirt's current memory follows the report)."""
        assert self.h is not None
        for g in self.guests.values():
            d = self.host.domains[g.name]
            if not g.running or not d.running:
                continue
            if g.silent:
                g.silent -= 1
                continue
            if d.target_mib is not None:
                g.follow(d.target_mib)
            reported = g.actual_mib if g.odd_actual is None else g.odd_actual
            d.current_mib = max(reported, 0)
            if reported != g.reported_actual and self.connected():
                g.reported_actual = reported
                self.h.put(BalloonActual(self.now(), g.name, reported))

    def settle(self, timeout_s: float = 10.0) -> None:
        """Run the daemon until every input is handled and every worker is idle."""
        daemon = self.daemon
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            daemon.step(0.0 if daemon.idle() else 0.005)
            if daemon.idle():
                daemon.step(0.0)
                if daemon.idle():
                    return
        raise AssertionError("the daemon did not settle: its loop or a worker is stuck")

    # -- lifecycle ------------------------------------------------------------------------

    def stop_vm(self, name: str) -> None:
        g = self.guests[name]
        if not g.running:
            return
        g.running = False
        if self.connected():
            self.host.adapter.stop(name)
        else:
            self.host.domains[name].running = False

    def start_vm(self, name: str, demand_mib: int) -> None:
        """A stopped VM boots again: a new domain id, full size, no metadata."""
        assert self.h is not None
        g = self.guests[name]
        if g.running:
            return
        d = self.host.reboot(name)
        d.pid = g.pid
        g.running, g.actual_mib, g.demand_mib, g.swap_in_mib = True, g.max_mib, demand_mib, 0
        g.reported_actual, g.silent = None, 0
        d.stats = g.stats()
        if self.connected():  # its lifecycle event, as the adapter reports it
            self.h.put(DomainUp(self.now(), name, d.max_mib, d.current_mib, d.uuid,
                                d.domid, d.saved))

    def restart_daemon(self) -> None:
        """The daemon dies (no goodbye: its workers just stop) and a new one starts from
        the domains' metadata."""
        assert self.h is not None
        self._stop_workers(self.h.daemon)
        self.restarts += 1
        self._unread = self.new_records()  # the old daemon's last words
        self._timeline_at = 0
        self._new_harness()

    # -- what the checks read -------------------------------------------------------------

    def new_records(self) -> list[dict]:
        assert self.h is not None and self.h.out is not None
        text = self.h.out.getvalue()
        new, self._timeline_at = text[self._timeline_at:], len(text)
        unread, self._unread = self._unread, []
        return unread + [json.loads(line) for line in new.splitlines()]

    def sent_in_last(self, steps: int, levels: tuple[str, ...] | None = None) -> bool:
        return any(s > self.steps - steps and (levels is None or lvl in levels)
                   for s, _, lvl in self.sent)

    def critical_every_step(self, steps: int) -> bool:
        """Host critical pressure was sent at each of the last ``steps`` steps."""
        got = {s for s, _, lvl in self.sent if lvl == "critical"}
        return all(self.steps - i in got for i in range(steps))


def direction_changes(series: list[int]) -> int:
    """How many times a sequence of targets turned (down then up, or up then down)."""
    moves = [b > a for a, b in pairwise(series) if b != a]
    return sum(x != y for x, y in pairwise(moves))


__all__ = ["Guest", "World", "direction_changes", "hard_floor", "margin"]
