"""Telling the operator's ballooning apart from the daemon's own (pure, no I/O).

Only a target is evidence of the operator: a balloon target that the daemon observes and
did not set itself (``ManualDetector.target``) is someone else's setMemory, and the VM is
then yielded to manual control (the model stops commanding it) until the operator
re-enables it.

The balloon's size ("actual") is never evidence: the guest writes it (host/README.md,
"Trust model"), so a guest could otherwise opt out of ballooning by reporting sizes no
target of ours explains. Such sizes are only reported (``deviation``): a balloon moves
towards the last target it was given and never past it, so a size clearly below every
target the daemon gave since the balloon last settled is "below", clearly above all of
them "above" (an operator's virsh setmem, or a guest that does not follow its balloon).

"Every target since the balloon last settled" matters: after a quick inflate-then-cancel
(target 703, then 767) the balloon is still on its way down to 703 when the cancel is
sent, and the sizes it reports on the way are the daemon's doing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SLACK_MIB = 8


@dataclass
class _Track:
    targets: list[int]  # the daemon's targets since the balloon last settled (latest last)
    deviation: str | None = None


@dataclass
class ManualDetector:
    slack_mib: int = SLACK_MIB
    _vms: dict[str, _Track] = field(default_factory=dict)
    _changed: set[str] = field(default_factory=set)  # whose deviation may have changed

    def added(self, vm: str, current_mib: int) -> None:
        self._vms[vm] = _Track([current_mib])
        self._changed.add(vm)

    def removed(self, vm: str) -> None:
        self._vms.pop(vm, None)
        self._changed.add(vm)

    def commanded(self, vm: str, target_mib: int) -> None:
        track = self._vms.setdefault(vm, _Track([]))
        track.targets = [*track.targets[-63:], target_mib]

    def target(self, vm: str, target_mib: int, latest_only: bool = False) -> int | None:
        """A target observed for ``vm``: the operator's (returned) unless it is ours: any
        target since the balloon settled (a read that may predate our last command), or
        with ``latest_only`` (the read came after it) only the latest."""
        track = self._vms.get(vm)
        if track is None:
            return None
        ours = track.targets[-1:] if latest_only else track.targets
        if any(abs(target_mib - t) <= self.slack_mib for t in ours):
            return None
        track.targets, track.deviation = [target_mib], None
        self._changed.add(vm)
        return target_mib

    def actual(self, vm: str, actual_mib: int) -> None:
        """Record a balloon size (never evidence of manual ballooning; see ``deviation``)."""
        track = self._vms.get(vm)
        if track is None or not track.targets:
            return
        self._changed.add(vm)
        if abs(actual_mib - track.targets[-1]) <= self.slack_mib:
            track.targets = track.targets[-1:]  # settled: older targets are history
            track.deviation = None
        elif actual_mib < min(track.targets) - self.slack_mib:
            track.deviation = "below"
        elif actual_mib > max(track.targets) + self.slack_mib:
            track.deviation = "above"
        else:
            track.deviation = None

    def deviation(self, vm: str) -> str | None:
        """"below" / "above" when ``vm``'s balloon is where no target of ours puts it."""
        track = self._vms.get(vm)
        return None if track is None else track.deviation

    def take_changed(self) -> set[str]:
        """The VMs whose deviation may have changed since the last call."""
        changed, self._changed = self._changed, set()
        return changed
