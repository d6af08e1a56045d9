"""How long a guest's claims may keep its VM out of reach: a budget per VM (``auto`` A11).

A claim (a pressure message, swap-in in its stats) asks for time without inflation. The
time granted to a VM is at most ``budget_s`` in any window of ``window_s``: a claim is
granted only what is left of ``budget_s`` over the last ``window_s`` (counting what is
already granted ahead of now), so no window of that length ever holds more. A claim made
when nothing is left is not honoured at all.

A claim found false afterwards (``refute``: auto's A13) ends the exemption in progress and
is charged against the same budget: a guest that keeps making false claims soon has no
credit left.

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
    _charges: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def left(self, vm: str, now: float) -> float:
        """Seconds of exemption ``vm`` may still be granted at ``now``."""
        start = now - self.window_s
        spans = [s for s in self._spans.get(vm, ()) if s[1] > start]
        if spans:
            self._spans[vm] = spans
        else:
            self._spans.pop(vm, None)
        used = sum(end - max(begin, start) for begin, end in spans)
        charges = [(t, c) for t, c in self._charges.get(vm, ()) if t > start]
        if charges:
            self._charges[vm] = charges[-MAX_SPANS:]
        else:
            self._charges.pop(vm, None)
        used += sum(c for _, c in charges)
        return max(self.budget_s - used, 0.0)

    def refute(self, vm: str, now: float, charge_s: float) -> None:
        """A claim found false at ``now``: no exemption from now on, and ``charge_s`` of
        the budget spent (at most what is left)."""
        spans = self._spans.get(vm)
        if spans and spans[-1][1] > now:
            spans[-1][1] = max(now, spans[-1][0])
        charge = min(charge_s, self.left(vm, now))
        if charge > 0:
            self._charges.setdefault(vm, []).append((now, charge))

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
        for d in (self._spans, self._charges):
            for name in [n for n in d if n not in keep]:
                del d[name]


__all__ = ["ClaimBudget"]
