"""The guest image: the pinned kernel plus one initramfs, built from Debian packages.

No disk image and no root= on the kernel command line: the initramfs stays the root file
system, which is then tmpfs (swappable). It holds busybox-static (init, shell, tools),
dropbear (SSH) with the libraries ldd finds, just the virtio modules the guest needs with
our virtio_balloon.ko in place of Debian's, the recipe files of images/guest/, and the
workload files in /opt/autoballoon/bin. See images/README.md for why.

This module stages the tree and assembles the image; the newc cpio writer is in cpio, the
parsers of modules.dep, ldd, dpkg and dropbearkey output are in image_parsers.

SSH keys are generated at build time and live only in the image's cache directory: the
client key (ssh-keygen, ed25519) whose public half is root's only authorized key, and
dropbear's host key (dropbearkey) whose public line the host pins.

Key = kernel, module key, the recipe tree, the Debian versions of busybox-static,
dropbear-bin and the libraries dropbear-bin depends on, the workload tree, the recipe
version and the code that shapes the image (BUILDER_SOURCES: this module, cpio.py and
image_parsers.py). The directory `<cache>/images/<key>/` appears by an atomic rename,
its manifest written before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rig.build.cachekey import cache_key, digest_file, digest_tree, staging
from rig.build.cpio import CpioEntry, tree_entries, write_cpio
from rig.build.guest_module import MODULE_NAME, STOCK_MODULE, GuestModule
from rig.build.image_parsers import (
    ModuleEntry,
    load_order,
    parse_depends_field,
    parse_dropbearkey_pub,
    parse_ldd,
    parse_modules_dep,
)
from rig.build.kernel import GuestKernel, parse_dpkg_versions
from rig.errors import RigError
from rig.layout import Layout
from rig.proc import run
from rig.progress import Progress

RECIPE_VERSION = "1"
MANIFEST = "manifest.json"
READY_LINE = "AUTOBALLOON-READY"
FAILED_LINE = "AUTOBALLOON-FAILED"
WORKLOAD_DIR = "opt/autoballoon/bin"
# No root=: the initramfs is the root file system (tmpfs). panic=-1 reboots on a panic,
# which a test sees as QEMU exiting (with -no-reboot) instead of a hung VM.
CMDLINE_BASE = "console=ttyS0 panic=-1 loglevel=4"

BUSYBOX = Path("/bin/busybox")
DROPBEAR = Path("/usr/sbin/dropbear")
HOST_PACKAGES: tuple[str, ...] = ("busybox-static", "dropbear-bin")
# The virtio drivers the guest loads (their dependencies are added from modules.dep).
GUEST_MODULES: tuple[str, ...] = (
    "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
    "virtio_blk", "virtio_net", MODULE_NAME,
)

# Every module whose code shapes the image, digested into its key in this order.
BUILDER_SOURCES: tuple[Path, ...] = (
    Path(__file__),
    Path(__file__).with_name("cpio.py"),
    Path(__file__).with_name("image_parsers.py"),
)


@dataclass(frozen=True)
class GuestImage:
    key: str
    dir: Path
    kernel: Path  # what to boot (-kernel / <kernel>): vmlinux (PVH ELF) when it exists
    vmlinuz: Path  # Debian's compressed kernel, byte for byte (also boots, ~5 s slower)
    initrd: Path
    ssh_key: Path  # client private key (root's only authorized key)
    ssh_pubkey: Path
    host_pubkey: str  # "ssh-ed25519 AAAA...": dropbear's host key, to pin
    cmdline_base: str
    manifest: Path
    module_version: str  # what /sys/module/virtio_balloon/version shows in the guest

    def known_hosts_line(self, host: str, port: int) -> str:
        name = host if port == 22 else f"[{host}]:{port}"
        return f"{name} {self.host_pubkey}"


# ---- pure helpers ---------------------------------------------------------------------

def is_script(data: bytes) -> bool:
    return data.startswith(b"#!")


def recipe_mode(rel: str, data: bytes) -> int:
    """Modes come from the recipe's content, not from how the checkout set them."""
    if rel == "etc/shadow":
        return 0o600
    return 0o755 if is_script(data) else 0o644


