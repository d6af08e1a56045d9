"""Where the rig's QEMU comes from: the Debian source version to build, and its download.

Resolves the newest `1:7.2+dfsg-*` version of source package `qemu` that apt knows (a
deb-src entry is added first if the machine has none), remembered with a fingerprint of
apt's state so warm runs do not ask apt again; and downloads that version's source
package once into `<cache>/qemu/src/<v>/`, so a patch change does not download it again.
Unpacking, patching, configuring and building it is qemu_build's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cmp_to_key
from pathlib import Path

from rig.build import debian
from rig.build.cachekey import staging
from rig.errors import RigError
from rig.layout import Layout
from rig.proc import run
from rig.progress import Progress

SOURCE_PACKAGE = "qemu"
SOURCE_VERSION_PREFIX = "1:7.2+dfsg-"


# ---- pure helpers -----------------------------------------------------------------------

def pick_source_version(versions: Iterable[str], prefix: str = SOURCE_VERSION_PREFIX
                        ) -> str | None:
    """The newest of `versions` that starts with `prefix`, or None."""
    matching = [v for v in versions if v.startswith(prefix)]
    if not matching:
        return None
    return max(matching, key=cmp_to_key(debian.compare_versions))


def no_version_message(versions: Iterable[str]) -> str:
    seen = ", ".join(sorted(set(versions))) or "none"
    return (
        f"apt knows no {SOURCE_PACKAGE} source version {SOURCE_VERSION_PREFIX}* (it knows:"
        f" {seen}); run `apt-get update` with Debian bookworm main (deb and deb-src) in apt's"
        " sources, then retry"
    )


def source_dir_name(version: str) -> str:
    return version.replace(":", "_")


def dsc_name(version: str) -> str:
    """apt-get source names the .dsc without the epoch: qemu_7.2+dfsg-7+deb12u18.dsc."""
    return f"{SOURCE_PACKAGE}_{version.partition(':')[2] or version}.dsc"


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
