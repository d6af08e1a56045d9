"""How long a guest's claims may keep its VM out of reach: a budget per VM (``auto`` A11).

A claim (a pressure message, swap-in in its stats) asks for time without inflation. The
time granted to a VM is at most ``budget_s`` in any window of ``window_s``: a claim is
granted only what is left of ``budget_s`` over the last ``window_s`` (counting what is
already granted ahead of now), so no window of that length ever holds more. A claim made
when nothing is left is not honoured at all.

State: per VM, the granted intervals (merged, oldest dropped once out of the window, at
most ``MAX_SPANS``; beyond that the two oldest merge, which only counts more time as
granted), pruned to the VMs the policy still sees.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_SPANS = 64


@dataclass
class ClaimBudget:
    budget_s: float
    window_s: float
    _spans: dict[str, list[list[float]]] = field(default_factory=dict)

    def left(self, vm: str, now: float) -> float:
        """Seconds of exemption ``vm`` may still be granted at ``now``."""
        start = now - self.window_s
        spans = [s for s in self._spans.get(vm, ()) if s[1] > start]
        if spans:
            self._spans[vm] = spans
        else:
            self._spans.pop(vm, None)
        used = sum(end - max(begin, start) for begin, end in spans)
        return max(self.budget_s - used, 0.0)

    def grant(self, vm: str, now: float, hold_s: float) -> bool:
        """A claim at ``now`` asking for ``hold_s`` without inflation: whether it is
        honoured (something was left), the exemption cut to what is left."""
        left = self.left(vm, now)
        if left <= 0:
            return False
        spans = self._spans.setdefault(vm, [])
        begin = max(now, spans[-1][1]) if spans else now
        end = min(now + hold_s, begin + left)
        if end > begin:
            if spans and spans[-1][1] >= now:
                spans[-1][1] = end  # extends the exemption in progress
            else:
                spans.append([now, end])
            if len(spans) > MAX_SPANS:
                spans[0:2] = [[spans[0][0], spans[1][1]]]
        return True

    def exempt(self, vm: str, now: float) -> bool:
        """Whether a granted claim keeps ``vm`` out of reach at ``now``."""
        spans = self._spans.get(vm)
        return bool(spans) and spans[-1][0] <= now < spans[-1][1]

    def prune(self, vms: Iterable[str]) -> None:
        keep = set(vms)
        for name in [n for n in self._spans if n not in keep]:
            del self._spans[name]


__all__ = ["ClaimBudget"]
