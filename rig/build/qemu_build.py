"""QEMU from Debian's 7.2 source package: a minimal x86_64 system emulator, cached by content.

Steps:
1. Resolve the newest `1:7.2+dfsg-*` version of source package `qemu` that apt knows
   (a deb-src entry is added first if the machine has none). The answer is remembered
   with a fingerprint of apt's state, so warm runs do not ask apt again.
2. Key = source version + our patches (names and bytes of host/qemu/patches/*.patch) +
   the build configuration (configure flags, device config, build PATH) + a recipe
   version. `<cache>/qemu/<key>/manifest.json` present = done.
3. Otherwise, once per version, download the source package into `<cache>/qemu/src/<v>/`
   (so a patch change does not download it again); per key, unpack it with
   `dpkg-source -x` (Debian's patches applied) under `<cache>/qemu/build-<key>/`, apply
   our patches in name order with `patch -p1`, write the device config into the tree,
   configure, `ninja qemu-system-x86_64`, and install the binary and keymaps into a
   staging prefix there.
4. Check the staged binary (version string, device list, a q35 machine with the balloon
   that finds its firmware without -L), write the manifest last, rename the prefix to
   `<cache>/qemu/<key>/` and remove the build directory. A failure removes it too and
   leaves no manifest, so the next run retries.

Firmware comes from Debian's seabios, ipxe-qemu and qemu-system-data packages through
the compiled-in firmware path; QEMU locates its own data directory relative to the
binary, so the staged prefix works before and after the rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cmp_to_key
from pathlib import Path

from rig.build import debian
from rig.build.cachekey import cache_key, digest_file, staging
from rig.build.patchseries import apply_series, list_patches, patches_digest
from rig.errors import RigError
from rig.layout import Layout
from rig.proc import run
from rig.progress import Progress

# Bump when the recipe changes in a way the other key inputs do not show.
BUILD_RECIPE_VERSION = "1"

SOURCE_PACKAGE = "qemu"
SOURCE_VERSION_PREFIX = "1:7.2+dfsg-"
TARGET = "x86_64-softmmu"
BINARY_NAME = "qemu-system-x86_64"
MANIFEST = "manifest.json"
DEVICE_CONFIG_NAME = "autoballoon"

# What the q35 guests libvirt starts for the rig need (hw/*/Kconfig names in 7.2).
# I440FX is also required by the x86 target's ISA PC code (hw/i386/Kconfig: ISAPC).
DEVICES: tuple[str, ...] = (
    "I440FX",
    "Q35",
    "PCIE_PORT",  # pcie-root-port: libvirt puts q35 devices behind them
    "USB_XHCI_PCI",  # qemu-xhci: libvirt's default USB controller on q35
    "VIRTIO_PCI",
    "VIRTIO_BLK",
    "VIRTIO_NET",
    "VIRTIO_SERIAL",
    "VIRTIO_BALLOON",
    "VIRTIO_RNG",
    "SERIAL_ISA",  # isa-serial: the pty console
)

# Device names the built binary must list in `-device help`.
REQUIRED_DEVICES: tuple[str, ...] = (
    "pcie-root-port",
    "qemu-xhci",
    "virtio-blk-pci",
    "virtio-net-pci",
    "virtio-serial-pci",
    "virtio-balloon-pci",
    "virtio-rng-pci",
    "isa-serial",
)

# Configure flags other than the ones derived from the key (prefix, package version).
CONFIGURE_FLAGS: tuple[str, ...] = (
    f"--target-list={TARGET}",
    "--without-default-features",
    "--without-default-devices",
    f"--with-devices-x86_64={DEVICE_CONFIG_NAME}",
    "--enable-kvm",
    "--enable-tcg",
    "--enable-slirp",
    "--disable-docs",
    "--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu",
)

# configure cannot take --python together with a system meson, and picks `python3` from
# PATH, which may be a pyenv interpreter: build with Debian's tools only.
BUILD_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

FIRMWARE_PROBE = "bios-256k.bin"
VERIFY_TIMEOUT_S = 60


@dataclass(frozen=True)
class QemuBuild:
    key: str
    prefix: Path  # layout.cache / "qemu" / key
    binary: Path  # prefix / "bin" / "qemu-system-x86_64"
    source_version: str  # e.g. "1:7.2+dfsg-7+deb12u18"
    patches: tuple[str, ...]  # file names applied, in order


# ---- pure helpers: Debian version ordering ---------------------------------------------

def _char_order(c: str) -> int:
    """dpkg's order of one character in a non-digit run ("" = end of string)."""
    if c == "" or c.isdigit():
        return 0
    if c == "~":
        return -1
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_fragment(a: str, b: str) -> int:
    """Compare an upstream version or a revision the way dpkg does (-1, 0, 1)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _char_order(a[i] if i < len(a) else "")
            bc = _char_order(b[j] if j < len(b) else "")
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        ni = i
        while ni < len(a) and a[ni].isdigit():
            ni += 1
        nj = j
        while nj < len(b) and b[nj].isdigit():
            nj += 1
        na = int(a[i:ni] or "0")
        nb = int(b[j:nj] or "0")
        if na != nb:
            return -1 if na < nb else 1
        i, j = ni, nj
    return 0


def _split_version(version: str) -> tuple[int, str, str]:
    epoch_text, sep, rest = version.partition(":")
    if not sep:
        epoch_text, rest = "0", version
    if not epoch_text.isdigit():
        raise ValueError(f"bad epoch in Debian version {version!r}")
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    if not upstream:
        raise ValueError(f"empty upstream part in Debian version {version!r}")
    return int(epoch_text), upstream, revision


def compare_versions(a: str, b: str) -> int:
    """Debian version ordering (like `dpkg --compare-versions`): -1, 0 or 1."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_fragment(ua, ub) or _compare_fragment(ra, rb)


