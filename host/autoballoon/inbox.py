"""The decision loop's input queue: nothing that matters is dropped, floods are coalesced.

Two kinds of input share one FIFO, so inputs are handled in the order they arrived:
- **coalescable** inputs (guest stats, balloon sizes, guest and host pressure, a stats
  poll's figures) merge with a pending input of the same kind for the same VM (for the
  host and the polls, of the same kind), keeping its place in the queue: a flood costs
  one entry per VM and kind, whatever its rate. They are the only inputs ever dropped, and
  only beyond ``bound`` pending ones (counted in ``dropped``, shown by ``autoballoonctl
  show``);
- everything else (domains up and down, the connection lost, control requests, the
  workers' reports on commands and saves) is never dropped nor merged. These are few by
  nature (lifecycle changes, root-only control requests, one report per command), so
  memory stays small.

A coalescable input never merges across an input of the other kind queued after it (a
balloon size of a VM's old boot never lands after its re-add).

Reports that decide nothing by themselves (``LAZY``: a setMemory's outcome, a balloon
size) do not wake a waiting loop at once, but at most ``LAZY_S`` after the oldest of them
arrived: a stream of them costs a loop pass per ``LAZY_S``, not one each. They keep their
place in the FIFO, so every input after them still finds them handled first.

Merging: the latest stats, balloon size and each VM's latest polled figures win; pressure
keeps the highest level seen, sums the guest's message counts, and keeps the first arrival
time (the reaction time is measured from the first input that waited).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Hashable

from autoballoon.events import (
    BalloonActual,
    GuestPressure,
    GuestStats,
    HostPressure,
    guest_level_rank,
    host_level_rank,
)
from autoballoon.workers import CommandDone, Polled

MAX_MESSAGES = 1 << 20
LAZY: tuple[type, ...] = (CommandDone, BalloonActual)
LAZY_S = 0.1


def coalesce_key(item: object) -> Hashable | None:
    """Which pending input ``item`` may merge with; None: never merged nor dropped."""
    match item:
        case GuestStats(vm=vm) | BalloonActual(vm=vm) | GuestPressure(vm=vm):
            return (type(item).__name__, vm)
        case HostPressure():
            return ("HostPressure",)
        case Polled():
            return ("Polled",)
    return None


def merge(old: object, new: object) -> object:
    """One input standing for ``old`` followed by ``new`` (same coalesce_key)."""
    if isinstance(old, GuestPressure) and isinstance(new, GuestPressure):
        level = max(old.level, new.level, key=guest_level_rank)
        return GuestPressure(old.t, old.vm, level,
                             min(old.messages + new.messages, MAX_MESSAGES))
    if isinstance(old, HostPressure) and isinstance(new, HostPressure):
        return HostPressure(old.t, max(old.level, new.level, key=host_level_rank))
    if isinstance(old, Polled) and isinstance(new, Polled):
        return old.then(new)
    return new


class Inbox:
    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.dropped = 0
        self._cond = threading.Condition()
        self._fifo: deque[list[object]] = deque()  # [key or None, item]
        self._mergeable: dict[Hashable, list[object]] = {}
        self._coalescable = 0  # entries of the FIFO with a key
        self._urgent = 0  # entries of the FIFO not LAZY
        self._lazy_due: float | None = None  # when a waiting get returns a LAZY one
        self._woken = False  # wake() called: a waiting get returns now

    def put(self, item: object) -> None:
        """From any thread; never blocks."""
        key = coalesce_key(item)
        lazy = isinstance(item, LAZY)
        with self._cond:
            if key is None:
                self._mergeable.clear()
                self._fifo.append([None, item])
            elif (entry := self._mergeable.get(key)) is not None:
                entry[1] = merge(entry[1], item)
                return
            elif self._coalescable >= self.bound:
                self.dropped += 1
                return
            else:
                entry = [key, item]
                self._mergeable[key] = entry
                self._fifo.append(entry)
                self._coalescable += 1
            if not lazy:
                self._urgent += 1
                self._cond.notify()
            elif self._lazy_due is None:  # a waiting get waits until then, no longer
                self._lazy_due = time.monotonic() + LAZY_S
                self._cond.notify()

    def get(self, timeout: float) -> object | None:
        """The oldest input, waiting at most ``timeout`` seconds (while only LAZY ones
        are queued, until the oldest is LAZY_S old); None if there is none."""
        with self._cond:
            if timeout > 0:
                end = time.monotonic() + timeout
                while not self._urgent and not self._woken:
                    due = end if self._lazy_due is None else min(end, self._lazy_due)
                    wait = due - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                self._woken = False
            if not self._fifo:
                return None
            entry = self._fifo.popleft()
            key, item = entry
            if not isinstance(item, LAZY):
                self._urgent -= 1
            if not self._fifo:
                self._lazy_due = None
            if key is not None:
                self._coalescable -= 1
                if self._mergeable.get(key) is entry:
                    del self._mergeable[key]
            return item

    def wake(self) -> None:
        """Make a waiting ``get`` return now."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._fifo)


__all__ = ["LAZY", "LAZY_S", "Inbox", "coalesce_key", "merge"]
