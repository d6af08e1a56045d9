"""The read-only snapshots of the model that policies read: ``VmView`` and ``ModelView``.

The model builds them from its mutable state on every call into a policy, so nothing a
policy does with a view can change the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class VmView:
    """Read-only snapshot of one VM's state, as policies see it."""

    name: str
    max_mib: int
    floor_mib: int
    target_mib: int
    actual_mib: int
    auto_inflated_mib: int
    last_guest_pressure_t: float | None
    last_guest_level: str | None
    enabled: bool
    manual: bool
    stats: Mapping[str, int]
    stats_t: float | None
    prev_stats: Mapping[str, int]
    prev_stats_t: float | None
    last_inflate_t: float | None
    last_deflate_t: float | None
    #: What the QEMU process holds (VmRss), when the daemon feeds it, and when.
    rss_mib: int | None = None
    rss_t: float | None = None
    #: The size no guest claim holds it above under the host critical override.
    hard_floor_mib: int = 0

    @property
    def automated(self) -> bool:
        """Whether automation may act on this VM (ignoring the global flag)."""
        return self.enabled and not self.manual


@dataclass(frozen=True)
class ModelView:
    """Read-only snapshot of the whole model handed to policies."""

    vms: Mapping[str, VmView]
    enabled: bool
    last_host_pressure_t: float | None
    last_host_level: str | None
    host_free_mib: int | None
    host_total_mib: int | None
    host_memory_t: float | None
    #: Sustained host critical pressure: guest claims exempt no VM (model.py, trust.py).
    host_override: bool = False


__all__ = ["ModelView", "VmView"]
