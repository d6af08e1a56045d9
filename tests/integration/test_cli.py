"""One VM by hand, as the README shows: host up, vm up/exec/console/down, host down."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rig.layout import REPO_ROOT

from .conftest import leftovers

pytestmark = pytest.mark.vm


def rig(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rig.cli", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_one_vm_by_hand(layout, stack, daemons_before):
    up = rig("host", "up")
    try:
        assert up.returncode == 0, up.stderr
        assert "host up: 2048 MiB RAM" in up.stdout
        again = rig("host", "up")
        assert again.returncode == 1 and "already up" in again.stderr

        vm = rig("vm", "up", "vm-down")
        assert vm.returncode == 0, vm.stderr
        assert "SSH ready" in vm.stdout

        ex = rig("vm", "exec", "vm-down", "--", "cat /proc/swaps; exit 3")
        assert ex.returncode == 3
        assert "/dev/vda" in ex.stdout

        con = rig("vm", "console", "vm-down", "--", "cat /sys/module/virtio_balloon/version")
        assert con.returncode == 0, con.stderr
        assert con.stdout.strip() == f"autoballoon-{stack.module.key}"

        down = rig("vm", "down", "vm-down")
        assert down.returncode == 0, down.stderr
        gone = rig("vm", "exec", "vm-down", "--", "true")
        assert gone.returncode == 2 and "no VM 'vm-down' is up" in gone.stderr
    finally:
        hd = rig("host", "down")
    assert hd.returncode == 0, hd.stderr
    assert leftovers(layout, daemons_before) == []
