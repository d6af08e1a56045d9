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
A9 give back gradually when the host is calm, at most the host's free memory above twice
   its reserve per tick, neediest VM first.
A10 keep a host reserve: take as on host pressure when the host's free memory is low.
A11 claims budget: a guest's claims (pressure, swap-in) exempt its VM from taking (A4, A7)
   and release memory (A6, A7) for at most ``claim_budget_s`` per ``claim_window_s``.
A12 under the model's host critical override (sustained critical pressure), claims exempt
   no VM and the A1 floor is at most the VM's hard floor.
A13 a pressure message is judged by the guest's own stats on both sides of it: when the
   stats just before it and the first stats at least ``judge_after_s`` after it both show
   ``contradiction_margins`` margins usable (beyond what was given to the VM since), the
   claim was false: the exemption in progress ends and ``refuted_charge_s`` of the A11
   budget is spent. The message itself is honoured as any claim: stats can be older than
   an honest guest's burst, never newer. After a false claim the VM is on probation: its
   messages buy nothing until stats that show it short (less than the margins usable).
A14 a guest quiet for ``quiet_s`` (policies/quiet.py) is probed below its need, down to
   its hard floor, ``probe_step_mib`` below its A1 floor per take, into its own swap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autoballoon.events import GUEST_LEVELS, host_level_rank
from autoballoon.policies.base import Policy, TargetChange, automated, automated_vm
from autoballoon.policies.claims import ClaimBudget
from autoballoon.policies.quiet import QuietTracker
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
    # A growing guest keeps growing: its floor adds how much its need (the windowed
    # largest) rose over the last growth_window_s, at most growth_cap_mib. With the margin
    # alone a guest growing 100 MiB per 10 s was taken down to need + 64 MiB and swapped
    # at each step until its pressure came (quick: 7,400-9,000 guest pages swapped out per
    # run with the v2 guest signal, which speaks only once allocations stall).
    growth_window_s: float = 10.0
    growth_cap_mib: int = 128
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
    # A11 claims budget: a guest's claims keep its VM out of reach for at most this long
    # in any window of claim_window_s (a message every 20 s kept a guest exempt forever).
    claim_budget_s: float = 120.0
    claim_window_s: float = 600.0
    # A13: a message is false when the guest's stats just before it (at most
    # contradiction_max_age_s old) and its first stats at least judge_after_s after it both
    # show this many A1 margins usable beyond what it was given since (quick: an honest
    # vm-up's critical messages had 39-120 MiB less than what it was given since; the
    # liar in quick-flood 109 MiB, 1.7 margins, with nothing given). judge_after_s: the
    # balloon driver's figures are up to a stats period (1 s) old when they arrive. Each
    # false claim costs refuted_charge_s of A11's budget: three spend it all. After one,
    # the VM is on probation: its messages buy nothing until stats that look short.
    contradiction_margins: float = 1.0
    contradiction_max_age_s: float = 3.0
    judge_after_s: float = 2.0
    refuted_charge_s: float = 40.0
    # A14: quiet after quiet_s without a rise of its need, swap-in, quiet_major_faults or a
    # message; then probe_step_mib below its A1 floor per take (0: off). idle (tuning):
    # 448 MiB held and never touched counted as need; the host swapped QEMU's pages.
    quiet_s: float = 20.0
    quiet_major_faults: int = 256
    probe_step_mib: int = 32