def builder_digest(sources: Iterable[Path] = BUILDER_SOURCES) -> str:
    """The builder's code: each source file's name and bytes, in the order given."""
    h = hashlib.sha256()
    for path in sources:
        h.update(path.name.encode() + b"\0" + digest_file(path).encode() + b"\n")
    return h.hexdigest()


def image_key(
    kernel: GuestKernel, module: GuestModule, recipe_digest: str,
    package_versions: Mapping[str, str], workload_digest: str | None,
) -> str:
    inputs = {
        "kernel": f"{kernel.abi} {kernel.version}",
        "module": module.key,
        "recipe": recipe_digest,
        "workload": workload_digest or "none",
        "recipe-version": RECIPE_VERSION,
        "builder": builder_digest(),
    }
    inputs.update({f"pkg:{k}": v for k, v in package_versions.items()})
    return cache_key(inputs)


# ---- adapters -------------------------------------------------------------------------

def host_package_versions() -> dict[str, str]:
    """Versions of busybox-static, dropbear-bin and everything they depend on, transitively.

    The libraries copied into the image come from these packages, so a security update
    to any of them changes the image key. One dpkg-query per dependency level (~15 ms).
    """
    versions: dict[str, str] = {}
    queue = list(HOST_PACKAGES)
    while queue:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f",
             "${Package} ${db:Status-Status} ${Version}\\n${Pre-Depends}, ${Depends}\\n",
             *queue],
            capture_output=True, text=True, check=False,
        )
        lines = proc.stdout.splitlines()
        found = parse_dpkg_versions("\n".join(lines[0::2]))
        missing = [p for p in queue if p not in found]
        if missing and not versions:
            raise RigError(f"{', '.join(missing)} not installed; run `apt-get install"
                           f" {' '.join(missing)}` (or `rig bootstrap`)")
        versions.update(found)
        queue = []
        for header, depends in zip(lines[0::2], lines[1::2], strict=False):
            if header.split(" ", 1)[0] not in found:
                continue
            queue += [d for d in parse_depends_field(depends)
                      if d not in versions and d not in queue]
    return dict(sorted(versions.items()))


