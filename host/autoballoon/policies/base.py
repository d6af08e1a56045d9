"""The policy interface: policies say what targets they want; the model does the rest.

A policy gets a read-only ``ModelView`` and ``now`` and returns ``TargetChange`` records
(absolute desired targets with a cause). The model clamps them to its invariants
(floor/max, never give back more than automation took, nothing for disabled or manual VMs),
applies them and turns them into ``BalloonCommand``s. Policies hold no I/O and no clock;
any state a policy keeps must be bounded by the number of VMs in the view, and a policy
keeps no view beyond the call it was handed to (``view.vms`` is looked up lazily).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from autoballoon.views import ModelView, VmView


@dataclass(frozen=True)
class TargetChange:
    """Policy output: set ``vm``'s target to ``target_mib`` because of ``cause``."""

    vm: str
    target_mib: int
    cause: str


class Policy:
    """Base class of all policies; every hook defaults to "no change"."""

    #: The name the daemon's configuration uses for the policy.
    name: str = "none"
    #: Whether the model's host critical override (POLICIES.md, M2) holds under this
    #: policy. Only ``seed`` opts out: it is the 2013 RFC exactly, a comparison baseline.
    host_critical_override: ClassVar[bool] = True

    def on_host_pressure(self, view: ModelView, level: str, now: float) -> list[TargetChange]:
        """The host reported pressure at ``level`` (already recorded in ``view``)."""
        return []

    def on_guest_pressure(
        self, view: ModelView, vm: str, level: str, now: float
    ) -> list[TargetChange]:
        """Guest ``vm`` reported pressure (``view.vms[vm]`` already carries it)."""
        return []

    def on_tick(self, view: ModelView, now: float) -> list[TargetChange]:
        """Time passed."""
        return []

    def on_stats(self, view: ModelView, vm: str, now: float) -> list[TargetChange]:
        """New memoryStats for ``vm`` (``view.vms[vm].stats``, previous in ``prev_stats``)."""
        return []

    def on_host_memory(self, view: ModelView, now: float) -> list[TargetChange]:
        """New host memory figures (``view.host_free_mib`` / ``view.host_total_mib``)."""
        return []


def automated(view: ModelView) -> list[VmView]:
    """The VMs automation may act on, by name (empty when globally disabled)."""
    if not view.enabled:
        return []
    return [vm for vm in view.vms.values() if vm.automated]


def automated_vm(view: ModelView, name: str) -> VmView | None:
    """VM ``name`` if automation may act on it now, else None."""
    state = view.vms.get(name)
    if state is None or not state.automated or not view.enabled:
        return None
    return state


def in_hysteresis(vm: VmView, now: float, hysteresis_s: float) -> bool:
    """Whether ``vm`` reported guest pressure less than ``hysteresis_s`` ago."""
    t = vm.last_guest_pressure_t
    return t is not None and now - t < hysteresis_s


__all__ = ["Policy", "TargetChange", "automated", "automated_vm", "in_hysteresis"]
