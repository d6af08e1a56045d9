"""Kernel counters as text: /proc/vmstat, /proc/<pid>/stat, /proc/meminfo, /proc/uptime
and the OOM killer's kernel log lines.

Pure: every function takes a file's text (read on the host, or fetched from a guest over
SSH) or already-parsed records and returns records or raises ValueError. Nothing is read
here and no clock is consulted: elapsed times come in as arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# The counters a run measures as deltas: swap traffic (pages), faults, and OOM kills.
VMSTAT_DELTA_KEYS = ("pswpin", "pswpout", "pgmajfault", "pgfault", "oom_kill")


def parse_vmstat(text: str) -> dict[str, int]:
    """/proc/vmstat (host or guest): one "name value" per line."""
    out: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"vmstat line {lineno}: expected 'name value', got {line!r}")
        name, value = parts
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"vmstat line {lineno}: {name} is not an integer: {value!r}") from None
        if name in out:
            raise ValueError(f"vmstat line {lineno}: {name} appears twice")
        out[name] = number
    if not out:
        raise ValueError("vmstat: no counters (empty text)")
    return out


def vmstat_delta(
    start: Mapping[str, int], end: Mapping[str, int], keys: Iterable[str] = VMSTAT_DELTA_KEYS
) -> dict[str, int]:
    """end - start for each of `keys`. Every key must be in both snapshots; a counter that
    went backwards means the kernel restarted between the snapshots (or they are swapped),
    and is an error rather than a negative count."""
    out: dict[str, int] = {}
    for key in keys:
        for which, snap in (("start", start), ("end", end)):
            if key not in snap:
                raise ValueError(f"vmstat {which} snapshot has no {key} counter")
        d = end[key] - start[key]
        if d < 0:
            raise ValueError(
                f"vmstat counter {key} went backwards ({start[key]} -> {end[key]}): "
                "was the kernel restarted between the snapshots?"
            )
        out[key] = d
    return out


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat a run uses (proc(5) field numbers in comments)."""

    pid: int  # 1
    comm: str  # 2, without the parentheses
    minflt: int  # 10
    majflt: int  # 12
    utime_ticks: int  # 14, clock ticks (sysconf(_SC_CLK_TCK))
    stime_ticks: int  # 15
    starttime_ticks: int  # 22, ticks after boot
    num_threads: int  # 20
    rss_pages: int  # 24


# Field number (proc(5), 1-based) -> ProcStat attribute, for the fields after comm.
_STAT_FIELDS = {
    10: "minflt",
    12: "majflt",
    14: "utime_ticks",
    15: "stime_ticks",
    20: "num_threads",
    22: "starttime_ticks",
    24: "rss_pages",
}


def parse_proc_stat(text: str) -> ProcStat:
    """/proc/<pid>/stat. comm is in parentheses and may itself contain spaces, '(' and ')'
    (a process chooses its own name), so it runs from the first '(' to the *last* ')'."""
    line = text.strip()
    lpar, rpar = line.find("("), line.rfind(")")
    if lpar <= 0 or rpar < lpar:
        raise ValueError(f"/proc/<pid>/stat: no '(comm)' in {line[:80]!r}")
    try:
        pid = int(line[:lpar])
    except ValueError:
        raise ValueError(f"/proc/<pid>/stat: bad pid {line[:lpar]!r}") from None
    rest = line[rpar + 1:].split()  # rest[0] is field 3 (state)
    last = max(_STAT_FIELDS)
    if len(rest) < last - 2:
        raise ValueError(
            f"/proc/<pid>/stat of pid {pid}: {len(rest) + 2} fields, need at least {last}"
        )
    values: dict[str, int] = {}
    for field, attr in _STAT_FIELDS.items():
        raw = rest[field - 3]
        try:
            values[attr] = int(raw)
        except ValueError:
            raise ValueError(
                f"/proc/<pid>/stat of pid {pid}: field {field} ({attr}) is {raw!r}"
            ) from None
    return ProcStat(pid=pid, comm=line[lpar + 1:rpar], **values)


def parse_uptime(text: str) -> float:
    """/proc/uptime: seconds since boot (its first number)."""
    parts = text.split()
    try:
        return float(parts[0])
    except (IndexError, ValueError):
        raise ValueError(f"/proc/uptime: expected 'seconds idle', got {text.strip()!r}") from None


