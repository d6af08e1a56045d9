"""Small static programs for the guest (images/tools/*.c), built once per source digest.

They go into the guest image's workload slot (/opt/autoballoon/bin), so tests and
scenarios can run them over SSH.
"""

from __future__ import annotations

from pathlib import Path

from rig.build.cachekey import cache_key, digest_tree, staging
from rig.layout import Layout
from rig.proc import run
from rig.progress import Progress

RECIPE_VERSION = "1"
CFLAGS = ("-static", "-O2", "-Wall", "-Wextra", "-Werror")


def tools_key(src: Path) -> str:
    return cache_key({"src": digest_tree(src), "cflags": " ".join(CFLAGS),
                      "recipe": RECIPE_VERSION})


def ensure_guest_tools(layout: Layout, progress: Progress) -> Path:
    """The directory of built tools (bin/NAME for each images/tools/NAME.c)."""
    src = layout.repo / "images" / "tools"
    key = tools_key(src)
    final = layout.cache / "guest-tools" / key
    with progress.step("guest tools") as step:
        if (final / "complete").exists():
            step.cached(f"key {key}")
            return final / "bin"
        with staging(final) as tmp:
            log = layout.cache / "logs" / "guest-tools.log"
            (tmp / "bin").mkdir()
            for c in sorted(src.glob("*.c")):
                run(["gcc", *CFLAGS, "-o", tmp / "bin" / c.stem, c], log=log)
                progress.info(f"built {c.stem}")
            (tmp / "complete").write_text(key + "\n")
        return final / "bin"
