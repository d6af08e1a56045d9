"""Where the rig keeps things outside the repository.

Heavy builds live in a cache keyed by the hash of their inputs; run state lives under
/run and /var/lib. Everything is derived from three roots so tests can point them at a
temporary directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Layout:
    repo: Path
    cache: Path  # content-addressed builds: qemu/, guest-module/, images/, debs/
    state: Path  # per-host and per-VM files that outlive one command (disks, swapfile)
    run: Path  # records of what we started or created (for `host down`)

    @classmethod
    def default(cls) -> Layout:
        env = os.environ
        return cls(
            repo=REPO_ROOT,
            cache=Path(env.get("AUTOBALLOON_CACHE", "/var/cache/autoballoon")),
            state=Path(env.get("AUTOBALLOON_STATE", "/var/lib/autoballoon")),
            run=Path(env.get("AUTOBALLOON_RUN", "/run/autoballoon")),
        )

    @property
    def qemu_patches(self) -> Path:
        return self.repo / "host" / "qemu" / "patches"

    @property
    def guest_driver(self) -> Path:
        return self.repo / "guest-driver"

    @property
    def image_recipe(self) -> Path:
        return self.repo / "images" / "guest"

    @property
    def scenarios(self) -> Path:
        return self.repo / "rig" / "scenarios"

    @property
    def host_record(self) -> Path:
        return self.run / "host.json"

    def vm_dir(self, name: str) -> Path:
        return self.state / "vms" / name
