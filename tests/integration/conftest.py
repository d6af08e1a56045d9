"""Integration tests boot real VMs: they need root and the bootstrapped stack."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rig.host import daemons, swap
from rig.layout import REPO_ROOT, Layout
from rig.progress import Progress
from rig.vm.domain_xml import DOMAIN_PREFIX

PARTITION_DIR = "autoballoon.partition"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = None
    if os.geteuid() != 0:
        reason = "needs root: it creates cgroups, swap and libvirt domains"
    elif shutil.which("libvirtd") is None:
        reason = "libvirtd is not installed: run `make bootstrap` first"
    if reason:
        for item in items:
            if "vm" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def layout() -> Layout:
    return Layout.default()


@pytest.fixture(scope="session")
def stack(layout: Layout):
    from rig.build.bootstrap import bootstrap

    return bootstrap(layout, Progress())


@pytest.fixture
def daemons_before() -> dict[str, int | None]:
    return {n: daemons.find_running(n) for n in ("virtlogd", "libvirtd")}


def leftovers(layout: Layout, daemons_before: dict[str, int | None]) -> list[str]:
    """Everything of ours that should be gone after a host is torn down."""
    found: list[str] = []
    for mounts_line in Path("/proc/self/mounts").read_text().splitlines():
        parts = mounts_line.split()
        if parts[2] in ("cgroup", "cgroup2") and (Path(parts[1]) / PARTITION_DIR).exists():
            found.append(f"cgroup {parts[1]}/{PARTITION_DIR}")
    found += [f"swap {p}" for p in swap.active_swaps() if str(p).startswith(str(layout.state))]
    if layout.host_record.exists():
        found.append(f"host record {layout.host_record}")
    for name, before in daemons_before.items():
        now = daemons.find_running(name)
        if before is None and now is not None:
            found.append(f"daemon {name} pid {now}")
    if daemons.find_running("libvirtd") is not None:
        from rig.vm import domains as vm

        conn = vm.connect()
        try:
            found += [f"domain {d.name()}" for d in conn.listAllDomains()
                      if d.name().startswith(DOMAIN_PREFIX)]
        finally:
            conn.close()
    if (layout.state / "vms").exists():
        found += [f"vm dir {p}" for p in (layout.state / "vms").iterdir()]
    return found


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout_s: float) -> list[str]:
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


def interrupt_rig(args: list[str], after: str, sig: int = signal.SIGINT,
                  timeout_s: float = 180) -> int:
    """Run `rig ARGS`, send `sig` once its stderr shows `after`; its exit status."""
    proc = subprocess.Popen([sys.executable, "-m", "rig.cli", *args], cwd=REPO_ROOT,
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        wait_for_line(proc, after, timeout_s)
        proc.send_signal(sig)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
