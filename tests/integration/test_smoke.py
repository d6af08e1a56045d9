"""The foundation end to end: what `rig smoke` does, then nothing of ours is left."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rig import scenario
from rig.bench.smoke import run_smoke
from rig.host import cgroups, daemons, lifecycle
from rig.layout import REPO_ROOT
from rig.progress import Progress

from .conftest import interrupt_rig, leftovers, wait_for_line

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


def test_a_host_left_by_a_killed_run_is_cleaned_by_the_next_host_up(
        layout, stack, daemons_before, tmp_path: Path):
    """What CI met on 2026-12-01: a run killed with everything it started (the rig, its
    QEMUs, its libvirtd and virtlogd) leaves its host record behind. The next `host up`
    must see the record is stale, clean up what is left and come up, not refuse forever."""
    if daemons_before["libvirtd"] is not None or daemons_before["virtlogd"] is not None:
        pytest.skip("a libvirtd or virtlogd already runs: this test kills the daemons the "
                    "rig starts, and those would not be the rig's")
    proc = subprocess.Popen([sys.executable, "-m", "rig.cli", "smoke", "--results",
                             str(tmp_path)], cwd=REPO_ROOT, text=True,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        wait_for_line(proc, "==> wait for SSH in every VM", 120)
    finally:
        proc.kill()
        proc.wait()
    rec = lifecycle.HostRecord.load(layout.host_record)
    assert rec is not None and rec.complete
    memcg = Path(rec.memory_cgroup)
    qemus = cgroups.tree_procs(memcg)
    assert qemus, "no QEMU in the partition: the run was not killed where intended"
    for pid in qemus:
        os.kill(pid, signal.SIGKILL)
    for d in rec.daemons:
        os.kill(int(d["pid"]), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while cgroups.tree_procs(memcg) or any(
            daemons.is_alive(daemons.Daemon(str(d["name"]), int(d["pid"]),
                                            int(d["start_ticks"]))) for d in rec.daemons):
        assert time.monotonic() < deadline, "the killed processes did not exit in 30 s"
        time.sleep(0.1)
    out = io.StringIO()
    sc = scenario.load("smoke", layout.scenarios)
    with lifecycle.session(layout, sc.host, Progress(stream=out)):
        assert "is stale: every daemon it started" in out.getvalue()
    assert leftovers(layout, daemons_before) == []
