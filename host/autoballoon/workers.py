"""Work off the decision loop for its blocking calls: one worker per managed VM (its
jobs run on threads shared by every VM: ``pool.py``), and one stats poller for all.

setMemory, setMetadata and setMemoryStatsPeriod go through libvirt to the VM's QEMU
monitor; a hung monitor blocks them (libvirt gives up on its job lock only after 30 s).
Each VM's calls are that VM's worker's jobs, one at a time; a hung VM holds up its own
commands and one thread of the pool (the pool adds threads when calls hang), nothing else.

A worker holds at most one job, the latest of each kind: a new target replaces one not
yet sent (the balloon goes where the model wants it now, no backlog builds up behind a
slow VM), a new state to save replaces an older one; the balloon stats period goes
first (a worker sets it when it starts, and again when asked: after a reconnect). A
command carries the state to keep in the VM's metadata once libvirt has its target: the
same job writes it right after a setMemory that took, unless another state to save was
handed over meanwhile (that one is newer and goes instead); so a command costs one job,
not a second one the loop hands over on hearing it took. It reports back through the
daemon's queue: ``CommandDone`` for every setMemory sent
(success or failure, with its reaction time) and ``SaveFailed``; a stats period that
cannot be set is only logged (the VM's stats may then be stale or missing). A stopped
worker (its VM went away) drops what it had not started; a call in progress ends on its
own, and the loop ignores reports of a boot it no longer manages.

The stats poller (``StatsPoller``) does a stats poll for every VM at once: each VM's
QEMU process size (``VmRss``, read from /proc, before its stats so the model cuts them to
it), then one bulk stats call (``Adapter.domain_stats``: the guests' figures and, where
the hypervisor keeps one, the balloon target it holds). It reports them as one ``Polled``
for every VM (the loop feeds their RSS and stats to the model as one input and tells an
operator's target from its own). A poll asked for while the previous one is still
running is skipped: a slow hypervisor does not stack polls, and a domain whose monitor
is busy is left out by the adapter rather than stalling everyone's stats.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from autoballoon import qemu_rss
from autoballoon.adapter import Adapter, AdapterError, DomainRef
from autoballoon.events import StatsPoll
from autoballoon.pool import WorkerPool
from autoballoon.saved_state import SavedState

log = logging.getLogger("autoballoond")


@dataclass(frozen=True)
class Command:
    """A target for a VM, with what automation has taken once it is applied, and the
    state to keep in its metadata once libvirt has taken it (``then_save``), handed over
    after ``saves`` other states to save (``VmLink.saves``)."""

    target_mib: int
    auto_inflated_mib: int
    cause: str
    arrived: float  # when the input that caused it reached the daemon
    then_save: SavedState | None = None
    saves: int = 0


@dataclass(frozen=True)
class CommandDone:
    """A worker's report of one setMemory (``error`` None: libvirt took the target)."""

    t: float
    ref: DomainRef
    target_mib: int
    auto_inflated_mib: int
    cause: str
    reaction_s: float  # from the input's arrival to the return of setMemory
    error: str | None = None
    #: The command's ``then_save``, written next by the same job (None: not written: the
    #: command failed, or another state to save was handed over meanwhile), and its saves.
    saved: SavedState | None = None
    saves: int = 0


@dataclass(frozen=True)
class SaveFailed:
    """A worker could not write the VM's state to its metadata."""

    t: float
    ref: DomainRef
    state: SavedState
    error: str


@dataclass(frozen=True)
class TargetSeen:
    """The balloon target the hypervisor holds for the VM, read at a stats poll that
    asked for it at ``asked_t`` (None: unknown; the read reflects every command that
    completed before then)."""

    t: float
    ref: DomainRef
    target_mib: int
    asked_t: float | None = None


@dataclass(frozen=True)
class VmFigures:
    """One VM's figures from a stats poll: what its QEMU process holds (None: unknown),
    its guest's stats (None: none this time) and the target the hypervisor holds (None:
    none)."""

    ref: DomainRef
    rss_mib: int | None
    stats: dict[str, int] | None
    target_mib: int | None = None

    @property
    def vm(self) -> str:
        return self.ref.name


