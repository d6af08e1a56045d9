"""KVM or TCG: use KVM only where it really runs ordinary guests.

/dev/kvm existing is not enough: on a PVM host (kvm_pvm module, no vmx/svm in the CPU
flags) KVM_CREATE_VM succeeds but a stock guest kernel hangs. KVM is chosen only with
hardware virtualization flags, an openable /dev/kvm and no PVM module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" or "tcg"
    domain_type: str  # libvirt's domain type: "kvm" or "qemu"
    reason: str


@dataclass(frozen=True)
class AccelFacts:
    cpu_flags: frozenset[str]
    kvm_device: bool  # /dev/kvm exists and opens read-write
    pvm_module: bool  # /sys/module/kvm_pvm exists


def choose(f: AccelFacts, forced: str | None = None) -> Accel:
    if forced == "tcg":
        return Accel("tcg", "qemu", "TCG requested")
    hw = f.cpu_flags & {"vmx", "svm"}
    if f.kvm_device and hw and not f.pvm_module:
        return Accel("kvm", "kvm", f"/dev/kvm usable and CPU has {'/'.join(sorted(hw))}")
    if not f.kvm_device:
        why = "no usable /dev/kvm"
    elif f.pvm_module:
        why = "/dev/kvm is PVM (kvm_pvm), which cannot run stock guest kernels"
    else:
        why = "CPU shows no vmx/svm flag"
    if forced == "kvm":
        from rig.errors import UsageError

        raise UsageError(f"KVM requested but unusable here: {why}; use --accel tcg")
    return Accel("tcg", "qemu", why)


def cpu_flags_from(cpuinfo: str) -> frozenset[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def read_facts(root: Path = Path("/")) -> AccelFacts:
    try:
        cpuinfo = (root / "proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    dev = root / "dev/kvm"
    usable = False
    if dev.exists():
        try:
            fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
            os.close(fd)
            usable = True
        except OSError:
            usable = False
    return AccelFacts(cpu_flags_from(cpuinfo), usable, (root / "sys/module/kvm_pvm").exists())
