"""The [workload] part of a scenario: what each VM runs (its kind and steps), parsed and
validated strictly (pure, like rig.scenario, which re-exports these records)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from rig.errors import UsageError
from rig.toml_checks import int_in, reject_unknown, table_of


class VmLike(Protocol):
    """What a schedule is checked against (rig.scenario.VmSpec)."""

    @property
    def name(self) -> str: ...
    @property
    def memory_mib(self) -> int: ...
    @property
    def guest_swap_mib(self) -> int: ...
    @property
    def data_disk_mib(self) -> int | None: ...


#: What a schedule runs: ebizzy (ours), or one of abload's kinds (images/tools/abload.c).
WORKLOAD_KINDS = ("ebizzy", "stream", "reread", "idle")


@dataclass(frozen=True)
class Schedule:
    """One VM's part of the workload: wait ``start_s`` after the common start, then run
    steps of ``step_s`` each (default: ``Workload.step_s``), one after the other. By
    ``kind``:

    - ebizzy: one run per entry of ``chunks`` (it allocates that many chunks, works and
      exits, freeing everything);
    - stream: ``steps`` runs of abload stream, reading the VM's whole data disk through
      the page cache (cache worth nothing);
    - reread: one abload reread run per entry of ``hot_mib``, rereading the data disk's
      first that many MiB (cache worth keeping);
    - idle: one abload idle run per entry of ``mib``: it writes that many MiB of anonymous
      memory, then holds it untouched until the step ends.

    Only the kind's own field is set; the others keep their empty defaults."""

    vm: str
    start_s: float
    chunks: tuple[int, ...] = ()
    kind: str = "ebizzy"
    steps: int = 0
    hot_mib: tuple[int, ...] = ()
    mib: tuple[int, ...] = ()
    step_s: int | None = None  # this schedule's step length; None: the workload's

    def sizes(self) -> tuple[int, ...]:
        """Each step's size: chunks (ebizzy), hot MiB (reread), MiB (idle); 0 (stream)."""
        if self.kind == "stream":
            return (0,) * self.steps
        return {"ebizzy": self.chunks, "reread": self.hot_mib, "idle": self.mib}[self.kind]

    @property
    def step_count(self) -> int:
        return len(self.sizes())


@dataclass(frozen=True)
class Workload:
    """The VMs' schedules. ``step_s`` is every step's length (ebizzy's and abload's -S);
    ``chunk_bytes`` and ``threads`` are ebizzy's -s and -t (unused by abload's kinds)."""

    chunk_bytes: int
    step_s: int
    threads: int
    schedules: tuple[Schedule, ...]

    def schedule(self, vm: str) -> Schedule | None:
        return next((s for s in self.schedules if s.vm == vm), None)

    def step_of(self, s: Schedule) -> int:
        """A schedule's step length in seconds."""
        return self.step_s if s.step_s is None else s.step_s

    def duration_s(self) -> float:
        """How long the longest schedule runs (without process start-up)."""
        return max(s.start_s + s.step_count * self.step_of(s) for s in self.schedules)


WORKLOAD_KEYS = {"chunk_bytes", "step_s", "threads", "schedule"}
_SCHEDULE_KEYS = {"vm", "start_s", "kind", "step_s"}
#: The one key each kind adds to a schedule (its steps).
_KIND_KEY = {"ebizzy": "chunks", "stream": "steps", "reread": "hot_mib", "idle": "mib"}

