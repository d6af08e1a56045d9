"""The guest kernel: Debian's 6.1 image package, pinned, fetched and unpacked once.

`linux-image-amd64` is a meta package whose one dependency names the real image package
(`linux-image-6.1.0-NN-amd64`); NN moves with point releases, so it is resolved and
recorded. The guest module is built against `linux-headers-<abi>` and the driver source
comes from `linux-source-6.1`: both must be installed at the image package's exact
version, or the module would not match the kernel it is loaded into.

The image .deb is downloaded (never installed) into the cache and unpacked with
`dpkg-deb -x` into `<cache>/kernel/<abi>-<version>/`, then `depmod -b` writes modules.dep
there. The directory appears by an atomic rename, with its manifest written before it.

The uncompressed kernel (`vmlinux`, an ELF file) is also extracted from the vmlinuz
there: the Debian kernel has a PVH entry point, so QEMU can boot the ELF directly and the
guest skips the xz decompression of ~64 MB, which takes ~5 s under TCG (boot to SSH
measured 5.2 s instead of 10.6 s).

Warm runs must be fast, but `apt-cache` takes ~1 s per call on machines that keep no
binary package cache. So the resolution is remembered together with a fingerprint of
everything apt's answer depends on (the package lists, dpkg's status, apt's sources and
preferences: names, sizes, modification times); while the fingerprint holds, apt is not
asked again.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from rig.build import debian
from rig.build.cachekey import digest_file, staging
from rig.errors import RigError
from rig.layout import Layout
from rig.proc import run
from rig.progress import Progress

META_PACKAGE = "linux-image-amd64"
SERIES = "6.1"
SOURCE_PACKAGE = f"linux-source-{SERIES}"
SOURCE_TARBALL = Path(f"/usr/src/{SOURCE_PACKAGE}.tar.xz")
HEADERS_ROOT = Path("/usr/src")
ARCH = "amd64"
MANIFEST = "manifest.json"

_IMAGE_RE = re.compile(r"^linux-image-(\d+\.\d+\.\d+-\d+-amd64)$")


@dataclass(frozen=True)
class GuestKernel:
    abi: str  # e.g. "6.1.0-56-amd64"
    version: str  # Debian package version, e.g. "6.1.192-2"
    vmlinuz: Path
    modules_dir: Path  # the unpacked lib/modules/<abi>
    headers_dir: Path  # /usr/src/linux-headers-<abi>
    source_tarball: Path
    deb_sha256: str
    vmlinux: Path | None = None  # uncompressed ELF with a PVH entry; None if not bootable

    @property
    def package(self) -> str:
        return image_package(self.abi)


@dataclass(frozen=True)
class Resolution:
    abi: str
    version: str


# ---- pure helpers ---------------------------------------------------------------------

def image_package(abi: str) -> str:
    return f"linux-image-{abi}"


def headers_package(abi: str) -> str:
    return f"linux-headers-{abi}"


def abi_from_depends(depends: list[str]) -> str:
    """The ABI named by the meta package's image dependency; it must be the 6.1 series."""
    abis = [m.group(1) for d in depends if (m := _IMAGE_RE.match(d))]
    if len(abis) != 1:
        raise RigError(
            f"{META_PACKAGE} depends on {depends or 'nothing'}, not on one linux-image-X-amd64;"
            " check the apt sources (Debian bookworm expected)"
        )
    abi = abis[0]
    if not abi.startswith(f"{SERIES}."):
        raise RigError(
            f"{META_PACKAGE} resolves to kernel {abi}, not {SERIES}.x; the guest driver"
            f" patches target {SERIES}: use Debian bookworm apt sources"
        )
    return abi


def deb_filename(package: str, version: str, arch: str = ARCH) -> str:
    """The file name `apt-get download` gives a .deb (an epoch's colon becomes %3a)."""
    return f"{package}_{version.replace(':', '%3a')}_{arch}.deb"


def kernel_dir_name(abi: str, version: str) -> str:
    return f"{abi}-{version.replace(':', '_')}"


