"""Debian packages: what the rig installs, the deb-src entry it derives, and version lookups.

The parsing of deb822 source entries and the ordering of Debian versions are pure; the
adapters below them call apt.
No registry host name appears here: the deb-src entry copies the URIs of the machine's
own `Types: deb` entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rig.errors import RigError
from rig.proc import run

# Everything the bootstrap needs from Debian bookworm main, by purpose.
PACKAGES: dict[str, tuple[str, ...]] = {
    "qemu build": (
        "build-essential", "ninja-build", "meson", "pkg-config", "libglib2.0-dev",
        "libpixman-1-dev", "libslirp-dev", "libfdt-dev", "zlib1g-dev", "flex", "bison",
        "dpkg-dev",
    ),
    "qemu firmware": ("seabios", "ipxe-qemu", "qemu-system-data"),
    "libvirt": ("libvirt-daemon-system", "libvirt-daemon-driver-qemu", "libvirt-clients"),
    "python environment": ("python3-venv", "python3-dev", "libvirt-dev"),
    "guest image": (
        "busybox-static", "dropbear-bin", "openssh-client", "cpio", "kmod", "e2fsprogs",
        "qemu-utils", "xz-utils", "util-linux",
    ),
    "report check": ("chromium",),
}

DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")

# What apt-cache's answers are a function of.
APT_STATE_PATHS: tuple[Path, ...] = (
    Path("/var/lib/apt/lists"),
    Path("/var/lib/dpkg/status"),
    Path("/etc/apt/sources.list"),
    Path("/etc/apt/sources.list.d"),
    Path("/etc/apt/preferences"),
    Path("/etc/apt/preferences.d"),
    Path("/etc/apt/apt.conf.d"),
)
OUR_DEB_SRC = Path("/etc/apt/sources.list.d/autoballoon-deb-src.sources")


@dataclass(frozen=True)
class SourceEntry:
    fields: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str:
        for k, v in self.fields:
            if k.lower() == key.lower():
                return v
        return ""


def parse_deb822(text: str) -> list[SourceEntry]:
    """Parse a deb822 .sources file into entries (comments dropped, continuations joined)."""
    entries: list[SourceEntry] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: list[tuple[str, str]] = []
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and fields:
                k, v = fields[-1]
                fields[-1] = (k, f"{v}\n{line}")
                continue
            key, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"not a deb822 field line: {line!r}")
            fields.append((key.strip(), value.strip()))
        if fields:
            entries.append(SourceEntry(tuple(fields)))
    return entries


def derive_deb_src(text: str) -> str:
    """deb-src twins of every `Types: deb` entry (same URIs, suites, components, keys)."""
    out: list[str] = []
    for entry in parse_deb822(text):
        if "deb" not in entry.get("Types").split():
            continue
        if "deb-src" in entry.get("Types").split():
            continue
        lines = ["Types: deb-src"]
        lines += [f"{k}: {v}" for k, v in entry.fields if k.lower() != "types"]
        out.append("\n".join(lines))
    if not out:
        raise RigError("no `Types: deb` entry to derive a deb-src entry from")
    return "\n\n".join(out) + "\n"


def has_deb_src(text: str) -> bool:
    return any("deb-src" in e.get("Types").split() for e in parse_deb822(text))


# ---- pure helpers: version ordering ---------------------------------------------------

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


# ---- adapters -------------------------------------------------------------------------

def apt_fingerprint(paths: tuple[Path, ...] = APT_STATE_PATHS) -> str:
    """Names, sizes and mtimes of apt's inputs: cheap, and changes whenever apt's view can."""
    h = hashlib.sha256()
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def apt_memo(path: Path, key: Mapping[str, str],
             compute: Callable[[], dict[str, str]]) -> dict[str, str]:
    """compute() once per apt/dpkg state and `key`: apt-cache takes ~1 s a call here, and a
    warm bootstrap must stay under 10 s."""
    try:
        saved = json.loads(path.read_text())
        if saved["fingerprint"] == apt_fingerprint() and saved["key"] == dict(key):
            return dict(saved["value"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    # compute() may install packages or update the lists: fingerprint the state it leaves.
    tmp.write_text(json.dumps({"fingerprint": apt_fingerprint(), "key": dict(key),
                               "value": value}, indent=1) + "\n")
    tmp.replace(path)
    return value


def _apt_env() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def missing_packages(names: list[str]) -> list[str]:
    """Names among `names` that dpkg does not report as installed."""
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *names],
        capture_output=True, text=True, check=False,
    )
    installed = {
        line.split()[0] for line in proc.stdout.splitlines() if line.endswith(" installed")
    }
    return [n for n in names if n not in installed]


def apt_update(log: Path) -> None:
    run(["apt-get", "update"], log=log, env=_apt_env())


def install(names: list[str], log: Path) -> None:
    """apt-get install without starting services (a temporary policy-rc.d says no)."""
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\n# autoballoon bootstrap: no service starts\nexit 101\n")
        policy.chmod(0o755)
    try:
        run(["apt-get", "install", "-y", "--no-install-recommends", *names],
            log=log, env=_apt_env())
    finally:
        if ours:
            policy.unlink(missing_ok=True)


def ensure_deb_src(log: Path) -> bool:
    """Add our deb-src entry if the machine has none. Returns True if apt lists changed."""
    existing = "".join(
        p.read_text() for p in Path("/etc/apt/sources.list.d").glob("*.sources")
    )
    if has_deb_src(existing):
        return False
    OUR_DEB_SRC.write_text(
        "# Added by the autoballoon bootstrap: deb-src twins of debian.sources\n"
        + derive_deb_src(DEBIAN_SOURCES.read_text())
    )
    apt_update(log)
    return True


def parse_candidates(policy_output: str) -> dict[str, str | None]:
    """Candidate version per package from `apt-cache policy A B ...` (None: not installable)."""
    found: dict[str, str | None] = {}
    current = None
    for line in policy_output.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
            found[current] = None
        elif current and line.strip().startswith("Candidate:"):
            value = line.split(":", 1)[1].strip()
            found[current] = None if value == "(none)" else value
    return found


def uninstallable(names: list[str]) -> list[str]:
    """Names apt has no candidate for (one apt-cache call for all of them)."""
    out = subprocess.run(["apt-cache", "policy", *names], capture_output=True, text=True,
                         check=False).stdout
    cands = parse_candidates(out)
    return [n for n in names if cands.get(n) is None]


def candidate_version(package: str) -> str:
    out = run(["apt-cache", "policy", package])
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        raise RigError(f"apt has no candidate for {package}; run `apt-get update` and retry")
    return m.group(1)


def depends_of(package: str) -> list[str]:
    out = run(["apt-cache", "depends", "--no-recommends", "--no-suggests", package])
    return [m.group(1) for m in re.finditer(r"^\s*Depends:\s*(\S+)", out, re.MULTILINE)]


def source_versions(source: str) -> list[str]:
    out = run(["apt-cache", "showsrc", source])
    return re.findall(r"^Version:\s*(\S+)", out, re.MULTILINE)


def download(package: str, version: str, dest: Path, log: Path) -> Path:
    """Fetch one .deb into dest (not installed); return its path."""
    dest.mkdir(parents=True, exist_ok=True)
    run(["apt-get", "download", f"{package}={version}"], cwd=dest, log=log)
    matches = sorted(dest.glob(f"{package}_*.deb"))
    if not matches:
        raise RigError(f"apt-get download {package}={version} left no .deb in {dest}")
    return matches[-1]
