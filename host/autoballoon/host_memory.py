"""The host's memory figures for policies (HostMemory events): a collector.

The host is what the pressure source watches: a memory cgroup or, without one, the
machine. For a cgroup (v1 or v2 file names):

- total = its limit, or the machine's MemTotal when that is smaller (or there is none);
- free = total - (usage - inactive_file): the cgroup's inactive page cache is reclaimed
  before anything else, so it counts as free (counting it as used would keep a host with
  a big cache "short" for ever: the reserve rule would keep taking and give-back would
  never start). v1's memory.stat calls the hierarchy's figure ``total_inactive_file``
  (its ``inactive_file`` is the cgroup's own pages only), v2's ``inactive_file``;
- free is never more than the machine's MemAvailable: memory outside the cgroup (other
  cgroups, the kernel) counts too, and with no limit it is the only bound.

Without a cgroup: (MemAvailable, MemTotal) of /proc/meminfo. Parsing is pure (text in,
MiB out); reading is one function.
"""

from __future__ import annotations

from pathlib import Path

UNLIMITED = 1 << 62  # a v1 cgroup without a limit reports a huge number (v2: "max")
#: (limit, usage) file names of cgroup v1 and v2.
CGROUP_FILES = (("memory.limit_in_bytes", "memory.usage_in_bytes"),
                ("memory.max", "memory.current"))


def parse_keyed(text: str, sep: str = "") -> dict[str, int]:
    """``name value ...`` lines (memory.stat), or ``name: value kB`` with sep=":"
    (/proc/meminfo); lines without a number are skipped."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        if sep:
            name, _, rest = line.partition(sep)
        else:
            name, _, rest = line.strip().partition(" ")
        words = rest.split()
        if words and words[0].isdigit():
            fields[name.strip()] = int(words[0])
    return fields


def meminfo_kib(text: str) -> tuple[int, int]:
    """(MemAvailable, MemTotal) in KiB."""
    fields = parse_keyed(text, ":")
    if "MemTotal" not in fields or "MemAvailable" not in fields:
        raise ValueError("meminfo without MemTotal/MemAvailable")
    return fields["MemAvailable"], fields["MemTotal"]


def inactive_file(stat_text: str) -> int:
    """Bytes of inactive page cache in a memory.stat (hierarchical on v1 and v2)."""
    fields = parse_keyed(stat_text)
    for key in ("total_inactive_file", "inactive_file"):  # v1, v2
        if key in fields:
            return fields[key]
    raise ValueError("memory.stat without total_inactive_file (v1) or inactive_file (v2)")


def from_cgroup(limit_text: str, usage_text: str, stat_text: str,
                meminfo_text: str) -> tuple[int, int]:
    """(free MiB, total MiB) of a memory cgroup, as the module docstring says."""
    available_kib, total_kib = meminfo_kib(meminfo_text)
    total = total_kib << 10
    limit = limit_text.strip()
    if limit != "max" and int(limit) < UNLIMITED:
        total = min(total, int(limit))
    used = max(int(usage_text.strip()) - inactive_file(stat_text), 0)
    free = min(max(total - used, 0), available_kib << 10)
    return free >> 20, total >> 20


def from_meminfo(text: str) -> tuple[int, int]:
    """(free MiB, total MiB) of the machine: MemAvailable, MemTotal."""
    available_kib, total_kib = meminfo_kib(text)
    return available_kib >> 10, total_kib >> 10


def read(memcg: Path | None, proc: Path = Path("/proc")) -> tuple[int, int]:
    """(free MiB, total MiB) of ``memcg`` (a v1 or v2 memory cgroup directory) or, with
    None, of the machine. OSError/ValueError if the files are missing or malformed."""
    meminfo = (proc / "meminfo").read_text()
    if memcg is not None:
        for limit, usage in CGROUP_FILES:
            if (memcg / limit).exists():
                return from_cgroup((memcg / limit).read_text(), (memcg / usage).read_text(),
                                   (memcg / "memory.stat").read_text(), meminfo)
    return from_meminfo(meminfo)