def process_age_s(stat: ProcStat, *, uptime_s: float, clk_tck: int) -> float:
    """Seconds a process has been running, from its start time and the system's uptime
    (both taken on the same machine): the elapsed time for qemu_usage(None, ...)."""
    if clk_tck <= 0:
        raise ValueError(f"clk_tck must be positive, got {clk_tck}")
    age = uptime_s - stat.starttime_ticks / clk_tck
    if age < 0:
        raise ValueError(f"pid {stat.pid} started after the uptime sample ({age:.3f} s)")
    return age


@dataclass(frozen=True)
class QemuUsage:
    """A QEMU process's resource use over an interval, in /usr/bin/time's terms."""

    elapsed_s: float
    user_s: float
    sys_s: float
    cpu_pct: float  # (user + sys) / elapsed * 100; above 100 with several busy threads
    major_faults: int
    minor_faults: int


def qemu_usage(
    start: ProcStat | None, end: ProcStat, *, clk_tck: int, elapsed_s: float
) -> QemuUsage:
    """Usage between two samples of one process; with start None, since the process began
    (then elapsed_s should be its age, see process_age_s). The two samples must be of the
    same process: same pid and start time, else QEMU was restarted in between."""
    if clk_tck <= 0:
        raise ValueError(f"clk_tck must be positive, got {clk_tck}")
    if not elapsed_s > 0:
        raise ValueError(f"elapsed_s must be positive, got {elapsed_s}")
    if start is not None and (start.pid, start.starttime_ticks) != (
        end.pid, end.starttime_ticks
    ):
        raise ValueError(
            f"samples are of different processes (pid {start.pid} started at tick "
            f"{start.starttime_ticks}, pid {end.pid} at tick {end.starttime_ticks})"
        )

    def delta(attr: str) -> int:
        b = getattr(end, attr)
        a = 0 if start is None else getattr(start, attr)
        if b < a:
            raise ValueError(f"pid {end.pid}: {attr} went backwards ({a} -> {b})")
        return b - a

    user_s = delta("utime_ticks") / clk_tck
    sys_s = delta("stime_ticks") / clk_tck
    return QemuUsage(
        elapsed_s=elapsed_s,
        user_s=user_s,
        sys_s=sys_s,
        cpu_pct=(user_s + sys_s) / elapsed_s * 100,
        major_faults=delta("majflt"),
        minor_faults=delta("minflt"),
    )


def parse_oom_kills(vmstat: Mapping[str, int]) -> int | None:
    """The oom_kill counter of a parsed /proc/vmstat (Linux >= 4.13): kills since boot for
    a snapshot, kills during a run for a vmstat_delta. None when the kernel lacks the
    counter; then count the kernel log with count_dmesg_oom_kills instead."""
    return vmstat.get("oom_kill")


# One line per kill on every kernel: "Out of memory: Killed process 123 (ebizzy) ..." and
# "Memory cgroup out of memory: Killed process ..." (>= 5.x), or a bare "Killed process
# 123 (ebizzy) ..." after "Out of memory: Kill process ..." (older kernels). The "Kill
# process" and "oom_reaper: reaped process" lines of the same kill do not match.
_OOM_KILL_RE = re.compile(r"\bKilled process \d+ \(")


def count_dmesg_oom_kills(text: str) -> int:
    """OOM kills in kernel log text (`dmesg` output, with or without timestamps)."""
    return sum(1 for line in text.splitlines() if _OOM_KILL_RE.search(line))


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo: name -> value in kB. The few unit-less fields (HugePages_Total and
    friends) are counts and kept as given."""
    out: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        name, sep, value = line.partition(":")
        parts = value.split()
        if not sep or not name or len(parts) not in (1, 2) or parts[1:] not in ([], ["kB"]):
            raise ValueError(f"meminfo line {lineno}: expected 'Name: value [kB]', got {line!r}")
        try:
            out[name] = int(parts[0])
        except ValueError:
            raise ValueError(f"meminfo line {lineno}: {name} is not an integer") from None
    if not out:
        raise ValueError("meminfo: no fields (empty text)")
    return out
