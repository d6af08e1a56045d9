"""Our patch series (git format-patch files): listing, hashing and applying them.

Shared by the QEMU build (host/qemu/patches/) and the guest module build
(guest-driver/patches/): files named *.patch, applied in name order with `patch -p1`
from the tree root; a cover letter (no diff) is skipped.
"""

from __future__ import annotations

from pathlib import Path

from rig.build.cachekey import cache_key, digest_file
from rig.errors import RigError
from rig.proc import run


def list_patches(patch_dir: Path) -> list[Path]:
    """Our patches in the order they are applied (a missing directory has none)."""
    if not patch_dir.is_dir():
        return []
    return sorted((p for p in patch_dir.glob("*.patch") if p.is_file()), key=lambda p: p.name)


def has_diff(patch_text: str) -> bool:
    """False for a format-patch cover letter: nothing to apply."""
    return any(line.startswith(("diff --git ", "+++ ")) for line in patch_text.splitlines())


def patches_digest(patch_dir: Path) -> str:
    """Names and bytes of the *.patch files that change code: a cover letter, a README or
    other files do not count, so editing them never triggers a rebuild."""
    return cache_key({p.name: digest_file(p) for p in list_patches(patch_dir)
                      if has_diff(p.read_text(errors="replace"))})


def apply_series(patches: list[Path], tree: Path, log: Path, what: str) -> tuple[str, ...]:
    """Apply each patch with a diff; return the names applied. `what` names the target."""
    applied: list[str] = []
    for p in patches:
        if not has_diff(p.read_text(errors="replace")):
            continue
        try:
            run(["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch",
                 "-d", tree, "-i", p.resolve()], log=log)
        except RigError as e:
            raise RigError(f"patch {p.name} does not apply to {what}; rebase it"
                           f" (see {log})") from e
        applied.append(p.name)
    return tuple(applied)
