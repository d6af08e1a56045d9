"""The host's memory figures for policies (HostMemory events): a collector.

The host is what the pressure source watches: a memory cgroup (its limit and usage, v1
or v2 file names) or, without one, the machine (/proc/meminfo MemTotal/MemAvailable).
Parsing is pure; reading is one function.
"""

from __future__ import annotations

from pathlib import Path

UNLIMITED = 1 << 62  # a cgroup without a limit reports a huge number (or "max")


def from_cgroup(limit_text: str, usage_text: str, mem_total_kib: int) -> tuple[int, int]:
    """(free MiB, total MiB) of a memory cgroup; total = min(limit, RAM)."""
    total = mem_total_kib << 10
    limit = limit_text.strip()
    if limit != "max" and int(limit) < UNLIMITED:
        total = min(total, int(limit))
    usage = int(usage_text.strip())
    return max(total - usage, 0) >> 20, total >> 20


def from_meminfo(text: str) -> tuple[int, int]:
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if rest.split():
            fields[name] = int(rest.split()[0])
    if "MemTotal" not in fields or "MemAvailable" not in fields:
        raise ValueError("meminfo without MemTotal/MemAvailable")
    return fields["MemAvailable"] >> 10, fields["MemTotal"] >> 10


def read(memcg: Path | None, proc: Path = Path("/proc")) -> tuple[int, int]:
    meminfo = (proc / "meminfo").read_text()
    if memcg is not None:
        for limit, usage in (("memory.limit_in_bytes", "memory.usage_in_bytes"),
                             ("memory.max", "memory.current")):
            if (memcg / limit).exists():
                return from_cgroup((memcg / limit).read_text(), (memcg / usage).read_text(),
                                   from_meminfo(meminfo)[1] << 10)
    return from_meminfo(meminfo)