@dataclass
class AutoPolicy(Policy):
    """The project's best policy (the daemon's default)."""

    params: AutoParams = field(default_factory=AutoParams)
    name: str = "auto"
    #: Recent (time, need) per VM, within need_window_s; pruned to the VMs in the view.
    _needs: dict[str, list[tuple[float, int]]] = field(default_factory=dict, repr=False)
    #: A11: the exemptions granted to each VM's claims; pruned likewise.
    _claims: ClaimBudget = field(init=False, repr=False)
    #: A13: per VM, the oldest message still to be judged: (its time, the VM's target then).
    _unjudged: dict[str, tuple[float, int]] = field(default_factory=dict, repr=False)
    #: A13: VMs on probation (a message refuted, no stats looking short since).
    _refuted: set[str] = field(default_factory=set, repr=False)
    #: A14: which VMs are quiet, since when.
    _quiet: QuietTracker = field(init=False, repr=False)
    #: A9: the host figure's time, and what was given back since (it cannot show yet).
    _given: tuple[float | None, int] = field(default=(None, 0), repr=False)

    def __post_init__(self) -> None:
        self._claims = ClaimBudget(self.params.claim_budget_s, self.params.claim_window_s)
        self._quiet = QuietTracker(self.params.quiet_major_faults)

    def exempt(self, vm: str, now: float) -> bool:
        """A4/A7/A11: whether ``vm``'s guest claims keep it out of reach at ``now``."""
        return self._claims.exempt(vm, now)

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

    def growth(self, vm: VmView, now: float, need: int) -> int:
        """A1: how much the windowed need rose over the last ``growth_window_s`` (0 when it
        did not, or without a need recorded that long ago), at most ``growth_cap_mib``."""
        p = self.params
        then = now - p.growth_window_s
        before = [n for t, n in self._needs.get(vm.name, ())
                  if then - p.need_window_s < t <= then]
        if not before:
            return 0
        return min(max(need - max(before), 0), p.growth_cap_mib)

    def note_need(self, vm: VmView, now: float) -> None:
        need = self.guest_need(vm)
        if need is None:
            return
        keep_s = self.params.need_window_s + self.params.growth_window_s
        kept = [(t, n) for t, n in self._needs.get(vm.name, ()) if now - t <= keep_s]
        self._needs[vm.name] = [*kept[-127:], (now, need)]

    def note_quiet(self, vm: VmView, now: float, busy: bool = False) -> None:
        """A14: stats of ``vm`` (or, ``busy``, a message from it off A13's probation)."""
        self._quiet.note(vm.name, now, self.guest_need(vm), vm.stats, vm.prev_stats,
                         self.margin(vm) // 2, busy)

    def quiet(self, vm: VmView, now: float) -> bool:
        """A14: whether ``vm`` has been quiet for ``quiet_s`` and A14 is on."""
        return self.params.probe_step_mib > 0 and self.fresh_stats(vm, now) \
            and self._quiet.quiet_for(vm.name, now) >= self.params.quiet_s

    def floor(self, vm: VmView, now: float, override: bool = False, probe: bool = True
              ) -> int:
        """A1: the lowest target automation may set for ``vm`` now (A12: ``override``;
        A14: a quiet VM's is its hard floor, unless not ``probe``)."""
        p = self.params
        static = max(vm.floor_mib, p.min_floor_mib)
        need = self.recent_need(vm, now)
        if need is not None:
            # The model cut the need to the RSS.
            claimed = need + self.margin(vm) + self.growth(vm, now, need)
        else:
            claimed = int(p.blind_floor_fraction * vm.max_mib)
            if vm.rss_mib is not None and vm.rss_t is not None \
                    and now - vm.rss_t <= p.stats_max_age_s:
                claimed = min(claimed, vm.rss_mib + self.margin(vm))
        if override or (probe and self.quiet(vm, now)):
            claimed = min(claimed, vm.hard_floor_mib)
        return max(static, claimed)

    def headroom(self, vm: VmView, now: float, override: bool = False) -> int:
        """``vm``'s target above its floor (A14: at most probe_step_mib below the A1's)."""
        a1 = self.floor(vm, now, override, probe=False)
        room = max(vm.target_mib - a1, 0)
        if self.quiet(vm, now):
            below = min(vm.target_mib, a1) - self.floor(vm, now, override)
            room += min(max(below, 0), self.params.probe_step_mib)
        return room

    def step(self, level: str) -> int:
        return self.params.steps_mib[max(host_level_rank(level), 0)]

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
        self._claims.prune(view.vms)
        self._quiet.prune(view.vms)
        for d in (self._needs, self._unjudged):
            for name in [n for n in d if n not in view.vms]:
                del d[name]
        self._refuted &= set(view.vms)

    def comfortable(self, vm: VmView, usable: int) -> bool:
        """A13: ``usable`` MiB is more than a guest out of memory could have."""
        return usable >= self.params.contradiction_margins * self.margin(vm)

    def note_claim(self, vm: VmView, now: float) -> None:
        """A13: a message at ``now`` is to be judged if the stats before it look
        comfortable (otherwise it is plausible and never charged)."""
        p = self.params
        usable = vm.stats.get("usable")
        if vm.name in self._unjudged or usable is None or vm.stats_t is None \
                or now - vm.stats_t > p.contradiction_max_age_s:
            return
        if self.comfortable(vm, usable):
            self._unjudged[vm.name] = (now, vm.target_mib)

    def on_probation(self, vm: VmView) -> bool:
        """A13: after a refuted message, the VM's messages buy nothing until stats that
        look short (``on_stats`` ends it). Stale stats do not end it: in quick-flood a
        4 s gap in the liar's stats (the poll skipped its busy monitor) let one message
        through, and its 20 s exemption kept the liar out of reach until host critical."""
        return vm.name in self._refuted

    def judge_claim(self, vm: VmView, now: float) -> None:
        """A13: with stats arrived at ``now``, judge the VM's message waiting for them; a
        false one is charged and puts the VM on probation."""
        waiting = self._unjudged.get(vm.name)
        if waiting is None or now - waiting[0] < self.params.judge_after_s:
            return
        del self._unjudged[vm.name]
        usable = vm.stats.get("usable")
        given = max(vm.target_mib - waiting[1], 0)
        if usable is not None and self.comfortable(vm, usable - given):
            self._claims.refute(vm.name, now, self.params.refuted_charge_s)
            self._refuted.add(vm.name)

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
        override = view.host_override
        eligible: list[tuple[int, VmView]] = []
        for vm in automated(view):
            if not override and self._claims.exempt(vm.name, now):
                continue  # A4, A7 (A11: within the claims budget; A12: not under override)
            if vm.last_inflate_t is not None and now - vm.last_inflate_t < p.inflate_interval_s:
                continue  # A5 cool-down
            if vm.actual_mib - vm.target_mib >= p.max_lag_mib:
                continue  # A5 balloon lags: do not stack targets
            room = self.headroom(vm, now, view.hard_floors)
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
        if self.on_probation(state):
            return []  # A13: its stats say what its last false claims said
        self.note_claim(state, now)  # A13
        self.note_quiet(state, now, busy=True)  # A14
        if not self._claims.grant(vm, now, self.params.hysteresis_s):
            return []  # A11: a claim beyond the budget buys nothing
        return self.release(state, level, f"guest pressure {level}")

    def on_stats(self, view: ModelView, vm: str, now: float) -> list[TargetChange]:
        if vm in view.vms:
            self.note_need(view.vms[vm], now)
            self.note_quiet(view.vms[vm], now)  # A14
        state = automated_vm(view, vm)
        if state is None:
            return []
        self.judge_claim(state, now)  # A13
        p = self.params
        swap_in = state.stats.get("swap_in")
        prev_swap_in = state.prev_stats.get("swap_in")
        usable = state.stats.get("usable")
        if usable is not None and not self.comfortable(state, usable):
            self._refuted.discard(vm)  # A13: short now, its claims may be true again
        reason = None
        if (
            swap_in is not None
            and prev_swap_in is not None
            and swap_in - prev_swap_in >= p.distress_swap_in_mib
        ):
            reason = f"guest stats: swap-in {swap_in - prev_swap_in} MiB"
        elif usable is not None and usable < p.distress_usable_mib \
                and not self.quiet(state, now):  # A14: a probed guest makes room by swapping
            reason = f"guest stats: usable {usable} MiB"
        if reason is not None:  # A7
            # Swapping is distress (held off); a full guest that does not swap is only
            # busy (its floor already keeps automation off its memory). A11: either
            # claim buys nothing once the budget is spent (A8 below still holds).
            hold = p.distress_hold_s if reason.startswith("guest stats: swap-in") else 0.0
            if self._claims.grant(vm, now, hold):
                return self.release(state, GUEST_LEVELS[0], reason)
        floor = self.floor(state, now, view.hard_floors)  # A8
        if state.target_mib < floor and state.auto_inflated_mib > 0:
            return [TargetChange(vm, floor, f"floor: guest needs {floor} MiB")]
        return []

    def on_tick(self, view: ModelView, now: float) -> list[TargetChange]:
        """A9: give back, within what the host can hold, the neediest VM first."""
        self._prune(view)
        p = self.params
        last = view.last_host_pressure_t
        if last is not None and now - last < p.calm_s:
            return []
        budget = self.give_back_budget(view)
        if budget is not None and budget < p.min_change_mib:
            return []  # giving back now would bring the host straight back to A10
        wanting = [
            vm for vm in automated(view)
            if vm.auto_inflated_mib > 0
            and (vm.last_deflate_t is None or now - vm.last_deflate_t >= p.give_back_interval_s)
            and (vm.last_inflate_t is None or now - vm.last_inflate_t >= p.calm_s)
        ]
        # Neediest first: the least headroom above its A1 floor, then the most taken.
        wanting.sort(key=lambda vm: (self.headroom(vm, now), -vm.auto_inflated_mib, vm.name))
        changes = []
        for vm in wanting:
            give = min(p.give_back_step_mib, vm.auto_inflated_mib)
            if budget is not None:
                give = min(give, budget)
                if give < min(p.min_change_mib, vm.auto_inflated_mib):
                    break
                budget -= give
                self._given = (self._given[0], self._given[1] + give)
            changes.append(TargetChange(vm.name, vm.target_mib + give, "give back: host calm"))
        return changes

    def give_back_budget(self, view: ModelView) -> int | None:
        """A9: what may be given back now, in all: the host's free memory above twice its
        reserve, less what was given back since it was measured; None without figures."""
        reserve, free = self.reserve(view), view.host_free_mib
        if reserve is None or free is None:
            return None
        if self._given[0] != view.host_memory_t:
            self._given = (view.host_memory_t, 0)  # a new figure shows what was given
        return free - 2 * reserve - self._given[1]


__all__ = ["AutoParams", "AutoPolicy"]
