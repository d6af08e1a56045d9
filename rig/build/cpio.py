"""The newc cpio writer the guest image's initramfs is written with.

Written here, not by cpio(1), so the archive is reproducible (uid/gid 0, mtime 0, inode
numbers in entry order) and can hold device nodes without root. tree_entries() lists a
staged directory; write_cpio() writes entries, in the order given, and the trailer.
Its code shapes the image, so the image key covers this file (image.BUILDER_SOURCES).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rig.errors import RigError

_CPIO_MAGIC = b"070701"


def _cpio_header(name: bytes, ino: int, mode: int, size: int, rdev: tuple[int, int],
                 nlink: int = 1) -> bytes:
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    head = _CPIO_MAGIC + b"".join(f"{v:08X}".encode() for v in fields) + name + b"\0"
    return head + b"\0" * (-len(head) % 4)


@dataclass(frozen=True)
class CpioEntry:
    name: str  # relative, no leading slash
    mode: int  # including the file type bits
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def write_cpio(entries: Iterable[CpioEntry], out: Path) -> None:
    with out.open("wb") as f:
        ino = 1
        for e in entries:
            nlink = 2 if stat.S_ISDIR(e.mode) else 1
            f.write(_cpio_header(e.name.encode(), ino, e.mode, len(e.data), e.rdev, nlink))
            f.write(e.data + b"\0" * (-len(e.data) % 4))
            ino += 1
        f.write(_cpio_header(b"TRAILER!!!", 0, 0, 0, (0, 0)))


def tree_entries(root: Path) -> list[CpioEntry]:
    """Entries for every path under root, parents first, in sorted order."""
    entries: list[CpioEntry] = []
    for p in sorted(root.rglob("*"), key=lambda q: q.relative_to(root).as_posix()):
        rel = p.relative_to(root).as_posix()
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            entries.append(CpioEntry(rel, stat.S_IFLNK | 0o777, os.readlink(p).encode()))
        elif stat.S_ISDIR(st.st_mode):
            entries.append(CpioEntry(rel, stat.S_IFDIR | stat.S_IMODE(st.st_mode)))
        elif stat.S_ISREG(st.st_mode):
            entries.append(CpioEntry(rel, stat.S_IFREG | stat.S_IMODE(st.st_mode),
                                     p.read_bytes()))
        else:
            raise RigError(f"{p} is not a file, directory or symlink; remove it")
    return entries
