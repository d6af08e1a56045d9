import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from rig.vm.domain_xml import (
    DATA_DISK_SERIAL,
    QEMU_NS,
    RIG_NS,
    DomainConfig,
    data_disk_dev,
    domain_name,
    render,
)

BASE = DomainConfig(
    vm="vm-down", scenario="smoke", memory_mib=1331, current_mib=1024, vcpus=2,
    domain_type="qemu", emulator=Path("/cache/qemu/k/bin/qemu-system-x86_64"),
    kernel=Path("/img/vmlinuz"), initrd=Path("/img/initrd.img"),
    cmdline="console=ttyS0 ab.name=vm-down", swap_disk=Path("/vms/vm-down/swap.img"),
    ssh_port=40022, partition="/autoballoon",
)


def parsed(cfg=BASE):
    return ET.fromstring(render(cfg))


def test_identity_and_sizes():
    d = parsed()
    assert d.get("type") == "qemu"
    assert d.findtext("name") == "autoballoon-vm-down" == domain_name("vm-down")
    assert d.find("memory").attrib == {"unit": "MiB"} and d.findtext("memory") == "1331"
    assert d.findtext("currentMemory") == "1024"
    assert d.findtext("vcpu") == "2"
    meta = d.find(f"metadata/{{{RIG_NS}}}vm")
    assert meta.get("name") == "vm-down" and meta.get("scenario") == "smoke"


def test_partition_and_boot():
    d = parsed()
    assert d.findtext("resource/partition") == "/autoballoon"
    assert d.find("os/type").get("machine") == "q35"
    assert d.findtext("os/kernel") == "/img/vmlinuz"
    assert d.findtext("os/initrd") == "/img/initrd.img"
    assert d.findtext("os/cmdline") == "console=ttyS0 ab.name=vm-down"
    assert d.findtext("devices/emulator") == "/cache/qemu/k/bin/qemu-system-x86_64"
    assert [d.findtext(e) for e in ("on_poweroff", "on_reboot", "on_crash")] == ["destroy"] * 3


def test_devices():
    dev = parsed().find("devices")
    disk = dev.find("disk")
    assert disk.find("driver").get("cache") == "none"
    assert disk.find("source").get("file") == "/vms/vm-down/swap.img"
    assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}
    assert dev.find("serial").get("type") == "pty"
    assert dev.find("console/target").get("type") == "serial"
    balloon = dev.find("memballoon")
    assert balloon.get("model") == "virtio" and balloon.find("stats").get("period") == "1"
    assert dev.find("controller").attrib == {"type": "usb", "model": "none"}


def test_ssh_forward_is_loopback_only_and_guest_restricted():
    args = [a.get("value") for a in parsed().iter(f"{{{QEMU_NS}}}arg")]
    netdev = args[args.index("-netdev") + 1]
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in netdev
    assert "restrict=on" in netdev
    assert "virtio-net-pci,netdev=abnet0,romfile=,bus=pcie.0,addr=0x10" in args


def test_no_swap_disk_and_extra_args():
    d = parsed(replace(BASE, swap_disk=None, extra_qemu_args=("-global", "x.y=on")))
    assert d.find("devices/disk") is None
    args = [a.get("value") for a in d.iter(f"{{{QEMU_NS}}}arg")]
    assert args[-2:] == ["-global", "x.y=on"]


def test_kvm_type():
    assert parsed(replace(BASE, domain_type="kvm")).get("type") == "kvm"


@pytest.mark.parametrize("bad", [
    {"domain_type": "xen"}, {"current_mib": 2000}, {"current_mib": 0},
])
def test_rejects(bad):
    with pytest.raises(ValueError):
        render(replace(BASE, **bad))


def test_message_vq_property():
    off = [a.get("value") for a in parsed().iter(f"{{{QEMU_NS}}}arg")]
    assert "virtio-balloon-pci.message-vq=on" not in off
    on = [a.get("value") for a in parsed(replace(BASE, message_vq=True)).iter(f"{{{QEMU_NS}}}arg")]
    i = on.index("virtio-balloon-pci.message-vq=on")
    assert on[i - 1] == "-global"


def test_free_page_reporting_is_a_memballoon_attribute():
    assert parsed().find("devices/memballoon").get("freePageReporting") is None
    fpr = parsed(replace(BASE, free_page_reporting=True)).find("devices/memballoon")
    assert fpr.get("freePageReporting") == "on"


def test_data_disk_follows_the_swap_disk_uncached():
    root = parsed(replace(BASE, data_disk=Path("/vms/vm-down/data.img")))
    disks = root.findall("devices/disk")
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb"]
    data = disks[1]
    assert data.find("source").get("file") == "/vms/vm-down/data.img"
    assert data.find("driver").get("cache") == "none"
    assert data.find("serial").text == DATA_DISK_SERIAL
    alone = replace(BASE, swap_disk=None, data_disk=Path("/d.img"))
    assert [d.find("target").get("dev") for d in parsed(alone).findall("devices/disk")] == [
        "vda"]
    assert data_disk_dev(alone) == "vda"
    assert parsed(BASE).find("devices/disk/serial") is None