@dataclass(frozen=True)
class Polled:
    """A stats poll's figures, at ``t``, of every VM that had any (one input per poll,
    not one per VM); the targets as asked for at ``asked_t``. ``earlier``: an older
    poll's figures still unhandled, of VMs this one has none of (``then``)."""

    t: float
    vms: tuple[VmFigures, ...]
    asked_t: float | None = None
    earlier: Polled | None = None

    def then(self, newer: Polled) -> Polled:
        """One input standing for this poll followed by ``newer``: a VM's latest
        figures win, and figures only this one has are handled first, at their time."""
        return dataclasses.replace(newer, earlier=self._without({f.vm for f in newer.vms}))

    def split(self, managed: Callable[[DomainRef], bool]
              ) -> tuple[StatsPoll | None, list[TargetSeen]]:
        """The model's input (None: no figures) and the targets seen, of the ``managed``
        VMs (not an older poll's: ``earlier`` is apart)."""
        rss: dict[str, int] = {}
        stats: dict[str, dict[str, int]] = {}
        seen = []
        for f in self.vms:
            if not managed(f.ref):
                continue  # gone, or rebooted since
            if f.rss_mib is not None:
                rss[f.vm] = f.rss_mib
            if f.stats is not None:
                stats[f.vm] = f.stats
            if f.target_mib is not None:
                seen.append(TargetSeen(self.t, f.ref, f.target_mib, self.asked_t))
        return (StatsPoll(self.t, rss, stats) if rss or stats else None), seen

    def _without(self, names: set[str]) -> Polled | None:
        earlier = None if self.earlier is None else self.earlier._without(names)
        vms = tuple(f for f in self.vms if f.vm not in names)
        return dataclasses.replace(self, vms=vms, earlier=earlier) if vms else earlier


@dataclass
class _Job:
    command: Command | None = None
    save: SavedState | None = None
    stats_period_s: int | None = None

    def empty(self) -> bool:
        return self.command is None and self.save is None and self.stats_period_s is None


class VmWorker:
    """One VM's blocking calls, run on the threads of ``pool`` (``pool.py``: shared by
    every VM; None: a thread of its own). Its pending work (``_job``) is handed to the
    pool as one job when there is some and none of its own is queued or running, so its
    jobs run one at a time and in order."""

    def __init__(self, ref: DomainRef, adapter: Adapter, report: Callable[[object], None],
                 clock: Callable[[], float], stats_period_s: int | None = None,
                 pool: WorkerPool | None = None) -> None:
        self.ref = ref
        self.adapter = adapter
        self.report = report
        self.clock = clock
        self._own = pool is None
        self.pool = WorkerPool(1, f"vm-{ref.name}") if pool is None else pool
        self._lock = threading.Lock()
        self._job = _Job(stats_period_s=stats_period_s)
        self._queued = False  # a job of ours is in the pool's queue
        self._busy = False  # ... or running
        self._stopping = False
        self._finish_saves = False
        self._done = threading.Event()  # stopped, and nothing queued or running
        with self._lock:
            self._hand_over()

    def submit(self, command: Command | None = None, save: SavedState | None = None,
               stats_period_s: int | None = None) -> None:
        """Hand over work (from the loop); never blocks."""
        with self._lock:
            job = self._job
            if command is not None:
                job.command = command
            if save is not None:
                job.save = save
            if stats_period_s is not None:
                job.stats_period_s = stats_period_s
            self._hand_over()

    def idle(self) -> bool:
        """Nothing pending and nothing in progress (its reports are queued by then)."""
        with self._lock:
            return not self._busy and self._job.empty()

    def stop(self, finish_saves: bool = False) -> None:
        """Drop what was not started (but a state to save, with ``finish_saves``)."""
        with self._lock:
            self._stopping = True
            self._finish_saves = finish_saves
            self._hand_over()

    def join(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) for the end of what a stopped worker still does."""
        self._done.wait(timeout)

    def _pending(self) -> _Job:  # under _lock
        """What is to run next: the job, or after ``stop`` the state to save only."""
        job = self._job
        if self._stopping:
            return _Job(save=job.save if self._finish_saves else None)
        return job

    def _hand_over(self) -> None:  # under _lock
        if self._queued or self._busy:
            return  # its job, when it ends, hands over what came meanwhile
        if not self._pending().empty():
            self._queued = True
            self.pool.enqueue(self._work)
        elif self._stopping and not self._done.is_set():
            self._done.set()
            if self._own:
                self.pool.close()

    def _work(self) -> None:
        """One job (on a thread of the pool)."""
        with self._lock:
            self._queued = False
            job, self._job = self._pending(), _Job()
            if job.empty():
                self._hand_over()
                return
            self._busy = True
        try:
            self._do(job)
        except Exception:  # a bug here must not end the VM's worker
            log.exception("%s: worker job failed", self.ref.name)
        finally:
            with self._lock:
                self._busy = False
                self._hand_over()

    def _do(self, job: _Job) -> None:
        if job.stats_period_s is not None:
            try:
                self.adapter.set_stats_period(self.ref, job.stats_period_s)
            except AdapterError as e:
                log.warning("%s: cannot set its balloon stats period to %d s (its guest "
                            "stats may be stale or missing; set <stats period='%d'/> in its "
                            "memballoon): %s", self.ref.name, job.stats_period_s,
                            job.stats_period_s, e)
        if job.command is not None:
            self._set(job.command, job.save is None)
        if job.save is not None:
            self._save(job.save)

    def _save(self, state: SavedState) -> None:
        try:
            self.adapter.save_state(self.ref, state)
        except AdapterError as e:
            self.report(SaveFailed(self.clock(), self.ref, state, str(e)))

    def _set(self, c: Command, may_save: bool) -> None:
        """setMemory; then, if it took and no other state to save is waiting, the
        command's state to the metadata in the same job (no round trip to the loop)."""
        error = None
        try:
            self.adapter.set_target(self.ref, c.target_mib)
        except AdapterError as e:
            error = str(e)
        except Exception as e:  # an adapter bug: still a failed command, and said so
            log.exception("%s: setMemory raised", self.ref.name)
            error = f"{type(e).__name__}: {e}"
        done = self.clock()
        with self._lock:
            save = (c.then_save if error is None and may_save and self._job.save is None
                    else None)
        self.report(CommandDone(done, self.ref, c.target_mib, c.auto_inflated_mib, c.cause,
                                done - c.arrived, error, save, c.saves))
        if save is not None:
            self._save(save)