def parse_workload(where: str, value: object, vms: Sequence[VmLike]) -> Workload | None:
    """The [workload] table of scenario `where` (None without one), checked against
    its VMs."""
    if value is None:
        return None
    ww = f"{where} [workload]"
    t = table_of(ww, value)
    reject_unknown(ww, t, WORKLOAD_KEYS)
    raw = t.get("schedule", [])
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"{ww}: needs at least one [[workload.schedule]] entry")
    names = [v.name for v in vms]
    schedules: list[Schedule] = []
    for i, entry in enumerate(raw):
        sw = f"{ww} [[schedule]] #{i + 1}"
        e = table_of(sw, entry)
        kind = e.get("kind", "ebizzy")
        if kind not in WORKLOAD_KINDS:
            raise UsageError(f"{sw}: kind must be one of {', '.join(WORKLOAD_KINDS)}, "
                             f"got {kind!r}")
        reject_unknown(f"{sw} (kind {kind})", e, _SCHEDULE_KEYS | {_KIND_KEY[kind]})
        if _KIND_KEY[kind] not in e:
            raise UsageError(f"{sw}: a schedule of kind {kind} needs {_KIND_KEY[kind]}")
        vm = e.get("vm")
        if vm not in names:
            raise UsageError(f"{sw}: vm must name a [[vm]] of the scenario "
                             f"({', '.join(names)}), got {vm!r}")
        if any(s.vm == vm for s in schedules):
            raise UsageError(f"{sw}: a second schedule for {vm}")
        start = e.get("start_s", 0)
        if isinstance(start, bool) or not isinstance(start, int | float) or not 0 <= start <= 86400:
            raise UsageError(f"{sw}: start_s must be a number of seconds in [0, 86400]")
        spec = next(v for v in vms if v.name == vm)
        sched = _schedule(sw, e, kind, spec, float(start))
        if "step_s" in e:
            sched = replace(sched, step_s=int_in(sw, e, "step_s", 0, 1, 86400))
        schedules.append(sched)
    workload = Workload(
        chunk_bytes=int_in(ww, t, "chunk_bytes", 1 << 20, 4096, 1 << 30),
        step_s=int_in(ww, t, "step_s", 60, 1, 86400),
        threads=int_in(ww, t, "threads", 1, 1, 256),
        schedules=tuple(schedules),
    )
    for s in schedules:
        spec = next(v for v in vms if v.name == s.vm)
        if s.kind not in ("ebizzy", "idle"):
            continue
        biggest = (max(s.chunks) * workload.chunk_bytes >> 20 if s.kind == "ebizzy"
                   else max(s.mib))
        what = f"{max(s.chunks)} chunks" if s.kind == "ebizzy" else "idle memory"
        if biggest >= spec.memory_mib + spec.guest_swap_mib:
            raise UsageError(f"{ww}: {s.vm} would need {biggest} MiB for {what} "
                             f"but has {spec.memory_mib} MiB RAM + "
                             f"{spec.guest_swap_mib} MiB swap")
    return workload


def _sizes(sw: str, e: dict[str, Any], key: str, what: str, hi: int) -> tuple[int, ...]:
    values = e[key]
    if (not isinstance(values, list) or not values or len(values) > 10000
            or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= hi
                       for c in values)):
        raise UsageError(f"{sw}: {key} must be a non-empty list of {what} "
                         f"(integers in [1, {hi}]), one per step")
    return tuple(values)


def _schedule(sw: str, e: dict[str, Any], kind: str, spec: VmLike, start: float) -> Schedule:
    """The kind's own key, checked against the VM it runs in."""
    if kind == "ebizzy":
        return Schedule(spec.name, start, _sizes(sw, e, "chunks", "chunk counts", 1 << 20))
    if kind == "idle":
        return Schedule(spec.name, start, kind=kind,
                        mib=_sizes(sw, e, "mib", "MiB to hold", 1 << 20))
    disk = spec.data_disk_mib
    if disk is None:
        raise UsageError(f"{sw}: a {kind} schedule reads the VM's data disk but "
                         f"{spec.name} has none: set data_disk_mib in its [[vm]]")
    if kind == "stream":
        return Schedule(spec.name, start, kind=kind,
                        steps=int_in(sw, e, "steps", 0, 1, 10000))
    hot = _sizes(sw, e, "hot_mib", "hot set sizes in MiB", 1 << 20)
    if max(hot) >= disk:
        raise UsageError(f"{sw}: hot_mib {max(hot)} must be smaller than {spec.name}'s "
                         f"data disk (data_disk_mib = {disk})")
    return Schedule(spec.name, start, kind=kind, hot_mib=hot)