def parse_dpkg_versions(text: str) -> dict[str, str]:
    """`dpkg-query -W -f '${Package} ${db:Status-Status} ${Version}\\n'` -> installed versions."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "installed":
            out[parts[0]] = parts[2]
    return out


_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZIP_MAGIC = b"\x1f\x8b\x08"
_PT_NOTE = 4
_XEN_ELFNOTE_PHYS32_ENTRY = 18


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF kernel inside a bzImage (xz or gzip payload), like scripts/extract-vmlinux."""
    for magic in (_XZ_MAGIC, _GZIP_MAGIC):
        start = bzimage.find(magic)
        while start != -1:
            try:
                if magic == _XZ_MAGIC:
                    out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(
                        bzimage[start:])
                else:
                    out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(bzimage[start:])
            except (lzma.LZMAError, zlib.error):
                out = b""
            if out.startswith(b"\x7fELF"):
                return out
            start = bzimage.find(magic, start + 1)
    raise RigError("no xz or gzip ELF payload in the kernel image; boot the vmlinuz instead")


def elf_notes(elf: bytes) -> list[tuple[str, int, bytes]]:
    """(name, type, desc) of every note in an ELF64 little-endian file's PT_NOTE segments."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not an ELF64 little-endian file")
    phoff = struct.unpack_from("<Q", elf, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    notes: list[tuple[str, int, bytes]] = []
    for i in range(phnum):
        p_type, _flags, offset, _va, _pa, filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != _PT_NOTE:
            continue
        pos, end = offset, offset + filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            pos += 12
            name = elf[pos:pos + namesz].rstrip(b"\0").decode(errors="replace")
            pos += (namesz + 3) & ~3
            notes.append((name, ntype, elf[pos:pos + descsz]))
            pos += (descsz + 3) & ~3
    return notes


def has_pvh_entry(elf: bytes) -> bool:
    """True if QEMU can boot this ELF kernel directly (Xen PHYS32_ENTRY note)."""
    return any(n == "Xen" and t == _XEN_ELFNOTE_PHYS32_ENTRY for n, t, _ in elf_notes(elf))


# ---- adapters -------------------------------------------------------------------------

def installed_versions(packages: list[str]) -> dict[str, str]:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status} ${Version}\n", *packages],
        capture_output=True, text=True, check=False,
    )
    return parse_dpkg_versions(proc.stdout)


def _resolve_with_apt() -> Resolution:
    abi = abi_from_depends(debian.depends_of(META_PACKAGE))
    return Resolution(abi=abi, version=debian.candidate_version(image_package(abi)))


def _ensure_build_inputs(res: Resolution, log: Path, progress: Progress) -> None:
    """linux-headers-<abi> and linux-source-6.1 installed at the image's exact version."""
    wanted = [headers_package(res.abi), SOURCE_PACKAGE]
    have = installed_versions(wanted)
    # A point release moves linux-source-6.1 with the image: follow it (this is the
    # bootstrap's job), saying so, rather than building against mismatched sources.
    todo = [p for p in wanted if have.get(p) != res.version]
    if todo:
        was = ", ".join(f"{p} {have[p]}" for p in todo if p in have)
        progress.info(f"installing {', '.join(todo)} {res.version}"
                      + (f" (replacing {was})" if was else ""))
        debian.install([f"{p}={res.version}" for p in todo], log)
    if not SOURCE_TARBALL.is_file():
        raise RigError(f"{SOURCE_TARBALL} is missing; run `apt-get install --reinstall"
                       f" {SOURCE_PACKAGE}={res.version}`")
    if not (HEADERS_ROOT / headers_package(res.abi)).is_dir():
        raise RigError(f"{HEADERS_ROOT / headers_package(res.abi)} is missing; run"
                       f" `apt-get install --reinstall {headers_package(res.abi)}={res.version}`")


def _resolve(layout: Layout, log: Path, progress: Progress) -> Resolution:
    def compute() -> dict[str, str]:
        res = _resolve_with_apt()
        _ensure_build_inputs(res, log, progress)
        return {"abi": res.abi, "version": res.version}

    found = debian.apt_memo(layout.cache / "kernel" / "resolution.json", {}, compute)
    return Resolution(abi=found["abi"], version=found["version"])


