"""One worker thread per managed VM: its blocking libvirt calls, off the decision loop.

setMemory, memoryStats and setMetadata go through libvirt to the VM's QEMU monitor; a hung
monitor blocks them (libvirt gives up on its job lock only after 30 s). Each VM's calls
run on that VM's worker, so a hung VM holds up its own commands and nothing else.

A worker holds at most one job, the latest of each kind: a new target replaces one not
yet sent (the balloon goes where the model wants it now, no backlog builds up behind a
slow VM), a new state to save replaces an older one, stats are polled once however often
they were asked for. It reports back through the daemon's queue: ``CommandDone`` for
every setMemory sent (success or failure, with its reaction time), ``SaveFailed``,
the polled ``GuestStats`` and, where the hypervisor keeps one, the balloon target it
holds (``TargetSeen``: the loop tells the operator's from its own). A stopped worker (its
VM went away) drops what it had not started; a call in progress ends on its own, and the
loop ignores reports of a boot it no longer manages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from autoballoon.adapter import Adapter, AdapterError, DomainRef
from autoballoon.events import GuestStats
from autoballoon.saved_state import SavedState

log = logging.getLogger("autoballoond")


@dataclass(frozen=True)
class Command:
    """A target for a VM, with what automation has taken once it is applied."""

    target_mib: int
    auto_inflated_mib: int
    cause: str
    arrived: float  # when the input that caused it reached the daemon


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


@dataclass(frozen=True)
class SaveFailed:
    """A worker could not write the VM's state to its metadata."""

    t: float
    ref: DomainRef
    state: SavedState
    error: str


@dataclass(frozen=True)
class TargetSeen:
    """The balloon target the hypervisor holds for the VM, read at a stats poll."""

    t: float
    ref: DomainRef
    target_mib: int


@dataclass
class _Job:
    command: Command | None = None
    save: SavedState | None = None
    stats: bool = False

    def empty(self) -> bool:
        return self.command is None and self.save is None and not self.stats


class VmWorker:
    def __init__(self, ref: DomainRef, adapter: Adapter, report: Callable[[object], None],
                 clock: Callable[[], float]) -> None:
        self.ref = ref
        self.adapter = adapter
        self.report = report
        self.clock = clock
        self._cond = threading.Condition()
        self._job = _Job()
        self._busy = False
        self._stopping = False
        self._finish_saves = False
        self._thread = threading.Thread(target=self._run, name=f"vm-{ref.name}",
                                        daemon=True)
        self._thread.start()

    def submit(self, command: Command | None = None, save: SavedState | None = None,
               stats: bool = False) -> None:
        """Hand over work (from the loop); never blocks."""
        with self._cond:
            if command is not None:
                self._job.command = command
            if save is not None:
                self._job.save = save
            self._job.stats = self._job.stats or stats
            self._cond.notify()

    def idle(self) -> bool:
        """Nothing pending and nothing in progress (its reports are queued by then)."""
        with self._cond:
            return not self._busy and self._job.empty()

    def stop(self, finish_saves: bool = False) -> None:
        """Drop what was not started (but a state to save, with ``finish_saves``)."""
        with self._cond:
            self._stopping = True
            self._finish_saves = finish_saves
            self._cond.notify()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and self._job.empty():
                    self._cond.wait()
                job, self._job = self._job, _Job()
                if self._stopping:
                    job = _Job(save=job.save if self._finish_saves else None)
                    if job.empty():
                        return
                self._busy = True
            try:
                self._do(job)
            except Exception:  # a bug here must not end the VM's worker
                log.exception("%s: worker job failed", self.ref.name)
            finally:
                with self._cond:
                    self._busy = False

    def _do(self, job: _Job) -> None:
        if job.command is not None:
            self._set(job.command)
        if job.save is not None:
            try:
                self.adapter.save_state(self.ref, job.save)
            except AdapterError as e:
                self.report(SaveFailed(self.clock(), self.ref, job.save, str(e)))
        if job.stats:
            try:
                stats = self.adapter.memory_stats(self.ref)
            except AdapterError as e:
                log.debug("%s: no memoryStats: %s", self.ref.name, e)
            else:
                self.report(GuestStats(self.clock(), self.ref.name, stats))
            try:
                target = self.adapter.balloon_target(self.ref)
            except AdapterError as e:
                log.debug("%s: no balloon target: %s", self.ref.name, e)
            else:
                if target is not None:
                    self.report(TargetSeen(self.clock(), self.ref, target))

    def _set(self, c: Command) -> None:
        error = None
        try:
            self.adapter.set_target(self.ref, c.target_mib)
        except AdapterError as e:
            error = str(e)
        except Exception as e:  # an adapter bug: still a failed command, and said so
            log.exception("%s: setMemory raised", self.ref.name)
            error = f"{type(e).__name__}: {e}"
        done = self.clock()
        self.report(CommandDone(done, self.ref, c.target_mib, c.auto_inflated_mib, c.cause,
                                done - c.arrived, error))


__all__ = ["Command", "CommandDone", "SaveFailed", "TargetSeen", "VmWorker"]
