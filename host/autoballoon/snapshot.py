"""What the control thread sees of the daemon: a snapshot the decision loop publishes once
per loop pass, and the answers to control requests.

The loop owns the model; the control socket's threads never touch it. After each pass
(every input queued by then handled) the loop replaces ``Daemon.snapshot`` with a new
``Snapshot``: immutable records only (each VM's ``VmView`` is the one its state keeps, see
``vm_state.py``; only the VMs that changed since the last snapshot are looked up again),
so publishing costs a copy of one reference per VM, and a ``show`` request formats it
on the control thread (VMs by name). Requests that change something are queued to the loop as
inputs (``SetEnabled``, ``SetPolicy``), never applied here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autoballoon.events import SetEnabled
from autoballoon.manual import ManualDetector
from autoballoon.model import Model, SetPolicy
from autoballoon.policies import POLICIES, PolicyParamError, make_policy
from autoballoon.views import VmView


@dataclass(frozen=True)
class Snapshot:
    policy: str
    enabled: bool
    dropped_inputs: int
    last_host_level: str | None
    vms: Mapping[str, VmView] = field(default_factory=dict)
    #: "below" / "above" for the VMs whose balloon no target of ours explains (manual.py)
    deviations: Mapping[str, str] = field(default_factory=dict)
    #: the host's free memory as the policies see it (HostMemory), once read
    host_free_mib: int | None = None

    def show(self) -> dict[str, Any]:
        """The answer to ``show`` (autoballoonctl's format)."""
        return {
            "policy": self.policy,
            "enabled": self.enabled,
            "dropped_inputs": self.dropped_inputs,
            "last_host_level": self.last_host_level,
            "vms": {n: {"max_mib": v.max_mib, "floor_mib": v.floor_mib,
                        "target_mib": v.target_mib, "actual_mib": v.actual_mib,
                        "auto_inflated_mib": v.auto_inflated_mib,
                        "last_guest_level": v.last_guest_level, "enabled": v.enabled,
                        "manual": v.manual, "deviation": self.deviations.get(n)}
                    for n, v in sorted(self.vms.items())},
        }


class Publisher:
    """The loop's side: what the snapshot shows, kept up to date VM by VM."""

    def __init__(self) -> None:
        self._shown: dict[str, VmView] = {}
        self._deviations: dict[str, str] = {}

    def publish(self, model: Model, manual: ManualDetector, policy: str,
                dropped_inputs: int) -> Snapshot:
        """A new snapshot: the VMs changed since the last one looked up again (the
        model and the detector say which), the others' records kept."""
        shown, deviations = self._shown, self._deviations
        for name in model.take_changed() | manual.take_changed():
            view, deviation = model.vm(name), manual.deviation(name)
            if view is None:
                shown.pop(name, None)
            else:
                shown[name] = view
            if deviation is None:
                deviations.pop(name, None)
            else:
                deviations[name] = deviation
        return Snapshot(policy, model.enabled, dropped_inputs, model.last_host_level,
                        dict(shown), dict(deviations), model.host_free_mib)


def answer(request: dict[str, Any], snapshot: Snapshot, put: Callable[[object], None],
           clock: Callable[[], float]) -> dict[str, Any]:
    """One control request's answer; a change is queued to the loop with ``put``."""
    cmd = request.get("cmd")
    if cmd == "show":
        return {"ok": True, **snapshot.show()}
    if cmd in ("enable", "disable"):
        vm = request.get("vm")
        if vm is not None and vm not in snapshot.vms:
            return {"ok": False, "error": f"no managed VM {vm!r}"}
        put(SetEnabled(clock(), vm, cmd == "enable"))
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
        put(SetPolicy(clock(), policy))
        return {"ok": True}
    return {"ok": False, "error": f"unknown command {cmd!r}"}


__all__ = ["Publisher", "Snapshot", "answer"]