def _load(final: Path, res: Resolution) -> GuestKernel | None:
    try:
        manifest = json.loads((final / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    kernel = _kernel_at(final, res, manifest.get("deb_sha256", ""),
                        bool(manifest.get("pvh", False)))
    if manifest.get("abi") != res.abi or manifest.get("version") != res.version:
        return None
    if "pvh" not in manifest or (kernel.vmlinux and not kernel.vmlinux.is_file()):
        return None
    if not (kernel.vmlinuz.is_file() and (kernel.modules_dir / "modules.dep").is_file()):
        return None
    return kernel


def _kernel_at(final: Path, res: Resolution, sha256: str, pvh: bool) -> GuestKernel:
    return GuestKernel(
        abi=res.abi,
        version=res.version,
        vmlinuz=final / "boot" / f"vmlinuz-{res.abi}",
        modules_dir=final / "lib" / "modules" / res.abi,
        headers_dir=HEADERS_ROOT / headers_package(res.abi),
        source_tarball=SOURCE_TARBALL,
        deb_sha256=sha256,
        vmlinux=final / "vmlinux" if pvh else None,
    )


def _fetch_deb(layout: Layout, res: Resolution, log: Path) -> tuple[Path, str]:
    debs = layout.cache / "debs"
    deb = debs / deb_filename(image_package(res.abi), res.version)
    sums = debs / "SHA256SUMS.json"
    try:
        known: dict[str, str] = json.loads(sums.read_text())
    except (OSError, ValueError):
        known = {}
    if deb.is_file() and deb.name in known:
        return deb, known[deb.name]
    if not deb.is_file():
        got = debian.download(image_package(res.abi), res.version, debs, log)
        if got != deb and not deb.is_file():
            raise RigError(f"apt-get download left {got.name}, expected {deb.name}; remove"
                           f" {debs} and retry")
    known[deb.name] = digest_file(deb)
    tmp = sums.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
    tmp.replace(sums)
    return deb, known[deb.name]


def ensure_kernel(layout: Layout, progress: Progress) -> GuestKernel:
    """Resolve, fetch and unpack the pinned guest kernel; a no-op (~ms) when present."""
    log = layout.cache / "logs" / "kernel.log"
    with progress.step("guest kernel") as step:
        res = _resolve(layout, log, progress)
        final = layout.cache / "kernel" / kernel_dir_name(res.abi, res.version)
        kernel = _load(final, res)
        if kernel is not None:
            step.cached(f"{image_package(res.abi)} {res.version}")
            return kernel
        deb, sha256 = _fetch_deb(layout, res, log)
        progress.info(f"unpacking {deb.name}")
        with staging(final) as tmp:
            run(["dpkg-deb", "-x", deb, tmp], log=log)
            _merge_usr_lib(tmp)
            staged = _kernel_at(tmp, res, sha256, False)
            if not staged.vmlinuz.is_file() or not staged.modules_dir.is_dir():
                raise RigError(f"{deb.name} holds no boot/vmlinuz-{res.abi} or"
                               f" lib/modules/{res.abi}; delete it from {deb.parent} and retry")
            run(["depmod", "-b", tmp, res.abi], log=log)
            pvh = _write_vmlinux(staged.vmlinuz, tmp / "vmlinux", progress)
            (tmp / MANIFEST).write_text(json.dumps({
                "package": image_package(res.abi), "abi": res.abi, "version": res.version,
                "deb": deb.name, "deb_sha256": sha256, "pvh": pvh,
            }, indent=1) + "\n")
        return _kernel_at(final, res, sha256, pvh)


def _write_vmlinux(vmlinuz: Path, dest: Path, progress: Progress) -> bool:
    """Extract the ELF kernel if QEMU can boot it directly (PVH); False if it cannot."""
    try:
        elf = extract_vmlinux(vmlinuz.read_bytes())
        pvh = has_pvh_entry(elf)
    except (RigError, ValueError, struct.error):
        pvh = False
    if not pvh:
        progress.info("kernel has no PVH entry: guests boot the (slower) vmlinuz")
        return False
    dest.write_bytes(elf)
    return True


def _merge_usr_lib(root: Path) -> None:
    """Newer packages ship usr/lib/modules; depmod -b and our paths expect lib/modules."""
    usr_mods = root / "usr" / "lib" / "modules"
    if usr_mods.is_dir() and not (root / "lib" / "modules").exists():
        (root / "lib").mkdir(exist_ok=True)
        usr_mods.rename(root / "lib" / "modules")
