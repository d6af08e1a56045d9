"""Bad input: one line, exit status 2, nothing touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rig.layout import REPO_ROOT


def rig(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rig.cli", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, env=env, check=False)


@pytest.fixture
def isolated(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "AUTOBALLOON_RUN": str(tmp_path / "run"),
            "AUTOBALLOON_STATE": str(tmp_path / "state")}


def test_unknown_scenario_key(tmp_path: Path, isolated):
    bad = tmp_path / "bad.toml"
    bad.write_text('# x\n[host]\nram = 1\n[[vm]]\nname = "a"\nmemory_mib = 256\n')
    r = rig("host", "up", "--scenario", str(bad), env=isolated)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "unknown key 'ram'" in r.stderr
    assert not (tmp_path / "run").exists()


def test_vms_that_cannot_fit(tmp_path: Path, isolated):
    big = tmp_path / "big.toml"
    big.write_text('# x\n[host]\nram_mib = 1024\nswap_mib = 0\n'
                   '[[vm]]\nname = "a"\nmemory_mib = 2048\n')
    r = rig("host", "up", "--scenario", str(big), env=isolated)
    assert r.returncode == 2 and "more than host RAM + swap" in r.stderr
    assert not (tmp_path / "run").exists()


def test_unknown_vm_and_missing_vm(isolated):
    r = rig("vm", "exec", "nope", "--", "true", env=isolated)
    assert r.returncode == 2 and "no VM 'nope' is up" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the non-root refusal by dropping to nobody")
def test_not_root(isolated):
    r = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "rig.cli", "host", "up"],
        cwd=REPO_ROOT, capture_output=True, text=True, env=isolated, check=False,
    )
    assert r.returncode == 2, r.stderr
    assert "needs root" in r.stderr
