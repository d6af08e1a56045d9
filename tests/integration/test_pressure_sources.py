"""Real kernel pressure notifications: vmpressure eventfds and PSI triggers.

No VMs: each test makes its own cgroups (a v1 memory cgroup limited to 64 MiB, and a v2
cgroup in the unified hierarchy for per-cgroup PSI), starts a child inside them that
writes a file several times bigger than the limit into a directory on disk, and waits
for the source to report. Page cache is reclaimable, so the child is never OOM-killed
and the host's own memory is never at risk. Latency is measured from the moment the
child is told to start writing to the arrival of the first event; it is printed (run
with -s to see it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from autoballoon.pressure import HostPressureEvent, PressureSource
from autoballoon.pressure_config import (
    LEVEL_RANK,
    PROC_PRESSURE_MEMORY,
    PressureConfig,
    PsiThreshold,
)

V1_MEMORY = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup/unified")
LIMIT = 64 << 20

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: creates memory cgroups and moves a child into them"
)

# Waits for "go" on stdin, then rewrites a file of `mib` MiB until `seconds` have passed.
CHILD = r"""
import os, sys, time
path, mib, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sys.stdin.readline()
chunk = b"x" * (1 << 20)
end = time.monotonic() + seconds
while time.monotonic() < end:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(mib):
            os.write(fd, chunk)
            if time.monotonic() >= end:
                break
    finally:
        os.close(fd)
