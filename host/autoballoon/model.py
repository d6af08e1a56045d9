"""The pure device model: per-VM balloon state, events in, balloon commands out.

The events and commands are the records of ``autoballoon.events`` (plus ``SetPolicy`` here);
policies see the model only through the read-only views of ``autoballoon.views``: each VM's
view is kept by its state (``autoballoon.vm_state``) until the state changes, and the
``vms`` a hook gets is looked up lazily, so handling an event costs what its policy hook
reads, not a rebuild of every VM's view.

No I/O and no wall clock: every event carries its timestamp ``t`` (seconds, any monotonic
origin); ``now`` is the largest finite one seen so far (a late event never moves it back).

Units: MiB as ``int`` (the adapter converts from KiB). A "target" is the memory the balloon
leaves the guest (libvirt's setMemory value): inflating lowers it, deflating raises it.

The model enforces its invariants whatever the policy asks for (see ``Model._clamp``):
- ``floor <= target <= max`` for every automatic change that lowers a target;
- automation never raises a target by more than it lowered it (``auto_inflated_mib``);
- no command for a disabled or manual VM, or when automation is globally disabled;
- at most one command per VM per handled event;
- events naming unknown VMs and malformed values are ignored; state is bounded by the
  number of VMs (at most ``ModelParams.max_vms``), never by what guests send;
- what a guest claims is bounded (``autoballoon.trust``, README "Trust model"): its stats
  never claim more memory in use than its QEMU process holds (``VmRss``), and under
  sustained host critical pressure its pressure exempts it from nothing and no automatic
  raise lifts its target above its hard floor (the override; every policy but ``seed``,
  the RFC exactly: ``Policy.host_critical_override``); not the floor while a balloon owes.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autoballoon.events import (
    GUEST_LEVELS,
    HOST_LEVELS,
    MAX_VALUE,
    STATS_KEYS,
    BalloonActual,
    BalloonCommand,
    GuestPressure,
    GuestStats,
    HostMemory,
    HostPressure,
    ManualTarget,
    SetEnabled,
    StatsPoll,
    Tick,
    VmAdded,
    VmInfo,
    VmRemoved,
    VmRss,
    finite_time,
    guest_level_rank,
    safe_int,
)
from autoballoon.trust import CriticalRun, Owing, cross_check, hard_floor
from autoballoon.views import ModelView, VmView, VmViews
from autoballoon.vm_state import VmState

if TYPE_CHECKING:
    from autoballoon.policies.base import Policy, TargetChange

# --------------------------------------------------------------------------- inputs
# The records in autoballoon.events know nothing of policies; the one input that carries a
# policy, and so the union of all inputs, live here, above the policy layer.


@dataclass(frozen=True)
class SetPolicy:
    """Switch the policy at runtime; per-VM state (and auto_inflated_mib) is kept."""

    t: float
    policy: Policy


Event = (
    HostPressure
    | GuestPressure
    | BalloonActual
    | VmAdded
    | VmRemoved
    | ManualTarget
    | GuestStats
    | VmRss
    | StatsPoll
    | HostMemory
    | SetEnabled
    | SetPolicy
    | Tick
)


# --------------------------------------------------------------------------- params


@dataclass(frozen=True)
class ModelParams:
    """Safety parameters of the model itself (not of a policy)."""

    #: Floor for VMs whose VmInfo has none.
    default_floor_mib: int = 128
    #: Guest pressure events for a VM closer together than this are coalesced (state is
    #: updated, the policy is not called) unless the level rises. QEMU already throttles
    #: per device (100 ms); this protects the model from any other flood.
    guest_coalesce_s: float = 0.1
    #: VmAdded beyond this many VMs is ignored (bounds memory whatever the adapter does).
    max_vms: int = 4096
    #: Guest stats are cut to the QEMU process's size (VmRss) while it is this fresh.
    rss_max_age_s: float = 30.0
    #: The host critical override (trust.CriticalRun): after host critical pressure has
    #: lasted this long (events at most critical_gap_s apart; PSI fires once per 2 s
    #: window), until critical_gap_s after the last critical event ...
    critical_override_after_s: float = 5.0
    critical_gap_s: float = 3.0
    #: ... no automatic raise lifts a target above this fraction of the VM's maximum;
    hard_floor_fraction: float = 0.25
    #: ... while no VM's balloon has stayed owed_mib above its target for owed_after_s
    #: (trust.Owing; a balloon that follows reaches a take within a second under TCG).
    owed_mib: int = 32
    owed_after_s: float = 2.0


# --------------------------------------------------------------------------- model


class Model:
    """The automatic-ballooning device model. ``handle(event)`` returns the commands."""

    def __init__(self, policy: Policy, params: ModelParams | None = None) -> None:
        self.policy = policy
        self.params = params or ModelParams()
        self.enabled = True
        self.now: float | None = None
        self.last_host_pressure_t: float | None = None
        self.last_host_level: str | None = None
        self.host_free_mib: int | None = None
        self.host_total_mib: int | None = None
        self.host_memory_t: float | None = None
        self._vms: dict[str, VmState] = {}
        self._names: list[str] = []  # of self._vms, sorted
        self._changed: set[str] = set()  # VMs changed, added or removed (take_changed)
        self._critical = CriticalRun(self.params.critical_override_after_s,
                                     self.params.critical_gap_s)
        self._owing = Owing(self.params.owed_mib, self.params.owed_after_s)

    # ---- read access
    @property
    def vms(self) -> Mapping[str, VmView]:
        """Snapshot of every VM's state, by name (sorted)."""
        return {name: self._vms[name].view() for name in self._names}

    def vm(self, name: str) -> VmView | None:
        return state.view() if (state := self._vms.get(name)) is not None else None

    def settings(self, name: str) -> tuple[int, int, bool, bool] | None:
        """A VM's target, what automation took of it, its enabled and manual flags (what
        its metadata keeps), without building its view (``vm``); None: no such VM."""
        s = self._vms.get(name)
        return None if s is None else (s.target_mib, s.auto_inflated_mib, s.enabled, s.manual)

    def baseline_mib(self, max_mib: int, current_mib: int) -> int:
        """The target of a VM first seen at balloon size ``current_mib`` (no saved state):
        that size, but never below the VM's hard floor (the guest writes the size)."""
        floor = min(self.params.default_floor_mib, max_mib)
        return min(max(current_mib, hard_floor(max_mib, floor, self.params.hard_floor_fraction)),
                   max_mib)

    def take_changed(self) -> set[str]:
        """The VMs whose state changed (or that came or went) since the last call."""
        changed = set(self._changed)  # every state keeps adding to this very set
        self._changed.clear()
        return changed

    def host_override(self) -> bool:
        """Whether the host critical override holds now (trust.CriticalRun), under a
        policy it applies to (the run is tracked whatever the policy)."""
        return (getattr(self.policy, "host_critical_override", True) is not False
                and self.now is not None and self._critical.active(self.now))

    def hard_floors(self) -> bool:
        """Whether the override also caps floors and raises at the hard floors: not while
        a balloon owes memory (trust.Owing)."""
        return self.host_override() and not self._owing.owed(self.now or 0.0, self._vms)

    def view(self, for_policy: bool = False) -> ModelView:
        """The model's snapshot; ``for_policy``: as policies see it (under the override,
        without pressure claims), its ``vms`` looked up lazily (during the call only)."""
        override = self.host_override()
        claims = not (for_policy and override)
        vms: Mapping[str, VmView] = (VmViews(self._vms, self._names, claims) if for_policy
                                     else {n: self._vms[n].view(claims) for n in self._names})
        return ModelView(
            vms=vms,
            enabled=self.enabled,
            last_host_pressure_t=self.last_host_pressure_t,
            last_host_level=self.last_host_level,
            host_free_mib=self.host_free_mib,
            host_total_mib=self.host_total_mib,
            host_memory_t=self.host_memory_t,
            host_override=override,
            hard_floors=override and not self._owing.owed(self.now or 0.0, self._vms),
        )

    # ---- the one entry point
    def handle(self, event: object) -> list[BalloonCommand]:
        """Apply ``event``; return the balloon commands to send (already applied to state).

        Never raises on malformed events: they are ignored.
        """
        t = finite_time(getattr(event, "t", None))
        if t is None:
            return []
        now = t if self.now is None else max(self.now, t)
        self.now = now
        changes = self._dispatch(event, now)
        return self._apply(changes, now)

    def _dispatch(self, event: object, now: float) -> list[TargetChange]:
        match event:
            case HostPressure(level=level) if level in HOST_LEVELS:
                self.last_host_pressure_t = now
                self.last_host_level = level
                if level == HOST_LEVELS[-1]:
                    self._critical.critical(now)
                return self.policy.on_host_pressure(self.view(for_policy=True), level, now)
            case GuestPressure(vm=name, level=level) if level in GUEST_LEVELS:
                return self._guest_pressure(name, level, now)
            case BalloonActual(vm=name, actual_mib=actual):
                state, value = self._get(name), safe_int(actual)
                if state is not None and value is not None:
                    state.actual_mib = min(value, state.max_mib)
                    self._owing.note(state, now)
                return []
            case VmAdded():
                self._add(event)
                return []
            case VmRemoved(vm=name):
                if isinstance(name, str) and self._vms.pop(name, None) is not None:
                    self._owing.forget(name)
                    self._names.remove(name)
                    self._changed.add(name)
                return []
            case ManualTarget(vm=name, target_mib=target):
                state, value = self._get(name), safe_int(target)
                if state is not None and value is not None:
                    state.target_mib, state.manual = min(value, state.max_mib), True
                    self._owing.note(state, now)
                return []
            case GuestStats(vm=name, stats=stats):
                return self._stats(name, stats, now)
            case VmRss(vm=name, rss_mib=rss):
                self._rss(name, rss, now)
                return []
            case StatsPoll(rss_mib=rss, stats=stats):
                return self._poll(rss, stats, now)
            case HostMemory(free_mib=free, total_mib=total):
                free_v, total_v = safe_int(free), safe_int(total, lo=1)
                if free_v is None or total_v is None:
                    return []
                self.host_free_mib = min(free_v, total_v)
                self.host_total_mib = total_v
                self.host_memory_t = now
                return self.policy.on_host_memory(self.view(for_policy=True), now)
            case SetEnabled(vm=name, enabled=enabled) if isinstance(enabled, bool):
                self._set_enabled(name, enabled)
                return []
            case SetPolicy(policy=policy) if _is_policy(policy):
                self.policy = policy
                return []
            case Tick():
                return self.policy.on_tick(self.view(for_policy=True), now)
        return []

    # ---- event helpers
    def _get(self, name: object) -> VmState | None:
        return self._vms.get(name) if isinstance(name, str) else None

    def _add(self, event: VmAdded) -> None:
        info = event.vm
        if not isinstance(info, VmInfo) or not isinstance(info.name, str):
            return
        if info.name not in self._vms and len(self._vms) >= self.params.max_vms:
            return
        max_mib = safe_int(info.max_mib)
        current = safe_int(event.current_mib)
        if max_mib is None or current is None:
            return
        floor = safe_int(info.floor_mib) if info.floor_mib is not None else None
        if floor is None:
            floor = self.params.default_floor_mib
        current = min(current, max_mib)
        taken = safe_int(event.auto_inflated_mib) or 0
        actual = safe_int(event.actual_mib) if event.actual_mib is not None else None
        if info.name not in self._vms:
            bisect.insort(self._names, info.name)
        self._vms[info.name] = state = VmState(
            name=info.name,
            max_mib=max_mib,
            floor_mib=min(floor, max_mib),
            hard_floor_mib=hard_floor(max_mib, min(floor, max_mib),
                                      self.params.hard_floor_fraction),
            target_mib=current,
            actual_mib=current if actual is None else min(actual, max_mib),
            auto_inflated_mib=min(taken, max_mib - current),
            enabled=event.enabled is not False,
            manual=event.manual is True,
            # Memory automation took before a daemon restart counts as just taken: the
            # give-back clock starts now, so a restart causes no jump in the target.
            last_inflate_t=self.now if taken else None,
        )
        state.watch(self._changed)
        self._owing.forget(info.name)  # a new boot owes nothing of the last one's
        self._owing.note(state, self.now or 0.0)

    def _guest_pressure(self, name: object, level: str, now: float) -> list[TargetChange]:
        if (state := self._get(name)) is None:
            return []
        state.last_guest_pressure_t = now
        state.last_guest_level = level
        rank = guest_level_rank(level)
        last = state.last_guest_handled_t
        if (
            last is not None
            and now - last < self.params.guest_coalesce_s
            and rank <= state.last_guest_handled_rank
        ):
            return []  # coalesced: a flood costs one comparison per message
        state.last_guest_handled_t = now
        state.last_guest_handled_rank = rank
        if self.host_override():
            return []  # under the override a message buys nothing (trust.py)
        return self.policy.on_guest_pressure(self.view(for_policy=True), state.name, level, now)

    def _rss(self, name: object, rss: object, now: float) -> None:
        state, value = self._get(name), safe_int(rss)
        if state is not None and value is not None:
            state.rss_mib, state.rss_t = value, now

    def _poll(self, rss: object, stats: object, now: float) -> list[TargetChange]:
        """A StatsPoll: as a VmRss, then a GuestStats, for each of its VMs (one view of
        the model for every policy call: nothing but the VM's own state changes between)."""
        if not isinstance(rss, Mapping) or not isinstance(stats, Mapping):
            return []
        for name, value in rss.items():
            self._rss(name, value, now)
        changes: list[TargetChange] = []
        view: ModelView | None = None
        for name, figures in stats.items():
            state = self._take_stats(name, figures, now)
            if state is not None:
                view = view or self.view(for_policy=True)
                changes += self.policy.on_stats(view, state.name, now)
        return changes

    def _stats(self, name: object, stats: object, now: float) -> list[TargetChange]:
        state = self._take_stats(name, stats, now)
        if state is None:
            return []
        return self.policy.on_stats(self.view(for_policy=True), state.name, now)

    def _take_stats(self, name: object, stats: object, now: float) -> VmState | None:
        """Record a VM's new stats (cleaned, cut to its RSS); its state, None if ignored."""
        state = self._get(name)
        if state is None or not isinstance(stats, Mapping):
            return None
        clean: dict[str, int] = {}
        try:  # a plain dict (the adapter's): only its keys; any other mapping: ours
            pairs = ([(k, v) for k, v in stats.items() if k in STATS_KEYS]
                     if type(stats) is dict else [(k, stats.get(k)) for k in STATS_KEYS])
        except Exception:
            return None
        for key, raw in pairs:
            value = safe_int(raw)
            if value is not None:
                clean[key] = value
        if state.rss_mib is not None and state.rss_t is not None \
                and now - state.rss_t <= self.params.rss_max_age_s:
            clean = cross_check(clean, state.target_mib, state.max_mib, state.rss_mib)
        if state.stats_t is not None:
            state.prev_stats, state.prev_stats_t = state.stats, state.stats_t
        state.stats, state.stats_t = clean, now
        return state

    def _set_enabled(self, name: object, enabled: bool) -> None:
        if name is None:
            self.enabled = enabled
            return
        if (state := self._get(name)) is None:
            return
        if enabled and state.manual:
            # The operator's target becomes the new baseline.
            state.manual = False
            state.auto_inflated_mib = 0
        state.enabled = enabled

    # ---- the invariants
    def _clamp(self, state: VmState, desired: int, capped: bool) -> int | None:
        """The target automation may set for ``desired``, or None for no command."""
        current = state.target_mib
        new = min(desired, state.max_mib)
        if new < current:
            new = max(new, state.floor_mib)
            return new if new < current else None
        if new > current:
            new = min(new, current + state.auto_inflated_mib)
            if capped:  # no claim buys memory above the hard floor (trust.py)
                new = min(new, max(current, state.hard_floor_mib))
            return new if new > current else None
        return None

    def _apply(self, changes: list[TargetChange], now: float) -> list[BalloonCommand]:
        if not self.enabled or not changes:
            return []
        wanted: dict[str, TargetChange] = {}
        for change in changes:
            wanted[change.vm] = change  # the last change for a VM wins
        commands: list[BalloonCommand] = []
        capped = self.hard_floors()
        for name, change in wanted.items():
            state = self._get(name)
            desired = safe_int(change.target_mib, lo=-MAX_VALUE)
            if state is None or desired is None or not state.enabled or state.manual:
                continue
            new = self._clamp(state, desired, capped)
            if new is None:
                continue
            cause = change.cause if new == desired else f"{change.cause} (clamped)"
            if new < state.target_mib:
                state.auto_inflated_mib += state.target_mib - new
                state.last_inflate_t = now
            else:
                state.auto_inflated_mib -= new - state.target_mib
                state.last_deflate_t = now
            state.target_mib = new
            self._owing.note(state, now)
            commands.append(BalloonCommand(t=now, vm=name, target_mib=new, cause=cause))
        return commands


def _is_policy(obj: object) -> bool:
    return all(
        callable(getattr(obj, m, None))
        for m in ("on_host_pressure", "on_guest_pressure", "on_tick", "on_stats")
    )


__all__ = ["Event", "Model", "ModelParams", "SetPolicy", "VmState"]