def _load(final: Path, key: str) -> GuestImage | None:
    try:
        m = json.loads((final / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    img = _image_at(final, key, m.get("host_pubkey", ""), m.get("kernel_file", "vmlinuz"),
                    m.get("module_version", ""))
    if m.get("key") != key or not (img.initrd.is_file() and img.kernel.is_file()
                                   and img.ssh_key.is_file()):
        return None
    return img


def _image_at(final: Path, key: str, host_pubkey: str, kernel_file: str,
              module_version: str) -> GuestImage:
    return GuestImage(
        key=key, dir=final, kernel=final / kernel_file, vmlinuz=final / "vmlinuz",
        initrd=final / "initrd.img",
        ssh_key=final / "ssh" / "id_ed25519", ssh_pubkey=final / "ssh" / "id_ed25519.pub",
        host_pubkey=host_pubkey, cmdline_base=CMDLINE_BASE, manifest=final / MANIFEST,
        module_version=module_version,
    )


def _copy_file(src: Path, dest: Path, mode: int | None = None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)  # follows symlinks: the image gets real files
    dest.chmod(mode if mode is not None else stat.S_IMODE(src.stat().st_mode))


def _link_or_copy(src: Path, dest: Path) -> None:
    """Hard link (the kernel is 8-66 MB and identical in every image) or copy."""
    try:
        os.link(src, dest)
    except OSError:
        _copy_file(src, dest, 0o644)


def _stage_recipe(recipe: Path, root: Path) -> None:
    for src in sorted(p for p in recipe.rglob("*") if p.is_file()):
        rel = src.relative_to(recipe).as_posix()
        data = src.read_bytes()
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        dest.chmod(recipe_mode(rel, data))


def _stage_busybox(root: Path) -> int:
    _copy_file(BUSYBOX, root / "bin" / "busybox", 0o755)
    applets = run([BUSYBOX, "--list-full"]).split()
    for rel in applets:
        link = root / rel
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    (root / "init").symlink_to("bin/busybox")  # busybox init as PID 1
    return len(applets)


def _stage_dropbear(root: Path) -> list[str]:
    _copy_file(DROPBEAR, root / DROPBEAR.relative_to("/"), 0o755)
    libs = parse_ldd(run(["ldd", DROPBEAR]))
    for lib in libs:
        _copy_file(lib, root / lib.relative_to("/"), 0o755)
    return [str(lib) for lib in libs]


def _stage_modules(root: Path, kernel: GuestKernel, module: GuestModule) -> list[str]:
    modules = parse_modules_dep((kernel.modules_dir / "modules.dep").read_text())
    ours_deps = tuple(
        d for d in run(["modinfo", "-F", "depends", module.path]).strip().split(",") if d
    )
    modules[MODULE_NAME] = ModuleEntry(STOCK_MODULE, ours_deps)
    order = load_order(modules, GUEST_MODULES)
    dest_root = root / "lib" / "modules" / kernel.abi
    for entry in order:
        src = module.path if entry.path == STOCK_MODULE else kernel.modules_dir / entry.path
        _copy_file(src, dest_root / entry.path, 0o644)
    for extra in ("modules.builtin", "modules.builtin.modinfo"):
        if (kernel.modules_dir / extra).is_file():
            _copy_file(kernel.modules_dir / extra, dest_root / extra, 0o644)
    run(["depmod", "-b", root, kernel.abi])
    paths = [e.path for e in order]
    (root / "etc" / "autoballoon").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "autoballoon" / "modules.order").write_text("\n".join(paths) + "\n")
    return paths


def _stage_keys(root: Path, ssh_dir: Path, log: Path) -> str:
    ssh_dir.mkdir(mode=0o700, parents=True)
    client = ssh_dir / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "autoballoon-rig", "-f", client],
        log=log)
    pub = client.with_suffix(".pub").read_text().split()
    if len(pub) < 2:
        raise RigError(f"ssh-keygen wrote no public key to {client}.pub; rerun the build")
    ssh = root / "root" / ".ssh"
    ssh.mkdir(mode=0o700, parents=True)
    (root / "root").chmod(0o700)
    forced = "/usr/libexec/autoballoon/session"
    (ssh / "authorized_keys").write_text(
        f'command="{forced}",no-port-forwarding,no-agent-forwarding,no-X11-forwarding'
        f" {pub[0]} {pub[1]} autoballoon-rig\n")
    (ssh / "authorized_keys").chmod(0o600)
    host_key = root / "etc" / "dropbear" / "dropbear_ed25519_host_key"
    host_key.parent.mkdir(parents=True, exist_ok=True)
    run(["dropbearkey", "-t", "ed25519", "-f", host_key], log=log)
    host_key.chmod(0o600)
    host_pub = parse_dropbearkey_pub(run(["dropbearkey", "-y", "-f", host_key]))
    (ssh_dir / "host_ed25519.pub").write_text(host_pub + "\n")
    return host_pub


def _shared_libraries(binary: Path) -> list[Path]:
    """What a dynamically linked ELF file needs ([] for static ones and non-ELF files)."""
    with binary.open("rb") as f:
        if f.read(4) != b"\x7fELF":
            return []
    proc = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    return parse_ldd(proc.stdout) if proc.returncode == 0 else []


