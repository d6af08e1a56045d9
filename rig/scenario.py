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
from rig.toml_checks import int_in, reject_unknown, table_of
from rig.workload_spec import WORKLOAD_KINDS, Schedule, Workload, parse_workload

__all__ = ["WORKLOAD_KINDS", "Schedule", "Workload"]  # re-exported: part of a Scenario

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
LIES = ("flood",)


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
    # A guest that lies to the host (the trust model's adversary, host/README.md): "flood"
    # claims critical pressure without pause for the whole workload (the test driver's
    # msg_flood, so guest_driver = "test"); None: an honest guest.
    lies: str | None = None


# Mode names are also directory names (results/<scenario>/<stamp>/<mode>/): one path
# component each; "+" is an ordinary file name character.
MODES = ("vanilla", "auto-seed", "auto", "free-page-reporting", "stats-polling", "auto+fpr")


@dataclass(frozen=True)
class Bench:
    """How a benchmark runs this scenario by default."""

    runs: int = 3
    modes: tuple[str, ...] = ("vanilla", "auto")
    # The scenario's set (POLICIES.md): "tuning" (policy changes are made and justified on
    # it) or "validation" (measured and reported, never tuned on); None: not part of the
    # suite that `rig matrix` runs (smoke).
    set: str | None = None


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
_BENCH_KEYS = {"runs", "modes", "set"}
SCENARIO_SETS = ("tuning", "validation")
_HOST_KEYS = {"ram_mib", "swap_mib", "overcommit", "thp"}
THP_MODES = ("keep", "never", "madvise", "always")
_VM_KEYS = {"name", "memory_mib", "vcpus", "guest_swap_mib", "message_vq", "guest_driver",
            "data_disk_mib", "lies"}


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
    reject_unknown(where, data, _TOP_KEYS)
    host_t = data.get("host", {})
    if not isinstance(host_t, dict):
        raise UsageError(f"{where}: [host] must be a table")
    reject_unknown(f"{where} [host]", host_t, _HOST_KEYS)
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
        ram_mib=int_in(f"{where} [host]", host_t, "ram_mib", HostSpec.ram_mib, 256, 1 << 20),
        swap_mib=int_in(f"{where} [host]", host_t, "swap_mib", HostSpec.swap_mib, 0, 1 << 20),
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
        reject_unknown(vw, t, _VM_KEYS)
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
        lies = t.get("lies")
        if lies is not None and lies not in LIES:
            raise UsageError(f"{vw}: lies must be one of {', '.join(LIES)}, got {lies!r}")
        if lies is not None and driver != "test":
            raise UsageError(f"{vw}: lies = {lies!r} needs guest_driver = \"test\" (the "
                             "driver's test-only message interface)")
        vms.append(VmSpec(
            name=vm_name,
            memory_mib=int_in(vw, t, "memory_mib", 0, 128, 1 << 20),
            vcpus=int_in(vw, t, "vcpus", 1, 1, 64),
            guest_swap_mib=int_in(vw, t, "guest_swap_mib", 512, 0, 1 << 20),
            message_vq=message_vq,
            guest_driver=driver,
            data_disk_mib=(int_in(vw, t, "data_disk_mib", 0, 1, 1 << 20)
                           if "data_disk_mib" in t else None),
            lies=lies,
        ))
    workload = parse_workload(where, data.get("workload"), vms)
    if workload is not None and host.thp == "keep":
        raise UsageError(f"{where} [host]: thp = \"keep\" is not allowed in a benchmark "
                         "(a scenario with [workload]): name never, madvise or always")
    scenario = Scenario(name, description, host, tuple(vms), workload,
                        _bench(where, data.get("bench", {})),
                        _reproduction(where, data.get("reproduction")))
    check_fits(scenario)
    return scenario


def _bench(where: str, value: object) -> Bench:
    bw = f"{where} [bench]"
    t = table_of(bw, value)
    reject_unknown(bw, t, _BENCH_KEYS)
    modes = t.get("modes", list(Bench.modes))
    if not isinstance(modes, list) or not modes or any(m not in MODES for m in modes):
        raise UsageError(f"{bw}: modes must be a non-empty list of {', '.join(MODES)}")
    if len(set(modes)) != len(modes):
        raise UsageError(f"{bw}: modes lists a mode twice")
    suite = t.get("set")
    if suite is not None and suite not in SCENARIO_SETS:
        raise UsageError(f"{bw}: set must be one of {', '.join(SCENARIO_SETS)}, got {suite!r}")
    return Bench(runs=int_in(bw, t, "runs", Bench.runs, 1, 100), modes=tuple(modes), set=suite)


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
    t = table_of(rw, value)
    reject_unknown(rw, t, _REPRO_KEYS)
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
        max_oom_kills=int_in(rw, t, "max_oom_kills", d.max_oom_kills, 0, 1000),
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
