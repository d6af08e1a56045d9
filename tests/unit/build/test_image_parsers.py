from pathlib import Path

import pytest

from rig.build.image import GUEST_MODULES
from rig.build.image_parsers import (
    ModuleEntry,
    load_order,
    module_name,
    parse_depends_field,
    parse_dropbearkey_pub,
    parse_ldd,
    parse_modules_dep,
)
from rig.errors import RigError

# Lines of Debian's 6.1.0-56-amd64 modules.dep (after depmod), in its own order.
MODULES_DEP = """\
kernel/fs/fuse/fuse.ko:
kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_balloon.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
"""  # noqa: E501


# ---- modules.dep ----------------------------------------------------------------------

def test_module_names():
    assert module_name("kernel/drivers/char/hw_random/virtio-rng.ko") == "virtio_rng"
    assert module_name("kernel/net/core/failover.ko.xz") == "failover"


def test_parse_modules_dep():
    mods = parse_modules_dep(MODULES_DEP)
    assert mods["virtio_net"] == ModuleEntry(
        "kernel/drivers/net/virtio_net.ko",
        ("net_failover", "failover", "virtio", "virtio_ring"))
    assert mods["virtio_ring"].deps == ()


def test_guest_load_order():
    order = [module_name(e.path) for e in load_order(parse_modules_dep(MODULES_DEP),
                                                    GUEST_MODULES)]
    assert order == [
        "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
        "virtio_pci", "virtio_blk", "failover", "net_failover", "virtio_net",
        "virtio_balloon",
    ]


def test_load_order_puts_every_dependency_first():
    mods = parse_modules_dep(MODULES_DEP)
    order = [module_name(e.path) for e in load_order(mods, ["virtiofs", "virtio_net"])]
    for i, name in enumerate(order):
        assert set(mods[name].deps) <= set(order[:i])
    assert len(order) == len(set(order))


def test_our_module_may_bring_new_dependencies():
    mods = parse_modules_dep(MODULES_DEP)
    mods["virtio_balloon"] = ModuleEntry("kernel/drivers/virtio/virtio_balloon.ko",
                                         ("virtio", "failover"))
    order = [module_name(e.path) for e in load_order(mods, ["virtio_balloon"])]
    assert order == ["virtio_ring", "virtio", "failover", "virtio_balloon"]


def test_unknown_module_and_cycle_are_errors():
    mods = parse_modules_dep(MODULES_DEP)
    with pytest.raises(RigError, match="not in the kernel's modules.dep"):
        load_order(mods, ["virtio_nope"])
    mods["a"] = ModuleEntry("a.ko", ("b",))
    mods["b"] = ModuleEntry("b.ko", ("a",))
    with pytest.raises(RigError, match="cycle"):
        load_order(mods, ["a"])


# ---- parsers --------------------------------------------------------------------------

def test_parse_ldd():
    text = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f55)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f54)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f55)
"""
    assert parse_ldd(text) == [Path("/lib/x86_64-linux-gnu/libz.so.1"),
                               Path("/lib/x86_64-linux-gnu/libc.so.6"),
                               Path("/lib64/ld-linux-x86-64.so.2")]
    with pytest.raises(RigError, match="not found"):
        parse_ldd("\tlibfoo.so.1 => not found\n")


def test_parse_depends_field():
    field = ("libc6 (>= 2.34), libcrypt1 (>= 1:4.1.0), libtomcrypt1 (>= 1.18.1) | libfoo,"
             " zlib1g:amd64 (>= 1:1.1.4), libc6")
    assert parse_depends_field(field) == ["libc6", "libcrypt1", "libtomcrypt1", "zlib1g"]
    assert parse_depends_field(", ") == []


def test_parse_dropbearkey_pub():
    out = ("Public key portion is:\n"
           "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP8b root@host\n"
           "Fingerprint: sha1!! 00:11\n")
    assert parse_dropbearkey_pub(out) == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP8b"
    with pytest.raises(RigError):
        parse_dropbearkey_pub("nothing\n")
