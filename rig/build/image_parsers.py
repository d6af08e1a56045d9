"""Pure parsers the guest image build reads its inputs with.

The kernel's modules.dep and the load order it implies, `ldd` output (the libraries to
copy), dpkg Depends fields (the packages whose versions enter the key) and `dropbearkey
-y` output (the host key to pin). No I/O: image.py runs the tools and stages the files.
What these return decides what lands in the image, so the image key covers this file
(image.BUILDER_SOURCES).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rig.errors import RigError


@dataclass(frozen=True)
class ModuleEntry:
    path: str  # relative to lib/modules/<abi>
    deps: tuple[str, ...]  # module names


def module_name(path: str) -> str:
    """kernel/drivers/char/hw_random/virtio-rng.ko(.xz) -> virtio_rng"""
    base = path.rsplit("/", 1)[-1]
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, ModuleEntry]:
    """modules.dep lines `path: dep-path dep-path ...` -> name -> entry."""
    out: dict[str, ModuleEntry] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, sep, deps = line.partition(":")
        if not sep:
            raise ValueError(f"not a modules.dep line: {line!r}")
        path = path.strip()
        out[module_name(path)] = ModuleEntry(path, tuple(module_name(d) for d in deps.split()))
    return out


def load_order(
    modules: Mapping[str, ModuleEntry], wanted: Iterable[str]
) -> list[ModuleEntry]:
    """Every wanted module and its dependencies, each after all it depends on.

    Wanted modules keep their given order where dependencies allow it.
    """
    order: list[ModuleEntry] = []
    done: set[str] = set()
    active: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in active:
            raise RigError(f"module dependency cycle {' -> '.join([*active, name])};"
                           " check the kernel's modules.dep")
        entry = modules.get(name)
        if entry is None:
            chain = " <- ".join(reversed([*active, name]))
            raise RigError(f"module {chain} is not in the kernel's modules.dep;"
                           " is it built in or renamed in this kernel?")
        active.append(name)
        for dep in entry.deps:
            visit(dep)
        active.pop()
        done.add(name)
        order.append(entry)

    for name in wanted:
        visit(name)
    return order


def parse_ldd(text: str) -> list[Path]:
    """The library files (and the loader) in `ldd` output; vdso has no file."""
    libs: list[Path] = []
    for line in text.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].strip()
            if target.startswith("not found"):
                raise RigError(f"ldd: {line}; reinstall the package that provides it")
            path = target.split(" (", 1)[0].strip()
        else:
            path = line.split(" (", 1)[0].strip()
        if path.startswith("/"):
            libs.append(Path(path))
    return libs


def parse_depends_field(field: str) -> list[str]:
    """A dpkg Depends field -> package names (first of each alternative, no versions)."""
    names: list[str] = []
    for part in field.split(","):
        first = part.split("|", 1)[0].strip()
        name = first.split("(", 1)[0].split(":", 1)[0].strip()
        if name and name not in names:
            names.append(name)
    return names


def parse_dropbearkey_pub(text: str) -> str:
    """`dropbearkey -y` output -> "ssh-ed25519 AAAA..." (type and key, no comment)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("ssh-"):
            return f"{parts[0]} {parts[1]}"
    raise RigError("dropbearkey -y printed no public key; reinstall dropbear-bin")
