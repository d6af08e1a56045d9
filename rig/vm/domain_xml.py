"""Libvirt domain XML for one scenario VM. Pure: a record in, a string out.

Choices, all deliberate:
- direct kernel boot of the guest image (no bootloader: fastest under TCG);
- transient domains (created, never defined), so a destroyed VM leaves nothing in libvirt;
- the resource partition puts QEMU in the "host" cgroup before it runs, so every page it
  touches is charged to the host from the first one;
- virtio balloon with a statistics period, serial console on a pty, the guest's swap on a
  virtio disk with cache=none (guest swap I/O must not land in the host page cache);
- an optional data disk for page-cache workloads, also cache=none (the guest's page cache
  is what a workload fills, never the host's), after the swap disk and with serial
  "abdata", so the guest finds it as the next vdX or by /sys/block/*/serial;
- the message virtqueue (our QEMU series) through -global, as libvirt has no element;
- user-mode networking with restrict=on and one forward from a loopback host port to the
  guest's SSH: the guest reaches nothing, only 127.0.0.1 reaches the guest.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
RIG_NS = "urn:autoballoon:rig:1"
DOMAIN_PREFIX = "autoballoon-"


def domain_name(vm: str) -> str:
    return f"{DOMAIN_PREFIX}{vm}"


@dataclass(frozen=True)
class DomainConfig:
    vm: str
    scenario: str
    memory_mib: int
    current_mib: int
    vcpus: int
    domain_type: str  # "kvm" or "qemu" (TCG)
    emulator: Path
    kernel: Path
    initrd: Path
    cmdline: str
    swap_disk: Path | None
    ssh_port: int
    partition: str  # e.g. "/autoballoon"
    balloon_stats_period_s: int = 1  # guest stats refresh (libvirt memballoon period)
    machine: str = "q35"
    message_vq: bool = False  # our QEMU series' virtio-balloon property
    # virtio-balloon free page reporting (QEMU's free-page-reporting, libvirt >= 6.9):
    # the guest hands freed pages back to the host by itself.
    free_page_reporting: bool = False
    data_disk: Path | None = None  # raw file for page-cache workloads (abload stream/reread)
    extra_qemu_args: tuple[str, ...] = field(default=())


#: The data disk's virtio serial, as the guest sees it in /sys/block/vdX/serial.
DATA_DISK_SERIAL = "abdata"


def data_disk_dev(c: DomainConfig) -> str:
    """The data disk's name in the guest: disks are probed in the order they are listed."""
    return guest_data_dev(has_swap_disk=c.swap_disk is not None)


def guest_data_dev(*, has_swap_disk: bool) -> str:
    """The data disk's name in the guest: after the swap disk when there is one."""
    return "vdb" if has_swap_disk else "vda"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def render(c: DomainConfig) -> str:
    if c.domain_type not in ("kvm", "qemu"):
        raise ValueError(f"domain type must be kvm or qemu, not {c.domain_type!r}")
    if not 0 < c.current_mib <= c.memory_mib:
        raise ValueError("current memory must be in (0, memory]")
    ET.register_namespace("qemu", QEMU_NS)
    ET.register_namespace("ab", RIG_NS)
    dom = ET.Element("domain", {"type": c.domain_type})
    _sub(dom, "name", domain_name(c.vm))
    meta = _sub(dom, "metadata")
    _sub(meta, f"{{{RIG_NS}}}vm", name=c.vm, scenario=c.scenario)
    _sub(dom, "memory", str(c.memory_mib), unit="MiB")
    _sub(dom, "currentMemory", str(c.current_mib), unit="MiB")
    _sub(dom, "vcpu", str(c.vcpus))
    res = _sub(dom, "resource")
    _sub(res, "partition", c.partition)

    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine=c.machine)
    _sub(os_el, "kernel", str(c.kernel))
    _sub(os_el, "initrd", str(c.initrd))
    _sub(os_el, "cmdline", c.cmdline)
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(dom, "clock", offset="utc")
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        _sub(dom, event, "destroy")

    dev = _sub(dom, "devices")
    _sub(dev, "emulator", str(c.emulator))
    if c.swap_disk is not None:
        disk = _sub(dev, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type="raw", cache="none")
        _sub(disk, "source", file=str(c.swap_disk))
        _sub(disk, "target", dev="vda", bus="virtio")
    if c.data_disk is not None:
        disk = _sub(dev, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type="raw", cache="none")
        _sub(disk, "source", file=str(c.data_disk))
        _sub(disk, "target", dev=data_disk_dev(c), bus="virtio")
        _sub(disk, "serial", DATA_DISK_SERIAL)
    _sub(dev, "controller", type="usb", model="none")
    serial = _sub(dev, "serial", type="pty")
    _sub(serial, "target", port="0")
    console = _sub(dev, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    balloon = _sub(dev, "memballoon", model="virtio",
                   **({"freePageReporting": "on"} if c.free_page_reporting else {}))
    _sub(balloon, "stats", period=str(c.balloon_stats_period_s))

    cmd = _sub(dom, f"{{{QEMU_NS}}}commandline")
    args = [
        "-netdev",
        f"user,id=abnet0,restrict=on,hostfwd=tcp:127.0.0.1:{c.ssh_port}-:22",
        "-device",
        "virtio-net-pci,netdev=abnet0,romfile=,bus=pcie.0,addr=0x10",
        # libvirt 9.0 does not know the property: set it on the device class it creates.
        *(("-global", "virtio-balloon-pci.message-vq=on") if c.message_vq else ()),
        *c.extra_qemu_args,
    ]
    for a in args:
        _sub(cmd, f"{{{QEMU_NS}}}arg", value=a)
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")