def pick_source_version(versions: Iterable[str], prefix: str = SOURCE_VERSION_PREFIX
                        ) -> str | None:
    """The newest of `versions` that starts with `prefix`, or None."""
    matching = [v for v in versions if v.startswith(prefix)]
    if not matching:
        return None
    return max(matching, key=cmp_to_key(compare_versions))


def no_version_message(versions: Iterable[str]) -> str:
    seen = ", ".join(sorted(set(versions))) or "none"
    return (
        f"apt knows no {SOURCE_PACKAGE} source version {SOURCE_VERSION_PREFIX}* (it knows:"
        f" {seen}); run `apt-get update` with Debian bookworm main (deb and deb-src) in apt's"
        " sources, then retry"
    )


# ---- pure helpers: build configuration and key -----------------------------------------

def device_config_text(devices: Iterable[str] = DEVICES) -> str:
    lines = [
        "# Generated by rig/build/qemu_build.py: the devices of autoballoon's minimal QEMU.",
        "# Used with --without-default-devices, so nothing else is built in.",
        *(f"CONFIG_{d}=y" for d in devices),
    ]
    return "\n".join(lines) + "\n"


def package_version(key: str, source_version: str) -> str:
    """--with-pkgversion: shows up in `-version` and QMP query-version's `package`."""
    return f"autoballoon {key}, Debian {source_version}"


def configure_argv(prefix: Path, pkgversion: str) -> list[str]:
    return ["../configure", *CONFIGURE_FLAGS, f"--prefix={prefix}",
            f"--with-pkgversion={pkgversion}"]


def key_inputs(source_version: str, patch_digest: str) -> dict[str, str]:
    return {
        "source-version": source_version,
        "patches": patch_digest,
        "configure": "\n".join(CONFIGURE_FLAGS),
        "devices": device_config_text(),
        "build-path": BUILD_PATH,
        "recipe": BUILD_RECIPE_VERSION,
    }


def build_key(source_version: str, patch_dir: Path) -> str:
    return cache_key(key_inputs(source_version, patches_digest(patch_dir)))


def source_dir_name(version: str) -> str:
    return version.replace(":", "_")


