"""``auto``: the project's default policy. Each rule is explained in ../POLICIES.md.

Rules (A1..A9 in POLICIES.md):
A1 floor per VM from the guest's own figures: actual - usable + margin, never below the
   VM's floor or ``min_floor_mib``; without fresh stats, never below ``blind_floor_fraction``
   of the maximum.
A2 step scaled by host level (low < between < medium < critical), or a fraction of the
   VM's headroom above its floor when that is more.
A3 take from the VM with the most free: the per-event budget is shared in proportion to
   each VM's headroom above its floor.
A4 hysteresis: no inflation of a VM within ``hysteresis_s`` of its guest pressure, or
   within ``distress_hold_s`` of distress seen in its stats.
A5 inflation cool-down per VM and no stacking on a balloon that lags its target.
A6 fast release on guest pressure: cancel an inflation in progress and give back
   max(release_min_mib, release_fraction x taken) (x2 on medium, everything on critical).
A7 distress from stats (swap-in, usable memory nearly gone) releases like guest pressure.
A8 floor repair: when the guest's need grows above its target, give back up to the floor.
A9 give back gradually when the host is calm (and has twice its reserve free).
A10 keep a host reserve: take as on host pressure when the host's free memory is low.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autoballoon.events import GUEST_LEVELS, host_level_rank
from autoballoon.policies.base import (
    Policy,
    TargetChange,
    automated,
    automated_vm,
    in_hysteresis,
)
from autoballoon.views import ModelView, VmView


@dataclass(frozen=True)
class AutoParams:
    """Parameters of ``auto`` (MiB, seconds, fractions). Defaults to be tuned on the rig."""

    # A1 floor
    min_floor_mib: int = 128
    margin_mib: int = 64
    margin_fraction: float = 0.05
    blind_floor_fraction: float = 0.5
    stats_max_age_s: float = 30.0
    # The guest's need is the largest seen over this window: a sample taken while a
    # workload restarts sees the guest nearly empty for a second or two, and taking
    # memory on that sample starves the run that is starting (seen on the rig).
    need_window_s: float = 6.0
    # A2 steps for host levels low, between, medium, critical ...
    steps_mib: tuple[int, int, int, int] = (16, 32, 64, 128)
    # ... or this fraction of a VM's headroom above its floor, if more: memory a guest
    # has freed comes back in a few events instead of one small step per second (tuned
    # on the rig's quick scenario: fixed steps alone left 2/3 of vanilla's host swap).
    take_fractions: tuple[float, float, float, float] = (0.125, 0.25, 0.5, 0.5)
    # A4 hysteresis
    # The RFC's 60 s kept a guest that reported pressure once at its full size for a
    # minute; the floor's need window (A1) now protects the guest, so 20 s suffices.
    hysteresis_s: float = 20.0
    # A5 cool-down and lag
    inflate_interval_s: float = 0.5
    max_lag_mib: int = 256
    min_change_mib: int = 4
    # A6 release
    release_min_mib: int = 64
    release_fraction: float = 0.25
    critical_release_fraction: float = 1.0  # share of what was taken given back on critical
    # A7 distress
    distress_swap_in_mib: int = 1
    distress_usable_mib: int = 32
    # A7 distress holds off inflation for this long. Shorter than A4's: a guest whose
    # workload filled its RAM a moment ago may have freed it all since (seen on the rig:
    # a 60 s hold kept the one guest with 500 MiB free out of reach for a whole run).
    distress_hold_s: float = 10.0
    # A10 host reserve: keep this much of the host free (MiB, or the fraction of the
    # host's memory if more); below it, take as on host pressure "low" (below half of it,
    # "between"). Reclaim only starts when the host is full, and then a workload's next
    # allocation burst is swapped out within ~2 s, faster than any balloon can react
    # (seen on the rig: ~100 MiB of host swap at each ebizzy step change). A reserve
    # makes room before the burst.
    reserve_mib: int = 64
    reserve_fraction: float = 0.10
    # A9 give back
    calm_s: float = 30.0
    give_back_step_mib: int = 32
    give_back_interval_s: float = 10.0


@dataclass
class AutoPolicy(Policy):
    """The project's best policy (the daemon's default)."""

    params: AutoParams = field(default_factory=AutoParams)
    name: str = "auto"
    #: Last time distress was seen in a VM's stats; pruned to the VMs in the view.
    _distress: dict[str, float] = field(default_factory=dict, repr=False)
    #: Recent (time, need) per VM, within need_window_s; pruned likewise.
    _needs: dict[str, list[tuple[float, int]]] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- helpers
    def margin(self, vm: VmView) -> int:
        return max(self.params.margin_mib, int(self.params.margin_fraction * vm.max_mib))

    def fresh_stats(self, vm: VmView, now: float) -> bool:
        return vm.stats_t is not None and now - vm.stats_t <= self.params.stats_max_age_s

    def guest_need(self, vm: VmView) -> int | None:
        """Target below which the guest would have no memory left without reclaim/swap."""
        stats = vm.stats
        actual = stats.get("actual", vm.actual_mib)
        if "usable" in stats:
            free = stats["usable"]
        elif "unused" in stats:
            free = stats["unused"] + stats.get("disk_caches", 0)
        else:
            return None
        return max(actual - free, 0)

    def recent_need(self, vm: VmView, now: float) -> int | None:
        """The largest need over the window (the current stats included)."""
        need = self.guest_need(vm) if self.fresh_stats(vm, now) else None
        history = [n for t, n in self._needs.get(vm.name, ())
                   if now - t <= self.params.need_window_s]
        if need is None:
            return max(history) if history else None
        return max([need, *history])

    def note_need(self, vm: VmView, now: float) -> None:
        need = self.guest_need(vm)
        if need is None:
            return
        kept = [(t, n) for t, n in self._needs.get(vm.name, ())
                if now - t <= self.params.need_window_s]
        self._needs[vm.name] = [*kept[-63:], (now, need)]

    def floor(self, vm: VmView, now: float) -> int:
        """A1: the lowest target automation may set for ``vm`` now."""
        static = max(vm.floor_mib, self.params.min_floor_mib)
        need = self.recent_need(vm, now)
        if need is None:
            return max(static, int(self.params.blind_floor_fraction * vm.max_mib))
        return max(static, need + self.margin(vm))

    def headroom(self, vm: VmView, now: float) -> int:
        return max(vm.target_mib - self.floor(vm, now), 0)

    def step(self, level: str) -> int:
        return self.params.steps_mib[max(host_level_rank(level), 0)]

    def distressed(self, vm: VmView, now: float) -> bool:
        t = self._distress.get(vm.name)
        return t is not None and now - t < self.params.distress_hold_s

    def release(self, vm: VmView, level: str, cause: str) -> list[TargetChange]:
        """A6: the change that releases memory to ``vm`` under guest pressure ``level``."""
        taken = vm.auto_inflated_mib
        amount = max(self.params.release_min_mib, math.ceil(self.params.release_fraction * taken))
        if level == "medium":
            amount *= 2
        elif level == "critical":
            amount = max(amount, math.ceil(self.params.critical_release_fraction * taken))
        new = vm.target_mib + min(amount, taken)
        cancel = vm.actual_mib > vm.target_mib
        if cancel:
            new = max(new, vm.actual_mib)
        if new <= vm.target_mib:
            return []
        what = "cancel inflation, release" if cancel else "release"
        return [TargetChange(vm.name, new, f"{cause}: {what} {new - vm.target_mib} MiB")]

    def _prune(self, view: ModelView) -> None:
        for name in [n for n in self._distress if n not in view.vms]:
            del self._distress[name]
        for name in [n for n in self._needs if n not in view.vms]:
            del self._needs[name]

    # ---------------------------------------------------------------- hooks
    def reserve(self, view: ModelView) -> int | None:
        if view.host_total_mib is None:
            return None
        return max(self.params.reserve_mib,
                   int(self.params.reserve_fraction * view.host_total_mib))

    def on_host_memory(self, view: ModelView, now: float) -> list[TargetChange]:
        reserve, free = self.reserve(view), view.host_free_mib
        if reserve is None or free is None or free >= reserve:
            return []
        level = "between" if free < reserve // 2 else "low"
        return self.take(view, level, now,
                         f"host reserve: {free} MiB free < {reserve} MiB ({level})")

    def on_host_pressure(self, view: ModelView, level: str, now: float) -> list[TargetChange]:
        return self.take(view, level, now, f"host pressure {level}")

    def take(self, view: ModelView, level: str, now: float, cause: str
             ) -> list[TargetChange]:
        """A2-A5: take memory from the eligible VMs for one event at ``level``."""
        self._prune(view)
        p = self.params
        eligible: list[tuple[int, VmView]] = []
        for vm in automated(view):
            if in_hysteresis(vm, now, p.hysteresis_s) or self.distressed(vm, now):
                continue  # A4
            if vm.last_inflate_t is not None and now - vm.last_inflate_t < p.inflate_interval_s:
                continue  # A5 cool-down
            if vm.actual_mib - vm.target_mib >= p.max_lag_mib:
                continue  # A5 balloon lags: do not stack targets
            room = self.headroom(vm, now)
            if room >= p.min_change_mib:
                eligible.append((room, vm))
        if not eligible:
            return []
        budget = self.step(level) * len(eligible)  # A2
        total = sum(room for room, _ in eligible)
        changes = []
        for room, vm in sorted(eligible, key=lambda e: (-e[0], e[1].name)):  # A3
            share = budget * room // total
            take = min(room, max(share, int(p.take_fractions[max(host_level_rank(level), 0)]
                                            * room)))
            if take >= p.min_change_mib:
                changes.append(
                    TargetChange(
                        vm.name,
                        vm.target_mib - take,
                        f"{cause}: take {take} MiB ({room} MiB above floor)",
                    )
                )
        return changes

    def on_guest_pressure(
        self, view: ModelView, vm: str, level: str, now: float
    ) -> list[TargetChange]:
        state = automated_vm(view, vm)
        if state is None:
            return []
        return self.release(state, level, f"guest pressure {level}")

    def on_stats(self, view: ModelView, vm: str, now: float) -> list[TargetChange]:
        if vm in view.vms:
            self.note_need(view.vms[vm], now)
        state = automated_vm(view, vm)
        if state is None:
            return []
        p = self.params
        swap_in = state.stats.get("swap_in")
        prev_swap_in = state.prev_stats.get("swap_in")
        usable = state.stats.get("usable")
        reason = None
        if (
            swap_in is not None
            and prev_swap_in is not None
            and swap_in - prev_swap_in >= p.distress_swap_in_mib
        ):
            reason = f"guest stats: swap-in {swap_in - prev_swap_in} MiB"
        elif usable is not None and usable < p.distress_usable_mib:
            reason = f"guest stats: usable {usable} MiB"
        if reason is not None:  # A7
            if reason.startswith("guest stats: swap-in"):
                # Swapping is distress; a full guest that does not swap is only busy
                # (its floor already keeps automation off its memory).
                self._distress[vm] = now
            return self.release(state, GUEST_LEVELS[0], reason)
        floor = self.floor(state, now)  # A8
        if state.target_mib < floor and state.auto_inflated_mib > 0:
            return [TargetChange(vm, floor, f"floor: guest needs {floor} MiB")]
        return []

    def on_tick(self, view: ModelView, now: float) -> list[TargetChange]:
        self._prune(view)
        p = self.params
        last = view.last_host_pressure_t
        if last is not None and now - last < p.calm_s:
            return []
        reserve = self.reserve(view)
        if reserve is not None and view.host_free_mib is not None \
                and view.host_free_mib < 2 * reserve:
            return []  # A9: giving back now would bring the host straight back to A10
        changes = []
        for vm in automated(view):  # A9
            if vm.auto_inflated_mib <= 0:
                continue
            if vm.last_deflate_t is not None and now - vm.last_deflate_t < p.give_back_interval_s:
                continue
            if vm.last_inflate_t is not None and now - vm.last_inflate_t < p.calm_s:
                continue
            give = min(p.give_back_step_mib, vm.auto_inflated_mib)
            changes.append(TargetChange(vm.name, vm.target_mib + give, "give back: host calm"))
        return changes


__all__ = ["AutoParams", "AutoPolicy"]
