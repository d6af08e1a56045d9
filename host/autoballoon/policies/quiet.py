"""Which guests are quiet (``auto`` A14): pure bookkeeping over their stats, no I/O.

A guest is quiet from the moment its stats stop showing activity: its need (``actual -
usable``) has not risen by more than ``rise_mib`` above the lowest seen since, it has not
swapped in, and its major faults grew by at most ``max_major_faults``. A pressure message
ends it too (``auto`` leaves out those of a VM on A13's probation). ``auto`` probes a guest
that has been quiet for a while below its need: memory it holds and never touches goes to
its own swap.

State: per VM, (since when quiet, the lowest need since, its major faults then), pruned to
the VMs the policy still sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class QuietTracker:
    max_major_faults: int
    _since: dict[str, tuple[float, int, int]] = field(default_factory=dict)

    def note(self, vm: str, now: float, need: int | None, stats: Mapping[str, int],
             prev_stats: Mapping[str, int], rise_mib: int, busy: bool = False) -> None:
        """Stats (or, with ``busy``, a pressure message) of ``vm`` at ``now``."""
        if need is None:  # no figure to judge it by: not quiet
            self._since.pop(vm, None)
            return
        faults = stats.get("major_fault", 0)
        was = self._since.get(vm)
        swapped_in = stats.get("swap_in", 0) > prev_stats.get("swap_in", 0)
        if busy or was is None or swapped_in or need > was[1] + rise_mib \
                or faults - was[2] > self.max_major_faults:
            self._since[vm] = (now, need, faults)
        elif need < was[1]:
            self._since[vm] = (was[0], need, was[2])

    def quiet_for(self, vm: str, now: float) -> float:
        """How long ``vm`` has been quiet at ``now`` (0 when it is not, or is unknown)."""
        was = self._since.get(vm)
        return 0.0 if was is None else max(now - was[0], 0.0)

    def prune(self, vms: Iterable[str]) -> None:
        keep = set(vms)
        for name in [n for n in self._since if n not in keep]:
            del self._since[name]


__all__ = ["QuietTracker"]
