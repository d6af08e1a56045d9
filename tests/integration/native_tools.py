"""Guest tools (images/tools/*.c) built natively for tests, exactly as the rig builds them
for the guest (rig.build.guest_tools.CFLAGS: static, -Werror)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rig.build.guest_tools import CFLAGS
from rig.layout import REPO_ROOT


def build(name: str, out_dir: Path) -> Path:
    """images/tools/NAME.c built into out_dir/NAME; skipped (with why) without gcc."""
    if shutil.which("gcc") is None:
        pytest.skip(f"gcc is not installed: cannot build images/tools/{name}.c")
    source = REPO_ROOT / "images" / "tools" / f"{name}.c"
    out = out_dir / name
    result = subprocess.run(["gcc", *CFLAGS, "-o", str(out), str(source)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"gcc {' '.join(CFLAGS)} failed:\n{result.stderr}"
    assert result.stderr == "", result.stderr
    return out
