"""What the daemon needs from libvirt, as a Protocol: the real ``LibvirtAdapter`` and the
tests' fake both satisfy it, and ``Daemon`` takes a factory of either.

The threading contract:
- ``connect``, ``close`` and ``alive`` are called by the decision loop only: only the loop
  opens, replaces or drops the connection;
- ``set_target``, ``save_state`` and ``set_stats_period`` are called by a VM's worker
  thread (one per VM, so a hung QEMU monitor holds up that VM only); they may block, and
  raise ``AdapterError`` for every failure (no connection, the domain gone or rebooted,
  any libvirt error);
- ``domain_stats`` (one call for every VM at each stats poll) and ``qemu_pid`` (a local
  file, never libvirt) are called by the stats poller thread, off the decision loop;
  ``domain_stats`` may block, but must not wait for a VM whose monitor is busy (it leaves
  that VM out), and raises ``AdapterError`` when it gets nothing at all;
- events (a domain up or down, balloon changes, guest messages, the connection closed)
  are handed to the sink from libvirt's event thread: the sink only enqueues, and the
  adapter changes nothing of its own on that thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from autoballoon.events import BalloonActual, GuestPressure, VmRemoved
from autoballoon.saved_state import SavedState


class AdapterError(Exception):
    """A libvirt call failed, or there is no connection to make it on."""


@dataclass(frozen=True)
class DomainRef:
    """One boot of one domain: a new domain id (same UUID) is a new boot."""

    name: str
    uuid: str
    domid: int


@dataclass(frozen=True)
class DomainUp:
    """A managed domain is running (found at connect, or just started)."""

    t: float
    vm: str
    max_mib: int
    current_mib: int  # libvirt's current memory: the balloon size it last saw
    uuid: str = ""
    domid: int = -1
    saved: SavedState | None = None  # our metadata element, already validated

    @property
    def ref(self) -> DomainRef:
        return DomainRef(self.vm, self.uuid, self.domid)


@dataclass(frozen=True)
class Disconnected:
    """libvirt closed the connection (reported from its close callback)."""

    t: float
    reason: str


@dataclass(frozen=True)
class DomainStats:
    """One domain's figures from one stats poll."""

    #: memoryStats' names and units: MiB (counters such as major_fault as given); empty
    #: when the guest's figures could not be had this time.
    stats: dict[str, int] = field(default_factory=dict)
    #: The balloon target the hypervisor holds for the domain (the last one anybody set),
    #: or None when it keeps none apart from the balloon's size. A target the daemon did
    #: not set is the operator's (manual.py).
    target_mib: int | None = None


# Balloon changes, guest messages and domains going away are model inputs as they are.
AdapterEvent = DomainUp | Disconnected | VmRemoved | BalloonActual | GuestPressure
Sink = Callable[[object], None]


class Adapter(Protocol):
    def connect(self) -> list[DomainUp]:
        """Open the connection and report the managed running domains (also to the sink).
        On failure nothing is left open or registered."""
        ...

    def close(self) -> None:
        """Drop the connection and its callbacks (never raises)."""
        ...

    def alive(self) -> bool:
        """Whether the connection is open and alive (a local check, no round trip)."""
        ...

    def set_target(self, ref: DomainRef, target_mib: int) -> None:
        """Apply a balloon target to that boot of the domain (libvirt's setMemory)."""
        ...

    def set_stats_period(self, ref: DomainRef, period_s: int) -> None:
        """Have the guest refresh its balloon stats every ``period_s`` seconds (libvirt's
        setMemoryStatsPeriod, live): without it a guest's memoryStats are stale or absent."""
        ...

    def domain_stats(self, refs: Sequence[DomainRef]) -> dict[DomainRef, DomainStats]:
        """The figures of those boots of the domains, in one call for all of them (a
        domain gone, rebooted or whose monitor is busy is left out)."""
        ...

    def save_state(self, ref: DomainRef, state: SavedState) -> None:
        """Keep the VM's automation state in its live metadata."""
        ...

    def qemu_pid(self, ref: DomainRef) -> int | None:
        """The pid of the domain's QEMU process on this host, or None when it cannot be
        known (a remote URI, an unreadable pid file); for ``VmRss``."""
        ...


#: Builds the adapter: (sink for its events, the daemon's clock) -> adapter.
AdapterFactory = Callable[[Sink, Callable[[], float]], Adapter]

__all__ = ["Adapter", "AdapterError", "AdapterEvent", "AdapterFactory", "Disconnected",
           "DomainRef", "DomainStats", "DomainUp", "Sink"]
