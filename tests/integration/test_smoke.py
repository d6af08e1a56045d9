"""The foundation end to end: what `rig smoke` does, then nothing of ours is left."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from rig import scenario
from rig.bench.smoke import run_smoke
from rig.progress import Progress

from .conftest import interrupt_rig, leftovers

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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_smoke_leaves_nothing(layout, stack, daemons_before, sig, tmp_path: Path):
    """Kill `rig smoke` while its VMs boot: it must still tear everything down."""
    rc = interrupt_rig(["smoke", "--results", str(tmp_path)],
                       "==> wait for SSH in every VM", sig, timeout_s=120)
    assert rc == 130
    assert leftovers(layout, daemons_before) == []
