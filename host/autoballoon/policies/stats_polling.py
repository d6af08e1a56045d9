"""``stats-polling``: a MOM-style policy driven by polled guest stats, for comparison.

Follows the balloon rules and defaults of oVirt MOM's documented policy (see POLICIES.md for
the facts and their source): it ignores guest pressure messages and acts on ``Tick`` at most
every ``interval_s``, using moving averages of the last ``history`` stats samples.

- host_free = free / total memory of the host (from ``HostMemory`` events; without them,
  estimated from the last host pressure level, see ``level_free_fraction``).
- host_free < pressure_threshold: shrink every guest. The guest's wanted free fraction
  scales down with host free memory (min_guest_free_percent x host_free / threshold), or
  goes negative (host_free - 0.05) when host_free <= pressure_critical. Target =
  max(cur x (1 - max_change), used + wanted_free x cur), applied only if it shrinks.
- Otherwise grow every ballooned guest: target = min(cur x (1 + max_change), max), raised
  to at least used + min_guest_free_percent x max.
- A change smaller than min_balloon_change_percent of cur is not made.
Here cur = the VM's balloon actual (stats, else BalloonActual) and used = avg(actual) - avg(unused).
Not MOM: the model has already cut "unused" so that used is at most what the VM's QEMU
process holds (POLICIES.md, M1).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from autoballoon.events import HOST_LEVELS
from autoballoon.policies.base import Policy, TargetChange, automated
from autoballoon.views import ModelView, VmView


@dataclass(frozen=True)
class StatsPollingParams:
    """MOM's documented defaults, plus this project's fallback for hosts without figures."""

    pressure_threshold: float = 0.20
    pressure_critical: float = 0.05
    min_guest_free_percent: float = 0.20
    max_balloon_change_percent: float = 0.05
    min_balloon_change_percent: float = 0.0025
    interval_s: float = 10.0
    history: int = 10
    #: Not MOM: host free fraction assumed for the last host pressure level (low, between,
    #: medium, critical) while it is younger than ``level_valid_s``, when no HostMemory came.
    level_free_fraction: tuple[float, float, float, float] = (0.15, 0.125, 0.10, 0.04)
    level_valid_s: float = 10.0
    host_memory_max_age_s: float = 30.0


@dataclass
class StatsPollingPolicy(Policy):
    """MOM-style stats polling."""

    params: StatsPollingParams = field(default_factory=StatsPollingParams)
    name: str = "stats-polling"
    _samples: dict[str, deque[tuple[int, int]]] = field(default_factory=dict, repr=False)
    _host: deque[float] = field(default_factory=deque, repr=False)
    _last_eval: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._host = deque(self._host, maxlen=max(self.params.history, 1))

    def on_stats(self, view: ModelView, vm: str, now: float) -> list[TargetChange]:
        state = view.vms.get(vm)
        if state is None:
            return []
        actual = state.stats.get("actual", state.actual_mib)
        unused = state.stats.get("unused")
        if unused is None:
            return []
        history = self._samples.setdefault(vm, deque(maxlen=max(self.params.history, 1)))
        history.append((actual, min(unused, actual)))
        return []

    def on_host_memory(self, view: ModelView, now: float) -> list[TargetChange]:
        if view.host_free_mib is not None and view.host_total_mib:
            self._host.append(view.host_free_mib / view.host_total_mib)
        return []

    def host_free(self, view: ModelView, now: float) -> float:
        p = self.params
        age = None if view.host_memory_t is None else now - view.host_memory_t
        fresh = age is not None and age <= p.host_memory_max_age_s
        if self._host and fresh:
            return sum(self._host) / len(self._host)
        last = view.last_host_pressure_t
        if last is not None and now - last < p.level_valid_s and view.last_host_level:
            return p.level_free_fraction[HOST_LEVELS.index(view.last_host_level)]
        return 1.0

    def _big_enough(self, cur: int, new: int) -> bool:
        return abs(new - cur) > self.params.min_balloon_change_percent * cur

    def _used(self, vm: str) -> int | None:
        history = self._samples.get(vm)
        if not history:
            return None
        avg_cur = sum(c for c, _ in history) / len(history)
        avg_unused = sum(u for _, u in history) / len(history)
        return int(avg_cur - avg_unused)

    def shrink(self, vm: VmView, host_free: float) -> TargetChange | None:
        p = self.params
        used = self._used(vm.name)
        if used is None:
            return None
        if host_free <= p.pressure_critical:
            guest_free = host_free - 0.05
        else:
            guest_free = p.min_guest_free_percent * host_free / p.pressure_threshold
        cur = vm.stats.get("actual", vm.actual_mib)
        minimum = used + guest_free * cur
        size = int(max(cur * (1 - p.max_balloon_change_percent), minimum))
        if size <= cur and self._big_enough(cur, size):
            return TargetChange(vm.name, size, f"stats: host free {host_free:.0%}, shrink")
        return None

    def grow(self, vm: VmView, host_free: float) -> TargetChange | None:
        p = self.params
        cur = vm.stats.get("actual", vm.actual_mib)
        used = self._used(vm.name)
        if used is None or cur >= vm.max_mib:
            return None
        size = min(cur * (1 + p.max_balloon_change_percent), vm.max_mib)
        size = int(max(size, used + p.min_guest_free_percent * vm.max_mib))
        if self._big_enough(cur, size):
            return TargetChange(vm.name, size, f"stats: host free {host_free:.0%}, grow")
        return None

    def on_tick(self, view: ModelView, now: float) -> list[TargetChange]:
        for name in [n for n in self._samples if n not in view.vms]:
            del self._samples[name]
        if self._last_eval is not None and now - self._last_eval < self.params.interval_s:
            return []
        self._last_eval = now
        host_free = self.host_free(view, now)
        act = self.shrink if host_free < self.params.pressure_threshold else self.grow
        changes = []
        for vm in automated(view):
            change = act(vm, host_free)
            if change is not None:
                changes.append(change)
        return changes


__all__ = ["StatsPollingParams", "StatsPollingPolicy"]
