import shutil
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from rig.build.cachekey import digest_tree
from rig.build.guest_module import GuestModule
from rig.build.image import (
    GUEST_MODULES,
    READY_LINE,
    CpioEntry,
    ModuleEntry,
    image_key,
    load_order,
    module_name,
    parse_depends_field,
    parse_dropbearkey_pub,
    parse_ldd,
    parse_modules_dep,
    recipe_mode,
    tree_entries,
    write_cpio,
)
from rig.build.kernel import GuestKernel
from rig.errors import RigError
from rig.layout import REPO_ROOT

RECIPE = REPO_ROOT / "images" / "guest"

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

KERNEL = GuestKernel(
    abi="6.1.0-56-amd64", version="6.1.192-2", vmlinuz=Path("/k/vmlinuz"),
    modules_dir=Path("/k/lib/modules/6.1.0-56-amd64"),
    headers_dir=Path("/usr/src/linux-headers-6.1.0-56-amd64"),
    source_tarball=Path("/usr/src/linux-source-6.1.tar.xz"), deb_sha256="0" * 64,
)
MODULE = GuestModule(
    key="m1", path=Path("/m/virtio_balloon.ko"), version="autoballoon-m1", vermagic="v",
    patches=(), w1=False, warnings=(), build_log=Path("/m/build.log"), build_dir=Path("/m/b"),
)
VERSIONS = {"busybox-static": "1:1.35.0-4", "dropbear-bin": "2022.83-1", "libc6": "2.36-9"}


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


def test_recipe_modes_come_from_content():
    assert recipe_mode("etc/init.d/rcS", b"#!/bin/sh\n") == 0o755
    assert recipe_mode("etc/inittab", b"::sysinit:/etc/init.d/rcS\n") == 0o644
    assert recipe_mode("etc/shadow", b"root:*:1:0:::::\n") == 0o600


# ---- cache key ------------------------------------------------------------------------

def _key(recipe: Path, workload: Path | None = None, **changes: object) -> str:
    kernel = replace(KERNEL, **{k: v for k, v in changes.items() if k in ("abi", "version")})
    module = replace(MODULE, key=str(changes.get("module", MODULE.key)))
    versions = changes.get("versions", VERSIONS)
    return image_key(kernel, module, digest_tree(recipe), versions,  # type: ignore[arg-type]
                     digest_tree(workload) if workload else None)


def test_image_key(tmp_path: Path):
    recipe = tmp_path / "recipe"
    shutil.copytree(RECIPE, recipe)
    base = _key(recipe)
    assert _key(recipe) == base
    assert _key(recipe, version="6.1.193-1") != base
    assert _key(recipe, module="m2") != base
    assert _key(recipe, versions={**VERSIONS, "libc6": "2.36-10"}) != base
    (recipe / "etc" / "inittab").write_text("changed\n")
    assert _key(recipe) != base


def test_workload_changes_the_key(tmp_path: Path):
    recipe = tmp_path / "recipe"
    shutil.copytree(RECIPE, recipe)
    work = tmp_path / "work"
    work.mkdir()
    (work / "ebizzy").write_bytes(b"\x7fELF one")
    with_work = _key(recipe, work)
    assert with_work != _key(recipe)
    assert _key(recipe, work) == with_work
    (work / "ebizzy").write_bytes(b"\x7fELF two")
    assert _key(recipe, work) != with_work


# ---- cpio -----------------------------------------------------------------------------

def test_cpio_round_trip(tmp_path: Path):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "busybox").write_bytes(b"#!x" * 5)
    (root / "bin" / "busybox").chmod(0o755)
    (root / "init").symlink_to("bin/busybox")
    entries = tree_entries(root)
    assert [e.name for e in entries] == ["bin", "bin/busybox", "init"]
    entries.append(CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    out = tmp_path / "initrd.img"
    write_cpio(entries, out)
    data = out.read_bytes()
    assert data.startswith(b"070701")
    assert b"TRAILER!!!" in data
    assert len(data) % 4 == 0
    write_cpio(entries, tmp_path / "again.img")
    assert (tmp_path / "again.img").read_bytes() == data  # reproducible
    if shutil.which("cpio"):
        listing = subprocess.run(["cpio", "-itv"], input=data, capture_output=True,
                                 check=True).stdout.decode()
        assert "init -> bin/busybox" in listing
        assert "5,   1" in listing and "dev/console" in listing
        assert "-rwxr-xr-x" in listing


# ---- the guest's init scripts ---------------------------------------------------------

def _sh(script: str) -> str:
    lib = RECIPE / "etc" / "autoballoon" / "lib.sh"
    return subprocess.run(["sh", "-c", f". {lib}; {script}"], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize(("cmdline", "name", "value"), [
    ("console=ttyS0 ab.swap=/dev/vda ab.name=vm-up", "swap", "/dev/vda"),
    ("console=ttyS0 ab.swap=/dev/vda ab.name=vm-up", "name", "vm-up"),
    ("console=ttyS0 ab.swap=/dev/vda", "name", ""),
    ("ab.name=a ab.name=b", "name", "b"),
    ("xab.name=no ab.names=no", "name", ""),
    ("ab.name=* ab.swap=", "name", "*"),
])
def test_ab_param(cmdline, name, value):
    assert _sh(f"ab_param {name} '{cmdline}'") == value


@pytest.mark.parametrize(("cmdline", "module", "args"), [
    ("console=ttyS0 virtio_balloon.msg_interval_ms=100", "virtio_balloon",
     "msg_interval_ms=100"),
    ("virtio-balloon.a=1 x.b=2 virtio_balloon.c=3", "virtio_balloon", "a=1 c=3"),
    ("virtio_balloon.a=1", "virtio_blk", ""),
    ("ab.name=vm virtio_balloonx.a=1 virtio_balloon", "virtio_balloon", ""),
    ("virtio_balloon.path=/a.b=c", "virtio_balloon", "path=/a.b=c"),
])
def test_ab_modparams(cmdline, module, args):
    assert _sh(f"ab_modparams {module} '{cmdline}'") == args


@pytest.mark.parametrize(("name", "ok"), [
    ("vm-up", True), ("vm.down1", True), ("", False), ("-x", False), ("a b", False),
    ("a;reboot", False), ("x" * 64, False),
])
def test_ab_valid_name(name, ok):
    assert _sh(f"ab_valid_name '{name}' && echo yes || echo no").strip() == (
        "yes" if ok else "no")


@pytest.mark.parametrize(("dev", "ok"), [
    ("/dev/vda", True), ("/dev/disk/by-id/virtio-swap", True), ("/dev/", False),
    ("vda", False), ("/dev/../etc/passwd", False), ("/dev/vda;x", False),
])
def test_ab_valid_swap(dev, ok):
    assert _sh(f"ab_valid_swap '{dev}' && echo yes || echo no").strip() == (
        "yes" if ok else "no")


def test_inittab_runs_recipe_scripts():
    inittab = (RECIPE / "etc" / "inittab").read_text()
    for script in ("etc/init.d/rcS", "etc/init.d/sshd", "etc/init.d/ready"):
        assert f"/{script}" in inittab
        assert (RECIPE / script).read_bytes().startswith(b"#!/bin/sh")
    assert READY_LINE in (RECIPE / "etc" / "init.d" / "ready").read_text()