def dsc_name(version: str) -> str:
    """apt-get source names the .dsc without the epoch: qemu_7.2+dfsg-7+deb12u18.dsc."""
    return f"{SOURCE_PACKAGE}_{version.partition(':')[2] or version}.dsc"


# ---- pure helpers: progress and checks of the result -----------------------------------

_NINJA_RE = re.compile(r"^\[(\d+)/(\d+)\]")


def parse_ninja_progress(line: str) -> tuple[int, int] | None:
    m = _NINJA_RE.match(line)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2))


@dataclass
class NinjaMeter:
    """Says when a compile progress line is worth printing: each new tenth of the steps."""

    last_tenth: int = 0

    def update(self, done: int, total: int) -> str | None:
        if total <= 0:
            return None
        tenth = done * 10 // total
        if tenth <= self.last_tenth:
            return None
        self.last_tenth = tenth
        return f"compile [{done}/{total}]"


def listed_devices(help_text: str) -> set[str]:
    """Device names from `-device help` (lines like `name "virtio-blk-pci", bus PCI`)."""
    return set(re.findall(r'^\s*name "([^"]+)"', help_text, re.MULTILINE))


def missing_devices(help_text: str, required: Iterable[str] = REQUIRED_DEVICES) -> list[str]:
    have = listed_devices(help_text)
    return [d for d in required if d not in have]


def parse_version_output(text: str) -> tuple[str, str] | None:
    """`QEMU emulator version 7.2.22 (pkg)` -> ("7.2.22", "pkg")."""
    m = re.search(r"QEMU emulator version (\S+)(?: \((.*)\))?", text)
    if not m:
        return None
    return m.group(1), m.group(2) or ""


QMP_SMOKE_COMMANDS: tuple[str, ...] = ("qmp_capabilities", "query-version", "query-balloon",
                                       "quit")


def qmp_smoke_input() -> str:
    return "".join(json.dumps({"execute": c, "id": c}) + "\n" for c in QMP_SMOKE_COMMANDS)


def check_qmp_transcript(text: str) -> dict[str, object]:
    """Every smoke command answered without error; returns the `return` values by command.

    Raises ValueError naming what is wrong.
    """
    answers: dict[str, object] = {}
    greeted = False
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "QMP" in msg:
            greeted = True
        elif "error" in msg:
            err = msg["error"]
            desc = err.get("desc", err) if isinstance(err, dict) else err
            raise ValueError(f"QMP {msg.get('id', '?')} failed: {desc}")
        elif "return" in msg and "id" in msg:
            answers[str(msg["id"])] = msg["return"]
    if not greeted:
        raise ValueError("no QMP greeting")
    missing = [c for c in QMP_SMOKE_COMMANDS if c not in answers]
    if missing:
        raise ValueError(f"no QMP answer to {', '.join(missing)}")
    return answers


def smoke_argv(binary: Path) -> list[str]:
    """A q35 machine like the ones libvirt starts: root port, xHCI, balloon, net, console."""
    return [
        str(binary), "-nodefaults", "-machine", "q35,accel=tcg", "-display", "none", "-S",
        "-device", "pcie-root-port,id=rp1,chassis=1",
        "-device", "pcie-root-port,id=rp2,chassis=2",
        "-device", "pcie-root-port,id=rp3,chassis=3",
        "-device", "qemu-xhci,bus=rp1",
        "-device", "virtio-balloon-pci,bus=rp2",
        "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,bus=rp3",
        "-chardev", "null,id=con0", "-device", "isa-serial,chardev=con0",
        "-serial", "none", "-qmp", "stdio",
    ]


# ---- adapters ---------------------------------------------------------------------------

def _apt_log(layout: Layout) -> Path:
    return layout.cache / "logs" / "apt.log"


def available_source_versions(layout: Layout) -> list[str]:
    debian.ensure_deb_src(_apt_log(layout))
    try:
        return debian.source_versions(SOURCE_PACKAGE)
    except RigError:
        return []


