import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from rig.build.cachekey import digest_tree
from rig.build.guest_module import GuestModule
from rig.build.image import READY_LINE, image_key, recipe_mode
from rig.build.kernel import GuestKernel
from rig.layout import REPO_ROOT

RECIPE = REPO_ROOT / "images" / "guest"

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
    ("console=ttyS0 virtio_balloon.oom_pages=64", "virtio_balloon", "oom_pages=64"),
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
