"""The foundation end to end: what `rig smoke` does, then nothing of ours is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rig import scenario
from rig.layout import REPO_ROOT
from rig.progress import Progress
from rig.smoke import run_smoke

from .conftest import leftovers

pytestmark = pytest.mark.vm


def test_smoke_two_vms_then_clean(layout, stack, daemons_before):
    sc = scenario.load("smoke", layout.scenarios)
    result = run_smoke(layout, sc, stack, Progress())
    print(result.table())
    assert result.ok, result.table()
    checks = {(c.vm, c.check) for c in result.checks}
    for v in sc.vms:
        assert {(v.name, "boot to SSH"), (v.name, "ssh exec"), (v.name, "console exec")} <= checks
    assert (sc.vms[0].name, "balloon +256 MiB") in checks
    boot = list(result.boot_to_ssh_s.values())
    assert len(boot) == len(sc.vms)
    assert max(boot) <= 30, f"boot to SSH took {boot} s (the limit under TCG is 30 s)"
    assert leftovers(layout, daemons_before) == []


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout_s: float) -> list[str]:
    seen: list[str] = []
    end = time.monotonic() + timeout_s
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if line:
            seen.append(line)
            if needle in line:
                return seen
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.1)
    pytest.fail(f"never saw {needle!r}; output:\n{''.join(seen)}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_smoke_leaves_nothing(layout, stack, daemons_before, sig, tmp_path: Path):
    """Kill `rig smoke` while its VMs boot: it must still tear everything down."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig.cli", "smoke", "--results", str(tmp_path)],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        _wait_for_line(proc, "==> wait for SSH in every VM", 120)
        proc.send_signal(sig)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 130
    assert leftovers(layout, daemons_before) == []
