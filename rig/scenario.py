"""Scenario files: declarative TOML describing a host and its VMs, validated strictly.

Pure: parsing and validation take text and return records or raise UsageError; nothing
on the system is touched, so bad input is caught before any side effect.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    host: HostSpec
    vms: tuple[VmSpec, ...]

    def vm(self, name: str) -> VmSpec:
        for v in self.vms:
            if v.name == name:
                return v
        known = ", ".join(v.name for v in self.vms)
        raise UsageError(f"scenario {self.name} has no VM {name!r} (it has: {known})")


_TOP_KEYS = {"host", "vm"}
_HOST_KEYS = {"ram_mib", "swap_mib", "overcommit"}
_VM_KEYS = {"name", "memory_mib", "vcpus", "guest_swap_mib", "message_vq", "guest_driver"}


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
    host = HostSpec(
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
        ))
    scenario = Scenario(name, description, host, tuple(vms))
    check_fits(scenario)
    return scenario


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
