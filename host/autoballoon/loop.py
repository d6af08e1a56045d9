"""autoballoond's decision loop: collectors -> model -> libvirt, one thread of decisions.

Inputs (libvirt events, host pressure, control commands, the workers' reports) go through
one queue (``inbox.py``: lifecycle and control inputs are never dropped, floods are
coalesced) to one loop that owns the model, so the model needs no locks and every decision
is in the order its inputs arrived. Each input is handled in its own guard: one that fails
is logged and written to the timeline, and the loop goes on. Only the loop opens, drops
and replaces the libvirt connection (libvirt's close callback only reports). A VM's
blocking calls (setMemory, setMetadata) are its worker's jobs, run on a few shared threads
(``pool.py``), the stats polls on the stats poller (``workers.py``): a hung QEMU monitor
stalls no decision. Each loop pass handles every input queued by then (up to the next tick
or poll), publishes the control socket's snapshot once (``snapshot.py``), then after_pass.

The model is the desired state; the loop converges libvirt to it. A setMemory that failed
is sent again (the model's target by then) on the next stats poll, so a failed give-back
is never lost. What libvirt holds (target, how much automation took) and the VM's enabled
and manual flags are kept in the domain's metadata (``saved_state.py``), so a restarted
daemon resumes where it was. A VM is one boot of a domain: a new domain id is a new VM.
At each stats poll the poller reads every VM's QEMU process size (``VmRss``, fed before
its stats, so the model cuts them to it) and all their stats in one call; a target the
hypervisor holds that the daemon did not set makes the VM manual (manual.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autoballoon import host_memory, pressure_feed
from autoballoon.adapter import AdapterError, AdapterFactory, Disconnected, DomainUp
from autoballoon.config import DaemonConfig
from autoballoon.events import (
    BalloonActual,
    HostMemory,
    ManualTarget,
    Tick,
    VmAdded,
    VmInfo,
    VmRemoved,
)
from autoballoon.inbox import Inbox
from autoballoon.libvirt_adapter import LibvirtAdapter, Selector
from autoballoon.manual import ManualDetector
from autoballoon.model import Model, SetPolicy
from autoballoon.policies import make_policy
from autoballoon.pool import WorkerPool
from autoballoon.saved_state import SavedState
from autoballoon.snapshot import Publisher, answer
from autoballoon.timeline import Timeline, input_records
from autoballoon.workers import (
    Command,
    CommandDone,
    Polled,
    SaveFailed,
    StatsPoller,
    TargetSeen,
    VmLink,
    VmWorker,
)

log = logging.getLogger("autoballoond")

#: Coalescable inputs pending at most (one per VM and kind in practice); see inbox.py.
QUEUE_BOUND = 10_000
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.5, 5.0
SHUTDOWN_GRACE_S = 2.0


def libvirt_adapters(config: DaemonConfig) -> AdapterFactory:
    """The real adapter for ``config``'s URI and selection."""
    selector = Selector(config.metadata_ns, config.name_pattern)
    return lambda sink, clock: LibvirtAdapter(config.uri, selector, sink, clock)