def _stage_workload(workload_dir: Path, root: Path) -> tuple[list[str], list[str]]:
    """Copy the workload files, plus any shared library a dynamic one needs."""
    dest = root / WORKLOAD_DIR
    names: list[str] = []
    libs: list[str] = []
    for src in sorted(p for p in workload_dir.rglob("*") if p.is_file()):
        rel = src.relative_to(workload_dir).as_posix()
        _copy_file(src, dest / rel)
        names.append(rel)
        for lib in _shared_libraries(src):
            if not (root / lib.relative_to("/")).exists():
                _copy_file(lib, root / lib.relative_to("/"), 0o755)
                libs.append(str(lib))
    return names, libs


def _build(layout: Layout, progress: Progress, kernel: GuestKernel, module: GuestModule,
           workload_dir: Path | None, key: str, versions: Mapping[str, str],
           tmp: Path) -> tuple[str, str]:
    log = tmp / "build.log"
    root = tmp / "root"
    root.mkdir(parents=True)
    for d in ("proc", "sys", "dev", "run", "mnt", "var/log", WORKLOAD_DIR):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)
    _stage_recipe(layout.image_recipe, root)
    applets = _stage_busybox(root)
    libs = _stage_dropbear(root)
    mods = _stage_modules(root, kernel, module)
    host_pub = _stage_keys(root, tmp / "ssh", log)
    workload, workload_libs = _stage_workload(workload_dir, root) if workload_dir else ([], [])
    libs += workload_libs
    info = {
        "key": key, "kernel": f"{kernel.abi} {kernel.version}",
        "module_key": module.key, "module_version": module.version,
        "modules": mods, "workload": workload,
    }
    (root / "etc" / "autoballoon" / "image.json").write_text(json.dumps(info, indent=1) + "\n")
    entries = tree_entries(root)
    # The kernel opens /dev/console before init mounts devtmpfs over /dev.
    entries.append(CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    entries.sort(key=lambda e: e.name)
    write_cpio(entries, tmp / "initrd.img")
    _link_or_copy(kernel.vmlinuz, tmp / "vmlinuz")
    kernel_file = "vmlinuz"
    if kernel.vmlinux is not None:
        _link_or_copy(kernel.vmlinux, tmp / "vmlinux")
        kernel_file = "vmlinux"
    shutil.rmtree(root)
    initrd_size = (tmp / "initrd.img").stat().st_size
    progress.info(f"initramfs {initrd_size / 2**20:.1f} MiB: {applets} busybox applets,"
                  f" {len(mods)} modules, dropbear + {len(libs)} libraries,"
                  f" {len(workload)} workload files")
    (tmp / MANIFEST).write_text(json.dumps({
        **info, "package_versions": dict(versions), "libraries": libs,
        "cmdline_base": CMDLINE_BASE, "host_pubkey": host_pub, "kernel_file": kernel_file,
        "initrd_bytes": initrd_size, "initrd_sha256": digest_file(tmp / "initrd.img"),
        "kernel_deb_sha256": kernel.deb_sha256,
    }, indent=1) + "\n")
    return host_pub, kernel_file


def ensure_image(
    layout: Layout, progress: Progress, kernel: GuestKernel, module: GuestModule,
    workload_dir: Path | None = None,
) -> GuestImage:
    """Build (or find) the guest image for this kernel, module, recipe and workload."""
    with progress.step("guest image") as step:
        if workload_dir is not None and not workload_dir.is_dir():
            raise RigError(f"workload directory {workload_dir} does not exist; build the"
                           " workload first")
        versions = host_package_versions()
        key = image_key(kernel, module, digest_tree(layout.image_recipe), versions,
                        digest_tree(workload_dir) if workload_dir else None)
        final = layout.cache / "images" / key
        found = _load(final, key)
        if found is not None:
            step.cached(f"key {key}")
            return found
        with staging(final) as tmp:
            host_pub, kernel_file = _build(layout, progress, kernel, module, workload_dir, key,
                              versions, tmp)
        return _image_at(final, key, host_pub, kernel_file, module.version)
