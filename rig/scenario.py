"""Scenario files: declarative TOML describing a host and its VMs, validated strictly.

Pure: parsing and validation take text and return records or raise UsageError; nothing
on the system is touched, so bad input is caught before any side effect.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.errors import UsageError

OVERCOMMIT_POLICIES = ("none", "within-swap", "unlimited")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


@dataclass(frozen=True)
class HostSpec:
    ram_mib: int = 2048
    swap_mib: int = 4096
    # How far the VMs' maximum memory may exceed the host's RAM:
    #   none         sum(VM memory) <= RAM
    #   within-swap  sum(VM memory) <= RAM + swap (the default: overcommit backed by swap)
    #   unlimited    no check
    overcommit: str = "within-swap"
    # The host's transparent huge page mode during the run: "never" / "madvise" / "always"
    # set it (restored on `host down`); "keep" leaves it alone and is refused in a
    # scenario with a [workload] (a benchmark), whose results must not depend on the
    # machine's setting. QEMU asks for THP on guest RAM (madvise), and a ballooned 4 KiB
    # page inside a huge page is only freed when the kernel gets round to splitting it,
    # so THP changes what ballooning can give back. The default is Debian's and the
    # project machines' own mode, madvise.
    thp: str = "madvise"


GUEST_DRIVERS = ("patched", "stock", "test")


@dataclass(frozen=True)
class VmSpec:
    name: str
    memory_mib: int
    vcpus: int = 1
    guest_swap_mib: int = 512
    # QEMU's virtio-balloon message-vq property (our QEMU series): offer the message queue.
    message_vq: bool = True
    # Which virtio_balloon the guest runs: our series ("patched"), Debian's ("stock"), or
    # our series built with its test-only injection interface ("test").
    guest_driver: str = "patched"
    # A data disk of this many MiB (a sparse raw file on the host) for the page-cache
    # workloads (kinds stream and reread); None: no data disk.
    data_disk_mib: int | None = None


#: What a schedule runs: ebizzy (ours), or one of abload's kinds (images/tools/abload.c).
WORKLOAD_KINDS = ("ebizzy", "stream", "reread", "idle")


@dataclass(frozen=True)
class Schedule:
    """One VM's part of the workload: wait ``start_s`` after the common start, then run
    steps of ``Workload.step_s`` each, one after the other. By ``kind``:

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

    def duration_s(self) -> float:
        """How long the longest schedule runs (without process start-up)."""
        return max(s.start_s + s.step_count * self.step_s for s in self.schedules)


# Mode names are also directory names (results/<scenario>/<stamp>/<mode>/): one path
# component each; "+" is an ordinary file name character.
MODES = ("vanilla", "auto-seed", "auto", "free-page-reporting", "stats-polling", "auto+fpr")


@dataclass(frozen=True)
class Bench:
    """How a benchmark runs this scenario by default."""

    runs: int = 3
    modes: tuple[str, ...] = ("vanilla", "auto")


@dataclass(frozen=True)
class Reproduction:
    """What a mode must achieve against a baseline for the result to count as reproduced."""

    baseline: str = "vanilla"
    mode: str = "auto"
    min_swap_out_ratio: float = 5.0  # baseline host swap-out / mode's, at least
    min_baseline_swap_out: float = 0.0  # baseline host swap-out (pages, mean), at least
    max_guest_swap_out: float | None = None  # mode's guest swap-out per VM (pages, mean)
    max_oom_kills: int = 0  # per VM, mean over runs
    max_records_loss_pct: float = 10.0  # ebizzy total records (median) may drop this much


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    host: HostSpec
    vms: tuple[VmSpec, ...]
    workload: Workload | None = None
    bench: Bench = field(default_factory=Bench)
    reproduction: Reproduction | None = None

    def vm(self, name: str) -> VmSpec:
        for v in self.vms:
            if v.name == name:
                return v
        known = ", ".join(v.name for v in self.vms)
        raise UsageError(f"scenario {self.name} has no VM {name!r} (it has: {known})")


_TOP_KEYS = {"host", "vm", "workload", "bench", "reproduction"}
_REPRO_KEYS = {"baseline", "mode", "min_swap_out_ratio", "min_baseline_swap_out",
               "max_guest_swap_out", "max_oom_kills", "max_records_loss_pct"}
_WORKLOAD_KEYS = {"chunk_bytes", "step_s", "threads", "schedule"}
_SCHEDULE_KEYS = {"vm", "start_s", "kind"}
#: The one key each kind adds to a schedule (its steps).
_KIND_KEY = {"ebizzy": "chunks", "stream": "steps", "reread": "hot_mib", "idle": "mib"}
_BENCH_KEYS = {"runs", "modes"}
_HOST_KEYS = {"ram_mib", "swap_mib", "overcommit", "thp"}
THP_MODES = ("keep", "never", "madvise", "always")
_VM_KEYS = {"name", "memory_mib", "vcpus", "guest_swap_mib", "message_vq", "guest_driver",
            "data_disk_mib"}


