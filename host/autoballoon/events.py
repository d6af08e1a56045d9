"""The model's input and output records, and the checks the model applies to their values.

Inputs are events (frozen dataclasses, each with its timestamp ``t`` in seconds); the one
output is ``BalloonCommand``. ``SetPolicy`` (which carries a policy) and the ``Event`` union
of all inputs live in ``autoballoon.model``, above the policy layer. Units: MiB as ``int``
everywhere (the libvirt adapter converts from KiB). Also here: the host and guest pressure
levels and their ranks, the memoryStats names the model keeps (``STATS_KEYS``) and the
validation helpers (``safe_int``, ``finite_time``) that make malformed values harmless.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

HostLevel = Literal["low", "between", "medium", "critical"]
GuestLevel = Literal["low", "medium", "critical"]

#: Host pressure levels in increasing severity ("between" is the level between vmpressure's
#: "low" and "medium" that the RFC asked for).
HOST_LEVELS: tuple[str, ...] = ("low", "between", "medium", "critical")
#: Guest pressure levels in increasing severity.
GUEST_LEVELS: tuple[str, ...] = ("low", "medium", "critical")

#: libvirt memoryStats names the model keeps (memory values in MiB, fault counts as counts);
#: anything else a guest or adapter sends is dropped.
STATS_KEYS: frozenset[str] = frozenset(
    {
        "actual",
        "available",
        "unused",
        "usable",
        "disk_caches",
        "rss",
        "swap_in",
        "swap_out",
        "major_fault",
        "minor_fault",
    }
)

#: Largest value accepted anywhere (1 PiB in MiB); larger values are clamped to it.
MAX_VALUE = 1 << 30


def host_level_rank(level: str) -> int:
    """Rank of a host level, 0 (low) .. 3 (critical); -1 if unknown."""
    return HOST_LEVELS.index(level) if level in HOST_LEVELS else -1


def guest_level_rank(level: str) -> int:
    """Rank of a guest level, 0 (low) .. 2 (critical); -1 if unknown."""
    return GUEST_LEVELS.index(level) if level in GUEST_LEVELS else -1


def safe_int(value: object, lo: int = 0, hi: int = MAX_VALUE) -> int | None:
    """``value`` as an int clamped to [lo, hi], or None if it is not a finite number."""
    if type(value) is int:  # the common case first (a bool's type is bool)
        return lo if value < lo else hi if value > hi else value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return min(max(value, lo), hi)
    if isinstance(value, float) and math.isfinite(value):
        return min(max(int(value), lo), hi)
    return None


def finite_time(t: object) -> float | None:
    """``t`` as a float if it is a finite number (not a bool), else None."""
    if isinstance(t, bool) or not isinstance(t, int | float):
        return None
    t = float(t)
    return t if math.isfinite(t) else None


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class VmInfo:
    """A VM as the adapter discovered it: name, maximum memory and optional floor (MiB)."""

    name: str
    max_mib: int
    floor_mib: int | None = None


@dataclass(frozen=True)
class HostPressure:
    """Host memory pressure at ``level`` (from vmpressure or PSI)."""

    t: float
    level: HostLevel


@dataclass(frozen=True)
class GuestPressure:
    """A guest reported memory pressure; ``messages`` coalesced guest messages."""

    t: float
    vm: str
    level: GuestLevel
    messages: int = 1


@dataclass(frozen=True)
class BalloonActual:
    """The guest's current memory size (libvirt's balloon "actual") changed."""

    t: float
    vm: str
    actual_mib: int


@dataclass(frozen=True)
class VmAdded:
    """A VM appeared (or the daemon restarted and rediscovered it).

    ``current_mib`` is its current balloon target; it becomes the baseline. A daemon that
    recovers state may pass how much of it automation had taken (``auto_inflated_mib``),
    the VM's ``enabled`` and ``manual`` flags, and the balloon's size now (``actual_mib``,
    when it is still on its way to ``current_mib``; None: it is there).
    """

    t: float
    vm: VmInfo
    current_mib: int
    auto_inflated_mib: int = 0
    enabled: bool = True
    manual: bool = False
    actual_mib: int | None = None


@dataclass(frozen=True)
class VmRemoved:
    """A VM went away; its state is dropped."""

    t: float
    vm: str


@dataclass(frozen=True)
class ManualTarget:
    """A target the daemon did not set (the operator ballooned by hand)."""

    t: float
    vm: str
    target_mib: int


@dataclass(frozen=True)
class GuestStats:
    """A poll of libvirt memoryStats for a VM (memory values in MiB)."""

    t: float
    vm: str
    stats: Mapping[str, int]


@dataclass(frozen=True)
class VmRss:
    """What the VM's QEMU process holds, as the host measures it (MiB); optional.

    ``rss_mib`` is every page the process holds: resident, swapped out by the host, and
    hugetlbfs-backed (``VmRSS + VmSwap + HugetlbPages`` in /proc/PID/status). The guest
    cannot forge it: guest figures claiming more memory in use than this are cut down to
    it (autoballoon.trust, host/README.md "Trust model").
    """

    t: float
    vm: str
    rss_mib: int


@dataclass(frozen=True)
class StatsPoll:
    """One stats poll of many VMs at once, as one input: each VM's ``VmRss`` figure
    (``rss_mib``) and its ``GuestStats`` (``stats``), by VM name. The model takes it as
    those events in turn, every VM's RSS before its stats, at ``t``: a poll costs one
    input, not two per VM."""

    t: float
    rss_mib: Mapping[str, int]
    stats: Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class HostMemory:
    """Host memory figures (MiB) for policies that want them (stats-polling); optional."""

    t: float
    free_mib: int
    total_mib: int


@dataclass(frozen=True)
class SetEnabled:
    """Enable/disable automation for one VM, or globally when ``vm`` is None."""

    t: float
    vm: str | None
    enabled: bool


@dataclass(frozen=True)
class Tick:
    """Time passes (the daemon sends one periodically, e.g. every second)."""

    t: float


@dataclass(frozen=True)
class BalloonCommand:
    """Set ``vm``'s balloon target to ``target_mib``, for ``cause``."""

    t: float
    vm: str
    target_mib: int
    cause: str


__all__ = [
    "GUEST_LEVELS",
    "HOST_LEVELS",
    "MAX_VALUE",
    "STATS_KEYS",
    "BalloonActual",
    "BalloonCommand",
    "GuestLevel",
    "GuestPressure",
    "GuestStats",
    "HostLevel",
    "HostMemory",
    "HostPressure",
    "ManualTarget",
    "SetEnabled",
    "StatsPoll",
    "Tick",
    "VmAdded",
    "VmInfo",
    "VmRemoved",
    "VmRss",
    "finite_time",
    "guest_level_rank",
    "host_level_rank",
    "safe_int",
]