class Daemon:
    def __init__(self, config: DaemonConfig, timeline: Timeline,
                 clock: Callable[[], float] = time.monotonic,
                 adapter_factory: AdapterFactory | None = None,
                 queue_bound: int = QUEUE_BOUND) -> None:
        self.config = config
        self.timeline = timeline
        self.clock = clock
        self.model = Model(make_policy(config.policy, config.policy_params))
        self.policy_name = config.policy
        self.inbox = Inbox(queue_bound)
        self.adapter = (adapter_factory or libvirt_adapters(config))(self.put, clock)
        self.poller = StatsPoller(self.adapter, self.put, clock)
        self.pool = WorkerPool()  # the threads of the VMs' workers (pool.py)
        self.manual = ManualDetector()
        self.proc = Path("/proc")  # where the QEMU processes' status is read (VmRss)
        self.links: dict[str, VmLink] = {}
        self.stopping = threading.Event()
        self.connected = False
        now = clock()
        self._reconnect_at, self._backoff = now, RECONNECT_MIN_S
        self._next_tick = self._next_stats = now
        #: Called with (what, seconds) after each input is handled (its type's name; the
        #: time from its dequeue to its commands handed to the workers) and each stats
        #: poll ("stats poll"): for measurements (rig daemon-scale); None: not measured.
        self.observe: Callable[[str, float], None] | None = None
        self.after_pass: Callable[[], object] = lambda: None  # at each pass's end (service.py)
        self._publisher = Publisher()
        self._publish()

    # -- from any thread ---------------------------------------------------------------

    def put(self, item: object) -> None:
        self.inbox.put(item)

    def stop(self) -> None:
        self.stopping.set()
        self.inbox.wake()

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        pc = self.config.pressure_config()
        pressure = None if pc is None else pressure_feed.start(
            pc, self.clock, self.put, self.timeline, self.stopping)
        try:
            while not self.stopping.is_set():
                self.step(1.0)
        finally:
            if pressure is not None:
                pressure.close()
            self._shutdown()
            self.adapter.close()

    def _shutdown(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Let commands already decided finish and their state reach the metadata (a
        restart resumes from it); a hung VM gets ``grace_s``, not more."""
        end = time.monotonic() + grace_s
        self.poller.stop()
        while time.monotonic() < end:
            item = self.inbox.get(0.02)
            if isinstance(item, CommandDone | SaveFailed):
                self._guarded(type(item).__name__, self._handle, item)
            elif item is None and all(ln.worker.idle() for ln in self.links.values()):
                break
        for link in self.links.values():
            link.worker.stop(finish_saves=True)
        for link in self.links.values():
            link.worker.join(max(0.0, end - time.monotonic()))
        self.pool.close()

    def step(self, timeout: float) -> None:
        """One pass: (re)connect, tick and poll when due (after the inputs queued before
        them), then every input queued (waiting at most ``timeout`` seconds for the first;
        until the next tick or poll is due), then publish the snapshot."""
        now = self.clock()
        if not self.connected and now >= self._reconnect_at:
            self._guarded("connect", self._connect, now)
        if now >= self._next_tick or (self.connected and now >= self._next_stats):
            for _ in range(len(self.inbox)):  # what came before the tick and poll, first
                self._input(self.inbox.get(0.0))
        if now >= self._next_tick:
            self._next_tick = now + self.config.tick_s
            self._input(Tick(now))
        if self.connected and now >= self._next_stats:
            self._next_stats = now + self.config.stats_period_s
            self._guarded("stats poll", self._poll, now)
        due = min(self._next_tick, self._next_stats if self.connected else self._reconnect_at)
        item = self.inbox.get(min(timeout, max(0.0, due - self.clock())))
        while item is not None:
            self._input(item)
            item = self.inbox.get(0.0) if self.clock() < due else None
        self._publish()
        self.after_pass()

    def idle(self) -> bool:
        """No input pending, every worker and the poller idle (for tests)."""
        return (all(link.worker.idle() for link in self.links.values())
                and self.poller.idle() and not len(self.inbox))

    def _input(self, item: object) -> None:
        """Handle one input in its guard (timed for ``observe``)."""
        start = time.perf_counter()
        self._guarded(type(item).__name__, self._handle, item)
        if self.observe is not None:
            self.observe(type(item).__name__, time.perf_counter() - start)

    def _guarded(self, what: str, fn: Callable[[Any], object], arg: object) -> None:
        try:
            fn(arg)
        except Exception as e:  # one input's failure never ends the loop
            log.exception("handling %s failed; going on", what)
            self.timeline.write("error", input=what, error=f"{type(e).__name__}: {e}")

    def _handle(self, item: object) -> None:
        match item:  # the frequent ones first (at 500 VMs ~200 reports a second)
            case BalloonActual(vm=name, actual_mib=actual):
                self._feed(item)
                self.manual.actual(name, actual)  # a size: reported, never "manual"
            case CommandDone():
                self._command_done(item)
            case Polled():
                self._polled(item)
            case DomainUp():
                self._vm_up(item)
            case VmRemoved(t=t, vm=name):
                self._vm_gone(t, name)
            case Disconnected():
                self._disconnected(item)
            case SaveFailed():
                self._save_failed(item)
            case TargetSeen():
                self._target_seen(item)
            case _:
                self._feed(item)

    def _feed(self, ev: object) -> None:
        """One model input: to the timeline, through the model, commands to the workers."""
        if self.timeline.active:  # not built for nothing
            for fields in input_records(ev):
                self.timeline.write("input", **fields)
        if isinstance(ev, SetPolicy):
            self.policy_name = ev.policy.name
        name = getattr(ev, "vm", None)
        before = self.model.settings(name) if isinstance(name, str) else None
        commands = self.model.handle(ev)
        for cmd in commands:
            self._dispatch(cmd.vm, cmd.target_mib, cmd.cause, getattr(ev, "t", cmd.t))
        touched = {cmd.vm for cmd in commands}
        if isinstance(name, str) and name not in touched and (link := self.links.get(name)):
            after = self.model.settings(name)
            if before and after and after[0] != before[0]:
                # The target moved without a command of ours (the operator's): libvirt has it.
                link.applied = SavedState(after[0], after[1])
                link.sent, link.failed = after[0], False
            touched.add(name)
        for vm in touched:
            self._sync(vm)

    def _dispatch(self, name: str, target: int, cause: str, arrived: float,
                  retry: bool = False) -> None:
        """Hand the model's new target to the VM's worker (the model has applied it)."""
        link, now = self.links.get(name), self.model.settings(name)
        if link is None or now is None:
            return
        link.sent = target
        if not retry:
            link.cause = cause
        self.manual.commanded(name, target)
        _, taken, enabled, manual = now
        then = SavedState(target, taken, enabled, manual)
        link.worker.submit(command=Command(target, taken, cause, arrived, then, link.saves))

    def _command_done(self, done: CommandDone) -> None:
        fields = {"vm": done.ref.name, "target_mib": done.target_mib, "cause": done.cause}
        if done.error is None:
            self.timeline.write("command", **fields, reaction_s=round(done.reaction_s, 6))
        else:
            self.timeline.write("command-failed", **fields, error=done.error)
            log.warning("%s: setMemory to %d MiB (%s) failed: %s", done.ref.name,
                        done.target_mib, done.cause, done.error)
        link = self.links.get(done.ref.name)
        if link is None or link.ref != done.ref:
            return  # gone, or rebooted since
        if done.error is None:
            link.applied, link.done_t = SavedState(done.target_mib,
                                                   done.auto_inflated_mib), done.t
            link.failed = link.failed and done.target_mib != link.sent
            if done.saved is not None and done.saves == link.saves:
                link.saved = done.saved  # its worker writes it next (no save of ours since)
        elif done.target_mib == link.sent:
            link.failed = True
        self._sync(done.ref.name)

    def _target_seen(self, seen: TargetSeen) -> None:
        """A target the hypervisor holds: the operator's (rule in manual.py) unless it is
        the one libvirt last accepted from us or the one on its way."""
        link = self.links.get(seen.ref.name)
        if link is None or link.ref != seen.ref:
            return
        ours = (link.applied.target_mib, link.sent)
        if any(abs(seen.target_mib - t) <= self.manual.slack_mib for t in ours if t is not None):
            return
        after = (seen.asked_t is not None and seen.asked_t > link.done_t
                 and link.sent == link.applied.target_mib)  # read after our last command
        operator = self.manual.target(seen.ref.name, seen.target_mib, latest_only=after)
        if operator is not None:
            log.info("%s: target %d MiB set by someone else: the VM is under manual "
                     "control", seen.ref.name, operator)
            self._feed(ManualTarget(seen.t, seen.ref.name, operator))

    def _save_failed(self, failed: SaveFailed) -> None:
        log.warning("%s: cannot keep its state in the domain's metadata: %s",
                    failed.ref.name, failed.error)
        link = self.links.get(failed.ref.name)
        if link is not None and link.ref == failed.ref and link.saved == failed.state:
            link.saved = None  # written again on the next poll

    def _sync(self, name: str) -> None:
        """Keep the VM's metadata in step: the model's state when libvirt has its target,
        else what libvirt has, with the current flags."""
        link, now = self.links.get(name), self.model.settings(name)
        if link is None or now is None:  # (no view built: ~200 a second at 500 VMs)
            return
        target, taken, enabled, manual = now
        applied = link.applied
        if target == applied.target_mib:
            want = SavedState(target, taken, enabled, manual)
        else:  # (dataclasses.replace costs ten times as much)
            want = SavedState(applied.target_mib, applied.auto_inflated_mib, enabled, manual)
        if want != link.saved:
            link.saved, link.saves = want, link.saves + 1
            link.worker.submit(save=want)

    # -- domains -----------------------------------------------------------------------

    def _vm_up(self, up: DomainUp) -> None:
        link = self.links.get(up.vm)
        if link is not None and link.ref == up.ref:  # reported again (at a reconnect, or
            link.worker.submit(stats_period_s=self.config.balloon_period_s)  # by connect
            return  # and by its start event): only the stats period is set again
        if link is not None:
            self._vm_gone(up.t, up.vm)  # a new boot: a new VM to the model
        saved = up.saved
        if saved is not None and saved.target_mib is not None and saved.target_mib > up.max_mib:
            log.warning("%s: ignoring its saved state: target %d MiB above its maximum %d",
                        up.vm, saved.target_mib, up.max_mib)
            saved = None
        # Never saved: from the balloon size (guest-written: at least the hard floor),
        # saved at once (link.saved None), so a restart never reads what a guest wrote.
        first, saved = saved, saved or SavedState(None)
        target = (self.model.baseline_mib(up.max_mib, up.current_mib)
                  if saved.target_mib is None else saved.target_mib)
        ev = VmAdded(up.t, VmInfo(up.vm, up.max_mib), target, saved.auto_inflated_mib,
                     saved.enabled, saved.manual, up.current_mib)
        worker = VmWorker(up.ref, self.adapter, self.put, self.clock,
                          self.config.balloon_period_s, self.pool)
        self.links[up.vm] = link = VmLink(up.ref, worker, SavedState(target), first, target)
        self.manual.added(up.vm, target)
        self._feed(ev)
        view = self.model.vm(up.vm)
        if view is None:  # the model refused it (too many VMs)
            self.links.pop(up.vm)
            link.worker.stop()
            return
        link.applied = SavedState(view.target_mib, view.auto_inflated_mib)
        self._sync(up.vm)

    def _vm_gone(self, t: float, name: str) -> None:
        link = self.links.pop(name, None)
        if link is not None:
            link.worker.stop()
        self.manual.removed(name)
        self._feed(VmRemoved(t, name))

    # -- the connection ----------------------------------------------------------------

    def _connect(self, now: float) -> None:
        """Connect; reconcile the model with the running domains (their DomainUp reports
        are queued: a new one is added, a new boot of a known one re-added)."""
        try:
            ups = self.adapter.connect()
        except AdapterError as e:
            self.timeline.write("libvirt", state="unreachable", error=str(e))
            log.warning("libvirt unreachable, next try in %.1f s: %s", self._backoff, e)
            self._reconnect_at = now + self._backoff
            self._backoff = min(self._backoff * 2, RECONNECT_MAX_S)
            return
        self.connected, self._backoff = True, RECONNECT_MIN_S
        live = {u.vm: u.ref for u in ups}
        for name, link in list(self.links.items()):
            if live.get(name) != link.ref:
                self._vm_gone(now, name)
        self.timeline.write("libvirt", state="connected", domains=sorted(live))
        log.info("connected to %s: %d managed domains", self.config.uri, len(live))

    def _disconnected(self, lost: Disconnected) -> None:
        if not self.connected:
            return
        if self.adapter.alive():
            log.info("ignoring a report of an older connection: %s", lost.reason)
            return
        self.connected = False
        self.adapter.close()
        self.timeline.write("libvirt", state="disconnected", reason=lost.reason)
        log.warning("libvirt connection lost (%s); reconnecting", lost.reason)
        self._reconnect_at, self._backoff = self.clock(), RECONNECT_MIN_S

    def _poll(self, now: float) -> None:
        """Every stats period: host memory, failed commands again, and every VM's RSS,
        stats and target to the poller (workers.py; its figures come back as inputs)."""
        start = time.perf_counter()
        if not self.adapter.alive():
            self._disconnected(Disconnected(now, "the connection is no longer alive"))
            return
        try:
            free, total = host_memory.read(self._host_memcg())
        except (OSError, ValueError) as e:
            log.warning("host memory unreadable: %s", e)
        else:
            self._input(HostMemory(now, free, total))
        self.pool.check()  # a thread more if hung calls hold the others
        for name, link in list(self.links.items()):
            self._retry(name, link, now)
            if link.saved is None:  # its last save failed (every change is synced)
                self._sync(name)
        if self.links and not self.poller.submit([ln.ref for ln in self.links.values()],
                                                 self.proc):
            log.debug("stats poll skipped: the previous one is still running")
        if self.observe is not None:
            self.observe("stats poll", time.perf_counter() - start)

    def _polled(self, polled: Polled) -> None:
        """A poll's figures (an older poll's first): the RSS and stats of every VM still
        managed (same boot) to the model as one input, then the targets libvirt holds."""
        if polled.earlier is not None:
            self._polled(polled.earlier)
        poll, seen = polled.split(lambda r: getattr(self.links.get(r.name), "ref", None) == r)
        if poll is not None:
            self._feed(poll)
        for target in seen:
            self._target_seen(target)

    def _retry(self, name: str, link: VmLink, now: float) -> None:
        view = self.model.vm(name) if link.failed else None
        if view is None:
            return
        if view.target_mib == link.applied.target_mib:
            link.failed = False  # nothing to send any more
        elif self.model.enabled and view.automated:
            link.failed = False
            self._dispatch(name, view.target_mib, f"retry: {link.cause}", now, retry=True)

    def _host_memcg(self) -> Path | None:
        pc = self.config.pressure_config()
        if pc is None or pc.kind == "psi-host":
            return None
        return pc.resolved_path

    # -- control (from the control thread) ---------------------------------------------

    def _publish(self) -> None:
        """The snapshot the control thread reads (snapshot.py), once per pass."""
        self.snapshot = self._publisher.publish(self.model, self.manual, self.policy_name,
                                                self.inbox.dropped)

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        """A control request (from the control socket's threads): snapshot.answer."""
        return answer(request, self.snapshot, self.put, self.clock)


__all__ = ["QUEUE_BOUND", "Daemon", "VmLink", "libvirt_adapters"]
