"""Content-addressed cache keys: the hash of every input of a build.

A key covers named inputs of three kinds: literal strings (versions, build
options), single files and whole directory trees (every file's relative path and
bytes, in sorted order). Changing any input changes the key; nothing else does
(modification times, absolute paths and directory listing order are ignored).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

KEY_LENGTH = 16


def _tree_files(root: Path) -> Iterable[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest_tree(root: Path, exclude: frozenset[str] = frozenset()) -> str:
    """Hash a directory's files by relative path and content; missing tree = empty."""
    h = hashlib.sha256()
    if root.is_dir():
        for f in _tree_files(root):
            rel = f.relative_to(root).as_posix()
            if rel.split("/")[0] in exclude:
                continue
            h.update(rel.encode() + b"\0" + digest_file(f).encode() + b"\n")
    return h.hexdigest()


def cache_key(inputs: Mapping[str, str]) -> str:
    """Combine named input digests or literals into one short key."""
    h = hashlib.sha256()
    for name in sorted(inputs):
        h.update(name.encode() + b"=" + inputs[name].encode() + b"\n")
    return h.hexdigest()[:KEY_LENGTH]


@contextmanager
def staging(final: Path) -> Iterator[Path]:
    """Build a cache entry atomically: yield an empty directory beside `final`, renamed
    to `final` when the block succeeds and removed when it fails, so a half-built entry
    is never mistaken for a cached one."""
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
