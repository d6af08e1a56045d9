"""The model's rules against what a guest may claim (host/README.md, "Trust model").

A guest controls its messages, its memoryStats and its balloon's "actual" size; none of it
can be verified inside the guest. These pure helpers bound what the claims can cost:

- ``cross_check``: a guest's memoryStats may not claim more memory in use than its QEMU
  process holds as the host measures it (``VmRss``). Its size is at least the target the
  host set (the balloon's "actual" is written by the guest: a guest claiming size 0 would
  otherwise cut nothing), and "usable" and "unused" are raised to at least
  ``size - rss``; so the need a policy derives (size - usable) is never above the RSS.
- ``CriticalRun``: host critical pressure that has lasted ``after_s`` (events no more than
  ``gap_s`` apart) switches the model to its override: for as long as it lasts, guest
  pressure is hidden from the policies' view (no hysteresis exempts a VM from taking) and
  no automatic raise lifts a target above the VM's hard floor (``hard_floor``).
- ``Owing``: which VMs' balloons owe memory (stay above their targets) and since when.
  While one has owed for ``after_s``, the override caps no floor and no raise (messages
  still buy nothing): the host has asked for more than it got, and cutting the floors of
  the VMs that follow their targets would make them pay for the one that does not (slow,
  deferring, or refusing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

#: The memoryStats figures that say how much of the guest's memory is not in use.
FREE_KEYS: tuple[str, ...] = ("usable", "unused")


def cross_check(stats: Mapping[str, int], target_mib: int, max_mib: int, rss_mib: int
                ) -> dict[str, int]:
    """``stats`` claiming no more than ``rss_mib`` in use (memory the QEMU process does not
    hold cannot be in use in the guest): "actual" at least ``target_mib`` (at most
    ``max_mib``), the free figures at least ``actual - rss``. An honest guest's figures
    pass unchanged but while its balloon lags a raised target, when its need may read up
    to its RSS: the cut only ever errs the guest's way."""
    size = min(max(stats.get("actual", target_mib), target_mib), max_mib)
    least_free = max(size - rss_mib, 0)
    out = {k: max(v, least_free) if k in FREE_KEYS else v for k, v in stats.items()}
    out["actual"] = size
    return out


def hard_floor(max_mib: int, floor_mib: int, fraction: float) -> int:
    """The size a VM keeps under the host critical override, whatever its guest claims."""
    return min(max(floor_mib, int(fraction * max_mib)), max_mib)


@dataclass
class CriticalRun:
    """The current run of host critical pressure events, and whether it is long enough."""

    after_s: float
    gap_s: float
    since: float | None = None
    last: float | None = None

    def critical(self, now: float) -> None:
        """A host critical pressure event at ``now``."""
        if self.last is None or now - self.last > self.gap_s:
            self.since = now  # a new run
        self.last = now

    def active(self, now: float) -> bool:
        """Whether the override holds at ``now``."""
        if self.since is None or self.last is None:
            return False
        return now - self.last <= self.gap_s and self.last - self.since >= self.after_s


class Automated(Protocol):
    """What ``Owing.owed`` reads of a VM's state."""

    enabled: bool
    manual: bool


class Balloon(Protocol):
    """What ``Owing.note`` reads of a VM's state."""

    name: str
    target_mib: int
    actual_mib: int


@dataclass
class Owing:
    """Which VMs' balloons owe at least ``min_mib`` (their size above their target), and
    since when."""

    min_mib: int
    after_s: float
    since: dict[str, float] = field(default_factory=dict)

    def note(self, vm: Balloon, now: float) -> None:
        """``vm``'s target or balloon size changed (its run starts, goes on or ends)."""
        if vm.actual_mib - vm.target_mib >= self.min_mib:
            self.since.setdefault(vm.name, now)
        else:
            self.since.pop(vm.name, None)

    def forget(self, vm: str) -> None:
        self.since.pop(vm, None)

    def owed(self, now: float, vms: Mapping[str, Automated]) -> bool:
        """Whether one of ``vms``, automated (enabled, not manual), has owed memory for
        ``after_s`` at ``now``."""
        return any(now - t >= self.after_s and (v := vms.get(vm)) is not None
                   and v.enabled and not v.manual for vm, t in self.since.items())


__all__ = ["FREE_KEYS", "CriticalRun", "Owing", "cross_check", "hard_floor"]