class StatsPoller:
    """The thread that polls every VM's figures, one poll at a time."""

    def __init__(self, adapter: Adapter, report: Callable[[object], None],
                 clock: Callable[[], float]) -> None:
        self.adapter = adapter
        self.report = report
        self.clock = clock
        self._cond = threading.Condition()
        self._job: tuple[tuple[DomainRef, ...], Path] | None = None
        self._pids: dict[DomainRef, int] = {}  # the QEMU pid of each boot (_rss)
        self._files: dict[DomainRef, int] = {}  # its status, kept open (this thread's)
        self._max_files = qemu_rss.status_files_limit()
        self._busy = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="stats-poller", daemon=True)
        self._thread.start()

    def submit(self, refs: Sequence[DomainRef], proc: Path) -> bool:
        """Poll these VMs (their QEMU processes' status under ``proc``); never blocks.
        False: the previous poll is still running, this one is skipped."""
        with self._cond:
            if self._busy:
                return False
            self._job = (tuple(refs), proc)
            self._cond.notify()
            return True

    def idle(self) -> bool:
        with self._cond:
            return not self._busy and self._job is None

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and self._job is None:
                    self._cond.wait()
                if self._stopping:
                    for fd in self._files.values():
                        os.close(fd)
                    self._files = {}
                    return
                job, self._job = self._job, None
                self._busy = True
            try:
                if job is not None:
                    self._poll(*job)
            except Exception:  # a bug here must not end the polls
                log.exception("stats poll failed")
            finally:
                with self._cond:
                    self._busy = False

    def _poll(self, refs: tuple[DomainRef, ...], proc: Path) -> None:
        pids, self._pids = self._pids, {}  # of the VMs polled now only
        files, self._files = self._files, {}
        rss = {ref: self._rss(ref, proc, pids.get(ref), files.pop(ref, None)) for ref in refs}
        for fd in files.values():  # of VMs no longer polled
            os.close(fd)
        asked = self.clock()
        try:
            found = self.adapter.domain_stats(refs)
        except AdapterError as e:
            log.debug("no domain stats: %s", e)
            found = {}
        t = self.clock()
        figures = []
        for ref in refs:
            got = found.get(ref)
            stats, target = (None, None) if got is None else (got.stats or None,
                                                               got.target_mib)
            if rss[ref] is not None or stats is not None or target is not None:
                figures.append(VmFigures(ref, rss[ref], stats, target))
        if figures:
            self.report(Polled(t, tuple(figures), asked))

    def _rss(self, ref: DomainRef, proc: Path, pid: int | None, fd: int | None
             ) -> int | None:
        """What the VM's QEMU process holds, if known; its ``pid`` as found at an earlier
        poll (a boot's QEMU process is one process: its pid file is read once) and its
        status descriptor ``fd`` kept open since (one read a poll, no open and close)."""
        try:
            pid = self.adapter.qemu_pid(ref) if pid is None else pid
            if pid is not None and fd is None:
                fd = qemu_rss.open_status(pid, proc)
            rss = None if fd is None else qemu_rss.read_status_rss_mib(fd)
        except OSError as e:  # gone meanwhile, or not ours to read
            log.debug("%s: no RSS of QEMU process %s: %s", ref.name, pid, e)
            rss = None
        if pid is not None and rss is not None:
            self._pids[ref] = pid
            if fd is not None and len(self._files) < self._max_files:
                self._files[ref], fd = fd, None
        if fd is not None:
            os.close(fd)
        return rss


@dataclass
class VmLink:
    """The loop's side of one managed boot of a domain."""

    ref: DomainRef
    worker: VmWorker
    applied: SavedState  # the target (and what was taken) libvirt last accepted from us
    saved: SavedState | None  # the state last handed over for the metadata (None: write)
    sent: int  # the last target handed to the worker
    failed: bool = False  # `sent` failed: the model's target goes again on the next poll
    done_t: float = -math.inf  # when the last command (`applied`) returned
    cause: str = ""  # of the last command
    saves: int = 0  # states handed over to save apart from a command (Command.saves)


__all__ = ["Command", "CommandDone", "Polled", "SaveFailed", "StatsPoller", "TargetSeen",
           "VmFigures", "VmLink", "VmWorker"]