def resolve_source_version(layout: Layout) -> str:
    """The newest 1:7.2+dfsg-* source version, remembered while apt's state is unchanged."""
    def compute() -> dict[str, str]:
        versions = available_source_versions(layout)
        chosen = pick_source_version(versions)
        if chosen is None:
            raise RigError(no_version_message(versions))
        return {"version": chosen}

    memo = layout.cache / "qemu" / "source-version.json"
    return debian.apt_memo(memo, {"prefix": SOURCE_VERSION_PREFIX}, compute)["version"]


def _load(final: Path, key: str) -> QemuBuild | None:
    try:
        m = json.loads((final / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    binary = final / "bin" / BINARY_NAME
    if m.get("key") != key or not binary.is_file():
        return None
    return QemuBuild(key=key, prefix=final, binary=binary, source_version=m["version"],
                     patches=tuple(m["patches"]))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One QEMU build at a time on this machine (they share the source cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build_env() -> dict[str, str]:
    return {**os.environ, "PATH": BUILD_PATH, "LC_ALL": "C"}


def fetch_source(layout: Layout, version: str, log: Path, progress: Progress) -> Path:
    """`<cache>/qemu/src/<version>/` holding the .dsc and its tarballs (downloaded once)."""
    final = layout.cache / "qemu" / "src" / source_dir_name(version)
    if (final / dsc_name(version)).is_file():
        progress.info(f"fetch: source {version} already in {final}")
        return final
    progress.info(f"fetch: apt-get source {SOURCE_PACKAGE}={version}")
    with staging(final) as tmp:
        run(["apt-get", "source", "--download-only", "--only-source",
             f"{SOURCE_PACKAGE}={version}"], cwd=tmp, log=log)
        if not (tmp / dsc_name(version)).is_file():
            raise RigError(f"apt-get source left no {dsc_name(version)}; see {log}")
    return final


def run_ninja(argv: list[str], cwd: Path, log: Path, progress: Progress) -> None:
    """Run ninja with its output in `log`, printing a progress line per tenth of the steps."""
    meter = NinjaMeter()
    with log.open("a") as f:
        f.write(f"$ {' '.join(argv)}\n")
        f.flush()
        proc = subprocess.Popen(argv, cwd=cwd, env=_build_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            step = parse_ninja_progress(line)
            if step is not None and (msg := meter.update(*step)) is not None:
                progress.info(msg)
        status = proc.wait()
    if status != 0:
        raise RigError(f"compiling QEMU failed (ninja status {status}); see {log}")


def install_staged(tree: Path, build: Path, prefix: Path) -> None:
    """The binary and the keymaps: all a -nodefaults machine needs besides Debian's firmware."""
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(build / BINARY_NAME, prefix / "bin" / BINARY_NAME)
    (prefix / "bin" / BINARY_NAME).chmod(0o755)
    data = prefix / "share" / "qemu"
    data.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tree / "pc-bios" / "keymaps", data / "keymaps",
                    ignore=shutil.ignore_patterns("meson.build"))
    for d in (prefix, *(p for p in prefix.rglob("*") if p.is_dir())):
        d.chmod(0o755)  # libvirt's QEMU user runs the binary from here


def verify(binary: Path, pkgversion: str, log: Path) -> str:
    """Check a built binary; returns its QEMU version. Raises RigError saying what failed."""
    version_out = run([binary, "-machine", "none", "-version"])
    parsed = parse_version_output(version_out)
    if parsed is None or parsed[1] != pkgversion:
        raise RigError(f"{binary} -version printed {version_out.strip()!r}, expected package"
                       f" {pkgversion!r}")
    missing = missing_devices(run([binary, "-nodefaults", "-machine", "none",
                                   "-device", "help"]))
    if missing:
        raise RigError(f"{binary} lacks devices {', '.join(missing)}; fix DEVICES in"
                       " rig/build/qemu_build.py")
    argv = smoke_argv(binary)
    with log.open("a") as f:
        f.write(f"$ {' '.join(argv)}\n")
    try:
        proc = subprocess.run(argv, input=qmp_smoke_input(), capture_output=True, text=True,
                              timeout=VERIFY_TIMEOUT_S, check=False, cwd="/")
    except subprocess.TimeoutExpired as e:
        raise RigError(f"{binary} did not quit within {VERIFY_TIMEOUT_S} s of QMP quit") from e
    with log.open("a") as f:
        f.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        hint = f" (firmware: is {FIRMWARE_PROBE} installed? seabios)" if "BIOS" in tail else ""
        raise RigError(f"{binary} failed to start a q35 machine: {tail}{hint}; see {log}")
    try:
        check_qmp_transcript(proc.stdout)
    except ValueError as e:
        raise RigError(f"{binary} q35 smoke test: {e}; see {log}") from e
    return parsed[0]


def ensure_qemu(layout: Layout, progress: Progress) -> QemuBuild:
    """Build (or find) the minimal patched QEMU for the current inputs."""
    with progress.step("QEMU") as step:
        version = resolve_source_version(layout)
        key = build_key(version, layout.qemu_patches)
        root = layout.cache / "qemu"
        final = root / key
        found = _load(final, key)
        if found is not None:
            step.cached(f"{version}, key {key}")
            return found
        with _locked(root / ".lock"):
            found = _load(final, key)
            if found is not None:
                step.cached(f"{version}, key {key}, built meanwhile")
                return found
            return _build(layout, progress, version, key)


def _build(layout: Layout, progress: Progress, version: str, key: str) -> QemuBuild:
    root = layout.cache / "qemu"
    final = root / key
    work = root / f"build-{key}"
    log = root / f"build-{key}.log"
    log.write_text("")
    progress.info(f"building {SOURCE_PACKAGE} {version} as key {key} (log: {log})")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    times: dict[str, float] = {}
    clock = time.monotonic
    try:
        t = clock()
        src = fetch_source(layout, version, log, progress)
        tree = work / "qemu"
        run(["dpkg-source", "-x", src / dsc_name(version), tree], cwd=work, log=log)
        times["fetch"] = clock() - t

        t = clock()
        patches = list_patches(layout.qemu_patches)
        applied = apply_series(patches, tree, log, "Debian's QEMU source")
        progress.info(f"patch: applied {len(applied)} patch(es)"
                      + (f": {', '.join(applied)}" if applied else ""))
        mak = tree / "configs" / "devices" / TARGET / f"{DEVICE_CONFIG_NAME}.mak"
        mak.write_text(device_config_text())
        times["patch"] = clock() - t

        t = clock()
        progress.info("configure")
        prefix = final  # compiled in; the binary is staged elsewhere and renamed there
        pkgversion = package_version(key, version)
        build = tree / "build"
        build.mkdir()
        argv = configure_argv(prefix, pkgversion)
        run(argv, cwd=build, log=log, env=_build_env())
        times["configure"] = clock() - t

        t = clock()
        progress.info("compile")
        run_ninja(["ninja", "-C", str(build), BINARY_NAME], cwd=build, log=log,
                  progress=progress)
        times["compile"] = clock() - t

        t = clock()
        progress.info("install and verify")
        staged = work / "prefix"
        install_staged(tree, build, staged)
        qemu_version = verify(staged / "bin" / BINARY_NAME, pkgversion, log)
        times["install"] = clock() - t

        (staged / MANIFEST).write_text(json.dumps({
            "key": key, "version": version, "qemu_version": qemu_version,
            "package_version": pkgversion, "patches": list(applied),
            "configure": argv[1:], "devices": list(DEVICES),
            "build_path": BUILD_PATH, "recipe": BUILD_RECIPE_VERSION,
            "sha256": digest_file(staged / "bin" / BINARY_NAME),
            "seconds": {k: round(v, 1) for k, v in times.items()},
        }, indent=1) + "\n")
        if final.exists():
            shutil.rmtree(final)
        staged.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress.info(_times_line(times))
    return QemuBuild(key=key, prefix=final, binary=final / "bin" / BINARY_NAME,
                     source_version=version, patches=applied)


def _times_line(times: Mapping[str, float]) -> str:
    return "times: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
