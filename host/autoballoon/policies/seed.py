"""``seed``: the 2013 automatic-ballooning RFC's algorithm, exactly, every number a parameter.

- Host pressure (any level at or above ``min_host_level``; the RFC listened to vmpressure
  "low", which also fires for higher levels): every VM that has not reported guest
  pressure within ``hysteresis_s`` gets its balloon inflated by ``step_mib`` relative to its
  current target, so repeated events accumulate.
- Guest pressure: if an inflation is in progress (actual > target) cancel it (target =
  actual); otherwise deflate by ``step_mib``, but only what automation inflated.

The code is the RFC's alone, and nothing departs from it: the model's host critical
override (POLICIES.md, M2), which holds for every other policy, is off for this one
(``host_critical_override``), so the ``auto-seed`` comparison mode is the RFC's algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from autoballoon.events import host_level_rank
from autoballoon.policies.base import (
    Policy,
    TargetChange,
    automated,
    automated_vm,
    in_hysteresis,
)
from autoballoon.views import ModelView


@dataclass(frozen=True)
class SeedParams:
    """The RFC's defaults."""

    step_mib: int = 32
    hysteresis_s: float = 60.0
    min_host_level: str = "low"


@dataclass
class SeedPolicy(Policy):
    """The RFC's algorithm."""

    params: SeedParams = field(default_factory=SeedParams)
    name: str = "seed"
    host_critical_override: ClassVar[bool] = False  # the RFC had no such rule

    def on_host_pressure(self, view: ModelView, level: str, now: float) -> list[TargetChange]:
        if host_level_rank(level) < host_level_rank(self.params.min_host_level):
            return []
        return [
            TargetChange(vm.name, vm.target_mib - self.params.step_mib, f"host pressure {level}")
            for vm in automated(view)
            if not in_hysteresis(vm, now, self.params.hysteresis_s)
        ]

    def on_guest_pressure(
        self, view: ModelView, vm: str, level: str, now: float
    ) -> list[TargetChange]:
        state = automated_vm(view, vm)
        if state is None:
            return []
        if state.actual_mib > state.target_mib:
            return [TargetChange(vm, state.actual_mib, f"guest pressure {level}: cancel inflation")]
        give = min(self.params.step_mib, state.auto_inflated_mib)
        if give <= 0:
            return []
        return [TargetChange(vm, state.target_mib + give, f"guest pressure {level}: deflate")]


__all__ = ["SeedParams", "SeedPolicy"]
