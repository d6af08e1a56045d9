"""autoballoond: collectors -> model -> libvirt, one thread of decisions.

Inputs (libvirt events, host pressure, control commands, ticks) go through one bounded
queue to one loop that owns the model, so the model needs no locks and every decision is
in the order its inputs arrived. Every input and every command is appended to a JSONL
timeline (with the reaction time from the input's arrival to the return of setMemory).

How much automation has taken from each VM is kept in the domain's own metadata, so a
restarted daemon resumes without a jump in targets and never gives back more than it took.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import libvirt

from autoballoon import host_memory
from autoballoon import libvirt_adapter as la
from autoballoon.config import ConfigError, DaemonConfig, load_config, parse_assignments
from autoballoon.control import ControlServer
from autoballoon.events import (
    BalloonActual,
    BalloonCommand,
    GuestStats,
    HostMemory,
    HostPressure,
    ManualTarget,
    SetEnabled,
    Tick,
    VmAdded,
    VmInfo,
    VmRemoved,
)
from autoballoon.manual import ManualDetector
from autoballoon.model import Model, SetPolicy
from autoballoon.policies import POLICIES, PolicyParamError, make_policy
from autoballoon.pressure import PressureSource, PressureSourceError

log = logging.getLogger("autoballoond")

STATE_NS = "urn:autoballoon:daemon:1"
QUEUE_BOUND = 10_000


@dataclass
class Timeline:
    """JSONL of every input and command; `wall` for humans, `t` (monotonic) for math."""

    out: TextIO | None
    clock: Callable[[], float] = time.time

    def write(self, kind: str, **fields: Any) -> None:
        if self.out is None:
            return
        rec = {"wall": round(self.clock(), 6), "kind": kind, **fields}
        self.out.write(json.dumps(rec, default=str) + "\n")
        self.out.flush()


def _event_fields(ev: object) -> dict[str, Any]:
    if not dataclasses.is_dataclass(ev) or isinstance(ev, type):
        return {"event": type(ev).__name__}
    d = {f.name: getattr(ev, f.name) for f in dataclasses.fields(ev)}
    d.pop("policy", None)
    if "vm" in d and isinstance(d["vm"], VmInfo):
        d["vm"] = dataclasses.asdict(d["vm"])
    return {"event": type(ev).__name__, **d}


@dataclass
class Daemon:
    config: DaemonConfig
    timeline: Timeline
    clock: Callable[[], float] = time.monotonic
    inputs: queue.Queue[object] = field(default_factory=lambda: queue.Queue(QUEUE_BOUND))
    dropped_inputs: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    snapshot: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model = Model(make_policy(self.config.policy, self.config.policy_params))
        self.policy_name = self.config.policy
        self.adapter = la.LibvirtAdapter(
            self.config.uri,
            la.Selector(self.config.metadata_ns, self.config.name_pattern),
            self.put, self.clock)
        self.manual = ManualDetector()
        self.reaction_s: list[float] = []

    # -- inputs from any thread ------------------------------------------------------------

    def put(self, item: object) -> None:
        try:
            self.inputs.put_nowait(item)
        except queue.Full:
            self.dropped_inputs += 1  # bounded memory under a flood; counted in `show`

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        pressure = self._start_pressure()
        next_tick = self.clock()
        next_stats = self.clock()
        try:
            self._connect()
            while not self.stopping.is_set():
                now = self.clock()
                if now >= next_tick:
                    next_tick = now + self.config.tick_s
                    self.put(Tick(now))
                if now >= next_stats and self.adapter.connected:
                    next_stats = now + self.config.stats_period_s
                    self._poll_stats(now)
                try:
                    item = self.inputs.get(timeout=max(0.0, next_tick - self.clock()))
                except queue.Empty:
                    continue
                self._handle(item)
        finally:
            if pressure is not None:
                pressure.close()
            self.adapter.close()

    def stop(self) -> None:
        self.stopping.set()
        self.put(Tick(self.clock()))

    def _start_pressure(self) -> PressureSource | None:
        pc = self.config.pressure_config()
        if pc is None:
            return None
        source = PressureSource(pc, self.clock).open()
        threading.Thread(target=self._pressure_loop, args=(source,), name="host-pressure",
                         daemon=True).start()
        log.info("host pressure from %s", source.source)
        return source

    def _pressure_loop(self, source: PressureSource) -> None:
        """Feed host pressure to the queue; reopen the source if its cgroup went away."""
        while not self.stopping.is_set():
            try:
                source.run(lambda e: self.put(HostPressure(e.t, e.level)))  # type: ignore[arg-type]
                return  # stopped
            except PressureSourceError as e:
                self.timeline.write("pressure", state="lost", error=str(e))
                while not self.stopping.wait(2.0):
                    try:
                        source.open()
                        self.timeline.write("pressure", state="reopened")
                        break
                    except (PressureSourceError, OSError):
                        continue

    def _connect(self) -> None:
        """Connect (retrying while libvirtd is away) and reconcile the model with libvirt."""
        delay = 0.5
        while not self.stopping.is_set():
            try:
                ups = self.adapter.connect()  # their DomainUp events are queued
                break
            except libvirt.libvirtError as e:
                self.timeline.write("libvirt", state="unreachable", error=str(e))
                self.stopping.wait(delay)
                delay = min(delay * 2, 5.0)
        else:
            return
        live = {u.vm for u in ups}
        for name in list(self.model.vms):
            if name not in live:
                self._handle(VmRemoved(self.clock(), name))
        self.timeline.write("libvirt", state="connected", domains=sorted(live))

    def _host_memcg(self) -> Path | None:
        pc = self.config.pressure_config()
        if pc is None or pc.kind == "psi-host":
            return None
        return pc.resolved_path

    def _poll_stats(self, now: float) -> None:
        try:
            free, total = host_memory.read(self._host_memcg())
            self._handle(HostMemory(now, free, total))
        except (OSError, ValueError) as e:
            log.warning("host memory unreadable: %s", e)
        for name in list(self.model.vms):
            try:
                stats = self.adapter.memory_stats(name)
            except libvirt.libvirtError:
                continue
            self._handle(GuestStats(now, name, stats))

    def _translate(self, item: object) -> list[object]:
        if isinstance(item, la.DomainUp):
            if item.vm in self.model.vms:
                return []
            taken = self.adapter.load_auto_inflated(item.vm, STATE_NS)
            self.manual.added(item.vm, item.current_mib)
            return [VmAdded(item.t, VmInfo(item.vm, item.max_mib), item.current_mib, taken)]
        if isinstance(item, VmRemoved):
            self.manual.removed(item.vm)
            return [item]
        if isinstance(item, BalloonActual):
            out: list[object] = [item]
            # Someone else's setMemory (rule in manual.py): yield the VM to them.
            manual = self.manual.actual(item.vm, item.actual_mib)
            if manual is not None:
                out.append(ManualTarget(item.t, item.vm, manual))
            return out
        if isinstance(item, la.Disconnected):
            self.timeline.write("libvirt", state="disconnected", reason=item.reason)
            self._connect()
            return []
        return [item]

    def _handle(self, item: object) -> None:
        for ev in self._translate(item):
            self.timeline.write("input", **_event_fields(ev))
            if isinstance(ev, SetPolicy):
                self.policy_name = ev.policy.name
            for cmd in self.model.handle(ev):
                self._apply(cmd, getattr(ev, "t", cmd.t))
        self._publish()

    def _apply(self, cmd: BalloonCommand, arrived: float) -> None:
        try:
            self.adapter.set_target(cmd.vm, cmd.target_mib)
        except libvirt.libvirtError as e:
            self.timeline.write("command-failed", vm=cmd.vm, target_mib=cmd.target_mib,
                                cause=cmd.cause, error=str(e))
            return
        reaction = self.clock() - arrived
        self.reaction_s.append(reaction)
        del self.reaction_s[:-10_000]
        self.manual.commanded(cmd.vm, cmd.target_mib)
        state = self.model.vm(cmd.vm)
        if state is not None:
            self.adapter.save_auto_inflated(cmd.vm, STATE_NS, state.auto_inflated_mib)
        self.timeline.write("command", vm=cmd.vm, target_mib=cmd.target_mib, cause=cmd.cause,
                            reaction_s=round(reaction, 6))

    def _publish(self) -> None:
        view = self.model.view()
        self.snapshot = {
            "policy": self.policy_name,
            "enabled": view.enabled,
            "dropped_inputs": self.dropped_inputs,
            "last_host_level": view.last_host_level,
            "vms": {n: {"max_mib": v.max_mib, "floor_mib": v.floor_mib,
                        "target_mib": v.target_mib, "actual_mib": v.actual_mib,
                        "auto_inflated_mib": v.auto_inflated_mib,
                        "last_guest_level": v.last_guest_level, "enabled": v.enabled,
                        "manual": v.manual}
                    for n, v in view.vms.items()},
        }

    # -- control commands (from the control thread) ---------------------------------------

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "show":
            return {"ok": True, **self.snapshot}
        if cmd in ("enable", "disable"):
            vm = request.get("vm")
            if vm is not None and vm not in self.snapshot.get("vms", {}):
                return {"ok": False, "error": f"no managed VM {vm!r}"}
            self.put(SetEnabled(self.clock(), vm, cmd == "enable"))
            return {"ok": True}
        if cmd == "policy":
            name = request.get("name")
            params = request.get("params") or {}
            if name not in POLICIES:
                return {"ok": False, "error": f"unknown policy {name!r}; known: "
                        f"{', '.join(POLICIES)}"}
            if not isinstance(params, dict):
                return {"ok": False, "error": "params must be an object of name: value"}
            try:
                policy = make_policy(str(name), params)
            except PolicyParamError as e:
                return {"ok": False, "error": str(e)}
            self.put(SetPolicy(self.clock(), policy))
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {cmd!r}"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autoballoond", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, help="TOML file with a [daemon] table")
    p.add_argument("--uri")
    p.add_argument("--metadata-ns", dest="metadata_ns")
    p.add_argument("--name-pattern", dest="name_pattern")
    p.add_argument("--policy", choices=sorted(POLICIES))
    p.add_argument("--pressure", dest="pressure_kind",
                   choices=("vmpressure", "psi-cgroup", "psi-host", "none"))
    p.add_argument("--pressure-path", dest="pressure_path")
    p.add_argument("--pressure-min-interval", dest="pressure_min_interval_s", type=float,
                   help="at most one host pressure event per this many seconds")
    p.add_argument("--policy-param", dest="policy_params", action="append", default=[],
                   metavar="NAME=VALUE", help="override a policy parameter (TOML value)")
    p.add_argument("--timeline", help="append a JSONL timeline here")
    p.add_argument("--control-socket", dest="control_socket")
    p.add_argument("--tick", dest="tick_s", type=float)
    p.add_argument("--stats-period", dest="stats_period_s", type=float)
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='{"time": "%(asctime)s", "level": "%(levelname)s", '
                               '"msg": "%(message)s"}')
    config_path = args.pop("config")
    try:
        args["policy_params"] = parse_assignments(args["policy_params"])
        text = config_path.read_text() if config_path else ""
        config = load_config(text, args)
        config.pressure_config()
    except (ConfigError, OSError) as e:
        print(f"autoballoond: {e}", file=sys.stderr)
        return 2
    out = open(config.timeline, "a") if config.timeline else None  # noqa: SIM115
    daemon = Daemon(config, Timeline(out))

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        daemon.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = ControlServer(Path(config.control_socket), daemon.control)
    try:
        server.start()
    except OSError as e:
        print(f"autoballoond: cannot serve the control socket: {e}", file=sys.stderr)
        if out is not None:
            out.close()
        return 2
    log.info("managing %s with policy %s", config.uri, config.policy)
    try:
        daemon.run()
    finally:
        server.stop()
        if out is not None:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
