"""The host's swapfile: created and activated by `host up`, removed by `host down`."""

from __future__ import annotations

from pathlib import Path

from rig.errors import RigError
from rig.proc import run


def parse_swaps(text: str) -> list[Path]:
    """Active swap areas from /proc/swaps text."""
    return [Path(line.split()[0]) for line in text.splitlines()[1:] if line.strip()]


def active_swaps() -> list[Path]:
    return parse_swaps(Path("/proc/swaps").read_text())


def create(path: Path, size_mib: int) -> None:
    """Allocate, format and activate. The caller records `path` before calling."""
    if path.exists():
        raise RigError(f"{path} already exists: a previous host is still up; "
                       "run `rig host down` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    run(["fallocate", "-l", f"{size_mib}M", path])
    path.chmod(0o600)
    run(["mkswap", "-L", "autoballoon", path])
    run(["swapon", path])


def remove(path: Path) -> None:
    if path in active_swaps():
        run(["swapoff", path])
    path.unlink(missing_ok=True)