"""


def _remove_cgroup(d: Path) -> None:
    deadline = time.monotonic() + 10
    while d.exists():
        try:
            d.rmdir()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def memcg() -> Iterator[Path]:
    if not (V1_MEMORY / "cgroup.event_control").exists():
        pytest.skip("no cgroup v1 memory controller at /sys/fs/cgroup/memory")
    d = V1_MEMORY / f"autoballoon-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    try:
        (d / "memory.limit_in_bytes").write_text(str(LIMIT))
        yield d
    finally:
        _remove_cgroup(d)


@pytest.fixture
def v2cg() -> Iterator[Path]:
    if not (V2_ROOT / "cgroup.procs").exists():
        pytest.skip("no cgroup v2 hierarchy at /sys/fs/cgroup/unified")
    d = V2_ROOT / f"autoballoon-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    try:
        if not (d / "memory.pressure").exists():
            pytest.skip("cgroup v2 has no per-cgroup memory.pressure (PSI disabled?)")
        yield d
    finally:
        _remove_cgroup(d)


@pytest.fixture
def disk_dir(tmp_path: Path) -> Path:
    fs = os.statvfs(tmp_path)
    if fs.f_bavail * fs.f_frsize < 2 * 256 << 20:
        pytest.skip(f"{tmp_path} has less than 512 MiB free")
    with open("/proc/self/mounts") as f:
        mounts = [line.split() for line in f]
    best = max((m for m in mounts if str(tmp_path).startswith(m[1])), key=lambda m: len(m[1]))
    if best[2] in ("tmpfs", "ramfs"):
        pytest.skip(f"{tmp_path} is on {best[2]}: the page-cache workload needs a disk")
    return tmp_path


class Child:
    """A writer child placed in cgroups before it starts; killed by PID on exit."""

    def __init__(self, cgroups: list[Path], target: Path, mib: int, seconds: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(target), str(mib), str(seconds)],
            stdin=subprocess.PIPE,
        )
        self.target = target
        try:
            for cg in cgroups:
                (cg / "cgroup.procs").write_text(str(self.proc.pid))
        except BaseException:
            self.close()
            raise

    def go(self) -> float:
        assert self.proc.stdin is not None
        t0 = time.monotonic()
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()
        return t0

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 9)
        self.proc.wait(timeout=10)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.target.unlink(missing_ok=True)


def first_event(src: PressureSource, child: Child, limit_s: float) -> tuple[float, list[str]]:
    """Start the child, return (latency of the first event, levels seen until limit_s)."""
    t0 = child.go()
    seen: list[str] = []
    latency = -1.0
    while (left := t0 + limit_s - time.monotonic()) > 0:
        ev = src.wait(left)
        if ev is None:
            continue
        assert isinstance(ev, HostPressureEvent)
        assert ev.t >= t0 and ev.level in LEVEL_RANK and ev.source == src.source
        if not seen:
            latency = ev.t - t0
            limit_s = min(limit_s, latency + 3.0)  # gather levels for 3 s more, then stop
        seen.append(ev.level)
    return latency, seen


def summary(seen: list[str]) -> str:
    counts = Counter(seen)
    return f"first {seen[:1]}, counts {dict(counts)} over the following 3 s"


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_vmpressure_reports_low_within_5s(memcg: Path, disk_dir: Path) -> None:
    before = open_fds()
    child = Child([memcg], disk_dir / "fill", mib=256, seconds=8)
    try:
        with PressureSource(PressureConfig(kind="vmpressure", path=memcg)) as src:
            assert len(src.fds()) == 5  # 3 eventfds + pressure_level + stop eventfd
            latency, seen = first_event(src, child, limit_s=5.0)
    finally:
        child.close()
    print(f"\nvmpressure: first event after {latency:.3f} s; {summary(seen)}")
    assert seen, "no vmpressure event within 5 s of writing 4x the memcg limit"
    assert latency <= 5.0
    assert open_fds() == before


def test_psi_cgroup_reports_within_window(memcg: Path, v2cg: Path, disk_dir: Path) -> None:
    # The child's reclaim stalls are charged to its v2 cgroup's memory.pressure even
    # though the limit comes from the v1 memcg (PSI is a cgroup-core feature).
    cfg = PressureConfig(kind="psi-cgroup", path=v2cg)
    child = Child([memcg, v2cg], disk_dir / "fill", mib=256, seconds=10)
    try:
        with PressureSource(cfg) as src:
            latency, seen = first_event(src, child, limit_s=8.0)
    finally:
        child.close()
    print(f"\npsi-cgroup {cfg.psi_triggers()}: first event after {latency:.3f} s; {summary(seen)}")
    if not seen:
        pytest.skip("page-cache reclaim in a 64 MiB memcg stalled < 50 ms per 2 s here")
    assert latency <= 8.0


def test_psi_host_realistic_trigger(memcg: Path, v2cg: Path, disk_dir: Path) -> None:
    if not PROC_PRESSURE_MEMORY.exists():
        pytest.skip("no /proc/pressure/memory: the kernel runs without PSI")
    # The default "low" trigger (some 50 ms per 2 s), host-wide. Only a 64 MiB memcg is
    # squeezed, so the host itself never runs short of memory.
    cfg = PressureConfig(kind="psi-host", levels=("low",))
    child = Child([memcg, v2cg], disk_dir / "fill", mib=256, seconds=10)
    try:
        with PressureSource(cfg) as src:
            latency, seen = first_event(src, child, limit_s=8.0)
    finally:
        child.close()
    print(f"\npsi-host {cfg.psi_triggers()}: first event after {latency:.3f} s; {summary(seen)}")
    if not seen:
        pytest.skip(
            "a 64 MiB memcg's reclaim did not stall the host 50 ms per 2 s; provoking "
            "host-wide pressure safely is not possible without exhausting host memory"
        )
    assert seen == ["low"] * len(seen)


def test_close_from_another_thread_stops_loop_and_closes_fds() -> None:
    if not PROC_PRESSURE_MEMORY.exists():
        pytest.skip("no /proc/pressure/memory: the kernel runs without PSI")
    before = open_fds()
    cfg = PressureConfig(
        kind="psi-host", thresholds={"low": PsiThreshold("some", 2_000_000)}, levels=("low",)
    )
    src = PressureSource(cfg).open()
    got: list[HostPressureEvent] = []
    t = threading.Thread(target=src.run, args=(got.append,), daemon=True)
    t.start()
    time.sleep(0.2)
    t_stop = time.monotonic()
    src.close()
    t.join(timeout=2)
    assert not t.is_alive()
    assert time.monotonic() - t_stop < 1.0
    assert src.fds() == [] and not src.is_open
    assert open_fds() == before


def test_missing_cgroup_gives_one_line_error(tmp_path: Path) -> None:
    from autoballoon.pressure import PressureSourceError

    before = open_fds()
    with pytest.raises(PressureSourceError, match="set path to a cgroup v1 memory cgroup"):
        PressureSource(PressureConfig(kind="vmpressure", path=tmp_path)).open()
    assert open_fds() == before