def _reject_unknown(where: str, table: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _int(where: str, table: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{where}: {key} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise UsageError(f"{where}: {key} = {value} is outside [{lo}, {hi}]")
    return value


def _description(text: str) -> str:
    """The leading comment block: what the scenario stresses. Required."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(x for x in lines if x)


def parse(text: str, name: str) -> Scenario:
    where = f"scenario {name}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{where}: not valid TOML: {e}") from None
    description = _description(text)
    if not description:
        raise UsageError(f"{where}: must open with a comment saying what it stresses")
    _reject_unknown(where, data, _TOP_KEYS)
    host_t = data.get("host", {})
    if not isinstance(host_t, dict):
        raise UsageError(f"{where}: [host] must be a table")
    _reject_unknown(f"{where} [host]", host_t, _HOST_KEYS)
    overcommit = host_t.get("overcommit", HostSpec.overcommit)
    if overcommit not in OVERCOMMIT_POLICIES:
        raise UsageError(
            f"{where} [host]: overcommit must be one of {', '.join(OVERCOMMIT_POLICIES)}"
        )
    thp = host_t.get("thp", HostSpec.thp)
    if thp not in THP_MODES:
        raise UsageError(f"{where} [host]: thp must be one of {', '.join(THP_MODES)}")
    host = HostSpec(
        thp=thp,
        ram_mib=_int(f"{where} [host]", host_t, "ram_mib", HostSpec.ram_mib, 256, 1 << 20),
        swap_mib=_int(f"{where} [host]", host_t, "swap_mib", HostSpec.swap_mib, 0, 1 << 20),
        overcommit=overcommit,
    )
    vm_list = data.get("vm", [])
    if not isinstance(vm_list, list) or not vm_list:
        raise UsageError(f"{where}: needs at least one [[vm]] entry")
    vms: list[VmSpec] = []
    for i, t in enumerate(vm_list):
        vw = f"{where} [[vm]] #{i + 1}"
        if not isinstance(t, dict):
            raise UsageError(f"{vw}: must be a table")
        _reject_unknown(vw, t, _VM_KEYS)
        vm_name = t.get("name")
        if not isinstance(vm_name, str) or not NAME_RE.match(vm_name):
            raise UsageError(f"{vw}: name must match {NAME_RE.pattern}, got {vm_name!r}")
        if any(v.name == vm_name for v in vms):
            raise UsageError(f"{vw}: duplicate VM name {vm_name!r}")
        if "memory_mib" not in t:
            raise UsageError(f"{vw}: memory_mib is required")
        message_vq = t.get("message_vq", VmSpec.message_vq)
        if not isinstance(message_vq, bool):
            raise UsageError(f"{vw}: message_vq must be true or false, got {message_vq!r}")
        driver = t.get("guest_driver", VmSpec.guest_driver)
        if driver not in GUEST_DRIVERS:
            raise UsageError(f"{vw}: guest_driver must be one of {', '.join(GUEST_DRIVERS)}")
        vms.append(VmSpec(
            name=vm_name,
            memory_mib=_int(vw, t, "memory_mib", 0, 128, 1 << 20),
            vcpus=_int(vw, t, "vcpus", 1, 1, 64),
            guest_swap_mib=_int(vw, t, "guest_swap_mib", 512, 0, 1 << 20),
            message_vq=message_vq,
            guest_driver=driver,
            data_disk_mib=(_int(vw, t, "data_disk_mib", 0, 1, 1 << 20)
                           if "data_disk_mib" in t else None),
        ))
    workload = _workload(where, data.get("workload"), vms)
    if workload is not None and host.thp == "keep":
        raise UsageError(f"{where} [host]: thp = \"keep\" is not allowed in a benchmark "
                         "(a scenario with [workload]): name never, madvise or always")
    scenario = Scenario(name, description, host, tuple(vms), workload,
                        _bench(where, data.get("bench", {})),
                        _reproduction(where, data.get("reproduction")))
    check_fits(scenario)
    return scenario


def _table(where: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a table")
    return value


def _workload(where: str, value: object, vms: list[VmSpec]) -> Workload | None:
    if value is None:
        return None
    ww = f"{where} [workload]"
    t = _table(ww, value)
    _reject_unknown(ww, t, _WORKLOAD_KEYS)
    raw = t.get("schedule", [])
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"{ww}: needs at least one [[workload.schedule]] entry")
    names = [v.name for v in vms]
    schedules: list[Schedule] = []
    for i, entry in enumerate(raw):
        sw = f"{ww} [[schedule]] #{i + 1}"
        e = _table(sw, entry)
        kind = e.get("kind", "ebizzy")
        if kind not in WORKLOAD_KINDS:
            raise UsageError(f"{sw}: kind must be one of {', '.join(WORKLOAD_KINDS)}, "
                             f"got {kind!r}")
        _reject_unknown(f"{sw} (kind {kind})", e, _SCHEDULE_KEYS | {_KIND_KEY[kind]})
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
        schedules.append(_schedule(sw, e, kind, spec, float(start)))
    workload = Workload(
        chunk_bytes=_int(ww, t, "chunk_bytes", 1 << 20, 4096, 1 << 30),
        step_s=_int(ww, t, "step_s", 60, 1, 86400),
        threads=_int(ww, t, "threads", 1, 1, 256),
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


def _schedule(sw: str, e: dict[str, Any], kind: str, spec: VmSpec, start: float) -> Schedule:
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
                        steps=_int(sw, e, "steps", 0, 1, 10000))
    hot = _sizes(sw, e, "hot_mib", "hot set sizes in MiB", 1 << 20)
    if max(hot) >= disk:
        raise UsageError(f"{sw}: hot_mib {max(hot)} must be smaller than {spec.name}'s "
                         f"data disk (data_disk_mib = {disk})")
    return Schedule(spec.name, start, kind=kind, hot_mib=hot)


def _bench(where: str, value: object) -> Bench:
    bw = f"{where} [bench]"
    t = _table(bw, value)
    _reject_unknown(bw, t, _BENCH_KEYS)
    modes = t.get("modes", list(Bench.modes))
    if not isinstance(modes, list) or not modes or any(m not in MODES for m in modes):
        raise UsageError(f"{bw}: modes must be a non-empty list of {', '.join(MODES)}")
    if len(set(modes)) != len(modes):
        raise UsageError(f"{bw}: modes lists a mode twice")
    return Bench(runs=_int(bw, t, "runs", Bench.runs, 1, 100), modes=tuple(modes))


def _number(where: str, t: dict[str, Any], key: str, default: float, lo: float,
            hi: float) -> float:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise UsageError(f"{where}: {key} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def _reproduction(where: str, value: object) -> Reproduction | None:
    if value is None:
        return None
    rw = f"{where} [reproduction]"
    t = _table(rw, value)
    _reject_unknown(rw, t, _REPRO_KEYS)
    d = Reproduction()
    baseline, mode = t.get("baseline", d.baseline), t.get("mode", d.mode)
    if baseline not in MODES or mode not in MODES or baseline == mode:
        raise UsageError(f"{rw}: baseline and mode must be two different modes of "
                         f"{', '.join(MODES)}")
    return Reproduction(
        baseline=baseline, mode=mode,
        min_swap_out_ratio=_number(rw, t, "min_swap_out_ratio", d.min_swap_out_ratio, 1, 1e6),
        min_baseline_swap_out=_number(rw, t, "min_baseline_swap_out", d.min_baseline_swap_out,
                                      0, 1e12),
        max_guest_swap_out=(_number(rw, t, "max_guest_swap_out", 0.0, 0, 1e12)
                            if "max_guest_swap_out" in t else None),
        max_oom_kills=_int(rw, t, "max_oom_kills", d.max_oom_kills, 0, 1000),
        max_records_loss_pct=_number(rw, t, "max_records_loss_pct", d.max_records_loss_pct,
                                     0, 100),
    )


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    return mode


def check_fits(s: Scenario) -> None:
    total = sum(v.memory_mib for v in s.vms)
    h = s.host
    if h.overcommit == "none" and total > h.ram_mib:
        raise UsageError(
            f"scenario {s.name}: VMs need {total} MiB but the host has {h.ram_mib} MiB RAM "
            "and overcommit = \"none\"; shrink the VMs or allow overcommit"
        )
    if h.overcommit == "within-swap" and total > h.ram_mib + h.swap_mib:
        raise UsageError(
            f"scenario {s.name}: VMs need {total} MiB, more than host RAM + swap "
            f"({h.ram_mib} + {h.swap_mib} MiB); add swap or shrink the VMs"
        )


def load(ref: str, scenarios_dir: Path) -> Scenario:
    """Load a scenario by name (rig/scenarios/NAME.toml) or by path."""
    path = Path(ref)
    if not (path.suffix == ".toml" and path.exists()):
        path = scenarios_dir / f"{ref}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in scenarios_dir.glob("*.toml")))
        raise UsageError(f"no scenario {ref!r}: give a path or one of: {known}")
    return parse(path.read_text(), path.stem)
