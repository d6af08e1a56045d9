"""Host-side readings during a benchmark run: the host memory cgroup's usage and swap,
the machine's swap, and a sampler writing them with each VM's balloon once a second."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt

from rig.bench import hostcheck, procstat
from rig.errors import RigError
from rig.vm import domains as vm

SAMPLE_PERIOD_S = 1.0


def memcg_usage_mib(memcg: Path) -> int:
    for name in ("memory.usage_in_bytes", "memory.current"):
        f = memcg / name
        if f.exists():
            return int(f.read_text()) >> 20
    raise RigError(f"{memcg}: no memory usage file (memory.usage_in_bytes / memory.current)")


def memcg_swap_mib(memcg: Path) -> int | None:
    """Swap the host memory cgroup holds now (hostcheck.cgroup_swap_bytes)."""
    f = memcg / "memory.stat"
    b = hostcheck.cgroup_swap_bytes(hostcheck.parse_kv(f.read_text())) if f.exists() else None
    return None if b is None else b >> 20


def swap_used_mib() -> int:
    info = procstat.parse_meminfo(Path("/proc/meminfo").read_text())
    return (info["SwapTotal"] - info["SwapFree"]) >> 10


HOST_VMSTAT = Path("/proc/vmstat")


def host_vmstat() -> dict[str, int]:
    return procstat.parse_vmstat(HOST_VMSTAT.read_text())


@dataclass
class Sampler:
    """Host usage, swap and each VM's balloon every second, as JSON lines."""

    out: Path
    memcg: Path
    domains: dict[str, str]  # VM name -> domain name
    steps: Callable[[], dict[str, int]]
    period_s: float = SAMPLE_PERIOD_S
    latest: dict[str, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = vm.connect()
        t0 = time.monotonic()
        try:
            with self.out.open("a") as f:
                while not self._stop.is_set():
                    f.write(json.dumps(self._sample(conn, time.monotonic() - t0)) + "\n")
                    f.flush()
                    self._stop.wait(self.period_s)
        finally:
            conn.close()

    def _sample(self, conn: libvirt.virConnect, t: float) -> dict[str, Any]:
        vms: dict[str, Any] = {}
        steps = self.steps()
        for name, dom_name in self.domains.items():
            try:
                dom = conn.lookupByName(dom_name)
                actual = dom.info()[2] >> 10
            except libvirt.libvirtError:
                actual = None
            vms[name] = {"actual_mib": actual, "step": steps.get(name, 0)}
        vmstat = host_vmstat()
        self.latest = {"t": round(t, 3), "wall": round(time.time(), 3),
                       "host_usage_mib": memcg_usage_mib(self.memcg),
                       "swap_used_mib": swap_used_mib(),
                       "cgroup_swap_mib": memcg_swap_mib(self.memcg),
                       "pswpin": vmstat["pswpin"], "pswpout": vmstat["pswpout"], "vms": vms}
        return self.latest

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
