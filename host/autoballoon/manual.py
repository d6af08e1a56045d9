"""Telling the operator's ballooning apart from the daemon's own (pure, no I/O).

libvirt reports only the balloon's actual size, not who asked for it. The documented rule
(host/README.md, "Manual ballooning"): a balloon moves towards the last target it was
given and never past it, so a guest that keeps shrinking clearly below every target the
daemon has given it since the balloon last settled (or keeps growing clearly above all of
them) is following someone else's setMemory.
The VM is then yielded to manual control (the model stops commanding it) until the
operator re-enables it.

"Every target since the balloon last settled" matters: after a quick inflate-then-cancel
(target 703, then 767) the balloon is still on its way down to 703 when the cancel is
sent, and the sizes it reports on the way are the daemon's doing, not the operator's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SLACK_MIB = 8


@dataclass
class _Track:
    targets: list[int]  # the daemon's targets since the balloon last settled (latest last)
    actual: int | None = None


@dataclass
class ManualDetector:
    slack_mib: int = SLACK_MIB
    _vms: dict[str, _Track] = field(default_factory=dict)

    def added(self, vm: str, current_mib: int) -> None:
        self._vms[vm] = _Track([current_mib])

    def removed(self, vm: str) -> None:
        self._vms.pop(vm, None)

    def commanded(self, vm: str, target_mib: int) -> None:
        track = self._vms.setdefault(vm, _Track([]))
        track.targets = [*track.targets[-63:], target_mib]

    def actual(self, vm: str, actual_mib: int) -> int | None:
        """Record a balloon size; the operator's target if this is manual ballooning."""
        track = self._vms.get(vm)
        if track is None or not track.targets:
            return None
        before, track.actual = track.actual, actual_mib
        if abs(actual_mib - track.targets[-1]) <= self.slack_mib:
            track.targets = track.targets[-1:]  # settled: older targets are history
            return None
        if before is None:
            return None
        shrinking_past = actual_mib < before and actual_mib < min(track.targets) - self.slack_mib
        growing_past = actual_mib > before and actual_mib > max(track.targets) + self.slack_mib
        if shrinking_past or growing_past:
            track.targets = [actual_mib]
            return actual_mib
        return None
