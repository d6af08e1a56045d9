"""The model's mutable per-VM state, and the read-only view of it that it keeps.

A ``VmView`` is built from a ``VmState`` the first time it is asked for after the state
changed, and kept on the state until its next change (any attribute set drops it): a
policy hook that reads one VM costs one look-up, whatever the number of VMs, and a hook
that reads every VM rebuilds only those that changed since the last one. A view is
immutable (a frozen record, its stats a read-only copy), so handing the same one out
again and again is safe: nothing a policy does with it can change the model or another
policy's view.

A state the model watches (``watch``) also names itself in the model's set of changed VMs
at every change, so the daemon can republish only what changed (``Model.take_changed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from autoballoon.views import VmView


@dataclass
class VmState:
    """The model's per-VM state (mutable; policies only ever see a ``VmView``)."""

    name: str
    max_mib: int
    floor_mib: int
    target_mib: int
    actual_mib: int
    auto_inflated_mib: int = 0
    last_guest_pressure_t: float | None = None
    last_guest_level: str | None = None
    enabled: bool = True
    manual: bool = False
    stats: dict[str, int] = field(default_factory=dict)
    stats_t: float | None = None
    prev_stats: dict[str, int] = field(default_factory=dict)
    prev_stats_t: float | None = None
    last_inflate_t: float | None = None
    last_deflate_t: float | None = None
    last_guest_handled_t: float | None = None
    last_guest_handled_rank: int = -1
    rss_mib: int | None = None
    rss_t: float | None = None
    hard_floor_mib: int = 0

    def __setattr__(self, name: str, value: object) -> None:
        d = self.__dict__  # plain attributes: no descriptor to go through
        d[name] = value
        d["_view"] = d["_bare"] = None  # changed: its views are rebuilt when next read
        changes = d.get("_changes")
        if changes is not None:
            changes.add(d["name"])

    def watch(self, changes: set[str]) -> None:
        """Name this VM in ``changes`` now and at every change of its state."""
        self.__dict__["_changes"] = changes
        changes.add(self.name)

    def view(self, claims: bool = True) -> VmView:
        """Its snapshot; without the guest's pressure claims if ``claims`` is False."""
        key = "_view" if claims else "_bare"
        view: VmView | None = self.__dict__[key]
        if view is None:
            view = self.__dict__[key] = self.build_view(claims)
        return view

    def build_view(self, claims: bool = True) -> VmView:
        """A new snapshot (``view`` keeps one until the state changes)."""
        return VmView.of(
            name=self.name,
            max_mib=self.max_mib,
            floor_mib=self.floor_mib,
            target_mib=self.target_mib,
            actual_mib=self.actual_mib,
            auto_inflated_mib=self.auto_inflated_mib,
            last_guest_pressure_t=self.last_guest_pressure_t if claims else None,
            last_guest_level=self.last_guest_level if claims else None,
            enabled=self.enabled,
            manual=self.manual,
            stats=MappingProxyType(dict(self.stats)),
            stats_t=self.stats_t,
            prev_stats=MappingProxyType(dict(self.prev_stats)),
            prev_stats_t=self.prev_stats_t,
            last_inflate_t=self.last_inflate_t,
            last_deflate_t=self.last_deflate_t,
            rss_mib=self.rss_mib,
            rss_t=self.rss_t,
            hard_floor_mib=self.hard_floor_mib,
        )


__all__ = ["VmState"]
